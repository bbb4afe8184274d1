"""The dynamic batcher's failure modes, with a plain function as the model (no torch)."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest

from rerankd.engine.batcher import DynamicBatcher
from rerankd.errors import InvalidRequest
from rerankd.models.base import EncodedPair


def pairs(*lengths: int) -> list[EncodedPair]:
    return [EncodedPair(input_ids=list(range(n))) for n in lengths]


async def test_scores_come_back_in_order_across_batches() -> None:
    seen: list[int] = []

    def forward(batch: Sequence[EncodedPair]) -> list[float]:
        seen.append(len(batch))
        return [float(len(p)) for p in batch]

    b = DynamicBatcher(forward, max_batch_tokens=20, max_batch_size=2)
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

    b = DynamicBatcher(forward, max_batch_tokens=100)
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

    b = DynamicBatcher(forward, max_batch_tokens=100)
    b.start()
    try:
        with pytest.raises(RuntimeError, match="3 scores for 2 pairs"):
            await b.submit(pairs(2, 2))
        assert await asyncio.wait_for(b.submit(pairs(2)), 5) == [4.0]
    finally:
        await b.stop()


async def test_a_failing_planner_fails_the_round_not_the_worker() -> None:
    plans = {"n": 0}

    def plan(items: Sequence[EncodedPair], budget: int, size: int) -> list[list[int]]:
        plans["n"] += 1
        if plans["n"] == 1:
            raise ValueError("bad plan")
        return [list(range(len(items)))]

    b = DynamicBatcher(lambda batch: [0.5] * len(batch), max_batch_tokens=100, plan=plan)
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

    b = DynamicBatcher(forward, max_batch_tokens=100)
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
    b = DynamicBatcher(lambda batch: [0.0] * len(batch), max_batch_tokens=100, max_queue=3)
    with pytest.raises(Exception, match="not running"):
        await b.submit(pairs(1))
    b.start()
    try:
        with pytest.raises(InvalidRequest, match="--max-queue 3"):
            await b.submit(pairs(1, 1, 1, 1))
        assert b.depth == 0  # the refused request left nothing behind
    finally:
        await b.stop()
