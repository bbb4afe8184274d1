"""`rerankd batch` in one process and through a server: scores in input order equal to
`Reranker.score`, bad lines reported and skipped, and resuming after an interruption writes every line
exactly once. Nothing here needs Ray."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from rerankd import Reranker
from rerankd.scaleout.batch import (
    EXIT_BAD_LINES,
    EXIT_COMPLETE,
    EXIT_INCOMPLETE,
    EXIT_USAGE,
    BadLine,
    BatchError,
    Job,
    LocalScorer,
    parse_line,
    prepare_output,
    run_batch,
)

WORDS = [
    "the",
    "capital",
    "city",
    "of",
    "China",
    "is",
    "Beijing",
    "gravity",
    "is",
    "a",
    "force",
    "pandas",
    "library",
    "for",
    "data",
    "python",
    "river",
]


def make_records(n: int, docs: int = 3) -> list[dict[str, Any]]:
    """Deterministic queries with `docs` documents each; every fifth line is a single pair."""
    records: list[dict[str, Any]] = []
    for i in range(n):
        query = " ".join(WORDS[(i + k) % len(WORDS)] for k in range(3))
        texts = [" ".join(WORDS[(i * 7 + j * 3 + k) % len(WORDS)] for k in range(4 + j)) for j in range(docs)]
        if i % 5 == 4:
            records.append({"query": query, "document": texts[0]})
        else:
            records.append({"query": query, "documents": texts, "id": f"q{i}"})
    return records


def write_jsonl(path: Path, records: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path


def expected_scores(reranker: Reranker, record: dict[str, Any]) -> list[float]:
    docs = record["documents"] if "documents" in record else [record["document"]]
    return reranker.score(str(record["query"]), [d if isinstance(d, str) else d["text"] for d in docs])


def read_output(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def check_output(path: Path, records: list[dict[str, Any]], reranker: Reranker) -> None:
    """Each good input line exactly once, in input order, with the one-process scores (abs 1e-5)."""
    rows = read_output(path)
    wanted = list(range(1, len(records) + 1))
    assert [r["line"] for r in rows] == wanted
    for row in rows:
        record = records[int(row["line"]) - 1]
        assert row["id"] == record.get("id")
        got = [row["score"]] if "document" in record else row["scores"]
        assert got == pytest.approx(expected_scores(reranker, record), abs=1e-5)


def run_cli(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "COLUMNS": "200"}
    return subprocess.run(
        [sys.executable, "-m", "rerankd.cli", "batch", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout,
    )


def test_parse_line_accepts_both_shapes_and_names_every_fault() -> None:
    assert parse_line(1, b'{"query": "q", "documents": ["a", {"text": "b"}], "id": 3}') == Job(
        1, "q", ["a", "b"], id=3
    )
    assert parse_line(2, '{"query": "q", "document": "d"}') == Job(2, "q", ["d"], pair=True)
    assert parse_line(3, b"   ") is None
    faults = {
        b"{not json": "not valid JSON",
        b"[1, 2]": "expected a JSON object",
        b'{"documents": []}': 'missing "query"',
        b'{"query": 1, "documents": []}': '"query" must be a string',
        b'{"query": "q"}': 'missing "documents"',
        b'{"query": "q", "documents": "abc"}': '"documents" must be a list',
        b'{"query": "q", "documents": ["a", 2]}': '"documents"[1] must be',
        b'{"query": "q", "document": 5}': '"document" must be',
        b'{"query": "q", "document": "a", "documents": ["b"]}': "not both",
        b"\xff\xfe": "not UTF-8",
    }
    for raw, reason in faults.items():
        parsed = parse_line(9, raw)
        assert isinstance(parsed, BadLine) and parsed.line == 9 and reason in parsed.reason, (raw, parsed)


def test_scores_in_input_order_with_bad_lines_reported(tmp_path: Path, qwen3_reranker: Reranker) -> None:
    records = make_records(12)
    lines = [json.dumps(r) for r in records]
    lines[2] = "{broken"  # line 3
    lines[6] = json.dumps({"query": ["not", "a", "string"], "documents": []})  # line 7
    lines.insert(9, "")  # a blank line 10; records after it move down one line
    src = tmp_path / "in.jsonl"
    src.write_text("\n".join(lines) + "\n")
    out = tmp_path / "out.jsonl"
    reported: list[str] = []
    summary = run_batch(src, out, LocalScorer(qwen3_reranker, chunk_pairs=7), report=reported.append)

    assert summary.exit_code == EXIT_BAD_LINES and summary.complete
    assert [b.line for b in summary.bad] == [3, 7]
    assert reported[0].startswith("line 3: not valid JSON") and reported[1].startswith('line 7: "query"')
    assert summary.blank == 1 and summary.scored == 10
    text = "\n".join(summary.lines(out))
    assert "bad line 3: not valid JSON" in text and "bad line 7" in text and "2 bad" in text
    by_line = {n: records[i] for i, n in enumerate([*range(1, 10), *range(11, 14)])}
    rows = read_output(out)
    assert [r["line"] for r in rows] == [1, 2, 4, 5, 6, 8, 9, 11, 12, 13]
    for row in rows:
        record = by_line[int(row["line"])]
        assert row["id"] == record.get("id")
        got = [row["score"]] if "document" in record else row["scores"]
        assert got == pytest.approx(expected_scores(qwen3_reranker, record), abs=1e-5)


def test_resume_repairs_a_partial_last_line_and_writes_each_line_once(
    tmp_path: Path, qwen3_reranker: Reranker
) -> None:
    records = make_records(10)
    src = write_jsonl(tmp_path / "in.jsonl", records)
    full = tmp_path / "full.jsonl"
    assert run_batch(src, full, LocalScorer(qwen3_reranker)).exit_code == EXIT_COMPLETE
    # An interrupted run: four lines written, the fifth cut in the middle.
    done = full.read_text().splitlines(keepends=True)
    out = tmp_path / "out.jsonl"
    out.write_text("".join(done[:4]) + done[4][: len(done[4]) // 2])
    assert prepare_output(out) == {1, 2, 3, 4} and out.read_text() == "".join(done[:4])
    out.write_text("".join(done[:4]) + done[4][: len(done[4]) // 2])

    summary = run_batch(src, out, LocalScorer(qwen3_reranker))
    assert summary.exit_code == EXIT_COMPLETE
    assert (summary.already_done, summary.scored) == (4, 6)
    check_output(out, records, qwen3_reranker)
    assert run_batch(src, out, LocalScorer(qwen3_reranker)).scored == 0  # nothing left


def test_limit_then_rerun_completes(tmp_path: Path, qwen3_reranker: Reranker) -> None:
    records = make_records(7)
    src = write_jsonl(tmp_path / "in.jsonl", records)
    out = tmp_path / "out.jsonl"
    first = run_batch(src, out, LocalScorer(qwen3_reranker), limit=3)
    assert first.exit_code == EXIT_INCOMPLETE and first.scored == 3 and "--limit 3" in str(first.stopped)
    second = run_batch(src, out, LocalScorer(qwen3_reranker))
    assert second.exit_code == EXIT_COMPLETE and (second.already_done, second.scored) == (3, 4)
    check_output(out, records, qwen3_reranker)


def test_refuses_to_append_to_a_file_it_did_not_write(tmp_path: Path, qwen3_reranker: Reranker) -> None:
    src = write_jsonl(tmp_path / "in.jsonl", make_records(2))
    with pytest.raises(BatchError, match="line 1 is not a rerankd batch result"):
        run_batch(src, _foreign(tmp_path), LocalScorer(qwen3_reranker))


def _foreign(tmp_path: Path) -> Path:
    path = tmp_path / "foreign.jsonl"
    path.write_text('{"query": "q", "documents": []}\n')
    return path


def test_cli_killed_mid_run_then_resumed(tmp_path: Path, qwen3_dir: Path, qwen3_reranker: Reranker) -> None:
    """A real `rerankd batch` process, SIGKILLed once some lines are out; the rerun completes the file
    with every line exactly once and the one-process scores."""
    records = make_records(150, docs=4)
    src = write_jsonl(tmp_path / "in.jsonl", records)
    out = tmp_path / "out.jsonl"
    args = [
        "--input",
        str(src),
        "-o",
        str(out),
        "-m",
        str(qwen3_dir),
        "--device",
        "cpu",
        "--dtype",
        "float32",
    ]
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "rerankd.cli", "batch", *args, "--max-batch-tokens", "512"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=env,
    )
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and proc.poll() is None:
            if out.exists() and out.stat().st_size > 0:
                break
            time.sleep(0.005)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait(30)
    written = out.read_text().count("\n")
    assert 0 < written < len(records), f"the run was not interrupted mid-way ({written} lines written)"

    rerun = run_cli(*args)
    assert rerun.returncode == EXIT_COMPLETE, rerun.stderr
    assert f"{written} already in" in rerun.stderr and "complete" in rerun.stderr
    check_output(out, records, qwen3_reranker)


def test_cli_exit_codes_and_summary(tmp_path: Path, qwen3_dir: Path) -> None:
    src = tmp_path / "in.jsonl"
    src.write_text('{"query": "q", "documents": ["a"]}\nnot json\n{"query": "q"}\n')
    out = tmp_path / "out.jsonl"
    result = run_cli("--input", str(src), "-o", str(out), "-m", str(qwen3_dir), "--device", "cpu")
    assert result.returncode == EXIT_BAD_LINES
    assert "line 2: not valid JSON" in result.stderr and 'line 3: missing "documents"' in result.stderr
    assert "1 scored now" in result.stderr and "2 bad" in result.stderr
    assert [r["line"] for r in read_output(out)] == [1]

    assert (
        run_cli("--input", str(tmp_path / "nope.jsonl"), "-o", str(out), "-m", "x").returncode == EXIT_USAGE
    )
    assert run_cli("--input", str(src), "-o", str(out)).returncode == EXIT_USAGE  # neither --model nor --url
    foreign = _foreign(tmp_path)
    refused = run_cli("--input", str(src), "-o", str(foreign), "-m", str(qwen3_dir))
    assert refused.returncode == EXIT_USAGE and "not a rerankd batch result" in refused.stderr


def test_through_a_server_with_the_client(tmp_path: Path, server: Any, qwen3_reranker: Reranker) -> None:
    records = make_records(9)
    src = write_jsonl(tmp_path / "in.jsonl", records)
    out = tmp_path / "out.jsonl"
    result = run_cli("--input", str(src), "-o", str(out), "--url", server.url, "--concurrency", "3")
    assert result.returncode == EXIT_COMPLETE, result.stderr
    check_output(out, records, qwen3_reranker)


def test_ray_actor_loads_the_whole_config(qwen3_dir: Path, qwen3_reranker: Reranker) -> None:
    """The Ray Data actor (called here without Ray) loads from ModelConfig + BatchConfig as the
    one-process path does: the config's instruction reaches the scores, and a tiny batch budget
    still gives the one-process scores, each row's in its place."""
    from rerankd.config import BatchConfig, ModelConfig
    from rerankd.scaleout.ray_batch import ScorerActor

    instruction = "Judge whether the document names a city"
    model = ModelConfig(str(qwen3_dir), device="cpu", dtype="float32", instruction=instruction)
    actor = ScorerActor(model, BatchConfig(max_batch_size=2, max_batch_tokens=256))
    docs = ["Beijing is the capital of China.", "Gravity is a force.", "pandas is a library."]
    rows = actor(
        {
            "line": [1, 2],
            "payload": [json.dumps(["capital of China", docs]), json.dumps(["gravity", docs[1:]])],
        }
    )
    assert rows["line"] == [1, 2] and rows["error"][0] == ""
    got = json.loads(rows["scores"][0])
    assert got == pytest.approx(
        qwen3_reranker.score("capital of China", docs, instruction=instruction), abs=1e-5
    )
    assert got != pytest.approx(qwen3_reranker.score("capital of China", docs), abs=1e-5)
    assert json.loads(rows["scores"][1]) == pytest.approx(
        qwen3_reranker.score("gravity", docs[1:], instruction=instruction), abs=1e-5
    )
