"""The dynamic batcher's failure modes, over the torch-free FakeScorer with its forward (and plan)
replaced by plain functions: it runs the scorer's own plan and hands each planned batch to forward."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence

import pytest

from rerankd.engine.batcher import DynamicBatcher
from rerankd.errors import InvalidRequest
from rerankd.models.base import EncodedPair, PlannedBatch, plan_by_length
from rerankd.testing.fake import FakeScorer

Forward = Callable[[Sequence[EncodedPair]], list[float]]
Plan = Callable[[Sequence[EncodedPair], int, int], list[PlannedBatch]]


def pairs(*lengths: int) -> list[EncodedPair]:
    return [EncodedPair(input_ids=list(range(n))) for n in lengths]


class Stub(FakeScorer):
    def __init__(self, forward: Forward, plan: Plan = plan_by_length) -> None:
        super().__init__()
        self._fn, self._plan_fn = forward, plan

    def plan(
        self, encoded: Sequence[EncodedPair], max_batch_tokens: int, max_batch_size: int
    ) -> list[PlannedBatch]:
        return self._plan_fn(encoded, max_batch_tokens, max_batch_size)

    def forward(self, batch: PlannedBatch) -> list[float]:
        return self._fn(batch.pairs)


async def test_scores_come_back_in_order_across_batches() -> None:
    seen: list[int] = []

    def forward(batch: Sequence[EncodedPair]) -> list[float]:
        seen.append(len(batch))
        return [float(len(p)) for p in batch]

    b = DynamicBatcher(Stub(forward), max_batch_tokens=20, max_batch_size=2)
    b.start()
    try:
        assert await b.submit(pairs(3, 9, 1, 5, 7)) == [3.0, 9.0, 1.0, 5.0, 7.0]
        assert max(seen) <= 2 and sum(seen) == 5
    finally:
        await b.stop()


async def test_a_failing_model_fails_the_batch_not_the_worker() -> None:
    calls = {"n": 0}

    def forward(batch: Sequence[EncodedPair]) -> list[float]:
        calls["n"] += 1
        if calls["n"] == 1:
            raise RuntimeError("boom")
        return [1.0] * len(batch)

    b = DynamicBatcher(Stub(forward), max_batch_tokens=100)
    b.start()
    try:
        with pytest.raises(RuntimeError, match="boom"):
            await b.submit(pairs(2))
        assert await asyncio.wait_for(b.submit(pairs(2, 3)), 5) == [1.0, 1.0]
    finally:
        await b.stop()


async def test_wrong_number_of_scores_is_an_error_and_the_worker_survives() -> None:
    answers = [[1.0, 2.0, 3.0], [4.0]]

    def forward(batch: Sequence[EncodedPair]) -> list[float]:
        return answers.pop(0)

    b = DynamicBatcher(Stub(forward), max_batch_tokens=100)
    b.start()
    try:
        with pytest.raises(RuntimeError, match="3 scores for 2 pairs"):
            await b.submit(pairs(2, 2))
        assert await asyncio.wait_for(b.submit(pairs(2)), 5) == [4.0]
    finally:
        await b.stop()


async def test_a_failing_planner_fails_the_round_not_the_worker() -> None:
    plans = {"n": 0}

    def plan(items: Sequence[EncodedPair], budget: int, size: int) -> list[PlannedBatch]:
        plans["n"] += 1
        if plans["n"] == 1:
            raise ValueError("bad plan")
        return [PlannedBatch.of(items)]

    b = DynamicBatcher(Stub(lambda batch: [0.5] * len(batch), plan), max_batch_tokens=100)
    b.start()
    try:
        with pytest.raises(ValueError, match="bad plan"):
            await b.submit(pairs(1))
        assert await asyncio.wait_for(b.submit(pairs(1)), 5) == [0.5]
    finally:
        await b.stop()


async def test_cancelled_waiters_are_skipped() -> None:
    gate = asyncio.Event()
    scored: list[int] = []

    def forward(batch: Sequence[EncodedPair]) -> list[float]:
        scored.extend(len(p) for p in batch)
        return [0.0] * len(batch)

    b = DynamicBatcher(Stub(forward), max_batch_tokens=100)
    b.start()
    try:
        task = asyncio.create_task(b.submit(pairs(4)))
        task.cancel()  # the client went away before its round ran
        gate.set()
        assert await b.submit(pairs(6)) == [0.0]
        assert 4 not in scored
    finally:
        await b.stop()


async def test_limits() -> None:
    b = DynamicBatcher(Stub(lambda batch: [0.0] * len(batch)), max_batch_tokens=100, max_queue=3)
    with pytest.raises(Exception, match="not running"):
        await b.submit(pairs(1))
    b.start()
    try:
        with pytest.raises(InvalidRequest, match="--max-queue 3"):
            await b.submit(pairs(1, 1, 1, 1))
        assert b.depth == 0  # the refused request left nothing behind
    finally:
        await b.stop()


async def test_forward_gets_the_planned_batches_and_what_plan_computed() -> None:
    planned: list[PlannedBatch] = []
    seen: list[PlannedBatch] = []

    class Recording(FakeScorer):
        def plan(
            self, encoded: Sequence[EncodedPair], max_batch_tokens: int, max_batch_size: int
        ) -> list[PlannedBatch]:
            planned.extend(super().plan(encoded, max_batch_tokens, max_batch_size))
            return planned

        def forward(self, batch: PlannedBatch) -> list[float]:
            seen.append(batch)
            return super().forward(batch)

    s = Recording()
    docs = ["a b c", "a", "a b c d e f g", "b"]
    b = DynamicBatcher(s, max_batch_tokens=3 * len(s.encode("q", docs[2])), max_batch_size=2)
    b.start()
    try:
        got = await b.submit([s.encode("a b", d) for d in docs])
    finally:
        await b.stop()
    assert got == FakeScorer().forward(PlannedBatch.of([s.encode("a b", d) for d in docs]))
    assert len(planned) > 1 and [x is y for x, y in zip(seen, planned, strict=True)] == [True] * len(planned)


async def test_a_batch_with_some_waiters_gone_is_planned_again_for_the_rest() -> None:
    scored: list[int] = []

    def forward(batch: Sequence[EncodedPair]) -> list[float]:
        scored.append(len(batch))
        return [float(len(p)) for p in batch]

    b = DynamicBatcher(Stub(forward), max_batch_tokens=1000, max_batch_size=8)
    b.start()
    try:
        gone = asyncio.create_task(b.submit(pairs(5, 6)))
        kept = asyncio.create_task(b.submit(pairs(7)))
        await asyncio.sleep(0)  # both are pending, in one round, in one planned batch
        gone.cancel()
        assert await asyncio.wait_for(kept, 5) == [7.0]
    finally:
        await b.stop()
    assert scored == [1]  # only the pair still awaited was scored
