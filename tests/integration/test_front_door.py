"""The front door, as a new user meets it: real `rerankd` processes (and a real server on a real port)
for the smoke-test model, the help, the one-line errors for missing extras and devices, and the
container build where a container tool exists."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from rerankd import smoke
from rerankd.testing.servers import free_port, rerankd_server

REPO = Path(__file__).resolve().parents[2]
DOCS = ["Beijing is the capital of China.", "Gravity is a force.", "pandas is a Python library."]


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("rerankd-cache")


def run(
    *args: str, stdin: str | None = None, env: dict[str, str] | None = None, pre: str = ""
) -> subprocess.CompletedProcess[str]:
    """`rerankd ARGS`; `pre` is Python run first in the same process (to hide an installed package)."""
    code = f"import sys\n{pre}\nfrom rerankd.cli import main\nsys.argv = ['rerankd', *sys.argv[1:]]\nmain()"
    return subprocess.run(
        [sys.executable, "-c", code, *args],
        input=stdin,
        capture_output=True,
        text=True,
        env={**os.environ, "HF_HUB_OFFLINE": "1", "COLUMNS": "200", **(env or {})},
        timeout=300,
    )


def hide(*modules: str) -> str:
    """Python that makes `import M` fail with ModuleNotFoundError, as if M were not installed."""
    return "".join(f"sys.modules[{m!r}] = None\n" for m in modules)


# -- help and version -----------------------------------------------------------------------------------


def test_version_and_short_help() -> None:
    out = run("--version")
    assert out.returncode == 0 and out.stdout.startswith("rerankd ") and out.stdout.split()[1][0].isdigit()
    out = run("-h")
    assert out.returncode == 0 and "download" in out.stdout and "serve" in out.stdout
    assert run("rank", "-h").returncode == 0


def test_help_renders_brackets_and_plain_flags() -> None:
    out = run("serve", "--help")
    assert out.returncode == 0
    assert "rerankd[ray]" in out.stdout
    assert "<bool>" not in out.stdout
    ray_line = next(line for line in out.stdout.splitlines() if line.strip().startswith("--ray "))
    assert "Serve on Ray Serve" in ray_line
    assert "--port <int>" in out.stdout  # options that take a value keep their placeholder


# -- the smoke-test model -----------------------------------------------------------------------------


def test_tiny_random_ranks_in_one_command(cache: Path) -> None:
    env = {"RERANKD_CACHE": str(cache)}
    out = run("rank", "-m", "tiny-random", "-q", "capital of China", "--json", *DOCS, env=env)
    assert out.returncode == 0, out.stderr
    body = json.loads(out.stdout)
    assert body["model"] == smoke.SERVED_NAME and "NOT-A-REAL-RERANKER" in body["model"]
    assert sorted(r["index"] for r in body["results"]) == [0, 1, 2]
    scores = [r["relevance_score"] for r in body["results"]]
    assert scores == sorted(scores, reverse=True) and len(set(scores)) == 3
    assert "NOT a real reranker" in out.stderr and "Traceback" not in out.stderr
    built = list(cache.glob("tiny-random-*"))
    assert len(built) == 1 and smoke.is_smoke_dir(built[0])
    # The second run reuses the build: same directory, same scores.
    again = run("rank", "-m", "tiny-random", "-q", "capital of China", "--json", *DOCS, env=env)
    assert json.loads(again.stdout)["results"] == body["results"]
    assert list(cache.glob("tiny-random-*")) == built


def test_tiny_random_in_batch(cache: Path, tmp_path: Path) -> None:
    # Every command that loads a model takes tiny-random, not only rank and serve.
    src, dst = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    src.write_text(json.dumps({"query": "capital", "documents": DOCS, "id": "q1"}) + "\n")
    args = ("batch", "--input", str(src), "--output", str(dst), "-m", "tiny-random")
    out = run(*args, env={"RERANKD_CACHE": str(cache)})
    assert out.returncode == 0, out.stderr
    line = json.loads(dst.read_text())
    assert line["id"] == "q1" and len(line["scores"]) == 3
    assert out.stderr.count("NOT a real reranker") == 1


def test_tiny_random_with_the_real_tokenizer(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from rerankd.testing.synthetic import default_tokenizer_dir

    real = default_tokenizer_dir()
    if real is None:
        pytest.skip("the real Qwen3 tokenizer is not on this machine")
    monkeypatch.setenv("RERANKD_TOKENIZER_DIR", str(real))
    path = smoke.tiny_random_dir(tmp_path)
    assert "qwen3-tokenizer" in path.name
    config = json.loads((path / "config.json").read_text())
    assert config["vocab_size"] > 150_000  # Qwen3's vocabulary, not the small fallback's
    marker = json.loads((path / smoke.MARKER).read_text())
    assert marker["not_a_real_reranker"] is True


def test_serve_tiny_random_is_labelled(cache: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RERANKD_CACHE", str(cache))
    with rerankd_server("tiny-random", "--no-ui", log_dir=tmp_path) as server:
        models = httpx.get(f"{server.url}/v1/models", timeout=10).json()
        assert smoke.SERVED_NAME in json.dumps(models)
        r = httpx.post(f"{server.url}/v1/rerank", json={"query": "capital", "documents": DOCS}, timeout=30)
        assert r.status_code == 200 and r.json()["model"] == smoke.SERVED_NAME
        assert "WARNING" in server.log() and "NOT a real reranker" in server.log()


# -- a model that is not here ---------------------------------------------------------------------------


def test_serve_unreachable_model_exits_2_before_binding(tmp_path: Path) -> None:
    port = free_port()
    start = time.monotonic()
    out = run("serve", "--model", "no-such-org/no-such-model", "--port", str(port))
    assert out.returncode == 2
    assert time.monotonic() - start < 60
    text = out.stdout + out.stderr
    assert text.count("error:") == 1 and text.count("is not here") == 1  # one message, once
    assert "rerankd download no-such-org/no-such-model" in text and "HF_ENDPOINT" in text
    assert "copy the model directory" in text
    assert "Uvicorn running" not in text and "Traceback" not in text


# -- one-line errors ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "hidden", "extra"),
    [
        (("rank", "-m", "tiny-random", "-q", "q", "doc"), ("torch",), "local"),
        (("score", "-m", "tiny-random", "-q", "q", "doc"), ("transformers",), "local"),
        (("serve", "-m", "tiny-random"), ("uvicorn",), "server"),
        (("serve", "-m", "tiny-random", "--ray"), ("ray",), "ray"),
        (("eval", "-d", "sample", "-m", "tiny-random"), ("bm25s",), "eval"),
        (("ui",), ("gradio",), "ui"),
        (("download", "org/model"), ("huggingface_hub",), "local"),
    ],
)
def test_a_missing_extra_is_one_line(args: tuple[str, ...], hidden: tuple[str, ...], extra: str) -> None:
    out = run(*args, pre=hide(*hidden))
    assert out.returncode == 2, out.stderr[-2000:]
    assert f'pip install "rerankd[{extra}]"' in out.stderr or f"pip install 'rerankd[{extra}]'" in out.stderr
    assert "Traceback" not in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1, out.stderr


def test_cuda_without_cuda_says_what_to_do(cache: Path) -> None:
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    for command in (("rank", "-q", "q", "doc"), ("serve",)):
        out = run(*command, "-m", "tiny-random", "--device", "cuda", env={"RERANKD_CACHE": str(cache)})
        assert out.returncode == 2
        assert "CUDA is not available" in out.stderr and "--device cpu" in out.stderr
        assert "Traceback" not in out.stderr and "Uvicorn running" not in out.stderr


def test_loading_shows_no_weight_bar(qwen3_dir: Path) -> None:
    # With progress bars allowed (the suite turns them off), a load still prints no "Loading weights" bar.
    env = {k: v for k, v in os.environ.items() if k != "HF_HUB_DISABLE_PROGRESS_BARS"}
    out = subprocess.run(
        [sys.executable, "-m", "rerankd.cli", "score", "-m", str(qwen3_dir), "-q", "q", "a doc"],
        capture_output=True,
        text=True,
        env={**env, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_VERBOSITY": "info"},
        timeout=300,
    )
    assert out.returncode == 0, out.stderr
    assert "Loading weights" not in out.stderr and "it/s" not in out.stderr


# -- download -------------------------------------------------------------------------------------------


def test_download_command(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """In-process (the hub's network edge replaced): the command passes --to on and prints the path."""
    import huggingface_hub
    from typer.testing import CliRunner

    from rerankd.cli import app

    calls: list[tuple[str, dict[str, object]]] = []

    def snapshot_download(repo_id: str, **kwargs: object) -> str:
        if kwargs.get("local_files_only"):
            raise huggingface_hub.errors.LocalEntryNotFoundError("not in the cache")
        calls.append((repo_id, kwargs))
        return str(kwargs.get("local_dir"))

    monkeypatch.setattr(huggingface_hub, "snapshot_download", snapshot_download)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    result = CliRunner().invoke(app, ["download", "Qwen/Qwen3-Reranker-0.6B", "--to", str(tmp_path / "q")])
    assert result.exit_code == 0, result.output
    assert calls == [("Qwen/Qwen3-Reranker-0.6B", {"local_dir": str(tmp_path / "q")})]
    assert str(tmp_path / "q") in result.stdout

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    result = CliRunner().invoke(app, ["download", "org/uncached"])
    assert result.exit_code == 2 and "HF_HUB_OFFLINE" in result.output


def test_download_tiny_random_then_rank_it(tmp_path: Path, cache: Path) -> None:
    out = run("download", "tiny-random", "--to", str(tmp_path / "m"), env={"RERANKD_CACHE": str(cache)})
    assert out.returncode == 0, out.stderr
    path = Path(out.stdout.strip())
    assert smoke.is_smoke_dir(path)
    ranked = run("rank", "-m", str(path), "-q", "capital", "--json", *DOCS)
    assert ranked.returncode == 0 and len(json.loads(ranked.stdout)["results"]) == 3


# -- the install ----------------------------------------------------------------------------------------


def make_torch_args(**variables: str) -> subprocess.CompletedProcess[str]:
    if shutil.which("make") is None:
        pytest.skip("no make")
    return subprocess.run(
        ["make", "-s", "--no-print-directory", "torch-args", *(f"{k}={v}" for k, v in variables.items())],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_install_uses_the_cpu_index_when_it_answers(tmp_path: Path) -> None:
    import functools
    import http.server
    import threading

    (tmp_path / "torch").mkdir()
    (tmp_path / "torch" / "index.html").write_text("<html></html>")
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(tmp_path))
    with http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler) as httpd:
        threading.Thread(target=httpd.serve_forever, daemon=True).start()
        index = f"http://127.0.0.1:{httpd.server_address[1]}"
        out = make_torch_args(TORCH="cpu", TORCH_CPU_INDEX=index)
        httpd.shutdown()
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["--extra-index-url", index]


