"""The wire dialects the client speaks: the request body for each provider, the Qwen3-Reranker
template for the providers that pass raw text to the model, and one strict parser for every dialect's
answer (a `results` or `data` list, or TEI's bare array). Pure: no I/O."""

from __future__ import annotations

import math
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, get_args

from rerankd.client.errors import InvalidResponseError, message_of
from rerankd.templates import DEFAULT_INSTRUCTION, QWEN3_PREFIX, QWEN3_SUFFIX, is_templated
from rerankd.types import Span

Provider = Literal["auto", "rerankd", "vllm", "siliconflow", "cohere", "jina", "tei"]
PROVIDERS: tuple[str, ...] = get_args(Provider)
#: Providers whose servers take raw text for Qwen3-Reranker, so the client must apply the template.
CLIENT_TEMPLATED = frozenset({"vllm", "siliconflow"})
#: Providers whose rerank body takes an `instruction` field.
TAKES_INSTRUCTION = frozenset({"rerankd", "siliconflow"})


def new_request_id() -> str:
    return uuid.uuid4().hex


# ----------------------------------------------------------------------------------------------------
# Templating


def wants_template(provider: str, template: str | None, model: str | None) -> bool:
    """Whether the client applies the Qwen3-Reranker template itself.

    `template="qwen3"` always does (any provider: the caller knows best); `template=None` never does;
    `template="auto"` does for the providers that pass raw text to the model (vLLM, SiliconFlow) when
    the model's name contains "qwen3-reranker" (case-insensitive). rerankd applies the template on the
    server; Cohere, Jina and TEI serve models that need none."""
    if template is None:
        return False
    if template == "qwen3":
        return True
    if template != "auto":
        raise ValueError(f'template must be "auto", "qwen3" or None, got {template!r}')
    return provider in CLIENT_TEMPLATED and is_qwen3_reranker(model)


def is_qwen3_reranker(model: str | None) -> bool:
    return model is not None and "qwen3-reranker" in model.lower()


def qwen3_query(query: str, instruction: str | None = None) -> str:
    """The query half of the Qwen3-Reranker prompt (vLLM's documented client-side recipe)."""
    if is_templated(query):
        return query
    instr = DEFAULT_INSTRUCTION if instruction is None else instruction
    return f"{QWEN3_PREFIX}<Instruct>: {instr}\n<Query>: {query}\n"


def qwen3_document(document: str) -> str:
    """The document half: query + document is then exactly the reference prompt."""
    return f"<Document>: {document}{QWEN3_SUFFIX}"


# ----------------------------------------------------------------------------------------------------
# Requests and answers


@dataclass(frozen=True)
class Request:
    """One HTTP request of a call, before any I/O."""

    method: str
    path: str
    body: Any = None
    offset: int = 0
    n_docs: int = 0
    expected: int = 0
    request_id: str = field(default_factory=new_request_id)
    #: A 2xx that is not JSON is fine (plain-text health checks): it reads as no payload.
    json_optional: bool = False


@dataclass(frozen=True)
class SpanOptions:
    """`return_spans` and its options (None: the server's defaults); rerankd's dialect only."""

    max_spans: int | None = None
    span_tokens: int | None = None


@dataclass(frozen=True)
class SliceAnswer:
    """A parsed answer: (index, score) pairs with indices local to the request."""

    items: list[tuple[int, float]]
    model: str | None = None
    prompt_tokens: int = 0
    warnings: tuple[dict[str, Any], ...] = ()  # meta.warnings as sent, indices local to the request
    spans: dict[int, tuple[Span, ...]] = field(default_factory=dict)  # by local index, as sent


def rerank_path(provider: str) -> str:
    return {"cohere": "/v2/rerank", "tei": "/rerank"}.get(provider, "/v1/rerank")


def build_rerank_request(
    provider: str,
    *,
    model: str | None,
    query: str,
    documents: Sequence[str],
    top_n: int | None,
    instruction: str | None,
    template: bool,
    offset: int = 0,
    spans: SpanOptions | None = None,
) -> Request:
    """The request for one slice of documents in `provider`'s dialect.

    Documents are never echoed back (`return_documents` false): the client attaches the caller's own
    Document objects to the results, ids and metadata included."""
    if provider not in PROVIDERS or provider == "auto":
        raise ValueError(f"unknown provider {provider!r}; expected one of {', '.join(PROVIDERS[1:])}")
    docs = list(documents)
    if template:
        query = qwen3_query(query, instruction)
        docs = [d if is_templated(d) else qwen3_document(d) for d in docs]
    n = len(docs)
    keep = None if top_n is None else min(top_n, n)
    # TEI has no top_n: it answers every document and the client cuts after the merge.
    expected = n if keep is None or provider == "tei" else keep
    body: dict[str, Any]
    if provider == "tei":
        # TEI rejects inputs over the model's length unless told to truncate (its default is false).
        body = {"query": query, "texts": docs, "raw_scores": False, "return_text": False, "truncate": True}
    else:
        body = {"query": query, "documents": docs}
        if model is not None:
            body = {"model": model, **body}
        if keep is not None:
            body["top_n"] = keep
        if provider in ("rerankd", "siliconflow", "jina"):
            body["return_documents"] = False
        if provider in TAKES_INSTRUCTION and instruction is not None and not template:
            body["instruction"] = instruction
    if spans is not None:
        if provider != "rerankd":
            raise ValueError(f"return_spans needs a rerankd server; provider {provider!r} has no spans")
        body["return_spans"] = True
        if spans.max_spans is not None:
            body["max_spans"] = spans.max_spans
        if spans.span_tokens is not None:
            body["span_tokens"] = spans.span_tokens
    return Request("POST", rerank_path(provider), body, offset=offset, n_docs=n, expected=expected)


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


