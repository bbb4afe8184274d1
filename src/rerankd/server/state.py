"""What the server knows about itself: settings, the engine once loaded, and its lifecycle phase."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar

from rerankd.config import load_scorer
from rerankd.engine.engine import Engine, RerankEngine
from rerankd.errors import ModelNotFound, Unavailable
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


def depth_of(engine: Engine) -> Callable[[], int]:
    return lambda: engine.depth


def mib(n: int) -> str:
    return f"{n / 2**20:,.1f} MiB"


@dataclass
class ServerState:
    """`engines`: one per served model, by served name, in served order (the first answers requests
    that name no model); filled one model after another by `start`."""

    settings: ServerSettings
    metrics: Metrics = field(default_factory=Metrics)
    engines: dict[str, Engine] = field(default_factory=dict)
    phase: Phase = "loading"
    load_error: str | None = None
    in_flight: int = 0
    on_fatal: Callable[[str], None] | None = None

    @property
    def engine(self) -> Engine | None:
        """The first model's engine (None until every model is started)."""
        return next(iter(self.engines.values()), None)

    def model_name(self, model: str | None) -> str:
        """The served model a request's `model` field picks: absent, the first. With one model the
        field is not read (as before several models were served: clients send whatever their SDK
        puts there, e.g. Cohere's "rerank-v3.5"); with several an unknown name is a 404."""
        names = self.settings.model_names
        if model is None or len(names) == 1:
            return names[0]
        if model not in names:
            served = ", ".join(repr(n) for n in names)
            raise ModelNotFound(f"model {model!r} is not served here; the models are: {served}")
        return model

    def require_engine(self, model: str | None = None) -> Engine:
        """The engine of the model a request names (see `model_name`); 503 unless serving."""
        name = self.model_name(model)
        # Draining still serves: a request the gate let in before the signal must finish.
        if self.phase in ("ready", "draining") and name in self.engines:
            return self.engines[name]
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

    async def start(
        self,
        scorer: Scorer | None = None,
        engine: Engine | None = None,
        *,
        scorers: Mapping[str, Scorer] | None = None,
        engines: Mapping[str, Engine] | None = None,
    ) -> None:
        """Load every model, one after another (in a thread, so /health answers meanwhile; one at a
        time, so peak memory is one model's load on top of those already loaded), start its batcher,
        warm it up. `scorer`/`engine`: the first model's, already loaded or ready-made (an engine backed
        by remote replicas); `scorers`/`engines`: the same by served name. A model that fails fails the
        whole start, with its name."""
        s = self.settings
        configs = s.model_configs()
        ready_scorers = dict(scorers or {})
        ready_engines = dict(engines or {})
        first = configs[0].name
        if scorer is not None:
            ready_scorers.setdefault(first, scorer)
        if engine is not None:
            ready_engines.setdefault(first, engine)
        name = first
        try:
            for config in configs:
                name = config.name
                eng = ready_engines.get(name)
                if eng is None:
                    sc = ready_scorers.get(name)
                    if sc is None:
                        sc = await in_daemon_thread(load_scorer, config)
                    eng = RerankEngine(
                        sc,
                        s.batch_config(),
                        instruction=config.instruction,
                        observe=functools.partial(self.metrics.observe_batch, name),
                        observe_cache=functools.partial(self.metrics.observe_cache, name),
                    )
                # Held before it starts, so `stop` ends it whatever happens next (a failed start, a
                # cancelled warm-up); nothing is served from it before the phase is "ready".
                self.engines[name] = eng
                await eng.start()
                self.metrics.track_queue(name, depth_of(eng))
                await asyncio.to_thread(eng.warm_up)
                self._log_loaded(name, eng)
        except Exception as e:
            await self.stop()
            self.engines.clear()
            message = f"{name}: {e}" if len(configs) > 1 else str(e)
            self.phase, self.load_error = "failed", message
            log.error("could not start: %s", message)
            if self.on_fatal is not None:
                self.on_fatal(message)
            return
        if self.phase == "loading":
            self.phase = "ready"
            log.info("ready: %s", ", ".join(self.engines))

    def _log_loaded(self, name: str, engine: Engine) -> None:
        info = engine.info
        why = f", auto: {info.dtype_reason}" if info.dtype_reason else ""
        size = f", {mib(info.weight_bytes)} of weights" if info.weight_bytes else ""
        log.info(
            "loaded: %s (%s, %s, %s on %s%s%s)",
            name,
            info.family,
            info.architecture,
            info.dtype,
            info.device,
            why,
            size,
        )
        if info.warning:
            log.warning("%s", info.warning)

    async def stop(self) -> None:
        for engine in self.engines.values():
            await engine.stop()

    @property
    def idle(self) -> bool:
        return self.in_flight == 0 and all(e.depth == 0 for e in self.engines.values())
