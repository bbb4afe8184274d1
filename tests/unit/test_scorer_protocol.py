"""The Scorer protocol is complete: the engine cuts documents and plans batches only through it (no
tokenizer, no probing for optional methods), and the torch-free FakeScorer keeps in step with it."""

from __future__ import annotations

import inspect
from pathlib import Path

import pytest

from rerankd.config import BatchConfig
from rerankd.engine.engine import RerankEngine
from rerankd.models.base import PlannedBatch, Scorer, score_encoded
from rerankd.testing.fake import FakeScorer, lexical_log_odds, word_ids

SRC = Path(__file__).resolve().parents[2] / "src" / "rerankd"
PROTOCOL = ("encode", "encode_chunks", "room", "plan", "forward")


def test_the_fake_has_every_protocol_method_with_its_signature() -> None:
    for name in PROTOCOL:
        want = inspect.signature(getattr(Scorer, name))
        got = inspect.signature(getattr(FakeScorer, name))
        assert list(got.parameters) == list(want.parameters), name
        assert [p.kind for p in got.parameters.values()] == [p.kind for p in want.parameters.values()], name


def test_engine_and_protocol_probe_nothing() -> None:
    sources = [*sorted((SRC / "engine").glob("*.py")), SRC / "models" / "base.py"]
    for path in sources:
        assert "getattr(" not in path.read_text(encoding="utf-8"), path


class Recording(FakeScorer):
    """A fake that records the plans it made and the batches forward received."""

    def __init__(self) -> None:
        super().__init__(max_length=64)
        self.plans: list[list[PlannedBatch]] = []
        self.forwarded: list[PlannedBatch] = []

    def plan(self, encoded, max_batch_tokens, max_batch_size):  # type: ignore[no-untyped-def]
        self.plans.append(super().plan(encoded, max_batch_tokens, max_batch_size))
        return self.plans[-1]

    def forward(self, batch: PlannedBatch) -> list[float]:
        self.forwarded.append(batch)
        return super().forward(batch)


@pytest.fixture
def engine() -> RerankEngine:
    assert not hasattr(Recording(), "tokenizer")  # the engine must manage without one
    return RerankEngine(Recording(), BatchConfig(max_batch_tokens=60, max_batch_size=2))


async def test_max_tokens_per_doc_is_cut_by_the_scorer(engine: RerankEngine) -> None:
    query = "capital France"
    doc = "bananas grow far away and Paris is the capital of France"
    await engine.start()
    try:
        whole = await engine.rerank_scores(query, [doc], raw=True)
        cut = await engine.rerank_scores(query, [doc], raw=True, max_tokens_per_doc=3)
        pairs = await engine.score_pairs([(query, doc)], raw=True, max_tokens_per_doc=3)
    finally:
        await engine.stop()
    assert whole.scores == [lexical_log_odds(word_ids(query), word_ids(doc))] and whole.scores[0] > 0
    assert cut.scores == pairs.scores == [lexical_log_odds(word_ids(query), word_ids("bananas grow far"))]
    assert cut.prompt_tokens == whole.prompt_tokens - (len(word_ids(doc)) - 3)
    assert cut.truncated == 0  # a requested cut is not a truncation


async def test_chunks_are_cut_by_the_scorer_and_max_pooled(engine: RerankEngine) -> None:
    scorer = engine.scorer
    query = "capital France"
    doc = " ".join(["filler"] * 80) + " Paris capital France"
    room = scorer.room(query)
    await engine.start()
    try:
        chunked = await engine.rerank_scores(query, [doc, "bananas"], raw=True, max_chunks_per_doc=8)
        plain = await engine.rerank_scores(query, [doc, "bananas"], raw=True)
    finally:
        await engine.stop()
    size = room  # chunks fill the room the query leaves
    parts = scorer.encode_chunks(
        query, doc, chunk_tokens=size, overlap_tokens=min(32, size // 2), max_chunks=8
    )
    assert len(parts) > 1
    assert chunked.scores[0] == max(FakeScorer().forward(PlannedBatch.of(parts))) > plain.scores[0]
    assert chunked.scores[1] == plain.scores[1]
    # Every forward pass got a batch its scorer planned, never a batch assembled elsewhere.
    planned = [b for plan in scorer.plans for b in plan]  # type: ignore[attr-defined]
    assert all(any(f is p for p in planned) for f in scorer.forwarded)  # type: ignore[attr-defined]


def test_score_encoded_goes_through_plan_and_forward() -> None:
    s = Recording()
    pairs = [s.encode("q a", " ".join(["a"] * n)) for n in (1, 9, 3, 12, 5)]
    logits = score_encoded(s, pairs, max_batch_tokens=40, max_batch_size=2)
    assert logits == FakeScorer(max_length=64).forward(PlannedBatch.of(pairs))
    assert len(s.plans) == 1 and s.forwarded == s.plans[0] and len(s.forwarded) > 2
