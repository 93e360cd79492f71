"""Token buckets in memory: a burst, a refill rate, a bounded number of keys."""

from __future__ import annotations

from ingest._ratelimit import RateLimiter


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_burst_is_allowed_then_refused_until_tokens_refill() -> None:
    clock = Clock()
    limiter = RateLimiter(rate=0.5, burst=3, max_entries=10, clock=clock)
    assert [limiter.allow("a") for _ in range(4)] == [True, True, True, False]
    clock.now += 1.0
    assert limiter.allow("a") is False
    clock.now += 1.0
    assert [limiter.allow("a"), limiter.allow("a")] == [True, False]
    assert limiter.retry_after() == 2


def test_keys_have_their_own_buckets() -> None:
    limiter = RateLimiter(rate=1, burst=1, max_entries=10, clock=Clock())
    assert [limiter.allow("a"), limiter.allow("b"), limiter.allow("a")] == [True, True, False]


def test_memory_is_bounded_by_forgetting_the_least_recent_key() -> None:
    limiter = RateLimiter(rate=0.001, burst=1, max_entries=2, clock=Clock())
    assert [limiter.allow(k) for k in ("a", "b", "c")] == [True, True, True]
    assert len(limiter) == 2
    assert limiter.allow("a") is True  # forgotten, so a full bucket again
    assert limiter.allow("c") is False


def test_a_burst_of_zero_disables_the_limit() -> None:
    limiter = RateLimiter(rate=0, burst=0, max_entries=1, clock=Clock())
    assert all(limiter.allow("a") for _ in range(1000))
    assert len(limiter) == 0
