"""The client's pure logic, shared by the sync and the async client: request building per provider
dialect, client-side templating, answer parsing and merging, error mapping and the retry policy.

Nothing here does I/O or sleeps: the sync and async clients only differ in how they send a request and
wait (see `_sync.py` and `_async.py`), like openai-python's `_base_client.py`.
"""

from __future__ import annotations

import email.utils
import logging
import math
import random
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, get_args

from rerankd.client.errors import (
    AuthenticationError,
    BadRequestError,
    ClientError,
    ConnectionError,
    InvalidResponseError,
    NotFoundError,
    RateLimitError,
    ServerError,
    TimeoutError,
)
from rerankd.templates import DEFAULT_INSTRUCTION, QWEN3_PREFIX, QWEN3_SUFFIX, is_templated
from rerankd.types import Document, DocumentLike, RankedDocument, RerankResult, Usage, as_document

log = logging.getLogger("rerankd.client")

Provider = Literal["auto", "rerankd", "vllm", "siliconflow", "cohere", "jina", "tei"]
PROVIDERS: tuple[str, ...] = get_args(Provider)
Template = Literal["auto", "qwen3"]

#: The wire format used when `provider="auto"` can't tell what the server is.
FALLBACK_PROVIDER = "rerankd"
#: Providers whose servers take raw text for Qwen3-Reranker, so the client must apply the template.
CLIENT_TEMPLATED = frozenset({"vllm", "siliconflow"})
RETRYABLE_STATUS = frozenset({408, 409, 429})
DEFAULT_FANOUT = 8


# ----------------------------------------------------------------------------------------------------
# Options


@dataclass(frozen=True)
class RetryPolicy:
    """When and how long to wait before trying a request again.

    Retried: connection errors, timeouts, 408, 409, 429 and 5xx. The n-th retry waits
    `min(initial_delay * 2**(n-1), max_delay)` scaled by a random factor in [1 - jitter, 1], or the
    server's `Retry-After` (seconds or an HTTP date) capped at `max_retry_after`. No attempt starts
    once `deadline` seconds have passed since the call began, nor a wait that would end past it.
    """

    max_retries: int = 2
    initial_delay: float = 0.5
    max_delay: float = 8.0
    jitter: float = 0.5
    max_retry_after: float = 60.0
    deadline: float | None = 300.0

    def __post_init__(self) -> None:
        if self.max_retries < 0:
            raise ValueError(f"max_retries must be >= 0, got {self.max_retries}")
        if self.deadline is not None and self.deadline <= 0:
            raise ValueError(f"deadline must be positive seconds or None, got {self.deadline}")
        if not 0 <= self.jitter <= 1:
            raise ValueError(f"jitter must be within [0, 1], got {self.jitter}")

    def backoff(self, retry: int, rand: float) -> float:
        """The wait before retry number `retry` (1-based) without a Retry-After; `rand` in [0, 1)."""
        base = min(self.initial_delay * 2 ** max(0, retry - 1), self.max_delay)
        return base * (1.0 - self.jitter * rand)

    def delay(self, retry: int, error: ClientError, rand: float) -> float:
        if error.retry_after is not None:
            return max(0.0, min(error.retry_after, self.max_retry_after))
        return self.backoff(retry, rand)


@dataclass(frozen=True)
class RateLimit:
    """Client-side limits for providers with quotas: a token bucket of `requests_per_second` (bursts
    of up to `burst` requests) and at most `max_concurrent` requests in flight. Every HTTP attempt
    counts, retries included. None means no limit."""

    requests_per_second: float | None = None
    max_concurrent: int | None = None
    burst: int = 1

    def __post_init__(self) -> None:
        if self.requests_per_second is not None and self.requests_per_second <= 0:
            raise ValueError(f"requests_per_second must be positive, got {self.requests_per_second}")
        if self.max_concurrent is not None and self.max_concurrent < 1:
            raise ValueError(f"max_concurrent must be >= 1, got {self.max_concurrent}")
        if self.burst < 1:
            raise ValueError(f"burst must be >= 1, got {self.burst}")


