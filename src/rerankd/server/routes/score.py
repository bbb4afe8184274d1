"""POST /score and /v1/score: vLLM's score API, scores in input order."""

from __future__ import annotations

import time

from fastapi import APIRouter, Depends, Request

from rerankd.protocol import ScoreData, ScoreRequest, ScoreResponse, UsageOut
from rerankd.server.routes.deps import request_id, server_state
from rerankd.server.routes.rerank import check_limits
from rerankd.server.state import ServerState

router = APIRouter(tags=["score"])


async def score(req: ScoreRequest, state: ServerState, rid: str) -> ScoreResponse:
    engine = state.require_engine()
    pairs = req.pairs()
    for q in {q for q, _ in pairs}:
        check_limits(state, q, len(pairs))
    scored = await engine.score_pairs(
        pairs, instruction=req.instruction, max_tokens_per_doc=req.truncate_prompt_tokens, raw=req.wants_raw
    )
    return ScoreResponse(
        id=rid,
        created=int(time.time()),
        model=state.settings.model_name,
        data=[ScoreData(index=i, score=s) for i, s in enumerate(scored.scores)],
        usage=UsageOut(prompt_tokens=scored.prompt_tokens, total_tokens=scored.prompt_tokens),
    )


async def score_route(
    request: Request, body: ScoreRequest, state: ServerState = Depends(server_state)
) -> ScoreResponse:
    return await score(body, state, request_id(request))


for _path, _op in [("/score", "score_plain_score_post"), ("/v1/score", "score_v1_v1_score_post")]:
    router.add_api_route(
        _path,
        score_route,
        methods=["POST"],
        summary="Score pairs (vLLM)",
        response_model=ScoreResponse,
        operation_id=_op,
    )
