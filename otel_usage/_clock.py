"""Time, injected: every part that reads the time takes a clock, so tests never sleep."""

from __future__ import annotations

import threading
from datetime import UTC, date, datetime, timedelta
from typing import Protocol

__all__ = ["Clock", "ManualClock", "SystemClock", "epoch_day", "from_epoch_day"]

_EPOCH = date(1970, 1, 1)


class Clock(Protocol):
    def now(self) -> datetime:
        """The current time, timezone-aware, in UTC."""
        ...


class SystemClock:
    """The machine's clock."""

    def now(self) -> datetime:
        return datetime.now(UTC)


class ManualClock:
    """A clock that moves only when told to (tests and the demo's simulated weeks)."""

    def __init__(self, start: datetime) -> None:
        if start.tzinfo is None:
            raise ValueError("ManualClock needs a timezone-aware start time")
        self._now = start.astimezone(UTC)
        self._lock = threading.Lock()

    def now(self) -> datetime:
        with self._lock:
            return self._now

    def advance(self, delta: timedelta) -> datetime:
        with self._lock:
            self._now += delta
            return self._now

    def set(self, when: datetime) -> None:
        with self._lock:
            self._now = when.astimezone(UTC)


def epoch_day(when: datetime) -> int:
    """The UTC day of `when` as days since 1970-01-01 (how the local store keys its rows)."""
    return (when.astimezone(UTC).date() - _EPOCH).days


def from_epoch_day(day: int) -> date:
    return _EPOCH + timedelta(days=day)
