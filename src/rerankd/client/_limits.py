"""Client-side rate limiting: a token bucket for requests per second and a semaphore for requests in
flight, in a thread-safe variant (sync client) and an asyncio variant (async client). Both share the
pure `TokenBucket` and take the client's injected clock and sleep."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass


@dataclass(frozen=True)
class RateLimit:
    """Client-side limits for providers with quotas: a token bucket of `requests_per_second` (bursts
    of up to `burst` requests) and at most `max_concurrent` requests in flight. Every HTTP attempt
    counts, retries included. None means no limit."""

    requests_per_second: float | None = None
    max_concurrent: int | None = None
    burst: int = 1

    def __post_init__(self) -> None:
        if self.requests_per_second is not None and self.requests_per_second <= 0:
            raise ValueError(f"requests_per_second must be positive, got {self.requests_per_second}")
        if self.max_concurrent is not None and self.max_concurrent < 1:
            raise ValueError(f"max_concurrent must be >= 1, got {self.max_concurrent}")
        if self.burst < 1:
            raise ValueError(f"burst must be >= 1, got {self.burst}")


class TokenBucket:
    """A token bucket that hands out reservations: `reserve(now)` takes a token and returns how long
    to wait before using it (0 when one is there). Not locked: the sync client holds a lock around it,
    the async one runs it on one event loop."""

    def __init__(self, rate: float, burst: int = 1, now: float = 0.0) -> None:
        self.rate = rate
        self.burst = float(burst)
        self.tokens = float(burst)
        self.updated = now

    def reserve(self, now: float) -> float:
        if now > self.updated:
            self.tokens = min(self.burst, self.tokens + (now - self.updated) * self.rate)
            self.updated = now
        self.tokens -= 1.0
        return 0.0 if self.tokens >= 0 else -self.tokens / self.rate


class SyncLimiter:
    def __init__(self, limit: RateLimit | None, clock: Callable[[], float], sleep: Callable[[float], None]):
        self.limit = limit or RateLimit()
        self.clock = clock
        self.sleep = sleep
        self._lock = threading.Lock()
        rps = self.limit.requests_per_second
        self._bucket = TokenBucket(rps, self.limit.burst, clock()) if rps else None
        n = self.limit.max_concurrent
        self._slots = threading.BoundedSemaphore(n) if n else None

    @contextlib.contextmanager
    def slot(self) -> Iterator[None]:
        """Hold a concurrency slot and a rate token for one HTTP attempt."""
        if self._slots is not None:
            self._slots.acquire()
        try:
            if self._bucket is not None:
                with self._lock:
                    wait = self._bucket.reserve(self.clock())
                if wait > 0:
                    self.sleep(wait)
            yield
        finally:
            if self._slots is not None:
                self._slots.release()


class AsyncLimiter:
    def __init__(
        self,
        limit: RateLimit | None,
        clock: Callable[[], float],
        sleep: Callable[[float], Awaitable[None]],
    ):
        self.limit = limit or RateLimit()
        self.clock = clock
        self.sleep = sleep
        rps = self.limit.requests_per_second
        self._bucket = TokenBucket(rps, self.limit.burst, clock()) if rps else None
        n = self.limit.max_concurrent
        # Created lazily: an asyncio.Semaphore belongs to the loop that first waits on it.
        self._n = n
        self._slots: asyncio.Semaphore | None = None

    @contextlib.asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        if self._n and self._slots is None:
            self._slots = asyncio.Semaphore(self._n)
        slots = self._slots
        if slots is not None:
            await slots.acquire()
        try:
            if self._bucket is not None:
                wait = self._bucket.reserve(self.clock())  # atomic: no await between read and write
                if wait > 0:
                    await self.sleep(wait)
            yield
        finally:
            if slots is not None:
                slots.release()
