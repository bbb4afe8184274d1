"""Browser fixtures: Debian's chromium driven by Playwright's Python API (no `playwright install`), and a
`rerankd ui --url` process beside a `rerankd serve` one.

Without chromium (or Playwright, or Gradio) the browser tests skip with the reason, except under CI
(the CI environment variable set), where they fail: CI installs chromium and must run them."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from rerankd.testing.servers import RunningServer, free_port, wait_until_ready

CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def missing(reason: str) -> None:
    """Skip here, fail under CI: a CI run without its browser must not pass quietly."""
    if os.environ.get("CI"):
        pytest.fail(f"{reason} (CI is set, so the browser tests must run)", pytrace=False)
    pytest.skip(reason)


def find_chromium() -> str | None:
    candidates = [
        os.environ.get("RERANKD_CHROMIUM"),
        "/usr/bin/chromium",
        shutil.which("chromium"),
        shutil.which("chromium-browser"),
        shutil.which("google-chrome"),
    ]
    return next((c for c in candidates if c and Path(c).exists()), None)


@pytest.fixture(scope="session")
def chromium() -> str:
    path = find_chromium()
    if path is None:
        missing("chromium not found: apt-get install chromium (or set RERANKD_CHROMIUM to a Chrome binary)")
    assert path is not None
    return path


@pytest.fixture(scope="session")
def ui_deps() -> None:
    for module, extra in (("gradio", "ui"), ("playwright", "dev")):
        try:
            __import__(module)
        except ImportError:
            missing(f"{module} is not installed: pip install -e '.[{extra}]'")


@pytest.fixture(scope="module")
def browser(chromium: str, ui_deps: None) -> Iterator[Any]:
    """Module-scoped on purpose: Playwright's sync API keeps an event loop running in this thread while
    it is open, which async tests (pytest-asyncio) in later modules could not share."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS, headless=True)
        try:
            yield b
        finally:
            b.close()


UIProcess = RunningServer  # a `rerankd ui` process has the same shape as a server's


@contextlib.contextmanager
def standalone_ui(server_url: str, *args: str, log_dir: Path) -> Iterator[UIProcess]:
    """`rerankd ui --url server_url` on a free port; `wait_until_up` before use."""
    port = free_port()
    log_path = log_dir / f"ui-{port}.log"
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "GRADIO_ANALYTICS_ENABLED": "False"}
    cmd = [sys.executable, "-m", "rerankd.cli", "ui", "--url", server_url, "--port", str(port), *args]
    with open(log_path, "w") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, text=True)
    ui = UIProcess(f"http://127.0.0.1:{port}", proc, log_path)
    try:
        yield ui
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def wait_until_up(ui: UIProcess, timeout: float = 120) -> None:
    wait_until_ready(ui, timeout, path="/", name="rerankd ui")
