"""The CLI as a user runs it: a real `rerankd` process on a generated model directory."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from rerankd import Reranker

DOCS = ["Beijing is the capital of China.", "Gravity is a force.", "pandas is a Python library."]


def run(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "COLUMNS": "200"}
    return subprocess.run(
        [sys.executable, "-m", "rerankd.cli", *args],
        input=stdin,
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )


def test_rank_prints_a_table(qwen3_dir: Path, qwen3_reranker: Reranker) -> None:
    out = run("rank", "--model", str(qwen3_dir), "--query", "capital of China", *DOCS)
    assert out.returncode == 0, out.stderr
    expected = qwen3_reranker.rerank("capital of China", DOCS)
    lines = [line for line in out.stdout.splitlines() if "│" in line]
    assert len(lines) == 3
    for line, r in zip(lines, expected, strict=True):
        cells = [c.strip() for c in line.split("│") if c.strip()]
        assert cells[:3] == [str(expected.indices.index(r.index) + 1), f"{r.score:.4f}", str(r.index)]
        assert cells[3] == DOCS[r.index]


def test_rank_json_from_jsonl_file(tmp_path: Path, qwen3_dir: Path, qwen3_reranker: Reranker) -> None:
    f = tmp_path / "docs.jsonl"
    f.write_text("".join(json.dumps({"text": d, "id": f"d{i}"}) + "\n" for i, d in enumerate(DOCS)))
    out = run("rank", "-m", str(qwen3_dir), "-q", "capital", "--file", str(f), "--json", "--top-n", "2")
    assert out.returncode == 0, out.stderr
    body = json.loads(out.stdout)
    expected = qwen3_reranker.rerank("capital", DOCS, top_n=2)
    assert [r["index"] for r in body["results"]] == expected.indices
    assert [r["id"] for r in body["results"]] == [f"d{i}" for i in expected.indices]
    assert body["results"][0]["relevance_score"] == pytest.approx(expected[0].score, abs=1e-6)


def test_score_from_stdin_in_input_order(qwen3_dir: Path, qwen3_reranker: Reranker) -> None:
    out = run("score", "-m", str(qwen3_dir), "-q", "capital", stdin="\n".join(DOCS) + "\n")
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["scores"] == pytest.approx(qwen3_reranker.score("capital", DOCS), abs=1e-6)


def test_missing_model_is_a_clear_error() -> None:
    out = run("rank", "--model", "no-such-org/no-such-model", "--query", "q", "doc")
    assert out.returncode == 2
    assert "Traceback" not in out.stderr
    assert "HF_HUB_OFFLINE" in out.stderr and "local directory" in out.stderr
    assert "rerankd download no-such-org/no-such-model" in out.stderr


def test_missing_directory_is_a_clear_error(tmp_path: Path) -> None:
    out = run("rank", "--model", str(tmp_path / "nope"), "--query", "q", "doc")
    assert out.returncode != 0 and "no such directory" in out.stderr and "Traceback" not in out.stderr


def test_unsupported_architecture(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text(json.dumps({"architectures": ["BertModel"], "model_type": "bert"}))
    out = run("rank", "--model", str(tmp_path), "--query", "q", "doc")
    assert out.returncode != 0 and "unsupported architecture" in out.stderr and "ForCausalLM" in out.stderr


def test_bad_top_n(qwen3_dir: Path) -> None:
    out = run("rank", "--model", str(qwen3_dir), "--query", "q", "--top-n", "0", "doc")
    assert out.returncode == 2 and "--top-n" in out.stderr


def test_no_documents(qwen3_dir: Path) -> None:
    # Empty stdin is a mistake (a pipe that produced nothing), not an empty ranking.
    for command in ("rank", "score"):
        out = run(command, "--model", str(qwen3_dir), "--query", "q", "--file", "-", stdin="")
        assert out.returncode == 2, out.stdout
        assert "no documents" in out.stderr and "Traceback" not in out.stderr and out.stdout == ""


def test_template_picks_the_format_and_an_unknown_one_is_refused(qwen3_dir: Path) -> None:
    bad = run("rank", "-m", str(qwen3_dir), "--template", "bogus", "-q", "q", "a", "b")
    assert bad.returncode != 0
    assert "unknown template 'bogus'" in bad.stderr and "qwen3-reranker" in bad.stderr
    assert "Traceback" not in bad.stderr
    ok = run(
        "rank",
        "-m",
        str(qwen3_dir),
        "--template",
        "qwen3-reranker",
        "--dtype",
        "float32",
        "--json",
        "-q",
        "q",
        "a",
        "b",
    )
    assert ok.returncode == 0, ok.stderr
