"""`rerankd eval` end to end: a real CLI process on the sample dataset with tiny generated models, a
resumed run reading its cached scores, a remote reranker behind a running server, and bad input."""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from rerankd import Reranker
from rerankd.evaluation import metrics
from rerankd.evaluation.adapters import MtebCrossEncoder
from rerankd.evaluation.cache import ScoreCache
from rerankd.evaluation.dataset import load_beir
from rerankd.evaluation.harness import RerankerSpec, evaluate, first_stage_candidates
from rerankd.evaluation.report import write_outputs
from rerankd.evaluation.runs import read_trec_run
from rerankd.types import DocumentLike, RerankResult

LANGS = ["de", "en", "es", "fr", "ja", "pt", "zh"]
# Small enough to run in seconds: the first 2 queries of each language, 8 candidates each.
SMALL = ["--dataset", "sample", "--top-k", "8", "--max-queries", "2", "--quiet"]


def small_pairs() -> int:
    """Pairs each reranker scores with SMALL: the BM25 candidates of the evaluated queries."""
    ds = load_beir("sample")
    qids = ds.eval_query_ids(max_queries=2)
    return sum(len(docs) for docs in first_stage_candidates(ds, qids, top_k=8)[0].values())


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "COLUMNS": "200"}
    return subprocess.run(
        [sys.executable, "-m", "rerankd.cli", "eval", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )


@pytest.fixture(scope="module")
def two_models_run(
    tmp_path_factory: pytest.TempPathFactory, qwen3_dir: Path, cross_encoder_dir: Path
) -> tuple[Path, dict[str, Any]]:
    out = tmp_path_factory.mktemp("eval") / "out"
    proc = run_cli(*SMALL, "--model", str(qwen3_dir), "--model", str(cross_encoder_dir), "--output", str(out))
    assert proc.returncode == 0, proc.stderr
    return out, json.loads((out / "report.json").read_text())


def test_report_has_every_stage_language_and_metric(two_models_run: tuple[Path, dict[str, Any]]) -> None:
    out, report = two_models_run
    stages = report["metrics"]
    assert list(stages) == ["bm25", "tiny-qwen3-reranker", "tiny-cross-encoder"]
    for by_lang in stages.values():
        assert list(by_lang) == ["all", *LANGS]
        for values in by_lang.values():
            assert list(values) == list(metrics.METRICS) and all(0.0 <= v <= 1.0 for v in values.values())
    assert report["dataset"]["name"] == "sample-multilingual" and report["dataset"]["queries"] == 14
    assert report["dataset"]["languages"] == dict.fromkeys(LANGS, 2)
    assert report["first_stage"]["method"] == "bm25" and report["first_stage"]["top_k"] == 8
    for r in report["rerankers"]:
        t = r["timing"]
        assert t["pairs_scored"] == small_pairs() and t["pairs_cached"] == 0 and t["timed_queries"] == 14
        assert t["pairs_per_second"] > 0 and 0 < t["latency_ms"]["p50"] <= t["latency_ms"]["p95"]
        assert r["kind"] == "local" and r["instruction"] is None and r["model"]
        assert set(r["delta_vs_first_stage"]) == {"all", *LANGS}
    assert {"rerankd", "pytrec-eval-terrier", "bm25s", "torch", "python"} <= set(report["versions"])
    assert (out / "chart.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    md = (out / "report.md").read_text()
    assert "| bm25 |" in md and "## nDCG@10 by language" in md and "| tiny-cross-encoder |" in md


def test_run_files_reproduce_the_report_and_the_model(
    two_models_run: tuple[Path, dict[str, Any]], qwen3_reranker: Reranker
) -> None:
    out, report = two_models_run
    ds = load_beir("sample")
    qids = ds.eval_query_ids(max_queries=2)
    langs = {q: ds.queries[q].lang for q in qids}
    for stage, rel in [(report["first_stage"]["name"], report["first_stage"]["run_file"])] + [
        (r["name"], r["run_file"]) for r in report["rerankers"]
    ]:
        run = read_trec_run(out / rel)
        assert set(run) == set(qids) and all(0 < len(docs) <= 8 for docs in run.values())
        recomputed = metrics.by_language(metrics.per_query(ds.qrels, run, qids), langs, qids)
        for lang, values in recomputed.items():
            assert values == pytest.approx(report["metrics"][stage][lang]), (stage, lang)
    # The reranked run holds the model's own scores, best first.
    run = read_trec_run(out / report["rerankers"][0]["run_file"])
    for qid in qids[:3]:
        ids = [d for d, _ in run[qid]]
        expected = qwen3_reranker.score(ds.queries[qid].text, [ds.corpus[d].full_text for d in ids])
        assert [s for _, s in run[qid]] == pytest.approx(expected, abs=1e-6)
        assert expected == sorted(expected, reverse=True)


def test_rerunning_reads_every_score_from_the_cache(
    two_models_run: tuple[Path, dict[str, Any]], qwen3_dir: Path, cross_encoder_dir: Path
) -> None:
    out, first = two_models_run
    proc = run_cli(*SMALL, "--model", str(qwen3_dir), "--model", str(cross_encoder_dir), "--output", str(out))
    assert proc.returncode == 0, proc.stderr
    again = json.loads((out / "report.json").read_text())
    assert again["metrics"] == first["metrics"]
    assert again["cache"]["hits"] == 2 * small_pairs() and again["cache"]["misses"] == 0
    for before, after in zip(first["rerankers"], again["rerankers"], strict=True):
        assert after["timing"]["pairs_scored"] == 0 and after["timing"]["pairs_cached"] == small_pairs()
        # The speed measured when the scores were computed is kept with them.
        assert after["timing"]["pairs_per_second"] == pytest.approx(before["timing"]["pairs_per_second"])


class Interrupted(Exception):
    pass


class InterruptAfter:
    """Wraps a reranker and raises on call number `calls + 1`, as a Ctrl-C or a crash would."""

    def __init__(self, inner: Reranker, calls: int) -> None:
        self.inner, self.left = inner, calls

    def score(
        self, query: str, documents: Sequence[DocumentLike], *, instruction: str | None = None
    ) -> list[float]:
        if self.left == 0:
            raise Interrupted
        self.left -= 1
        return self.inner.score(query, documents, instruction=instruction)

    def rerank(self, query: str, documents: Sequence[DocumentLike], **kw: Any) -> RerankResult:
        raise NotImplementedError


def test_an_interrupted_run_resumes_from_the_cache_to_the_same_report(
    tmp_path: Path, qwen3_reranker: Reranker
) -> None:
    ds = load_beir("sample")
    qids = ds.eval_query_ids(max_queries=1)
    candidates, first = first_stage_candidates(ds, qids, top_k=6)
    per_query = {q: len(candidates[q]) for q in qids}
    instruction = "Given a question about a city, retrieve passages that answer it"

    def run(reranker: Any, cache: ScoreCache) -> Any:
        spec = RerankerSpec("tiny", reranker, model_key="tiny-qwen3", kind="local")
        return evaluate(
            ds, [spec], candidates, query_ids=qids, first_stage=first, instructions=[instruction], cache=cache
        )

    path = tmp_path / "scores.sqlite"
    with pytest.raises(Interrupted):
        # The warm-up call, then three queries; the fourth query's call raises.
        run(InterruptAfter(qwen3_reranker, calls=4), ScoreCache(path))
    done = sum(per_query[q] for q in qids[:3])
    assert len(ScoreCache(path)) == done  # the three finished queries were saved

    resumed_cache = ScoreCache(path)
    resumed = run(qwen3_reranker, resumed_cache)
    assert resumed_cache.hits == done and resumed_cache.misses == sum(per_query.values()) - done
    assert resumed.systems[0].timing.pairs_scored == resumed_cache.misses
    assert resumed.systems[0].timing.timed_queries == len(qids)

    fresh = run(qwen3_reranker, ScoreCache(None))
    assert resumed.systems[0].ranking == fresh.systems[0].ranking
    a = write_outputs(resumed, tmp_path / "resumed")
    b = write_outputs(fresh, tmp_path / "fresh")
    assert a["metrics"] == b["metrics"] and a["rerankers"][0]["instruction"] == instruction
    for rel in (a["first_stage"]["run_file"], a["rerankers"][0]["run_file"]):
        assert (tmp_path / "resumed" / rel).read_text() == (tmp_path / "fresh" / rel).read_text()


def test_mteb_adapter_scores_like_the_reranker(qwen3_reranker: Reranker) -> None:
    pairs = [("capital of China", "Beijing is the capital."), ("gravity", "Gravity is a force.")]
    pairs.append(("capital of China", "Gravity is a force."))
    got = MtebCrossEncoder(qwen3_reranker).predict(pairs)
    expected = [qwen3_reranker.score(q, [d])[0] for q, d in pairs]
    assert got.tolist() == pytest.approx(expected, abs=1e-6)


def _remote_client_available() -> bool:
    try:
        return hasattr(importlib.import_module("rerankd.client"), "RerankClient")
    except ImportError:
        return False


@pytest.mark.skipif(
    not _remote_client_available(), reason="rerankd.client.RerankClient is not in this checkout yet"
)
def test_remote_server_scores_like_the_local_model(
    request: pytest.FixtureRequest, tmp_path: Path, qwen3_reranker: Reranker
) -> None:
    server = request.getfixturevalue("server")  # `rerankd serve` with the same tiny model (conftest)
    out = tmp_path / "out"
    proc = run_cli(
        "--dataset", "sample", "--top-k", "5", "--max-queries", "1", "--quiet",
        "--url", server.url, "--output", str(out),
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    report = json.loads((out / "report.json").read_text())
    (remote,) = report["rerankers"]
    assert remote["kind"] == "remote" and remote["url"] == server.url and remote["provider"] == "auto"
    assert remote["timing"]["pairs_per_second"] > 0
    ds = load_beir("sample")
    run = read_trec_run(out / remote["run_file"])
    assert set(run) == set(ds.eval_query_ids(max_queries=1))
    for qid, docs in run.items():
        local = qwen3_reranker.score(ds.queries[qid].text, [ds.corpus[d].full_text for d, _ in docs])
        assert [s for _, s in docs] == pytest.approx(local, abs=1e-5)
    # A server that is not there: a clear error, no traceback.
    proc = run_cli("--dataset", "sample", "--max-queries", "1", "--url", "http://127.0.0.1:9", "--no-cache")
    assert proc.returncode == 1 and "Traceback" not in proc.stderr and "127.0.0.1:9" in proc.stderr


def _no_traceback(proc: subprocess.CompletedProcess[str]) -> str:
    assert proc.returncode != 0
    assert "Traceback" not in proc.stderr + proc.stdout
    return " ".join(proc.stderr.split())  # rich wraps long lines


def test_bad_input_is_a_clear_error(tmp_path: Path) -> None:
    msg = _no_traceback(run_cli("--dataset", "sample"))
    assert "no reranker given" in msg and "--model" in msg and "--url" in msg

    msg = _no_traceback(run_cli("--dataset", str(tmp_path / "nope"), "--model", "x"))
    assert "no such directory" in msg and "--dataset" in msg

    (tmp_path / "half").mkdir()
    (tmp_path / "half" / "corpus.jsonl").write_text('{"_id": "d", "text": "t"}\n')
    msg = _no_traceback(run_cli("--dataset", str(tmp_path / "half"), "--model", "x"))
    assert "missing queries.jsonl" in msg

    proc = run_cli("--dataset", "sample", "--split", "dev", "--model", "x")
    msg = _no_traceback(proc)
    assert proc.returncode == 2 and "--split dev" in msg and "pass --split test" in msg

    msg = _no_traceback(
        run_cli("--dataset", "sample", "--candidates", str(tmp_path / "run.trec"), "--model", "x")
    )
    assert "--candidates" in msg and "no such file" in msg

    msg = _no_traceback(run_cli("--dataset", "sample", "--model", str(tmp_path / "no-model"), "--top-k", "3"))
    assert "no such directory" in msg
