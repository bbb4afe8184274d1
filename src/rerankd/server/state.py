"""What the server knows about itself: settings, the engine once loaded, and its lifecycle phase."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

from rerankd.engine.engine import Engine, EngineConfig, RerankEngine
from rerankd.errors import Unavailable
from rerankd.reranker import Reranker
from rerankd.server.metrics import Metrics
from rerankd.server.settings import ServerSettings

log = logging.getLogger("rerankd.server")

Phase = Literal["loading", "ready", "draining", "failed"]


@dataclass
class ServerState:
    settings: ServerSettings
    metrics: Metrics = field(default_factory=Metrics)
    engine: Engine | None = None
    phase: Phase = "loading"
    load_error: str | None = None
    in_flight: int = 0
    on_fatal: Callable[[str], None] | None = None

    def require_engine(self) -> Engine:
        if self.phase == "ready" and self.engine is not None:
            return self.engine
        if self.phase == "failed":
            raise Unavailable(f"the model failed to load: {self.load_error}", retry_after=60)
        if self.phase == "draining":
            raise Unavailable(
                "the server is shutting down; retry on another replica", self.settings.retry_after
            )
        raise Unavailable("the model is still loading; retry shortly", self.settings.retry_after)

    def engine_config(self) -> EngineConfig:
        s = self.settings
        return EngineConfig(
            max_batch_tokens=s.max_batch_tokens, max_batch_size=s.max_batch_size, max_queue=s.max_queue
        )

    async def start(self, reranker: Reranker | None = None, engine: Engine | None = None) -> None:
        """Load the model (in a thread, so /health answers meanwhile), start the batcher, warm up.
        `engine` replaces all of it with a ready-made engine (for example one backed by remote replicas)."""
        s = self.settings
        try:
            if engine is None and reranker is None:
                reranker = await asyncio.to_thread(
                    Reranker.from_pretrained,
                    s.model,
                    device=s.device,
                    dtype=s.dtype,
                    max_length=s.max_length,
                    instruction=s.instruction,
                    max_batch_tokens=s.max_batch_tokens,
                )
            if engine is None:
                assert reranker is not None
                engine = RerankEngine(reranker, self.engine_config(), observe=self.metrics.observe_batch)
            await engine.start()
            running = engine
            self.metrics.track_queue(lambda: running.depth)
            await asyncio.to_thread(engine.warm_up)
        except Exception as e:
            self.phase, self.load_error = "failed", str(e)
            log.error("could not start: %s", e)
            if self.on_fatal is not None:
                self.on_fatal(str(e))
            return
        self.engine = engine
        if self.phase == "loading":
            self.phase = "ready"
            info = engine.info
            log.info(
                "ready: %s (%s, %s, %s on %s)",
                s.model_name,
                info.family,
                info.architecture,
                info.dtype,
                info.device,
            )

    async def stop(self) -> None:
        if self.engine is not None:
            await self.engine.stop()

    @property
    def idle(self) -> bool:
        return self.in_flight == 0 and (self.engine is None or self.engine.depth == 0)
