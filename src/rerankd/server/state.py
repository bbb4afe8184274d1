"""What the server knows about itself: settings, the engine once loaded, and its lifecycle phase."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar

from rerankd.config import load_scorer
from rerankd.engine.engine import Engine, RerankEngine
from rerankd.errors import Unavailable
from rerankd.models.base import Scorer
from rerankd.server.metrics import Metrics
from rerankd.server.settings import ServerSettings

log = logging.getLogger("rerankd.server")

T = TypeVar("T")
Phase = Literal["loading", "ready", "draining", "failed"]
FAILED_RETRY_AFTER = 60.0  # a failed load needs an operator, not a quick retry


async def in_daemon_thread(fn: Callable[..., T], *args: Any) -> T:
    """Run `fn` in a daemon thread: unlike asyncio.to_thread, a SIGTERM during a long model download
    does not have to wait for it to finish before the process can exit."""
    loop = asyncio.get_running_loop()
    future: asyncio.Future[T] = loop.create_future()

    def settle(result: T | None, error: BaseException | None) -> None:
        if future.done():
            return
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(result)  # type: ignore[arg-type]

    def work() -> None:
        try:
            result = fn(*args)
        except BaseException as e:
            outcome: tuple[T | None, BaseException | None] = (None, e)
        else:
            outcome = (result, None)
        with contextlib.suppress(RuntimeError):  # the loop closed meanwhile: nobody waits any more
            loop.call_soon_threadsafe(settle, *outcome)

    threading.Thread(target=work, name="rerankd-load", daemon=True).start()
    return await future


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
        # Draining still serves: a request the gate let in before the signal must finish.
        if self.phase in ("ready", "draining") and self.engine is not None:
            return self.engine
        raise self.unavailable()

    def unavailable(self) -> Unavailable:
        """Why this server can't take new work now (the gate's drain refusal says it too)."""
        if self.phase == "failed":
            return Unavailable(f"the model failed to load: {self.load_error}", retry_after=FAILED_RETRY_AFTER)
        if self.phase == "draining":
            return Unavailable(
                "the server is shutting down; retry on another replica", self.settings.retry_after
            )
        return Unavailable("the model is still loading; retry shortly", self.settings.retry_after)

    async def start(self, scorer: Scorer | None = None, engine: Engine | None = None) -> None:
        """Load the model (in a thread, so /health answers meanwhile), start the batcher, warm up.
        `scorer`: an already loaded model; `engine` replaces all of it with a ready-made engine (for
        example one backed by remote replicas)."""
        s = self.settings
        started: Engine | None = None
        try:
            if engine is None:
                if scorer is None:
                    scorer = await in_daemon_thread(load_scorer, s.model_config())
                engine = RerankEngine(
                    scorer,
                    s.batch_config(),
                    instruction=s.instruction,
                    observe=self.metrics.observe_batch,
                    observe_cache=self.metrics.observe_cache,
                )
            started = engine
            await engine.start()
            self.metrics.track_queue(lambda: started.depth)
            await asyncio.to_thread(engine.warm_up)
        except Exception as e:
            if started is not None:
                await started.stop()
            self.phase, self.load_error = "failed", str(e)
            log.error("could not start: %s", e)
            if self.on_fatal is not None:
                self.on_fatal(str(e))
            return
        self.engine = engine
        if self.phase == "loading":
            self.phase = "ready"
            info = engine.info
            why = f", auto: {info.dtype_reason}" if info.dtype_reason else ""
            log.info(
                "ready: %s (%s, %s, %s on %s%s)",
                s.model_name,
                info.family,
                info.architecture,
                info.dtype,
                info.device,
                why,
            )
            if info.warning:
                log.warning("%s", info.warning)

    async def stop(self) -> None:
        if self.engine is not None:
            await self.engine.stop()

    @property
    def idle(self) -> bool:
        return self.in_flight == 0 and (self.engine is None or self.engine.depth == 0)
