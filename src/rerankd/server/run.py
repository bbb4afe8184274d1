"""Run the app under uvicorn with a graceful drain: on SIGTERM (or Ctrl-C) the server answers 503 to
new requests, finishes those in flight, then exits 0. A second signal exits at once."""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Sequence
from types import FrameType

import uvicorn

from rerankd.server.app import Mount, create_app
from rerankd.server.settings import ServerSettings
from rerankd.server.state import ServerState

log = logging.getLogger("rerankd.server")


class DrainingServer(uvicorn.Server):
    def __init__(self, config: uvicorn.Config, state: ServerState) -> None:
        super().__init__(config)
        self.rerankd = state
        self.drain_started: float | None = None
        self.fatal: str | None = None

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
        if self.drain_started is not None and not self.should_exit:
            waited = time.monotonic() - self.drain_started
            if self.rerankd.idle or waited > self.rerankd.settings.drain_timeout:
                if not self.rerankd.idle:
                    log.warning("drain timeout after %.0fs with requests in flight", waited)
                self.should_exit = True
        return await super().on_tick(counter)


def configure_logging(level: str) -> None:
    logging.basicConfig(
        level=level.upper(), format="%(asctime)s %(levelname)s %(name)s %(message)s", stream=sys.stderr
    )


def serve(settings: ServerSettings, *, mounts: Sequence[Mount] = ()) -> int:
    """Serve until a signal; the exit code is 0 after a clean drain, 1 if the model failed to load.
    `mounts` go to create_app (the CLI passes the web UI's)."""
    configure_logging(settings.log_level)
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
    server = DrainingServer(config, state)

    def fatal(message: str) -> None:
        server.fatal = message
        server.should_exit = True

    state.on_fatal = fatal
    server.run()
    if server.fatal:
        print(f"error: {server.fatal}", file=sys.stderr)
        return 1
    return 0
