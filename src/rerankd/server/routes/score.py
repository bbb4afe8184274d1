"""POST /score and /v1/score: vLLM's score API, scores in input order. HTTP only: `ServingScore` serves."""

from __future__ import annotations

from fastapi import APIRouter, Response

from rerankd.protocol import ScoreRequest, ScoreResponse
from rerankd.server.errors import documented_errors
from rerankd.server.routes.deps import RequestId, ScoreService, json_answer

router = APIRouter(tags=["score"])


async def score_route(body: ScoreRequest, serving: ScoreService, request_id: RequestId) -> Response:
    return json_answer(await serving(body, request_id))


for _path, _op in [("/score", "score_plain_score_post"), ("/v1/score", "score_v1_v1_score_post")]:
    router.add_api_route(
        _path,
        score_route,
        methods=["POST"],
        summary="Score pairs (vLLM)",
        response_model=ScoreResponse,
        responses=documented_errors(400, 401, 404, 413, 429, 503),
        operation_id=_op,
    )
