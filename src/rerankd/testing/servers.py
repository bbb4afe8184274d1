"""A real `rerankd serve` process on a free loopback port, for the tests and the benchmark that talk HTTP
to it. The server's output goes to a log file, which failures quote; stopping it records its peak RSS."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import httpx


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class RunningServer:
    url: str
    process: subprocess.Popen[str]
    log_path: Path
    maxrss_kib: int | None = None  # the process's own peak RSS, once `stop` has reaped it

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 60) -> int:
        if self.process.poll() is None:
            self.process.send_signal(sig)
            deadline = time.monotonic() + timeout
            while self._reap(os.WNOHANG) is None:
                if time.monotonic() > deadline:
                    self.process.kill()
                    self._reap(0)
                    raise subprocess.TimeoutExpired(self.process.args, timeout)
                time.sleep(0.05)
        return int(self.process.returncode)

    def _reap(self, options: int) -> int | None:
        """wait4 rather than Popen.wait: it also gives the child's rusage (peak RSS for the benchmark)."""
        pid, status, usage = os.wait4(self.process.pid, options)
        if pid == 0:
            return None
        self.process.returncode = os.waitstatus_to_exitcode(status)
        self.maxrss_kib = usage.ru_maxrss
        return self.process.returncode


@contextlib.contextmanager
def rerankd_server(
    model_dir: Path | str,
    *args: str,
    log_dir: Path,
    wait_ready: bool = True,
    ready_timeout: float = 120,
    env: Mapping[str, str] | None = None,
) -> Iterator[RunningServer]:
    """`env`: variables set (or overriding) on top of this process's environment."""
    port = free_port()
    log_path = log_dir / f"server-{port}.log"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONUNBUFFERED": "1", **(env or {})}
    cmd = [
        sys.executable,
        "-m",
        "rerankd.cli",
        "serve",
        "--model",
        str(model_dir),
        "--port",
        str(port),
        *args,
    ]
    with open(log_path, "w") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, text=True)
    server = RunningServer(f"http://127.0.0.1:{port}", proc, log_path)
    try:
        if wait_ready:
            wait_until_ready(server, timeout=ready_timeout)
        yield server
    finally:
        with contextlib.suppress(Exception):
            server.stop(signal.SIGTERM, timeout=30)
        if proc.poll() is None:
            proc.kill()


def wait_until_ready(
    server: RunningServer, timeout: float = 120, path: str = "/ready", name: str = "rerankd serve"
) -> None:
    """Poll `path` until it answers 200; fail with the process's log if it exits or times out."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise RuntimeError(f"{name} exited with {server.process.returncode}:\n{server.log()}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"{server.url}{path}", timeout=2).status_code == 200:
                return
        time.sleep(0.2)
    raise TimeoutError(f"{name} not ready after {timeout}s:\n{server.log()}")
