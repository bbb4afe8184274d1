"""POST /v1/rerank, /v2/rerank and /rerank: one handler for Cohere v1/v2, Jina, SiliconFlow, vLLM and
TEI. A body with `texts` is TEI's and gets TEI's bare array back."""

from __future__ import annotations

import math
from typing import Any

from fastapi import APIRouter, Depends, Request

from rerankd.errors import InvalidRequest
from rerankd.protocol import (
    Meta,
    RerankRequest,
    RerankResponse,
    RerankResultItem,
    ResultDocument,
    TEIRank,
    Tokens,
    UsageOut,
    document_text,
)
from rerankd.ranking import rank
from rerankd.server.routes.deps import request_id, server_state
from rerankd.server.state import ServerState

router = APIRouter(tags=["rerank"])

EXAMPLE = {
    "model": "Qwen/Qwen3-Reranker-0.6B",
    "query": "What is the capital of China?",
    "documents": ["The capital of China is Beijing.", "Gravity is a force."],
    "top_n": 2,
    "return_documents": True,
}


def check_limits(state: ServerState, query: str, n_docs: int) -> None:
    s = state.settings
    if n_docs > s.max_docs_per_request:
        raise InvalidRequest(
            f"{n_docs} documents is more than this server's limit of {s.max_docs_per_request} per request "
            "(--max-docs-per-request); split them into several requests"
        )
    if len(query) > s.max_query_chars:
        raise InvalidRequest(
            f"the query is {len(query)} characters, more than this server's limit of {s.max_query_chars}"
        )


async def rerank(req: RerankRequest, state: ServerState, rid: str) -> RerankResponse | list[TEIRank]:
    engine = state.require_engine()
    items = req.items()
    check_limits(state, req.query, len(items))
    try:
        texts = [document_text(d, req.rank_fields) for d in items]
    except ValueError as e:
        raise InvalidRequest(str(e)) from None
    scored = await engine.rerank_scores(
        req.query,
        texts,
        instruction=req.instruction,
        max_tokens_per_doc=req.max_tokens_per_doc or req.truncate_prompt_tokens,
        max_chunks_per_doc=req.max_chunks_per_doc,
        overlap_tokens=req.overlap_tokens,
        raw=req.wants_raw,
    )
    if req.truncate is False and scored.truncated:
        raise InvalidRequest(
            f"{scored.truncated} input(s) are longer than the model's {engine.info.max_length} tokens and "
            "truncate is false; send truncate: true or shorter texts"
        )
    ranked = rank(scored.scores, top_n=req.top_n)
    if req.is_tei:
        return [
            TEIRank(index=r.index, score=r.score, text=texts[r.index] if req.wants_documents else None)
            for r in ranked
        ]

    def doc(i: int) -> ResultDocument | None:
        if not req.wants_documents:
            return None
        item = items[i]
        # Cohere returns a document object as it was sent: the caller's own keys win.
        return ResultDocument(**({"text": item} if isinstance(item, str) else {"text": texts[i], **item}))

    return RerankResponse(
        id=rid,
        model=state.settings.model_name,
        results=[
            RerankResultItem(index=r.index, relevance_score=r.score, document=doc(r.index)) for r in ranked
        ],
        usage=UsageOut(prompt_tokens=scored.prompt_tokens, total_tokens=scored.prompt_tokens),
        meta=Meta(billed_units={"search_units": max(1, math.ceil(len(items) / 100))}),  # type: ignore[arg-type]
        tokens=Tokens(input_tokens=scored.prompt_tokens),
    )


def _respond(result: RerankResponse | list[TEIRank]) -> Any:
    if isinstance(result, list):
        return [r.model_dump(exclude_none=True) for r in result]
    return result.model_dump(exclude_none=True)


_DOC = "Rank documents by relevance to the query. Superset of Cohere v1/v2, Jina, SiliconFlow and vLLM; a body with `texts` is TEI's."


async def rerank_route(
    request: Request, body: RerankRequest, state: ServerState = Depends(server_state)
) -> Any:
    return _respond(await rerank(body, state, request_id(request)))


# One handler, three paths: the dialects differ in their bodies, not in what they ask for.
for _path, _summary, _op in [
    ("/v1/rerank", "Rerank (Cohere v1, Jina, SiliconFlow, vLLM)", "rerank_v1_v1_rerank_post"),
    ("/v2/rerank", "Rerank (Cohere v2)", "rerank_v2_v2_rerank_post"),
    ("/rerank", "Rerank (vLLM, Jina; TEI when the body has `texts`)", "rerank_plain_rerank_post"),
]:
    router.add_api_route(
        _path,
        rerank_route,
        methods=["POST"],
        summary=_summary,
        description=_DOC,
        response_model=None,
        operation_id=_op,
    )
