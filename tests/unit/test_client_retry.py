"""Issue 12: the wait after a Retry-After is jittered: never less than the server asked, bounded, cut
to the deadline rather than given up on. Pure policy, then through a client over httpx.MockTransport."""

from __future__ import annotations

import random

import httpx
import pytest

from rerankd.client import RateLimitError, RerankClient, RetryPolicy
from rerankd.client._retry import Attempts


def rate_limited(retry_after: float) -> RateLimitError:
    return RateLimitError("slow down", status=429, retry_after=retry_after)


def test_waits_for_one_retry_after_are_spread_never_shorter_and_bounded() -> None:
    policy = RetryPolicy(retry_after_jitter=0.5, max_delay=8.0)
    rng = random.Random(7)
    waits = [policy.delay(1, rate_limited(2.0), rng.random()) for _ in range(200)]
    assert len(set(waits)) > 150  # exactly Retry-After every time is what sent every client back at once
    assert min(waits) >= 2.0 and max(waits) <= 2.0 + 0.5 * 2.0
    assert max(waits) - min(waits) > 0.8  # spread over most of the allowed second
    # The extra is at most max_delay, however long the Retry-After.
    long = [policy.delay(1, rate_limited(50.0), r) for r in (0.0, 0.5, 0.999)]
    assert long[0] == 50.0 and all(50.0 <= w <= 58.0 for w in long) and long[-1] > 57.9
    # Retry-After: 0 still spreads, over the backoff's own scale.
    zero = {policy.delay(3, rate_limited(0.0), r) for r in (0.1, 0.6)}
    assert len(zero) == 2 and all(0 < w <= 0.5 * 2.0 for w in zero)


def test_retry_after_is_capped_before_the_jitter() -> None:
    policy = RetryPolicy(max_retry_after=5.0, retry_after_jitter=0.5)
    floor, wait = policy.wait(1, rate_limited(500.0), 0.999)
    assert floor == 5.0 and 5.0 < wait <= 7.5


def test_no_jitter_means_exactly_retry_after() -> None:
    policy = RetryPolicy(retry_after_jitter=0.0)
    assert {policy.delay(1, rate_limited(3.0), r) for r in (0.0, 0.5, 0.99)} == {3.0}
    with pytest.raises(ValueError, match="retry_after_jitter"):
        RetryPolicy(retry_after_jitter=-1)


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_jitter_is_cut_to_the_deadline_never_a_reason_to_give_up() -> None:
    clock = Clock()
    # Retry-After 8 s with the largest jitter (12 s) would pass a 10 s deadline; 8 s alone does not.
    attempts = Attempts(
        RetryPolicy(max_retries=3, deadline=10.0), timeout=5.0, clock=clock, rand=lambda: 0.999
    )
    delay = attempts.next_delay(rate_limited(8.0))
    assert 8.0 <= delay <= 9.0  # half of what the deadline leaves after the least wait stays for the attempt
    clock.now += delay
    assert attempts.timeout() is not None and attempts.timeout() >= 1.0  # type: ignore[operator]
    # A Retry-After that alone passes the deadline still ends the call, at once.
    late = Attempts(RetryPolicy(max_retries=3, deadline=10.0), timeout=5.0, clock=clock, rand=lambda: 0.0)
    error = rate_limited(10.0)
    with pytest.raises(RateLimitError) as info:
        late.next_delay(error)
    assert info.value is error and late.delays == []


def test_the_client_sleeps_retry_after_plus_jitter() -> None:
    answers = iter([429, 429, 200])

    def handler(request: httpx.Request) -> httpx.Response:
        status = next(answers)
        if status == 429:
            return httpx.Response(429, json={"error": {"message": "busy"}}, headers={"Retry-After": "1"})
        return httpx.Response(200, json={"results": [{"index": 0, "relevance_score": 0.5}]})

    slept: list[float] = []
    rand = iter([0.25, 0.75])
    client = RerankClient(
        "http://rerank.test",
        provider="rerankd",
        transport=httpx.MockTransport(handler),
        sleep=slept.append,
        rand=lambda: next(rand),
    )
    with client:
        assert client.score("q", ["d"]) == [0.5]
    # Each wait: Retry-After plus rand × 0.5 × max(Retry-After, backoff of 0.5 s then 1 s).
    assert slept == pytest.approx([1.0 + 0.25 * 0.5, 1.0 + 0.75 * 0.5])
