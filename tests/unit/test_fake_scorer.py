"""FakeScorer: a complete, deterministic, torch-free Scorer, so serving tests can run without a model."""

from __future__ import annotations

import subprocess
import sys

import pytest

from rerankd.errors import InvalidRequest
from rerankd.models.base import PlannedBatch, sigmoid
from rerankd.testing.fake import ANSWER, PREFIX, SPAN, FakeScorer, word_ids


def test_importing_it_loads_neither_torch_nor_transformers() -> None:
    code = (
        "import sys, rerankd.testing.fake\n"
        "heavy = {'torch', 'transformers'} & set(sys.modules)\n"
        "assert not heavy, heavy\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_scores_follow_lexical_overlap_and_are_deterministic() -> None:
    s = FakeScorer()
    query = "capital of France"
    docs = ["Paris is the capital of FRANCE.", "the capital of Germany", "bananas"]
    pairs = [s.encode(query, d) for d in docs]
    full, partial, none = s.forward(PlannedBatch.of(pairs))
    assert (full, partial, none) == (SPAN / 2, pytest.approx(SPAN * (2 / 3 - 0.5)), -SPAN / 2)
    assert sigmoid(full) > sigmoid(partial) > sigmoid(none)
    # A pair's score does not depend on its batch, and a new scorer gives the same ids and scores.
    assert s.forward(PlannedBatch.of(pairs[::-1])) == [none, partial, full]
    assert FakeScorer().encode(query, docs[0]) == pairs[0]
    assert s.batches == [3, 3]


def test_layout_keeps_the_answer_slot_and_cuts_the_body_tail() -> None:
    s = FakeScorer(max_length=24)
    short = s.encode("q", "one two")
    assert short.input_ids[0] == PREFIX and short.input_ids[-1] == ANSWER and not short.truncated
    long = s.encode("q", " ".join(["word"] * 100))
    assert len(long) == 24 and long.truncated and long.input_ids[-1] == ANSWER


def test_room_is_what_a_document_may_take_before_truncation() -> None:
    s = FakeScorer(max_length=40)
    room = s.room("what is the capital", instruction="find it")
    assert room == 40 - len(s.encode("what is the capital", "", instruction="find it"))
    fits = " ".join(["x"] * room)
    assert not s.encode("what is the capital", fits, instruction="find it").truncated
    assert s.encode("what is the capital", fits + " y", instruction="find it").truncated
    assert s.room("q") < s.room("q", instruction="")  # None means the default instruction


def test_max_document_tokens_cuts_the_document_without_marking_truncation() -> None:
    s = FakeScorer()
    cut = s.encode("q", "a b c d e f", max_document_tokens=2)
    assert cut == s.encode("q", "a b") and not cut.truncated
    with pytest.raises(InvalidRequest, match="keeps nothing"):
        s.encode("q", "a b", max_document_tokens=0)


def test_chunks_are_overlapping_windows_of_the_document() -> None:
    s = FakeScorer()
    doc = "a b c d e f g h i j"  # ten words
    chunks = s.encode_chunks("q", doc, chunk_tokens=4, overlap_tokens=1, max_chunks=5)
    assert chunks == [s.encode("q", w) for w in ("a b c d", "d e f g", "g h i j")]
    capped = s.encode_chunks("q", doc, chunk_tokens=4, overlap_tokens=1, max_chunks=2)
    assert capped == chunks[:2]
    whole = s.encode_chunks("q", "a b", chunk_tokens=4, overlap_tokens=1, max_chunks=5)
    assert whole == [s.encode("q", "a b")]
    assert s.encode_chunks("q", doc, chunk_tokens=4, overlap_tokens=0, max_chunks=1) == [
        s.encode("q", "a b c d")
    ]


def test_plan_covers_every_pair_once_within_the_budget() -> None:
    s = FakeScorer()
    pairs = [s.encode("q", " ".join(["w"] * n)) for n in (1, 30, 5, 12, 30, 2)]
    plan = s.plan(pairs, max_batch_tokens=120, max_batch_size=3)
    assert sorted(i for b in plan for i in b.indices) == list(range(len(pairs)))
    for b in plan:
        assert len(b) <= 3 and b.pairs == tuple(pairs[i] for i in b.indices) and b.groups == ()
        assert b.padded_tokens <= 120 or len(b) == 1


def test_words_are_case_insensitive_and_stable() -> None:
    assert word_ids("Paris, FRANCE") == word_ids("paris , france")
    assert len(word_ids("北京 is big!")) == 4


def test_info_describes_a_templated_yes_no_model() -> None:
    info = FakeScorer(name="m", max_length=128).info
    assert (info.name, info.family, info.max_length, info.templated) == ("m", "yes_no", 128, True)


async def test_an_engine_runs_over_it(fake_engine) -> None:  # type: ignore[no-untyped-def]
    await fake_engine.start()
    try:
        scored = await fake_engine.rerank_scores("capital of France", ["Paris capital of France", "bananas"])
    finally:
        await fake_engine.stop()
    assert scored.scores == [pytest.approx(sigmoid(SPAN / 2)), pytest.approx(sigmoid(-SPAN / 2))]
    assert scored.truncated == 0
