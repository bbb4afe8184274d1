"""Asyncio dynamic batcher: concurrent requests are scored together under a token budget.

Each pair gets its own future, so one request can span batches and batches can mix requests. Each round
of pending pairs is cut into batches by the scorer's `plan` (sorted by length, shared prefixes counted
once) and each planned batch goes to its `forward`, which reuses what the plan computed; the model runs
on one worker thread, so the event loop never blocks on it. The queue is bounded: past it, Overloaded
(429), with a Retry-After from the queue's depth and the measured throughput.

Fairness: each request waits in its own queue, and a round takes pairs round-robin across the waiting
requests, at most a few batches' worth; a 2-document request that arrives while a 4,000-chunk one runs
waits for one round, not for the whole big request.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from rerankd.errors import InvalidRequest, Overloaded, Unavailable
from rerankd.models.base import EncodedPair, PlannedBatch, Scorer, score_encoded

log = logging.getLogger("rerankd.batcher")

BatchObserver = Callable[[int, int], None]  # (pairs, padded tokens) per batch run
ROUND_BATCHES = 8  # a round holds at most this many full batches: the most a newcomer waits behind
THROUGHPUT_SMOOTHING = 0.2  # weight of the newest batch in the pairs-per-second average
MAX_RETRY_AFTER = 60.0


@dataclass
class _Item:
    pair: EncodedPair
    future: asyncio.Future[float]


class DynamicBatcher:
    def __init__(
        self,
        scorer: Scorer,
        *,
        max_batch_tokens: int,
        max_batch_size: int = 64,
        max_queue: int = 4096,
        observe: BatchObserver | None = None,
    ) -> None:
        self._scorer = scorer
        self.max_batch_tokens = max_batch_tokens
        self.max_batch_size = max_batch_size
        self.max_queue = max_queue
        self._observe = observe
        self._waiting: deque[deque[_Item]] = deque()  # one queue per request, in arrival order
        self._queued = 0
        self._in_round = 0
        self.pairs_per_second = 0.0  # measured on the batches run (0 until the first)
        self._wake: asyncio.Event | None = None
        self._task: asyncio.Task[None] | None = None
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="rerankd-infer")
        self.batches_run = 0

    @property
    def depth(self) -> int:
        """Pairs waiting or being scored."""
        return self._queued + self._in_round

    def retry_after(self, extra: int) -> float:
        """Seconds until the queue has room for `extra` more pairs at the measured throughput (≥ 1)."""
        excess = self.depth + extra - self.max_queue
        if self.pairs_per_second <= 0 or excess <= 0:
            return 1.0
        return min(MAX_RETRY_AFTER, max(1.0, math.ceil(excess / self.pairs_per_second)))

    def start(self) -> None:
        if self._task is None:
            self._wake = asyncio.Event()
            self._task = asyncio.create_task(self._run(), name="rerankd-batcher")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        for queue in self._waiting:
            for item in queue:
                if not item.future.done():
                    item.future.cancel()
        self._waiting.clear()
        self._queued = 0
        self._executor.shutdown(wait=True)

    def run_sync(self, pairs: Sequence[EncodedPair]) -> list[float]:
        """Score on the inference thread's executor, outside the queue (warm-up)."""
        return self._executor.submit(
            score_encoded,
            self._scorer,
            pairs,
            max_batch_tokens=self.max_batch_tokens,
            max_batch_size=self.max_batch_size,
        ).result()

    async def submit(self, pairs: Sequence[EncodedPair]) -> list[float]:
        """Log-odds for `pairs`, in order, once every batch holding one of them has run."""
        if not pairs:
            return []
        if self._task is None or self._wake is None or self._task.done():
            raise Unavailable("the scoring worker is not running; retry shortly")
        if len(pairs) > self.max_queue:
            raise InvalidRequest(
                f"this request needs {len(pairs)} model inputs, more than the server's whole queue "
                f"(--max-queue {self.max_queue}); send fewer documents or chunks per request"
            )
        if self.depth + len(pairs) > self.max_queue:
            raise Overloaded(
                f"the server's queue is full ({self.depth} pairs waiting, limit {self.max_queue}); retry shortly",
                retry_after=self.retry_after(len(pairs)),
            )
        loop = asyncio.get_running_loop()
        items = [_Item(p, loop.create_future()) for p in pairs]
        self._waiting.append(deque(items))
        self._queued += len(items)
        self._wake.set()
        return list(await asyncio.gather(*(i.future for i in items)))

    async def _run(self) -> None:
        assert self._wake is not None
        loop = asyncio.get_running_loop()
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._waiting:
                round_items = self._take_round()
                if not round_items:
                    continue
                self._in_round = len(round_items)
                try:
                    # Planning is Python work (grouping, a quadratic cut): on the inference thread, so the
                    # event loop keeps answering meanwhile.
                    plan = await loop.run_in_executor(self._executor, self._plan, round_items)
                    for planned in plan:
                        items = [round_items[i] for i in planned.indices]
                        live = [i for i in items if not i.future.done()]
                        if len(live) == len(items):
                            await self._run_batch(loop, planned, items)
                        elif live:  # some waiters left: plan the rest again rather than score for no one
                            for sub in self._plan(live):
                                await self._run_batch(loop, sub, [live[i] for i in sub.indices])
                        self._in_round -= len(items)
                except Exception as e:  # never let one bad round stop the worker: fail its waiters
                    log.exception("a round of %d pairs failed", len(round_items))
                    _fail([i for i in round_items if not i.future.done()], e)
                finally:
                    self._in_round = 0

    def _take_round(self) -> list[_Item]:
        """Up to ROUND_BATCHES batches' worth of pairs, one from each waiting request in turn (a request
        whose waiters are gone gives its pairs up unscored)."""
        cap = self.max_batch_size * ROUND_BATCHES
        taken: list[_Item] = []
        while self._waiting and len(taken) < cap:
            queue = self._waiting.popleft()
            item = queue.popleft()
            self._queued -= 1
            if not item.future.done():
                taken.append(item)
            if queue:
                self._waiting.append(queue)
        return taken

    def _plan(self, items: Sequence[_Item]) -> list[PlannedBatch]:
        return self._scorer.plan([i.pair for i in items], self.max_batch_tokens, self.max_batch_size)

    async def _run_batch(
        self, loop: asyncio.AbstractEventLoop, planned: PlannedBatch, batch: list[_Item]
    ) -> None:
        try:
            started = time.perf_counter()
            logits = await loop.run_in_executor(self._executor, self._scorer.forward, planned)
            rate = len(batch) / max(time.perf_counter() - started, 1e-6)
            a = THROUGHPUT_SMOOTHING if self.pairs_per_second else 1.0
            self.pairs_per_second = a * rate + (1 - a) * self.pairs_per_second
            if len(logits) != len(batch):
                raise RuntimeError(f"the model returned {len(logits)} scores for {len(batch)} pairs")
            self.batches_run += 1
            if self._observe is not None:
                self._observe(len(batch), planned.padded_tokens)
        except Exception as e:  # a model failure fails this batch's requests, not the server
            log.exception("batch of %d pairs failed", len(batch))
            _fail(batch, e)
            return
        for item, value in zip(batch, logits, strict=True):
            if not item.future.done():
                item.future.set_result(value)


def _fail(items: list[_Item], error: Exception) -> None:
    for item in items:
        if not item.future.done():
            item.future.set_exception(error)