class TokenBucket:
    """A token bucket that hands out reservations: `reserve(now)` takes a token and returns how long
    to wait before using it (0 when one is there). Not locked: the sync client holds a lock around it,
    the async one runs it on one event loop."""

    def __init__(self, rate: float, burst: int = 1, now: float = 0.0) -> None:
        self.rate = rate
        self.burst = float(burst)
        self.tokens = float(burst)
        self.updated = now

    def reserve(self, now: float) -> float:
        if now > self.updated:
            self.tokens = min(self.burst, self.tokens + (now - self.updated) * self.rate)
            self.updated = now
        self.tokens -= 1.0
        return 0.0 if self.tokens >= 0 else -self.tokens / self.rate


# ----------------------------------------------------------------------------------------------------
# Retry-After and the attempts of one request


def parse_retry_after(headers: Mapping[str, str], now: float | None = None) -> float | None:
    """Seconds to wait from `retry-after-ms`, or `Retry-After` as seconds or an HTTP date; None if
    absent or unreadable. `now` is the wall clock (time.time()) an HTTP date is measured from."""
    lower = {k.lower(): v for k, v in headers.items()}
    ms = lower.get("retry-after-ms")
    if ms is not None:
        try:
            value = float(ms) / 1000
            if math.isfinite(value):
                return max(0.0, value)
        except ValueError:
            pass
    raw = lower.get("retry-after")
    if raw is None or not raw.strip():
        return None
    try:
        value = float(raw)
        return max(0.0, value) if math.isfinite(value) else None
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(raw)
    except (TypeError, ValueError, IndexError):
        return None
    if when is None:  # pragma: no cover - older Pythons
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


class Attempts:
    """The attempts of one logical request under a RetryPolicy and a deadline, on an injected clock.

    The I/O loop asks `timeout()` before each attempt and `next_delay(error)` after a failure: the
    latter returns the seconds to wait before the next attempt, or raises the error when it is final
    (not retryable, retries used up, or the wait would cross the deadline)."""

    def __init__(
        self,
        policy: RetryPolicy,
        timeout: float | None,
        clock: Callable[[], float],
        rand: Callable[[], float] = random.random,
    ) -> None:
        self.policy = policy
        self.per_attempt = timeout
        self.clock = clock
        self.rand = rand
        self.start = clock()
        self.retries = 0
        self.delays: list[float] = []

    @property
    def attempt(self) -> int:
        return self.retries + 1

    def remaining(self) -> float | None:
        if self.policy.deadline is None:
            return None
        return self.policy.deadline - (self.clock() - self.start)

    def timeout(self) -> float | None:
        """The timeout for the next attempt: the per-attempt timeout, cut to what the deadline leaves."""
        left = self.remaining()
        if left is None:
            return self.per_attempt
        if left <= 0:
            raise TimeoutError(
                f"the deadline of {self.policy.deadline:g} s passed before attempt {self.attempt}",
                attempts=self.retries,
            )
        return left if self.per_attempt is None else min(self.per_attempt, left)

    def next_delay(self, error: ClientError) -> float:
        error.attempts = self.attempt
        if not error.retryable or self.retries >= self.policy.max_retries:
            raise error
        delay = self.policy.delay(self.retries + 1, error, self.rand())
        left = self.remaining()
        if left is not None and delay >= left:
            log.info(
                "not retrying: waiting %.2f s would pass the deadline of %g s (%s)",
                delay,
                self.policy.deadline,
                error,
            )
            raise error
        self.retries += 1
        self.delays.append(delay)
        log.info("retry %d/%d in %.2f s after: %s", self.retries, self.policy.max_retries, delay, error)
        return delay


# ----------------------------------------------------------------------------------------------------
# Error mapping


def _message_of(body: Any) -> tuple[str | None, str | int | None]:
    """The message and code of an error body in any of the common shapes."""
    if not isinstance(body, dict):
        return None, None
    err = body.get("error")
    if isinstance(err, dict) and isinstance(err.get("message"), str):
        return err["message"], err.get("code") if err.get("code") is not None else err.get("type")
    if isinstance(err, str):
        return err, body.get("code")
    for key in ("message", "detail"):
        value = body.get(key)
        if isinstance(value, str):
            return value, body.get("code")
        if isinstance(value, list):  # FastAPI's validation errors
            return "; ".join(str(v.get("msg", v)) if isinstance(v, dict) else str(v) for v in value), None
    return None, None


