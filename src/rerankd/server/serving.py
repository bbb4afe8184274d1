"""The serving path, one class per operation: request → limits → texts → engine → response.

vLLM's shape (`entrypoints/pooling/score`): the routes only do HTTP and call a serving class; the serving
class checks the server's limits before any tokenization or model work, hands plain texts to the engine,
and builds the answer with the pure converters below (ranking, documents re-attached, billing)."""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from rerankd.engine.engine import Scored
from rerankd.errors import InvalidRequest
from rerankd.protocol import (
    BilledUnits,
    DocumentWarning,
    Meta,
    RerankRequest,
    RerankResponse,
    RerankResultItem,
    ResultDocument,
    ScoreData,
    ScoreRequest,
    ScoreResponse,
    SpanOut,
    TEIRank,
    TEIRanks,
    Tokens,
    UsageOut,
    document_text,
)
from rerankd.ranking import rank
from rerankd.server.errors import NothingToRank
from rerankd.server.sanitize import Bounds, check_document_objects
from rerankd.server.settings import ServerSettings
from rerankd.server.state import ServerState
from rerankd.spans import DEFAULT_MAX_SPANS, SpanRequest
from rerankd.types import RankedDocument

SEARCH_UNIT_DOCUMENTS = 100  # Cohere bills one search unit per 100 documents


@dataclass(frozen=True)
class Limits:
    """The per-request limits of this server; the gate already bounds the body's size."""

    max_docs: int
    max_query_chars: int

    @classmethod
    def of(cls, settings: ServerSettings) -> Limits:
        return cls(max_docs=settings.max_docs_per_request, max_query_chars=settings.max_query_chars)

    def check(self, queries: Sequence[str], n_docs: int, instruction: str | None = None) -> None:
        if n_docs > self.max_docs:
            raise InvalidRequest(
                f"{n_docs} documents is more than this server's limit of {self.max_docs} per request "
                "(--max-docs-per-request); split them into several requests"
            )
        for what, text in [*(("query", q) for q in queries), ("instruction", instruction or "")]:
            if len(text) > self.max_query_chars:
                raise InvalidRequest(
                    f"the {what} is {len(text)} characters, more than this server's limit of "
                    f"{self.max_query_chars}"
                )


def model_bounds(settings: ServerSettings) -> dict[str, Bounds]:
    """Each served model's input bounds (their lengths differ), by served name."""
    return {m.name: Bounds(max_length=m.max_length) for m in settings.model_configs()}


def check_truncation(tokens: int | None, max_length: int) -> None:
    """vLLM refuses a truncation longer than the model rather than ignoring it (its message)."""
    if tokens is not None and tokens > max_length:
        raise InvalidRequest(
            f"truncate_prompt_tokens value ({tokens}) is greater than max_model_len ({max_length}). "
            "Please request a smaller truncation size."
        )


def request_texts(items: Sequence[str | dict[str, Any]], rank_fields: list[str] | None) -> list[str]:
    """The text each document is ranked on (a document object's `text`, or its `rank_fields`)."""
    try:
        return [document_text(d, rank_fields) for d in items]
    except ValueError as e:
        raise InvalidRequest(str(e)) from None


class ServingRerank:
    """POST /v1/rerank, /v2/rerank, /rerank: every rerank dialect, one path."""

    def __init__(self, state: ServerState) -> None:
        self.state = state
        self.limits = Limits.of(state.settings)
        self.bounds = model_bounds(state.settings)

    async def __call__(self, req: RerankRequest, request_id: str) -> RerankResponse | TEIRanks:
        model = self.state.model_name(req.model)  # an unknown model: 404 before anything is read
        items = req.items()
        if not items:  # the library answers an empty result; on the wire llama.cpp, TEI and Cohere say 4xx
            raise NothingToRank(
                "`texts` cannot be empty"
                if req.is_tei
                else '"documents" must not be empty: send at least one document to rank'
            )
        bounds = self.bounds[model]
        bounds.check(instruction=req.instruction, max_chunks_per_doc=req.max_chunks_per_doc)
        self.limits.check([req.query], len(items), req.instruction)
        check_document_objects(items)
        texts = request_texts(items, req.rank_fields)
        engine = self.state.require_engine(model)
        check_truncation(req.truncate_prompt_tokens, engine.info.max_length)
        # The loaded model's own length (a cross-encoder's 512, not the configured 8192) bounds the clip
        # and the span count.
        bounds = bounds.at_length(engine.info.max_length)
        max_tokens = req.max_tokens_per_doc or req.truncate_prompt_tokens
        truncate = req.truncate is not False
        clipped = bounds.clip(
            texts,
            truncate=truncate,
            max_tokens_per_doc=max_tokens,
            max_chunks_per_doc=req.max_chunks_per_doc,
            token_chars=engine.info.max_token_chars,
        )
        spans = span_request(req)
        if spans is not None:
            bounds.check_spans(
                clipped,
                spans,
                max_tokens_per_doc=max_tokens,
                max_chunks_per_doc=req.max_chunks_per_doc,
                max_queue=self.state.settings.max_queue,
            )
        scored = await engine.rerank_scores(
            req.query,
            clipped,
            instruction=req.instruction,
            max_tokens_per_doc=max_tokens,
            max_chunks_per_doc=req.max_chunks_per_doc,
            overlap_tokens=req.overlap_tokens,
            raw=req.wants_raw,
            truncate=truncate,
            spans=spans,
        )
        self.state.metrics.prompt_tokens.labels(model).inc(scored.prompt_tokens)
        ranked = rank(scored.scores, top_n=req.top_n)
        if req.is_tei:
            return tei_ranks(ranked, texts if req.wants_documents else None)
        return rerank_response(
            ranked,
            scored,
            items if req.wants_documents else None,
            texts,
            request_id=request_id,
            model=model,
            ignored=req.ignored_fields,
        )


