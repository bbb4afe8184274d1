"""POST /v1/rerank, /v2/rerank and /rerank: one handler for Cohere v1/v2, Jina, SiliconFlow, vLLM and
TEI (a body with `texts` is TEI's and gets TEI's bare array back). HTTP only: `ServingRerank` serves."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from rerankd.protocol import RerankRequest, RerankResponse, TEIRanks
from rerankd.server.errors import TEI_ROUTE, documented_errors, documented_tei_errors
from rerankd.server.routes.deps import RequestId, RerankService, json_answer
from rerankd.server.serving import Limits
from rerankd.server.state import ServerState

router = APIRouter(tags=["rerank"])

_DOC = (
    "Rank documents by relevance to the query. Superset of Cohere v1/v2, Jina, SiliconFlow and vLLM; "
    "a body with `texts` is TEI's and gets TEI's bare array back."
)


async def rerank_route(
    request: Request, body: RerankRequest, serving: RerankService, request_id: RequestId
) -> Response:
    if body.is_tei and request.url.path == TEI_ROUTE:
        request.state.tei = True  # server/errors.py answers this request's errors in TEI's body
    return json_answer(await serving(body, request_id))


# One handler, three paths: the dialects differ in their bodies, not in what they ask for.
for _path, _summary, _op in [
    ("/v1/rerank", "Rerank (Cohere v1, Jina, SiliconFlow, vLLM)", "rerank_v1_v1_rerank_post"),
    ("/v2/rerank", "Rerank (Cohere v2)", "rerank_v2_v2_rerank_post"),
    (TEI_ROUTE, "Rerank (vLLM, Jina; TEI when the body has `texts`)", "rerank_plain_rerank_post"),
]:
    router.add_api_route(
        _path,
        rerank_route,
        methods=["POST"],
        summary=_summary,
        description=_DOC
        + (" TEI's errors come in TEI's body and status codes." if _path == TEI_ROUTE else ""),
        response_model=RerankResponse | TEIRanks,
        responses=(
            documented_tei_errors(400, 401, 404, 413, 422, 424, 429, 503)
            if _path == TEI_ROUTE
            else documented_errors(400, 401, 404, 413, 429, 503)
        ),
        operation_id=_op,
    )


def check_limits(state: ServerState, query: str, n_docs: int) -> None:
    """Kept only for the mounted UI (ui/core.py), until it ranks through an AsyncReranker."""
    Limits.of(state.settings).check([query], n_docs)