def error_from_response(
    status: int,
    headers: Mapping[str, str],
    content: bytes,
    *,
    sent_request_id: str | None = None,
    url: str | None = None,
    reason: str = "",
    now: float | None = None,
) -> ClientError:
    """The typed error for a non-2xx answer, with the server's message, code and request id."""
    import json

    body: Any = None
    try:
        body = json.loads(content) if content else None
    except ValueError:
        body = None
    message, code = _message_of(body)
    if message is None:
        text = content.decode("utf-8", "replace").strip()
        message = text[:500] if text else (reason or "no message")
    lower = {k.lower(): v for k, v in headers.items()}
    request_id = lower.get("x-request-id") or (
        body.get("id") if isinstance(body, dict) and isinstance(body.get("id"), str) else None
    )
    kwargs: dict[str, Any] = {
        "status": status,
        "request_id": request_id or sent_request_id,
        "code": code,
        "retry_after": parse_retry_after(headers, now),
        "url": url,
    }
    cls: type[ClientError]
    if status in (401, 403):
        cls = AuthenticationError
    elif status == 404:
        cls = NotFoundError
    elif status == 408:
        cls = TimeoutError
    elif status == 429:
        cls = RateLimitError
    elif status >= 500:
        cls = ServerError
    else:
        cls = BadRequestError
    error = cls(message, **kwargs)
    error.retryable = status in RETRYABLE_STATUS or status >= 500
    return error


def error_from_transport(exc: BaseException, *, url: str | None, request_id: str | None) -> ClientError:
    """A ConnectionError or TimeoutError for an exception raised by the transport (httpx)."""
    import httpx

    detail = str(exc) or type(exc).__name__
    if isinstance(exc, httpx.TimeoutException):
        err: ClientError = TimeoutError(f"no answer in time ({detail})", request_id=request_id, url=url)
    else:
        err = ConnectionError(f"no answer: {detail}", request_id=request_id, url=url)
    err.__cause__ = exc
    return err


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


@dataclass(frozen=True)
class Chunk:
    """A parsed answer: (index, score) pairs with indices local to the request."""

    items: list[tuple[int, float]]
    model: str | None = None
    prompt_tokens: int = 0


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
        if provider in ("rerankd", "siliconflow") and instruction is not None and not template:
            body["instruction"] = instruction
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


def parse_rerank_answer(payload: Any, request: Request) -> Chunk:
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
            message, _ = _message_of(payload)
            raise InvalidResponseError(
                f"the answer has no results{f' ({message})' if message else ''}: expected a "
                f'"results" list, got the fields {sorted(payload)}'
            )
    else:
        raise InvalidResponseError(f"the answer is not a rerank result: {str(payload)[:200]}")
    if not isinstance(items, list):
        raise InvalidResponseError(f"the answer's results are not a list: {str(items)[:200]}")
    pairs: list[tuple[int, float]] = []
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
    if len(pairs) < request.expected:
        raise InvalidResponseError(
            f"the answer has {len(pairs)} results for {request.n_docs} documents; expected {request.expected}"
        )
    return Chunk(pairs, model, tokens)


def plan_slices(n: int, max_docs: int | None) -> list[tuple[int, int]]:
    """[start, end) slices of at most `max_docs` documents (one slice when None)."""
    if max_docs is None or n <= max_docs:
        return [(0, n)]
    return [(i, min(i + max_docs, n)) for i in range(0, n, max_docs)]


def merge_scores(chunks: Sequence[tuple[Request, Chunk]], n: int) -> list[float]:
    """Scores in input order from every slice's answer, with local indices made global."""
    scores: list[float | None] = [None] * n
    for request, chunk in chunks:
        for index, score in chunk.items:
            scores[request.offset + index] = score
    missing = [i for i, s in enumerate(scores) if s is None]
    if missing:
        raise InvalidResponseError(f"the answers have no score for documents {missing[:10]}")
    return [s for s in scores if s is not None]


