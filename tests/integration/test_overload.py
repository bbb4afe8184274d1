"""Overload and fairness: a small request is not starved behind a big one, Retry-After follows the queue
and the measured throughput, and many of the project's own clients against a small queue all end with
the right scores."""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from rerankd import RerankClient, Reranker
from rerankd.config import BatchConfig
from rerankd.engine.engine import RerankEngine
from rerankd.errors import Overloaded
from rerankd.models.base import PlannedBatch
from rerankd.testing.fake import FakeScorer
from rerankd.testing.servers import rerankd_server


class SlowScorer(FakeScorer):
    """A forward pass that takes `seconds` per batch, like a model would."""

    def __init__(self, seconds: float) -> None:
        super().__init__()
        self.seconds = seconds

    def forward(self, batch: PlannedBatch) -> list[float]:
        time.sleep(self.seconds)
        return super().forward(batch)


async def test_small_request_is_not_starved_behind_a_big_one() -> None:
    engine = RerankEngine(SlowScorer(0.01), BatchConfig(max_batch_size=8, max_queue=10_000))
    await engine.start()
    try:
        big = asyncio.create_task(engine.rerank_scores("query", [f"document {i}" for i in range(2000)]))
        await asyncio.sleep(0.3)  # the big request's first round is running
        start = time.perf_counter()
        small = await engine.rerank_scores("query", ["query document", "other"])
        small_latency = time.perf_counter() - start
        big_done_at = None if not big.done() else time.perf_counter()
        await big
        big_latency = time.perf_counter() - start
    finally:
        await engine.stop()
    print(
        f"fairness: small request {small_latency * 1000:.0f} ms while a 2000-pair one ran {big_latency:.1f} s"
    )
    assert len(small.scores) == 2
    assert big_done_at is None  # the small one finished first
    assert small_latency < 1.0 < big_latency


async def test_retry_after_follows_queue_depth_and_throughput() -> None:
    # ~4 pairs per batch at 0.1 s a batch: ~40 pairs/s; a queue of 200 takes seconds to drain.
    engine = RerankEngine(SlowScorer(0.1), BatchConfig(max_batch_size=4, max_queue=200))
    await engine.start()
    try:
        first = asyncio.create_task(engine.rerank_scores("q", [f"d {i}" for i in range(190)]))
        await asyncio.sleep(0.5)  # a few batches ran: the throughput is measured
        with pytest.raises(Overloaded) as refused:
            await engine.rerank_scores("q", [f"e {i}" for i in range(100)])
        first.cancel()
    finally:
        await engine.stop()
    assert engine.batcher.pairs_per_second > 0
    assert refused.value.retry_after >= 2  # not always 1: the queue needs seconds to make room


def test_many_clients_against_a_small_queue_all_succeed(
    qwen3_dir: Path, qwen3_reranker: Reranker, tmp_path: Path
) -> None:
    docs = [f"document number {i} about {'capitals' if i % 2 else 'gravity'}" for i in range(12)]
    expected = {r.index: r.score for r in qwen3_reranker.rerank("capital of China", docs)}
    errors: list[BaseException] = []
    results: list[Any] = []
    lock = threading.Lock()

    def client_loop(url: str) -> None:
        client = RerankClient(url, max_retries=30, deadline=120)
        try:
            for _ in range(3):
                got = client.rerank("capital of China", docs)
                with lock:
                    results.append(got)
        except BaseException as e:
            with lock:
                errors.append(e)
        finally:
            client.close()

    with rerankd_server(
        qwen3_dir, "--no-ui", "--max-queue", "24", "--max-batch-size", "4", log_dir=tmp_path
    ) as server:
        threads = [threading.Thread(target=client_loop, args=(server.url,)) for _ in range(12)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(180)
        log = server.log()
    refused = log.count('"status": 429')
    print(f"overload: {len(results)} calls succeeded, {refused} answers were 429 on the way")
    assert not errors, errors[:3]
    assert len(results) == 36
    assert refused > 0  # the queue really was full at times
    for got in results:
        for r in got:
            assert r.score == pytest.approx(expected[r.index], abs=1e-5)
