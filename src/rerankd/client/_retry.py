"""The retry policy: which failures are tried again, how long to wait (exponential backoff with
jitter, or the server's Retry-After plus jitter) and the deadline of a whole call. Pure: the I/O loops
ask it before each attempt and after each failure, on their injected clock and random source."""

from __future__ import annotations

import logging
import random
from collections.abc import Callable
from dataclasses import dataclass

from rerankd.client.errors import ClientError, TimeoutError

log = logging.getLogger("rerankd.client")


@dataclass(frozen=True)
class RetryPolicy:
    """When and how long to wait before trying a request again.

    Retried: connection errors, timeouts, 408, 409, 429 and 5xx. The n-th retry waits
    `min(initial_delay * 2**(n-1), max_delay)` scaled by a random factor in [1 - jitter, 1]. When the
    server sends `Retry-After` (seconds or an HTTP date, capped at `max_retry_after`) the wait is that
    plus a random extra of up to `retry_after_jitter` times the larger of Retry-After and the backoff,
    itself at most `max_delay`: never less than the server asked, and clients told the same Retry-After
    do not all come back in the same instant (and get the same 429 again). No attempt starts once
    `deadline` seconds have passed since the call began, nor a wait whose minimum would end past it.
    """

    max_retries: int = 2
    initial_delay: float = 0.5
    max_delay: float = 8.0
    jitter: float = 0.5
    max_retry_after: float = 60.0
    deadline: float | None = 300.0
    retry_after_jitter: float = 0.5

    def __post_init__(self) -> None:
        if self.max_retries < 0:
            raise ValueError(f"max_retries must be >= 0, got {self.max_retries}")
        if self.deadline is not None and self.deadline <= 0:
            raise ValueError(f"deadline must be positive seconds or None, got {self.deadline}")
        if not 0 <= self.jitter <= 1:
            raise ValueError(f"jitter must be within [0, 1], got {self.jitter}")
        if self.retry_after_jitter < 0:
            raise ValueError(f"retry_after_jitter must be >= 0, got {self.retry_after_jitter}")

    def _base(self, retry: int) -> float:
        return min(self.initial_delay * 2 ** max(0, retry - 1), self.max_delay)

    def backoff(self, retry: int, rand: float) -> float:
        """The wait before retry number `retry` (1-based) without a Retry-After; `rand` in [0, 1)."""
        return self._base(retry) * (1.0 - self.jitter * rand)

    def after(self, retry_after: float, retry: int, rand: float) -> tuple[float, float]:
        """(the least wait, the jittered wait) for a server's Retry-After before retry `retry`."""
        floor = max(0.0, min(retry_after, self.max_retry_after))
        spread = min(self.retry_after_jitter * max(floor, self._base(retry)), self.max_delay)
        return floor, floor + rand * spread

    def wait(self, retry: int, error: ClientError, rand: float) -> tuple[float, float]:
        """(the least wait, the wait) before retry `retry` after `error`."""
        if error.retry_after is not None:
            return self.after(error.retry_after, retry, rand)
        delay = self.backoff(retry, rand)
        return delay, delay

    def delay(self, retry: int, error: ClientError, rand: float) -> float:
        return self.wait(retry, error, rand)[1]


class Attempts:
    """The attempts of one logical request under a RetryPolicy and a deadline, on an injected clock.

    The I/O loop asks `timeout()` before each attempt and `next_delay(error)` after a failure: the
    latter returns the seconds to wait before the next attempt, or raises the error when it is final
    (not retryable, retries used up, or even the least wait would cross the deadline)."""

    def __init__(
        self,
        policy: RetryPolicy,
        timeout: float | None,
        clock: Callable[[], float],
        rand: Callable[[], float] = random.random,
    ) -> None:
        self.policy = policy
        self.per_attempt = timeout
        self.clock = clock
        self.rand = rand
        self.start = clock()
        self.retries = 0
        self.delays: list[float] = []

    @property
    def attempt(self) -> int:
        return self.retries + 1

    def remaining(self) -> float | None:
        if self.policy.deadline is None:
            return None
        return self.policy.deadline - (self.clock() - self.start)

    def timeout(self) -> float | None:
        """The timeout for the next attempt: the per-attempt timeout, cut to what the deadline leaves."""
        left = self.remaining()
        if left is None:
            return self.per_attempt
        if left <= 0:
            raise TimeoutError(
                f"the deadline of {self.policy.deadline:g} s passed before attempt {self.attempt}",
                attempts=self.retries,
            )
        return left if self.per_attempt is None else min(self.per_attempt, left)

    def next_delay(self, error: ClientError) -> float:
        error.attempts = self.attempt
        if not error.retryable or self.retries >= self.policy.max_retries:
            raise error
        floor, delay = self.policy.wait(self.retries + 1, error, self.rand())
        left = self.remaining()
        if left is not None:
            if floor >= left:
                log.info(
                    "not retrying: waiting %.2f s would pass the deadline of %g s (%s)",
                    floor,
                    self.policy.deadline,
                    error,
                )
                raise error
            # The jitter never makes a call give up: cut it so the attempt keeps half of what is left.
            delay = min(delay, (floor + left) / 2)
        self.retries += 1
        self.delays.append(delay)
        log.info("retry %d/%d in %.2f s after: %s", self.retries, self.policy.max_retries, delay, error)
        return delay


__all__ = ["Attempts", "RetryPolicy"]