def test_install_goes_on_without_an_unreachable_index() -> None:
    closed = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    start = time.monotonic()
    out = make_torch_args(TORCH="cpu", TORCH_CPU_INDEX=closed, INDEX_PROBE_TIMEOUT="3")
    assert out.returncode == 0 and out.stdout.strip() == ""
    assert "not reachable" in out.stderr and time.monotonic() - start < 30
    assert make_torch_args(TORCH="cuda").stdout.strip() == ""  # CUDA: the package index's default build
    assert make_torch_args(TORCH="gpu").returncode == 2
    # pip itself, given an index that cannot be reached, still resolves the pinned torch and does not stall.
    start = time.monotonic()
    pip_args = ["--dry-run", "--no-deps", "--ignore-installed", "--timeout", "3", "--retries", "0"]
    pip = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            *pip_args,
            "--extra-index-url",
            f"{closed}/simple",
            "torch==2.13.0",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert pip.returncode == 0, pip.stderr[-2000:]
    assert "Would install torch-2.13.0" in pip.stdout and time.monotonic() - start < 120


# -- the container --------------------------------------------------------------------------------------


def test_container_builds_and_ranks(tmp_path: Path) -> None:
    tool = next((t for t in ("docker", "podman") if shutil.which(t)), None)
    if tool is None:
        pytest.skip("no container tool (docker or podman) on this machine")
    if subprocess.run([tool, "info"], capture_output=True, timeout=60).returncode != 0:
        pytest.skip(f"{tool} is installed but cannot build here (no daemon)")
    tag = "rerankd-test:cpu"
    build = subprocess.run(
        [tool, "build", "-t", tag, str(REPO)], capture_output=True, text=True, timeout=3600
    )
    assert build.returncode == 0, build.stderr[-4000:]
    out = subprocess.run(
        [tool, "run", "--rm", tag, "rank", "-m", "tiny-random", "-q", "capital", "--json", *DOCS],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert out.returncode == 0, out.stderr[-4000:]
    assert len(json.loads(out.stdout)["results"]) == 3
