"""Batch-invariant scores (`batch_invariant=True`): a pair's score is bitwise the same alone and inside any
batch, in fp32 and bf16, planned as the engine plans (shared prefixes included), in one forward pass, and
through the engine under concurrent requests. The default path is not invariant (up to 1e-5 in fp32, 0.1
in bf16 log-odds: benchmarks/batch_invariance.py), so these assertions fail without the mode."""

from __future__ import annotations

import asyncio
import random
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from rerankd.config import BatchConfig
from rerankd.engine.engine import RerankEngine
from rerankd.models.base import EncodedPair
from rerankd.models.causal_lm import YesNoScorer
from rerankd.models.loading import load_scorer
from rerankd.testing.synthetic import MID_QWEN3, build_qwen3_reranker

WORDS = ["the", "capital", "river", "gravity", "python", "asyncio", "北京", "首都", "café", "🙂", "v2.0"]
QUERIES = [
    "what is the capital of China?",
    "what is the capital of France and why?",  # shares its first tokens with the one above
    "如何实现Python中的异步爬虫?",
    "river " * 12,
    "",
]
PAIRS = [
    (QUERIES[i % len(QUERIES)], " ".join(random.Random(i).choice(WORDS) for _ in range(n)))
    for i, n in enumerate([1, 5, 40, 90, 12, 3, 60, 25, 8, 70, 2, 33, 50, 17, 4, 80, 6, 45, 10, 28])
] + [("data", "")]  # an empty document: nothing to split off, the pair runs whole


@pytest.fixture(scope="module")
def mid_dir(tmp_path_factory: pytest.TempPathFactory, tokenizer_dir: Path | None) -> Path:
    # hidden 256, 4 heads of 64: the GEMM and attention kernels take their blocked paths.
    sizes = dict(MID_QWEN3, num_hidden_layers=2)
    return build_qwen3_reranker(
        tmp_path_factory.mktemp("models") / "mid", tokenizer_dir=tokenizer_dir, sizes=sizes
    )


@pytest.fixture(scope="module", params=["float32", "bfloat16"])
def scorer(request: pytest.FixtureRequest, mid_dir: Path) -> YesNoScorer:
    s = load_scorer(str(mid_dir), device="cpu", dtype=request.param, batch_invariant=True)
    assert isinstance(s, YesNoScorer)
    return s


def alone(scorer: YesNoScorer, e: EncodedPair) -> float:
    (batch,) = scorer.plan([e], 1 << 20, 64)  # what a one-document request runs
    return scorer.forward(batch)[0]


def planned(scorer: YesNoScorer, pairs: list[EncodedPair], max_batch_tokens: int) -> list[float]:
    out = [0.0] * len(pairs)
    for batch in scorer.plan(pairs, max_batch_tokens, 64):
        for i, v in zip(batch.indices, scorer.forward(batch), strict=True):
            out[i] = v
    return out


@pytest.fixture(scope="module")
def encoded_alone(scorer: YesNoScorer) -> tuple[list[EncodedPair], list[float]]:
    encoded = [scorer.encode(q, d) for q, d in PAIRS]
    return encoded, [alone(scorer, e) for e in encoded]


def test_every_pair_is_split_where_its_document_starts(scorer: YesNoScorer) -> None:
    for q, d in PAIRS[:-1]:
        e = scorer.encode(q, d)
        empty = scorer.encode(q, "").input_ids
        assert 0 < e.query_tokens < len(e)
        assert e.input_ids[: e.query_tokens] == empty[: e.query_tokens]


@pytest.mark.parametrize("size", [2, 7, 21])
def test_scores_alone_and_batched_are_bitwise_equal(
    scorer: YesNoScorer, encoded_alone: tuple[list[EncodedPair], list[float]], size: int
) -> None:
    encoded, ref = encoded_alone
    order = list(range(len(encoded)))
    random.Random(size).shuffle(order)
    for c in range(0, len(order), size):
        idx = order[c : c + size]
        chunk = [encoded[i] for i in idx]
        want = [ref[i] for i in idx]
        # One pass; planned as the engine plans (a tight budget cuts it into several batches).
        assert scorer.forward(scorer.one_batch(chunk)) == want
        assert planned(scorer, chunk, 8192) == want
        assert planned(scorer, chunk, 400) == want


def test_invariant_mode_scores_what_the_default_mode_scores(
    mid_dir: Path, scorer: YesNoScorer, encoded_alone: tuple[list[EncodedPair], list[float]]
) -> None:
    """Same model, same numbers up to rounding: fp32 to 1e-5 (the parity tolerance)."""
    _, ref = encoded_alone
    default = load_scorer(str(mid_dir), device="cpu", dtype=scorer.info.dtype)
    got = planned(default, [default.encode(q, d) for q, d in PAIRS], 8192)
    tol = 1e-5 if scorer.info.dtype == "float32" else 0.5  # bf16: rounding of a random model's logits
    assert max(abs(a - b) for a, b in zip(got, ref, strict=True)) <= tol


def test_engine_under_concurrent_requests(
    scorer: YesNoScorer, encoded_alone: tuple[list[EncodedPair], list[float]]
) -> None:
    _, ref = encoded_alone

    async def run() -> list[Any]:
        engine = RerankEngine(scorer, BatchConfig(max_batch_tokens=2048))
        await engine.start()
        try:
            by_query: dict[str, list[int]] = {}
            for i, (q, _) in enumerate(PAIRS):
                by_query.setdefault(q, []).append(i)
            calls = [
                engine.rerank_scores(q, [PAIRS[i][1] for i in idx], raw=True) for q, idx in by_query.items()
            ]
            calls += [engine.rerank_scores(q, [d], raw=True) for q, d in PAIRS[:4]]
            results = await asyncio.gather(*calls)
            return [(by_query, results)]
        finally:
            await engine.stop()

    ((by_query, results),) = asyncio.run(run())
    for (q, idx), scored in zip(by_query.items(), results, strict=False):
        assert scored.scores == [ref[i] for i in idx], q
    for i, scored in enumerate(results[len(by_query) :]):
        assert scored.scores == [ref[i]]


def test_real_server_scores_a_document_alike_alone_and_among_others(qwen3_dir: Path, tmp_path: Path) -> None:
    """`rerankd serve --batch-invariant` in bf16 on a real port: one request of 12 documents, then each
    document in a request of its own, concurrently; the scores on the wire are equal."""
    import httpx

    from rerankd.testing.servers import rerankd_server

    query, docs = QUERIES[0], [d for _, d in PAIRS[:12]]
    args = ("--batch-invariant", "--dtype", "bfloat16", "--no-ui")
    with (
        rerankd_server(qwen3_dir, *args, log_dir=tmp_path) as server,
        httpx.Client(base_url=server.url, timeout=120) as client,
    ):
        body = {"query": query, "documents": docs, "top_n": len(docs)}
        together = {
            r["index"]: r["relevance_score"] for r in client.post("/v1/rerank", json=body).json()["results"]
        }

        def alone(doc: str) -> float:
            answer = client.post("/v1/rerank", json={"query": query, "documents": [doc]}).json()
            return float(answer["results"][0]["relevance_score"])

        with ThreadPoolExecutor(max_workers=6) as pool:
            singles = list(pool.map(alone, docs))
    assert singles == [together[i] for i in range(len(docs))]
