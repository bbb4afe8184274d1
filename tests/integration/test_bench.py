"""`rerankd bench` end to end on the tiny model: the reference and one rerankd variant in their own
processes, and workload C through a real server. Speed is not checked here; agreement and the report are."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest


def test_bench_runs_every_path_on_a_tiny_model(qwen3_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    cmd = [sys.executable, "-m", "rerankd.bench", "--model", str(qwen3_dir), "--quick"]
    cmd += ["--workloads", "A,C", "--variants", "reference,float32,float32-eager", "--clients", "2"]
    cmd += ["--server-dtype", "float32", "--output", str(out)]
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = {(r["workload"], r["variant"]): r for r in json.loads(out.read_text())["rows"]}
    assert list(rows) == [
        ("A", "reference"),
        ("A", "float32"),
        ("A", "float32-eager"),
        ("C", "float32 offline"),
        ("C", "float32 server x2"),
    ], proc.stderr[-3000:]
    assert rows["A", "float32"]["max_diff"] < 1e-5  # rerankd in fp32 is the reference algorithm
    assert rows["A", "float32"]["tokens"] == rows["A", "reference"]["tokens"]
    # Without the fused kernels and chunked attention (RERANKD_FUSED=off in that child): the same scores
    # to fp32's bound (the norms are bit-equal; attention over fewer keys sums in another order).
    eager = [s for r in rows["A", "float32-eager"]["scores"] for s in r]
    fused = [s for r in rows["A", "float32"]["scores"] for s in r]
    assert eager == pytest.approx(fused, abs=1e-5)
    server = rows["C", "float32 server x2"]
    assert server["max_diff"] < 1e-5 and server["vs_offline"] > 0 and server["peak_rss_gib"] > 0
    assert "| C | float32 server x2 |" in proc.stdout
    # C's offline child runs on the malloc `rerankd serve` picks here (jemalloc where the machine has
    # it), as its server does, so the two rows are compared on one allocator.
    from rerankd import allocator

    malloc = allocator.preloaded_allocator(allocator.serve_env(os.environ))
    assert json.loads(out.read_text())["machine"]["allocator"]["C"] == malloc
    assert f"[C] offline: malloc {malloc}" in proc.stderr


def test_bench_header_auto_compiled_and_a_missing_peer(qwen3_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    cmd = [sys.executable, "-m", "rerankd.bench", "--model", str(qwen3_dir), "--quick", "--workloads", "A"]
    cmd += ["--variants", "float32,bfloat16+compile,auto,openvino", "--output", str(out)]
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "CPU features: AMX " in proc.stdout and "dtype auto would pick: " in proc.stdout
    payload = json.loads(out.read_text())
    assert set(payload["machine"]["features"]) >= {"amx", "avx512_bf16", "vnni"}
    rows = {r["variant"]: r for r in payload["rows"]}
    auto = next(v for v in rows if v.startswith("auto="))  # names the dtype it resolved to
    assert auto.removeprefix("auto=") in ("float32", "bfloat16")
    assert "bfloat16+compile: compile on, warm-up" in proc.stderr
    # No reference row in this run: drift is unset, but the compiled bf16 scores track fp32's.
    compiled, exact = rows["bfloat16+compile"]["scores"][0], rows["float32"]["scores"][0]
    assert max(abs(a - b) for a, b in zip(compiled, exact, strict=True)) < 0.05
    try:
        import openvino  # noqa: F401
    except ImportError:  # the peer is skipped with the reason, and the run goes on
        assert "openvino: skipped (openvino is not installed" in proc.stderr
        assert not any(v.startswith("openvino") for v in rows)


def test_bench_takes_several_models_side_by_side(
    qwen3_dir: Path, tokenizer_dir: Path | None, tmp_path: Path
) -> None:
    from rerankd.testing.synthetic import build_qwen3_reranker

    other = build_qwen3_reranker(tmp_path / "other-qwen3", tokenizer_dir=tokenizer_dir, seed=1)
    out = tmp_path / "bench.json"
    cmd = [sys.executable, "-m", "rerankd.bench", "--model", str(qwen3_dir), "--model", str(other)]
    cmd += ["--quick", "--workloads", "A", "--variants", "float32", "--output", str(out)]
    proc = subprocess.run(
        cmd, capture_output=True, text=True, env={**os.environ, "HF_HUB_OFFLINE": "1"}, timeout=600
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    runs = json.loads(out.read_text())["models"]
    assert [r["model"] for r in runs] == [str(qwen3_dir), str(other)]
    for run in runs:
        assert [(r["workload"], r["variant"]) for r in run["rows"]] == [("A", "float32")]
        assert run["weights_bytes"] > 0 and run["peaks"]
    assert runs[0]["rows"][0]["scores"] != runs[1]["rows"][0]["scores"]  # two models, two sets of scores
    assert proc.stdout.count("## model: ") == 2 and proc.stdout.count("| A | float32 |") == 2
