"""The two Ray Serve deployments behind `rerankd serve --ray`. This module imports Ray at the top: import
it only when serving on Ray (`rerankd.scaleout.serve` does so lazily).

- `Model`: each replica loads the ModelConfig's scorer (`rerankd.config.load_scorer`) and owns one
  `RerankEngine` over it with the BatchConfig (its dynamic batcher); it answers with the scores and its
  own replica id.
- `Ingress`: the single-process FastAPI app from `rerankd.server.app`, unchanged (routes, validation,
  auth, limits, metrics, and the mounts the CLI passes: the web UI), over a `RemoteEngine` that calls
  `Model` through a deployment handle. It adds one metric, `rerankd_replica_requests_total{replica=...}`,
  to the app's registry.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from ray import serve

from rerankd.config import BatchConfig, ModelConfig, load_scorer
from rerankd.engine.engine import RerankEngine, Scored
from rerankd.models.base import ModelInfo
from rerankd.server.settings import ServerSettings

if TYPE_CHECKING:
    from rerankd.server.app import Mount

log = logging.getLogger("rerankd.scaleout")


class ModelServer:
    """One model replica: load, start the batcher, warm up; then score."""

    async def __init__(self, model: ModelConfig, batch: BatchConfig) -> None:  # type: ignore[misc]  # Serve awaits it
        scorer = await asyncio.to_thread(load_scorer, model)
        self.engine = RerankEngine(scorer, batch, instruction=model.instruction)
        await self.engine.start()
        await asyncio.to_thread(self.engine.warm_up)
        self.replica_id = serve.get_replica_context().replica_id.unique_id
        log.info("model replica %s ready: %s", self.replica_id, model.name)

    async def describe(self) -> tuple[tuple[ModelInfo, str | None], str]:
        return (self.engine.info, self.engine.instruction), self.replica_id

    async def rerank_scores(self, query: str, documents: list[str], **options: Any) -> tuple[Scored, str]:
        return await self.engine.rerank_scores(query, documents, **options), self.replica_id

    async def score_pairs(self, pairs: Sequence[tuple[str, str]], **options: Any) -> tuple[Scored, str]:
        return await self.engine.score_pairs(pairs, **options), self.replica_id

    async def depth(self) -> int:
        return self.engine.depth

    async def __del__(self) -> None:
        engine = getattr(self, "engine", None)
        if engine is not None:
            await engine.stop()


class _OneRequestIdHeader:
    """Serve's proxy passes the request id in (the gate reuses it) and adds x-request-id to every
    answer itself: drop the app's copy so the answer carries the header once."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_once(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [
                    (k, v) for k, v in message.get("headers", []) if k.lower() != b"x-request-id"
                ]
            await send(message)

        await self.app(scope, receive, send_once)


class IngressServer:
    """The HTTP front: the single-process app, with the same `mounts`, over one RemoteEngine per
    served model (`model`: the first's deployment handle, `more_models` the others', in served order).
    Also answers `drain` and `idle` (handle calls from the driver on SIGTERM)."""

    def __init__(
        self, settings: ServerSettings, model: Any, mounts: Sequence[Mount] = (), *more_models: Any
    ) -> None:
        self.settings = settings
        self.model = model
        self.more_models = more_models
        self.mounts = tuple(mounts)
        self.state: Any = None

    def __serve_build_asgi_app__(self) -> Any:
        from prometheus_client import Counter

        from rerankd.scaleout.remote import RemoteEngine
        from rerankd.server.app import create_app

        handles = (self.model, *self.more_models)
        engines = {
            name: RemoteEngine(handle, retry_after=self.settings.retry_after)
            for name, handle in zip(self.settings.model_names, handles, strict=True)
        }
        app = create_app(self.settings, engines=engines, mounts=self.mounts)
        self.state = app.state.rerankd
        answered = Counter(
            "rerankd_replica_requests",
            "Engine calls answered, by model replica",
            ["replica"],
            registry=self.state.metrics.registry,
        )
        for engine in engines.values():
            engine.on_answer = lambda replica: answered.labels(replica).inc()
        app.add_middleware(_OneRequestIdHeader)
        return app

    async def drain(self) -> int:
        """Refuse new requests (503 with Retry-After, /ready 503); returns the requests in flight."""
        if self.state is not None and self.state.phase != "failed":
            self.state.phase = "draining"
        return int(self.state.in_flight) if self.state is not None else 0

    async def idle(self) -> bool:
        return self.state is None or bool(self.state.idle)


Model = serve.deployment(name="Model")(ModelServer)
Ingress = serve.deployment(name="Ingress")(serve.ingress()(IngressServer))