def _tokens(payload: Mapping[str, Any]) -> int:
    for outer, inner in (
        ("usage", "prompt_tokens"),
        ("usage", "total_tokens"),
        ("tokens", "input_tokens"),
        ("meta", "tokens"),
    ):
        value = payload.get(outer)
        if isinstance(value, Mapping):
            got = value.get(inner)
            if isinstance(got, Mapping):
                got = got.get("input_tokens")
            if isinstance(got, int) and not isinstance(got, bool):
                return got
    return 0


def parse_rerank_answer(payload: Any, request: Request) -> SliceAnswer:
    """Read any dialect's answer (a `results` or `data` list, or TEI's bare array) strictly: every
    result needs an in-range, unique index and a finite score, and there must be at least as many
    results as asked for (more are cut after the merge). An answer without results is an error, never an empty ranking."""
    items: Any
    if isinstance(payload, list):
        items, model, tokens = payload, None, 0
    elif isinstance(payload, dict):
        items = payload.get("results", payload.get("data"))
        model = payload.get("model") if isinstance(payload.get("model"), str) else None
        tokens = _tokens(payload)
        if items is None:
            message, _ = message_of(payload)
            raise InvalidResponseError(
                f"the answer has no results{f' ({message})' if message else ''}: expected a "
                f'"results" list, got the fields {sorted(payload)}'
            )
    else:
        raise InvalidResponseError(f"the answer is not a rerank result: {str(payload)[:200]}")
    if not isinstance(items, list):
        raise InvalidResponseError(f"the answer's results are not a list: {str(items)[:200]}")
    pairs: list[tuple[int, float]] = []
    spans: dict[int, tuple[Span, ...]] = {}
    seen: set[int] = set()
    for k, item in enumerate(items):
        if not isinstance(item, dict):
            raise InvalidResponseError(f"result {k} is not an object: {str(item)[:200]}")
        index = item.get("index")
        score = _number(item.get("relevance_score", item.get("score")))
        if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < request.n_docs:
            raise InvalidResponseError(
                f"result {k} has index {index!r}, outside the {request.n_docs} documents sent"
            )
        if index in seen:
            raise InvalidResponseError(f"the answer ranks document {index} twice")
        if score is None:
            raise InvalidResponseError(f"result {k} (document {index}) has no finite score: {item}")
        seen.add(index)
        pairs.append((index, score))
        if item.get("spans") is not None:
            spans[index] = _spans(item["spans"], k)
    if len(pairs) < request.expected:
        raise InvalidResponseError(
            f"the answer has {len(pairs)} results for {request.n_docs} documents; expected {request.expected}"
        )
    return SliceAnswer(pairs, model, tokens, _warnings(payload), spans)


def _spans(value: Any, k: int) -> tuple[Span, ...]:
    """A result's spans, strictly: each {start, end, score, text} with 0 <= start <= end and text the
    length of its range (code points)."""
    if not isinstance(value, list):
        raise InvalidResponseError(f"result {k} has spans that are not a list: {str(value)[:200]}")
    out = []
    for s in value:
        item = s if isinstance(s, dict) else {}
        start, end, text = item.get("start"), item.get("end"), item.get("text")
        score = _number(item.get("score"))
        if not (
            isinstance(start, int)
            and isinstance(end, int)
            and not isinstance(start, bool)
            and not isinstance(end, bool)
            and score is not None
            and isinstance(text, str)
            and 0 <= start <= end
            and len(text) == end - start
        ):
            raise InvalidResponseError(f"result {k} has a malformed span: {str(s)[:200]}")
        out.append(Span(start, end, score, text))
    return tuple(out)


def _warnings(payload: Any) -> tuple[dict[str, Any], ...]:
    """rerankd's meta.warnings objects; anything else in that slot (Cohere sends strings) is kept as a
    message."""
    meta = payload.get("meta") if isinstance(payload, dict) else None
    found = meta.get("warnings") if isinstance(meta, dict) else None
    if not isinstance(found, list):
        return ()
    return tuple(w if isinstance(w, dict) else {"message": str(w)} for w in found)


__all__ = [
    "CLIENT_TEMPLATED",
    "PROVIDERS",
    "TAKES_INSTRUCTION",
    "Provider",
    "Request",
    "SliceAnswer",
    "SpanOptions",
    "build_rerank_request",
    "parse_rerank_answer",
    "qwen3_document",
    "qwen3_query",
    "rerank_path",
    "wants_template",
]
