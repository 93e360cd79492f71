"""Token buckets per client address and per installation, in memory only.

Addresses are never written to the database or the logs; a bucket is forgotten once the
limiter holds `max_entries` newer ones (least recently seen first).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable


class RateLimiter:
    """`allow(key)` takes a token from key's bucket; a burst of 0 disables the limit."""

    def __init__(self, rate: float, burst: int, max_entries: int,
                 clock: Callable[[], float]) -> None:
        self._rate = rate
        self._burst = float(burst)
        self._max_entries = max_entries
        self._clock = clock
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()

    def allow(self, key: str) -> bool:
        if self._burst <= 0:
            return True
        now = self._clock()
        tokens, then = self._buckets.pop(key, (self._burst, now))
        tokens = min(self._burst, tokens + max(0.0, now - then) * self._rate)
        allowed = tokens >= 1.0
        self._buckets[key] = (tokens - 1.0 if allowed else tokens, now)
        if len(self._buckets) > self._max_entries:
            self._buckets.popitem(last=False)
        return allowed

    def retry_after(self) -> int:
        """Seconds until a drained bucket holds a token again."""
        return max(1, round(1 / self._rate)) if self._rate > 0 else 60

    def __len__(self) -> int:
        return len(self._buckets)
