"""`rerankd serve` re-executes itself with jemalloc preloaded (rerankd.allocator): the decision, the real
process on a real port, and a SIGTERM that lands during the exec."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import httpx
import pytest

from rerankd import Reranker
from rerankd.allocator import (
    REEXEC_ENV,
    AllocatorError,
    find_jemalloc,
    preload_env,
    reexec_if_needed,
    release_signals,
)
from rerankd.testing.servers import rerankd_server

LIB = "/usr/lib/x86_64-linux-gnu/libjemalloc.so.2"
SERVE = ["rerankd", "serve", "--model", "m"]


def test_serve_is_re_executed_with_jemalloc_first_in_ld_preload() -> None:
    env = preload_env(SERVE, {"LD_PRELOAD": "/opt/libother.so", "HOME": "/root"}, LIB, "linux")
    assert env is not None
    assert env["LD_PRELOAD"] == f"{LIB} /opt/libother.so"
    assert env[REEXEC_ENV] == LIB and env["HOME"] == "/root"


@pytest.mark.parametrize(
    ("argv", "env", "library", "platform"),
    [
        (SERVE, {"RERANKD_ALLOCATOR": "system"}, LIB, "linux"),  # asked for glibc's
        (["rerankd", "rank", "q", "d"], {}, LIB, "linux"),  # only the long-running server
        ([*SERVE, "--ray"], {}, LIB, "linux"),  # Ray spawns its own processes from this environment
        (SERVE, {"RERANKD_RAY": "1"}, LIB, "linux"),
        (SERVE, {"LD_PRELOAD": "/x/libtcmalloc_minimal.so.4"}, LIB, "linux"),  # another allocator chosen
        (
            ["rerankd", "rank", "q", "d"],
            {"RERANKD_ALLOCATOR": "bogus"},
            LIB,
            "linux",
        ),  # checked for serve only
        (SERVE, {REEXEC_ENV: LIB}, LIB, "linux"),  # already re-executed: never twice
        (SERVE, {"LD_PRELOAD": "/x/libjemalloc.so.2"}, LIB, "linux"),  # the user preloaded it
        (SERVE, {}, None, "linux"),  # not on this machine: run on glibc (the log says so)
        (SERVE, {}, LIB, "darwin"),
        (SERVE, {}, None, "darwin"),
    ],
)
def test_when_it_is_not_re_executed(
    argv: list[str], env: dict[str, str], library: str | None, platform: str
) -> None:
    assert preload_env(argv, env, library, platform) is None


def test_asking_for_jemalloc_without_it_or_for_another_name_is_an_error() -> None:
    with pytest.raises(AllocatorError, match="apt install libjemalloc2"):
        preload_env(SERVE, {"RERANKD_ALLOCATOR": "jemalloc"}, None, "linux")
    with pytest.raises(AllocatorError, match="auto, jemalloc or system"):
        preload_env(SERVE, {"RERANKD_ALLOCATOR": "tcmalloc"}, LIB, "linux")
    with pytest.raises(AllocatorError, match="Ray"):
        preload_env([*SERVE, "--ray"], {"RERANKD_ALLOCATOR": "jemalloc"}, LIB, "linux")
    with pytest.raises(AllocatorError, match="another allocator"):
        preload_env(SERVE, {"RERANKD_ALLOCATOR": "jemalloc", "LD_PRELOAD": "/x/libtcmalloc.so"}, LIB, "linux")


def test_the_re_executed_process_gives_its_children_the_environment_it_was_started_with(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(REEXEC_ENV, LIB)
    monkeypatch.setenv("LD_PRELOAD", f"{LIB} /opt/libother.so")
    monkeypatch.delenv("RERANKD_ALLOCATOR", raising=False)
    release_signals()
    assert REEXEC_ENV not in os.environ and os.environ["LD_PRELOAD"] == "/opt/libother.so"
    release_signals()  # a second call (no guard left) changes nothing
    assert os.environ["LD_PRELOAD"] == "/opt/libother.so"


def test_main_called_from_another_program_never_re_executes_it(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[object] = []
    monkeypatch.setattr(os, "execve", lambda *a: calls.append(a))
    monkeypatch.setattr("rerankd.allocator.find_jemalloc", lambda: LIB)
    monkeypatch.delenv(REEXEC_ENV, raising=False)
    monkeypatch.delenv("RERANKD_ALLOCATOR", raising=False)
    reexec_if_needed(["rerankd", "serve", "--model", "m"])  # this process is pytest, not that command
    assert calls == []


def maps(pid: int) -> str:
    return Path(f"/proc/{pid}/maps").read_text()


needs_jemalloc = pytest.mark.skipif(
    find_jemalloc() is None or not Path("/proc/self/maps").exists(),
    reason="no libjemalloc on this machine (.ci/run installs libjemalloc2)",
)


@needs_jemalloc
def test_a_real_server_runs_on_jemalloc_and_scores_as_the_library(
    qwen3_dir: Path, qwen3_reranker: Reranker, tmp_path: Path
) -> None:
    docs = ["Beijing is the capital of China.", "Gravity is a force."]
    with rerankd_server(
        qwen3_dir, "--no-ui", log_dir=tmp_path, env={"RERANKD_ALLOCATOR": "auto", "LD_PRELOAD": ""}
    ) as server:
        assert "libjemalloc" in maps(server.process.pid)
        r = httpx.post(f"{server.url}/v1/rerank", json={"query": "capital of China", "documents": docs})
        assert r.status_code == 200, r.text
        got = {x["index"]: x["relevance_score"] for x in r.json()["results"]}
    expected = qwen3_reranker.score("capital of China", docs)
    assert [got[0], got[1]] == pytest.approx(expected, abs=1e-5)
    assert "allocator: jemalloc" in server.log()


@needs_jemalloc
def test_allocator_system_keeps_glibc(qwen3_dir: Path, tmp_path: Path) -> None:
    with rerankd_server(
        qwen3_dir, "--no-ui", log_dir=tmp_path, env={"RERANKD_ALLOCATOR": "system", "LD_PRELOAD": ""}
    ) as server:
        assert "libjemalloc" not in maps(server.process.pid)
    assert "allocator: glibc" in server.log()


@needs_jemalloc
def test_a_sigterm_during_the_exec_still_exits_0(qwen3_dir: Path, tmp_path: Path) -> None:
    """The signal is sent as soon as the new image exists: without the held signal mask it dies with 143."""
    clean = {"RERANKD_ALLOCATOR": "auto", "LD_PRELOAD": ""}  # whatever the caller's environment holds
    with rerankd_server(qwen3_dir, "--no-ui", log_dir=tmp_path, wait_ready=False, env=clean) as server:
        pid, deadline = server.process.pid, time.monotonic() + 30
        while REEXEC_ENV.encode() not in Path(f"/proc/{pid}/environ").read_bytes():
            assert time.monotonic() < deadline and server.process.poll() is None, server.log()
            time.sleep(0.002)
        os.kill(pid, signal.SIGTERM)
        code = server.process.wait(timeout=60)
    assert code == 0, server.log()[-3000:]
