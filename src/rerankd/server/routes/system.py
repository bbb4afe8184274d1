"""GET /v1/models, /health (alive), /ready (model loaded and warmed up), /metrics (Prometheus)."""

from __future__ import annotations

import time

from fastapi import APIRouter, Response

from rerankd.engine.engine import Engine
from rerankd.protocol import HealthResponse, ModelCard, ModelList, ReadyResponse
from rerankd.server.errors import documented_errors, retry_after
from rerankd.server.routes.deps import State, json_answer

router = APIRouter(tags=["system"])
STARTED = int(time.time())
PROMETHEUS_TEXT = "text/plain; version=0.0.4; charset=utf-8"  # the exposition format's content type


@router.get(
    "/v1/models",
    response_model=ModelList,
    responses=documented_errors(401, 503),
    summary="The served models (OpenAI format), in served order: the first answers requests naming none",
)
async def models(state: State) -> ModelList:
    state.require_engine()  # 503 until every model is loaded
    return ModelList(data=[model_card(name, engine) for name, engine in state.engines.items()])


def model_card(name: str, engine: Engine) -> ModelCard:
    info = engine.info
    return ModelCard(
        id=name,
        created=STARTED,
        max_model_len=info.max_length,
        family=info.family,
        template=info.template,
        templated=info.templated,
        instruction=engine.instruction,
        dtype=info.dtype,
        dtype_reason=info.dtype_reason or None,
        device=info.device,
        weight_bytes=info.weight_bytes or None,
        warning=info.warning,
    )


@router.get("/health", response_model=HealthResponse, summary="Liveness: the process answers")
async def health() -> HealthResponse:
    return HealthResponse()


@router.get(
    "/ready",
    response_model=ReadyResponse,
    responses={503: {"model": ReadyResponse, "description": "Loading, draining or failed (the reason)."}},
    summary="Readiness: the model is loaded and warmed up",
)
async def ready(state: State) -> Response:
    if state.phase == "ready":
        return json_answer(ReadyResponse(status="ready", model=state.settings.model_name))
    answer = json_answer(ReadyResponse(status=state.phase, error=state.load_error), status_code=503)
    answer.headers["Retry-After"] = retry_after(state.settings.retry_after)
    return answer


@router.get(
    "/metrics",
    # A bare Response class: the 200 is text (declared here), the errors stay JSON.
    response_class=Response,
    responses={
        200: {
            "description": "Prometheus text exposition format (version 0.0.4)",
            "content": {"text/plain": {"schema": {"type": "string"}}},
        },
        **documented_errors(401),
    },
    summary="Prometheus metrics (text exposition format)",
)
async def metrics(state: State) -> Response:
    return Response(state.metrics.render(), media_type=PROMETHEUS_TEXT)