def merge_ranking(
    chunks: Sequence[tuple[Request, Chunk]],
    documents: Sequence[Document],
    *,
    top_n: int | None,
    return_documents: bool,
    model: str,
) -> RerankResult:
    """One ranking from every slice's answer: global indices, sorted by score (ties keep input
    order), `top_n` applied after the merge."""
    merged = [(request.offset + i, s) for request, chunk in chunks for i, s in chunk.items]
    merged.sort(key=lambda p: (-p[1], p[0]))
    if top_n is not None:
        merged = merged[:top_n]
    models = [c.model for _, c in chunks if c.model]
    return RerankResult(
        results=tuple(
            RankedDocument(index=i, score=s, document=documents[i] if return_documents else None)
            for i, s in merged
        ),
        model=models[0] if models else model,
        usage=Usage(prompt_tokens=sum(c.prompt_tokens for _, c in chunks)),
    )


# ----------------------------------------------------------------------------------------------------
# Provider detection


@dataclass(frozen=True)
class RemoteModel:
    """A model a server lists at GET /v1/models; `raw` is the card as sent."""

    id: str
    templated: bool | None = None
    family: str | None = None
    max_model_len: int | None = None
    owned_by: str | None = None
    raw: Mapping[str, Any] = field(default_factory=dict)


def parse_models(payload: Any) -> list[RemoteModel]:
    data = payload.get("data", payload.get("models")) if isinstance(payload, dict) else payload
    if not isinstance(data, list):
        raise InvalidResponseError(f"the model list is not a list: {str(payload)[:200]}")
    out = []
    for card in data:
        card_id = card.get("id", card.get("name")) if isinstance(card, dict) else None
        if not isinstance(card, dict) or not isinstance(card_id, str):
            raise InvalidResponseError(f"a model card has no id: {str(card)[:200]}")
        out.append(
            RemoteModel(
                id=card_id,
                templated=card["templated"] if isinstance(card.get("templated"), bool) else None,
                family=card.get("family") if isinstance(card.get("family"), str) else None,
                max_model_len=card.get("max_model_len")
                if isinstance(card.get("max_model_len"), int)
                else None,
                owned_by=card.get("owned_by") if isinstance(card.get("owned_by"), str) else None,
                raw=card,
            )
        )
    return out


@dataclass(frozen=True)
class Detection:
    provider: str
    model: str | None
    reason: str
    fallback: bool = False


def detect_provider(models: list[RemoteModel] | None, why_not: str = "") -> Detection:
    """What `provider="auto"` concludes from GET /v1/models: a card with `templated` is rerankd's,
    one owned by "vllm" is vLLM's; anything else falls back to the rerankd wire format without
    client-side templating."""
    if models:
        first = models[0]
        if any(m.templated is not None for m in models):
            return Detection("rerankd", first.id, "GET /v1/models lists a model card with 'templated'")
        if any(m.owned_by == "vllm" for m in models):
            return Detection("vllm", first.id, "GET /v1/models lists a model owned by vllm")
        why_not = why_not or "GET /v1/models does not say which server this is"
    return Detection(
        FALLBACK_PROVIDER,
        models[0].id if models else None,
        why_not or "GET /v1/models listed no model",
        fallback=True,
    )


def resolve_documents(documents: Sequence[DocumentLike]) -> list[Document]:
    if isinstance(documents, str):
        raise TypeError("documents must be a list of str or rerankd.Document, not one str")
    return [as_document(d) for d in documents]


def validate_call(query: str, top_n: int | None) -> None:
    if not isinstance(query, str):
        raise BadRequestError(f"query must be a string, got {type(query).__name__}")
    if top_n is not None and (isinstance(top_n, bool) or not isinstance(top_n, int) or top_n < 1):
        raise BadRequestError(f"top_n must be a positive integer or None, got {top_n!r}")


__all__ = [
    "PROVIDERS",
    "Attempts",
    "Chunk",
    "Detection",
    "Provider",
    "RateLimit",
    "RemoteModel",
    "Request",
    "RetryPolicy",
    "TokenBucket",
    "build_rerank_request",
    "detect_provider",
    "error_from_response",
    "error_from_transport",
    "merge_ranking",
    "merge_scores",
    "parse_models",
    "parse_rerank_answer",
    "parse_retry_after",
    "plan_slices",
    "wants_template",
]
