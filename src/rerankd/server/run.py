"""Run the app under uvicorn with a graceful drain: on SIGTERM (or Ctrl-C) the server answers 503 to
new requests, finishes those in flight, then exits 0. A second signal exits at once.

The whole drain, uvicorn's own graceful shutdown included, fits in --drain-timeout (Kubernetes kills at
its grace period, 30 s by default); a signal before the server is up exits 0 too."""

from __future__ import annotations

import logging
import signal
import sys
import threading
import time
from collections.abc import Sequence
from types import FrameType
from typing import TYPE_CHECKING

import uvicorn

from rerankd import allocator
from rerankd.server.settings import ServerSettings

if TYPE_CHECKING:
    from rerankd.server.app import Mount
    from rerankd.server.state import ServerState

log = logging.getLogger("rerankd.server")


# Of the drain timeout, the part kept back from waiting on requests: a quarter of it for uvicorn to close
# the connections, the rest for the lifespan to stop the engine and the process to exit (about 2 s with
# torch loaded on a busy machine).
MAX_SHUTDOWN_RESERVE = 5.0
SHUTDOWN_RESERVE_SHARE = 0.5


class EarlySignals:
    """Records SIGTERM/SIGINT that arrive before uvicorn installs its handlers (while the app is built),
    so the process exits 0 instead of being killed with 143."""

    def __init__(self) -> None:
        self.received: list[int] = []
        self._previous: dict[int, object] = {}

    def install(self) -> None:
        """Idempotent; the CLI calls it first thing, before it checks the model (which imports torch)."""
        if not self._previous and threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGTERM, signal.SIGINT):
                self._previous[sig] = signal.signal(sig, self._record)

    def _record(self, sig: int, frame: FrameType | None) -> None:
        self.received.append(sig)

    def restore(self) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)  # type: ignore[arg-type]
        self._previous.clear()


EARLY_SIGNALS = EarlySignals()


class DrainingServer(uvicorn.Server):
    def __init__(self, config: uvicorn.Config, state: ServerState, early: EarlySignals | None = None) -> None:
        super().__init__(config)
        self.rerankd = state
        self.drain_started: float | None = None
        self.fatal: str | None = None
        self.early = early

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        if self.drain_started is None and self.rerankd.phase != "failed":
            # First signal: refuse new work, let in-flight requests finish (see on_tick).
            self.drain_started = time.monotonic()
            self.rerankd.phase = "draining"
            log.info("signal %d: draining %d request(s) in flight", sig, self.rerankd.in_flight)
            return
        self.force_exit = self.drain_started is not None
        self.should_exit = True

    async def on_tick(self, counter: int) -> bool:
        if self.early is not None and self.early.received and self.drain_started is None:
            # A signal that came between building the app and uvicorn's handlers: drain as usual.
            self.handle_exit(self.early.received[0], None)
        if self.drain_started is not None and not self.should_exit:
            waited = time.monotonic() - self.drain_started
            budget = self.rerankd.settings.drain_timeout
            reserve = min(MAX_SHUTDOWN_RESERVE, budget * SHUTDOWN_RESERVE_SHARE)
            if self.rerankd.idle or waited > budget - reserve:
                if not self.rerankd.idle:
                    log.warning("drain timeout after %.1fs with requests in flight", waited)
                # uvicorn's graceful shutdown gets part of what is left of the budget, not a second one.
                self.config.timeout_graceful_shutdown = max(0.0, budget - waited - reserve * 3 / 4)  # type: ignore[assignment]
                self.should_exit = True
        return await super().on_tick(counter)


def configure_logging(level: str) -> None:
    logging.basicConfig(
        level=level.upper(), format="%(asctime)s %(levelname)s %(name)s %(message)s", stream=sys.stderr
    )


def serve(settings: ServerSettings, *, mounts: Sequence[Mount] = ()) -> int:
    """Serve until a signal; the exit code is 0 after a clean drain, 1 if the model failed to load.
    `mounts` go to create_app (the CLI passes the web UI's)."""
    early = EARLY_SIGNALS
    early.install()
    configure_logging(settings.log_level)
    log.info("%s", allocator.describe())
    from rerankd.server.app import create_app  # after the early handlers: building the app takes a while

    app = create_app(settings, mounts=mounts)
    state: ServerState = app.state.rerankd
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level,
        access_log=False,  # the gate logs one structured line per request
        timeout_graceful_shutdown=int(settings.drain_timeout),
        lifespan="on",
    )
    server = DrainingServer(config, state, early)

    def fatal(message: str) -> None:
        server.fatal = message
        server.should_exit = True

    state.on_fatal = fatal
    if early.received:
        log.info("signal %d before the server started: exiting", early.received[0])
        early.restore()
        return 0
    try:
        server.run()
    finally:
        early.restore()
    if server.fatal:
        print(f"error: {server.fatal}", file=sys.stderr)
        return 1
    return 0
