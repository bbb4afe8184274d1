"""`--score-cache N`: a repeated pair skips the model, answers equal uncached ones exactly, the LRU stays
within N, and anything that changes what the model reads (instruction, query, document) is a miss."""

from __future__ import annotations

import pytest

from rerankd.config import BatchConfig
from rerankd.engine.cache import ScoreCache
from rerankd.engine.engine import RerankEngine
from rerankd.models.base import EncodedPair, PlannedBatch
from rerankd.server.app import create_app
from rerankd.server.settings import ServerSettings
from rerankd.testing.asgi import app_client
from rerankd.testing.fake import FakeScorer

DOCS = ["beijing is the capital", "gravity pulls", "pandas reads csv", "the capital of china"]


class Counting(FakeScorer):
    def __init__(self) -> None:
        super().__init__()
        self.pairs_run = 0

    def forward(self, batch: PlannedBatch) -> list[float]:
        self.pairs_run += len(batch.pairs)
        return super().forward(batch)


async def scored(engine: RerankEngine, query: str, docs: list[str], **kw: object) -> list[float]:
    return (await engine.rerank_scores(query, docs, **kw)).scores  # type: ignore[arg-type]


async def test_hits_skip_the_model_and_equal_uncached_scores() -> None:
    scorer, plain_scorer = Counting(), Counting()
    cached = RerankEngine(scorer, BatchConfig(score_cache=100))
    plain = RerankEngine(plain_scorer, BatchConfig())
    await cached.start()
    await plain.start()
    try:
        first = await scored(cached, "capital", DOCS)
        assert scorer.pairs_run == len(DOCS)
        again = await scored(cached, "capital", list(reversed(DOCS)))  # order does not matter
        assert scorer.pairs_run == len(DOCS)  # all four from the cache
        assert again == list(reversed(first))
        assert first == await scored(plain, "capital", DOCS)  # exactly, not approximately
        assert cached.cache is not None and (cached.cache.hits, cached.cache.misses) == (4, 4)
        # What the model reads changed: a miss each time.
        await scored(cached, "capital", DOCS[:1], instruction="another task")
        await scored(cached, "capital city", DOCS[:1])
        await scored(cached, "capital", ["beijing is the capital!"])
        assert scorer.pairs_run == len(DOCS) + 3
        # A pair half-cached within one request: only the new one runs.
        await scored(cached, "capital", [DOCS[0], "a new document"])
        assert scorer.pairs_run == len(DOCS) + 4
    finally:
        await cached.stop()
        await plain.stop()


def test_the_lru_keeps_at_most_capacity_and_drops_the_oldest() -> None:
    cache = ScoreCache(2, "m")
    pairs = [EncodedPair([1, 2, i]) for i in range(3)]
    _, keys = cache.lookup(pairs[:2])
    cache.store(keys, [0.1, 0.2])
    cache.lookup(pairs[:1])  # touch pair 0: pair 1 is now the oldest
    _, k3 = cache.lookup(pairs[2:])
    cache.store(k3, [0.3])
    assert len(cache) == 2
    assert cache.lookup(pairs)[0] == [0.1, None, 0.3]
    # Token types are part of what the model reads; another model's scores are not ours.
    assert cache.key(EncodedPair([1, 2], [0, 0])) != cache.key(EncodedPair([1, 2], [0, 1]))
    assert ScoreCache(2, "other").key(pairs[0]) != cache.key(pairs[0])
    with pytest.raises(ValueError):
        ScoreCache(0, "m")


async def test_metrics_count_hits_and_misses() -> None:
    engine_settings = ServerSettings(model="m", ui=False, score_cache=10)
    app = create_app(engine_settings, scorer=FakeScorer())
    async with app_client(app) as client:
        for _ in range(2):
            r = await client.post("/v1/rerank", json={"query": "capital", "documents": DOCS})
            assert r.status_code == 200
        text = (await client.get("/metrics")).text
    assert 'rerankd_score_cache_hits_total{model="m"} 4.0' in text
    assert 'rerankd_score_cache_misses_total{model="m"} 4.0' in text  # the warm-up bypasses the cache
