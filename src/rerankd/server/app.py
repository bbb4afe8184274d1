"""create_app(settings) → the FastAPI app. The lifespan loads the model in the background (so /health
answers at once and /ready says when scoring can start) and stops the engine on shutdown."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI

import rerankd
from rerankd.engine.engine import Engine
from rerankd.reranker import Reranker
from rerankd.server import errors
from rerankd.server.gate import Gate
from rerankd.server.routes import rerank, score, system
from rerankd.server.settings import ServerSettings
from rerankd.server.state import ServerState

DESCRIPTION = (
    "Reranking for Qwen3-Reranker and cross-encoders, exact to the reference implementation. Speaks "
    "Cohere v1/v2, Jina, SiliconFlow, vLLM and TEI rerank APIs and vLLM's score API."
)


def create_app(
    settings: ServerSettings, *, reranker: Reranker | None = None, engine: Engine | None = None
) -> FastAPI:
    """`reranker`: an already loaded model (tests, embedding); `engine`: a ready-made engine (remote
    replicas); otherwise `settings.model` is loaded."""
    state = ServerState(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        loading = asyncio.create_task(state.start(reranker, engine))
        app.state.loading = loading
        try:
            yield
        finally:
            if not loading.done():
                loading.cancel()
            await asyncio.gather(loading, return_exceptions=True)
            await state.stop()

    app = FastAPI(title="rerankd", version=rerankd.__version__, description=DESCRIPTION, lifespan=lifespan)
    app.state.rerankd = state
    errors.install(app)
    for module in (rerank, score, system):
        app.include_router(module.router)
    if settings.ui:
        _mount_ui(app, state)
    app.add_middleware(Gate, state=state, known_paths=route_paths(app.routes))
    return app


def route_paths(routes: Any) -> set[str]:
    """Every route's path, looking inside included routers (the label set of the request metrics)."""
    paths: set[str] = set()
    for r in routes:
        if getattr(r, "path", ""):
            paths.add(r.path)
        inner = getattr(r, "original_router", None) or getattr(r, "routes", None)
        if inner is not None and inner is not routes:
            paths |= route_paths(getattr(inner, "routes", inner))
    return paths


def _mount_ui(app: FastAPI, state: ServerState) -> Any:
    """Mount the web UI at /ui when the UI module and Gradio are installed."""
    try:
        from rerankd.ui.mount import mount_ui  # type: ignore[import-not-found,unused-ignore]
    except ImportError:
        return None
    return mount_ui(app, state)
