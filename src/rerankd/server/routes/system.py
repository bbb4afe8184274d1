"""GET /v1/models, /health (alive), /ready (model loaded and warmed up), /metrics (Prometheus)."""

from __future__ import annotations

import time

from fastapi import APIRouter, Depends
from fastapi.responses import JSONResponse, Response

from rerankd.protocol import ModelCard, ModelList
from rerankd.server.routes.deps import server_state
from rerankd.server.state import ServerState

router = APIRouter(tags=["system"])
STARTED = int(time.time())


@router.get("/v1/models", response_model=ModelList, summary="The served model (OpenAI format)")
async def models(state: ServerState = Depends(server_state)) -> ModelList:
    engine = state.require_engine()
    info = engine.info
    card = ModelCard(
        id=state.settings.model_name,
        created=STARTED,
        max_model_len=info.max_length,
        family=info.family,
        templated=info.templated,
        instruction=engine.instruction,
        dtype=info.dtype,
        device=info.device,
    )
    return ModelList(data=[card])


@router.get("/health", summary="Liveness: the process answers")
async def health() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/ready", summary="Readiness: the model is loaded and warmed up")
async def ready(state: ServerState = Depends(server_state)) -> JSONResponse:
    if state.phase == "ready":
        return JSONResponse({"status": "ready", "model": state.settings.model_name})
    body: dict[str, str] = {"status": state.phase}
    if state.load_error:
        body["error"] = state.load_error
    return JSONResponse(
        body, status_code=503, headers={"Retry-After": str(max(1, round(state.settings.retry_after)))}
    )


@router.get("/metrics", summary="Prometheus metrics")
async def metrics(state: ServerState = Depends(server_state)) -> Response:
    return Response(state.metrics.render(), media_type="text/plain; version=0.0.4; charset=utf-8")