def span_request(req: RerankRequest) -> SpanRequest | None:
    """What `return_spans` asks of the engine; None when not asked, or for TEI's bare array, which has
    no slot for spans (so none are computed)."""
    if not req.return_spans or req.is_tei:
        return None
    return SpanRequest(req.max_spans or DEFAULT_MAX_SPANS, req.span_tokens, req.top_n)


class ServingScore:
    """POST /score, /v1/score: vLLM's score API, scores in input order."""

    def __init__(self, state: ServerState) -> None:
        self.state = state
        self.limits = Limits.of(state.settings)
        self.bounds = model_bounds(state.settings)

    async def __call__(self, req: ScoreRequest, request_id: str) -> ScoreResponse:
        model = self.state.model_name(req.model)
        pairs = req.pairs()
        self.bounds[model].check(instruction=req.instruction, max_chunks_per_doc=None)
        self.limits.check(sorted({q for q, _ in pairs}), len(pairs), req.instruction)
        engine = self.state.require_engine(model)
        check_truncation(req.truncate_prompt_tokens, engine.info.max_length)
        scored = await engine.score_pairs(
            pairs,
            instruction=req.instruction,
            max_tokens_per_doc=req.truncate_prompt_tokens,
            raw=req.wants_raw,
        )
        self.state.metrics.prompt_tokens.labels(model).inc(scored.prompt_tokens)
        return score_response(scored, request_id=request_id, model=model)


# Pure converters: engine output → wire models.


def usage(scored: Scored) -> UsageOut:
    return UsageOut(prompt_tokens=scored.prompt_tokens, total_tokens=scored.prompt_tokens)


def search_units(n_docs: int) -> int:
    return max(1, math.ceil(n_docs / SEARCH_UNIT_DOCUMENTS))


def result_document(item: str | dict[str, Any], text: str) -> ResultDocument:
    """The document as it was sent: a string becomes {text}; an object keeps the caller's own keys,
    which win over the ranked text (Cohere)."""
    return ResultDocument(**({"text": item} if isinstance(item, str) else {"text": text, **item}))


def rerank_response(
    ranked: Sequence[RankedDocument],
    scored: Scored,
    items: Sequence[str | dict[str, Any]] | None,
    texts: Sequence[str],
    *,
    request_id: str,
    model: str,
    ignored: Sequence[str] = (),
) -> RerankResponse:
    """The superset answer; `items` None leaves the documents out; `ignored`: request fields not read."""
    results = [
        RerankResultItem(
            index=r.index,
            relevance_score=r.score,
            document=None if items is None else result_document(items[r.index], texts[r.index]),
            spans=span_items(scored, r.index),
        )
        for r in ranked
    ]
    return RerankResponse(
        id=request_id,
        model=model,
        results=results,
        usage=usage(scored),
        meta=Meta(
            billed_units=BilledUnits(search_units=search_units(len(texts))),
            warnings=document_warnings(scored, ignored),
        ),
        tokens=Tokens(input_tokens=scored.prompt_tokens),
    )


def span_items(scored: Scored, index: int) -> list[SpanOut] | None:
    found = scored.spans[index] if scored.spans else None
    if found is None:
        return None
    return [SpanOut(start=s.start, end=s.end, score=s.score, text=s.text) for s in found]


def document_warnings(scored: Scored, ignored: Sequence[str] = ()) -> list[DocumentWarning]:
    """meta.warnings: one entry per document cut to fit or split into chunks, then the ignored fields."""
    out = []
    for cut in scored.cuts:
        sent = f" of {cut.sent_tokens}" if cut.sent_tokens is not None else ""
        out.append(
            DocumentWarning(
                index=cut.index,
                code="truncated",
                message=f"document {cut.index} was cut to fit the model: {cut.kept_tokens}{sent} tokens "
                "kept (the template's tail is never cut)",
            )
        )
    for index, chunks in scored.chunked:
        out.append(
            DocumentWarning(
                index=index,
                code="chunked",
                message=f"document {index} was split into {chunks} chunks; its score is its best chunk's",
            )
        )
    for name in ignored:
        out.append(
            DocumentWarning(
                index=None, code="ignored_field", message=f"field {name!r} is not used by this server"
            )
        )
    return out


def tei_ranks(ranked: Sequence[RankedDocument], texts: Sequence[str] | None) -> TEIRanks:
    """TEI's bare array; `texts` None leaves the texts out."""
    return [
        TEIRank(index=r.index, score=r.score, text=None if texts is None else texts[r.index]) for r in ranked
    ]


def score_response(scored: Scored, *, request_id: str, model: str) -> ScoreResponse:
    return ScoreResponse(
        id=request_id,
        created=int(time.time()),
        model=model,
        data=[ScoreData(index=i, score=s) for i, s in enumerate(scored.scores)],
        usage=usage(scored),
    )
