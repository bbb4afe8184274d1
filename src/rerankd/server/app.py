"""create_app(settings) → the FastAPI app. The lifespan loads the model in the background (so /health
answers at once and /ready says when scoring can start) and stops the engine on shutdown.

The app knows nothing of the web UI: whoever wires the pieces (the CLI) passes it in `mounts`."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI
from fastapi.routing import APIRoute

import rerankd
from rerankd.engine.engine import Engine
from rerankd.server import errors
from rerankd.server.gate import Gate
from rerankd.server.routes import rerank, score, system
from rerankd.server.serving import ServingRerank, ServingScore
from rerankd.server.settings import ServerSettings
from rerankd.server.state import ServerState

if TYPE_CHECKING:
    from rerankd.models.base import Scorer
    from rerankd.reranker import Reranker

DESCRIPTION = (
    "Reranking for Qwen3-Reranker and cross-encoders, exact to the reference implementation. Speaks "
    "Cohere v1/v2, Jina, SiliconFlow, vLLM and TEI rerank APIs and vLLM's score API."
)

Mount = Callable[[FastAPI, ServerState], object]  # adds routes or sub-apps (the UI at /ui)


def create_app(
    settings: ServerSettings,
    *,
    engine: Engine | None = None,
    scorer: Scorer | None = None,
    reranker: Reranker | None = None,
    engines: Mapping[str, Engine] | None = None,
    scorers: Mapping[str, Scorer] | None = None,
    mounts: Sequence[Mount] = (),
) -> FastAPI:
    """`engine`: a ready-made engine (remote replicas); `scorer` (or a `reranker`'s): an already loaded
    model (tests, embedding), served through an engine over it; otherwise `settings.model` is loaded.
    These are the first model's; `engines`/`scorers` give any served model's by its served name
    (`settings.model_names`), and the models given neither are loaded."""
    state = ServerState(settings)
    if reranker is not None:
        scorer = reranker.scorer
        if settings.instruction is None and reranker.instruction is not None:
            state.settings = settings = replace(settings, instruction=reranker.instruction)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        loading = asyncio.create_task(state.start(scorer, engine, scorers=scorers, engines=engines))
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
    app.state.serving_rerank = ServingRerank(state)
    app.state.serving_score = ServingScore(state)
    errors.install(app)
    for module in (rerank, score, system):
        app.include_router(module.router)
    for mount in mounts:
        mount(app, state)
    app.add_middleware(
        Gate, state=state, known_paths=route_paths(app.routes), json_paths=json_body_paths(app.routes)
    )
    return app


def leaf_routes(routes: Iterable[Any]) -> Iterator[Any]:
    """Every route, looking inside included routers (FastAPI keeps them nested; no prefixes here)."""
    for r in routes:
        inner = getattr(r, "original_router", None)
        if inner is not None:
            yield from leaf_routes(inner.routes)
        else:
            yield r


def route_paths(routes: Iterable[Any]) -> set[str]:
    """Every route's path: the label set of the request metrics."""
    return {r.path for r in leaf_routes(routes) if getattr(r, "path", "")}


def json_body_paths(routes: Iterable[Any]) -> frozenset[str]:
    """The paths of the API routes that read a body model: the gate reads their bodies as JSON."""
    return frozenset(
        r.path for r in leaf_routes(routes) if isinstance(r, APIRoute) and r.body_field is not None
    )
