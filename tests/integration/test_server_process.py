"""Against a real `rerankd serve` process on a free port: real clients (the cohere SDK, httpx), dynamic
batching across concurrent requests, graceful shutdown on SIGTERM."""

from __future__ import annotations

import contextlib
import re
import signal
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from rerankd import Reranker
from rerankd.testing.servers import RunningServer, rerankd_server

QUERY = "What is the capital of China?"
DOCS = [
    "The capital of China is Beijing.",
    "Gravity is a force.",
    "北京是中国的首都。",
    "pandas is a Python library.",
]


def metric(text: str, name: str) -> float:
    """The sample's value, summed over its labels (the engine's metrics carry a `model` label)."""
    values = re.findall(rf"^{re.escape(name)}(?:{{[^}}]*}})? ([0-9.e+]+)$", text, re.M)
    assert values, f"{name} not in metrics"
    return sum(float(v) for v in values)


def test_cohere_sdk_v2_and_v1(server: RunningServer, qwen3_reranker: Reranker) -> None:
    cohere = pytest.importorskip("cohere")
    expected = qwen3_reranker.score(QUERY, DOCS)
    v2 = cohere.ClientV2(api_key="unused", base_url=server.url)
    res = v2.rerank(model="rerank-v3.5", query=QUERY, documents=DOCS, top_n=3)
    assert len(res.results) == 3
    for r in res.results:
        assert r.relevance_score == pytest.approx(expected[r.index], abs=1e-6)
    v1 = cohere.Client(api_key="unused", base_url=server.url)
    res1 = v1.rerank(model="rerank-english-v3.0", query=QUERY, documents=DOCS, return_documents=True)
    assert [r.index for r in res1.results] == sorted(range(4), key=lambda i: -expected[i])
    assert res1.results[0].document.text == DOCS[res1.results[0].index]


def test_concurrent_requests_are_batched_together(server: RunningServer, qwen3_reranker: Reranker) -> None:
    before = httpx.get(f"{server.url}/metrics").text
    n_requests = 16
    docs = [[f"{d} ({k})" for d in DOCS] for k in range(n_requests)]
    barrier = threading.Barrier(n_requests)

    def call(k: int) -> list[float]:
        barrier.wait()
        r = httpx.post(f"{server.url}/v1/rerank", json={"query": QUERY, "documents": docs[k]}, timeout=60)
        r.raise_for_status()
        return [x["relevance_score"] for x in sorted(r.json()["results"], key=lambda x: x["index"])]

    with ThreadPoolExecutor(n_requests) as pool:
        results = list(pool.map(call, range(n_requests)))
    after = httpx.get(f"{server.url}/metrics").text
    batches = metric(after, "rerankd_batch_pairs_count") - metric(before, "rerankd_batch_pairs_count")
    pairs = metric(after, "rerankd_batch_pairs_sum") - metric(before, "rerankd_batch_pairs_sum")
    assert pairs == n_requests * len(DOCS)
    assert batches < n_requests, (
        f"{n_requests} concurrent requests ran in {batches} batches: nothing was batched"
    )
    for k in (0, n_requests - 1):  # batching changes nothing in the scores
        assert results[k] == pytest.approx(qwen3_reranker.score(QUERY, docs[k]), abs=1e-5)


def test_sigterm_drains_in_flight_then_exits_zero(qwen3_dir: Path, tmp_path: Path) -> None:
    with rerankd_server(qwen3_dir, "--no-ui", "--max-batch-tokens", "1024", log_dir=tmp_path) as srv:
        slow_docs = [f"document {i} " + "about the capital city " * 60 for i in range(150)]
        outcome: dict[str, object] = {}

        def slow() -> None:
            r = httpx.post(f"{srv.url}/v1/rerank", json={"query": QUERY, "documents": slow_docs}, timeout=120)
            outcome["status"] = r.status_code
            outcome["n"] = len(r.json().get("results", []))

        t = threading.Thread(target=slow)
        t.start()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:  # wait until the slow request is being scored
            if metric(httpx.get(f"{srv.url}/metrics").text, "rerankd_queue_depth") > 0:
                break
            time.sleep(0.02)
        srv.process.send_signal(signal.SIGTERM)
        time.sleep(0.3)
        refused = None
        with contextlib.suppress(httpx.ConnectError):  # already gone is also a refusal
            refused = httpx.post(f"{srv.url}/v1/rerank", json={"query": "q", "documents": ["a"]}, timeout=10)
        t.join(120)
        code = srv.process.wait(60)
    assert outcome == {"status": 200, "n": len(slow_docs)}, srv.log()
    if refused is not None:
        assert refused.status_code == 503 and "retry-after" in refused.headers
    assert code == 0, srv.log()
    assert "draining" in srv.log()


def test_bad_model_exits_non_zero_with_message(tmp_path: Path) -> None:
    with (
        pytest.raises(RuntimeError, match="no such directory"),
        rerankd_server(tmp_path / "missing", log_dir=tmp_path),
    ):
        pass
