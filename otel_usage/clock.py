"""The one clock hook: every process of otel-usage takes "now" from here.

Each part that needs the time takes a :class:`Clock`. Where none is injected, :func:`default_clock`
gives the machine's clock or, when ``OTEL_USAGE_NOW`` is set, the machine's clock moved to another
date (for tests and demos: the whole suite runs "at another date" this way)::

    OTEL_USAGE_NOW=2027-06-16T00:00:00Z              now is that instant when this process
                                                     first asks, and runs on from there
    OTEL_USAGE_NOW=2027-06-16T00:00:00Z@1796342400   now was that instant at that Unix time

A process that reads the first form writes the second back into its environment, so every
process it starts (the ingest's workers, the demo's fleet, a test's subprocess) continues the
same moved time instead of starting it again. Nothing else in the project reads the wall clock.

The local store keys its daily rows by the UTC day, counted from 1970-01-01
(:func:`epoch_day`); it lives here rather than with the weeks (:mod:`otel_usage.weeks`) so that
recording, which needs only the day, does not load the week arithmetic.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Mapping, MutableMapping
from datetime import UTC, date, datetime, timedelta
from typing import Protocol

__all__ = [
    "NOW_ENV",
    "Clock",
    "ManualClock",
    "SystemClock",
    "default_clock",
    "epoch_day",
    "from_epoch_day",
    "parse_now",
    "unix_seconds",
]

NOW_ENV = "OTEL_USAGE_NOW"


class Clock(Protocol):
    def now(self) -> datetime:
        """The current time, timezone-aware, in UTC."""
        ...


class SystemClock:
    """The machine's clock, moved by `offset` (zero unless OTEL_USAGE_NOW says otherwise)."""

    def __init__(self, offset: timedelta = timedelta(0)) -> None:
        self.offset = offset

    def now(self) -> datetime:
        return datetime.now(UTC) + self.offset

    def __repr__(self) -> str:
        return f"SystemClock(offset={self.offset!r})"


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
        if when.tzinfo is None:
            raise ValueError("ManualClock needs a timezone-aware time")
        with self._lock:
            self._now = when.astimezone(UTC)


def parse_now(value: str) -> tuple[datetime, float | None]:
    """``INSTANT[@UNIX_SECONDS]`` as (instant in UTC, anchor or None); ValueError naming the
    expected form otherwise."""
    text, _, anchor = value.strip().partition("@")
    try:
        instant = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
        if instant.tzinfo is None:
            raise ValueError("no time zone")
        seconds = float(anchor) if anchor else None
    except ValueError as exc:
        raise ValueError(
            f"{NOW_ENV}={value!r} is not an instant: write it like 2027-06-16T00:00:00Z, "
            "optionally followed by @ and the Unix time at which it held") from exc
    return instant.astimezone(UTC), seconds


_anchor_lock = threading.Lock()


def default_clock(environ: Mapping[str, str] | None = None) -> SystemClock:
    """The machine's clock, moved as ``OTEL_USAGE_NOW`` says (see the module's docstring).

    Raises ValueError for a value that is not an instant. An unanchored value is anchored at
    this call and written back to `environ` (``os.environ`` by default), so that the processes
    started from here share the same moved time.
    """
    env = os.environ if environ is None else environ
    with _anchor_lock:
        raw = env.get(NOW_ENV, "").strip()
        if not raw:
            return SystemClock()
        instant, anchor = parse_now(raw)
        if anchor is None:
            anchor = SystemClock().now().timestamp()
            if isinstance(env, MutableMapping):
                env[NOW_ENV] = f"{instant.isoformat().replace('+00:00', 'Z')}@{anchor:.6f}"
        offset = instant - datetime.fromtimestamp(anchor, UTC)
        return SystemClock(offset)


def unix_seconds(clock: Clock) -> Callable[[], float]:
    """`clock` as a function returning Unix seconds (what rate limiters and the ingest use)."""
    return lambda: clock.now().timestamp()


_EPOCH = date(1970, 1, 1)


def epoch_day(when: datetime) -> int:
    """The UTC day of `when` as days since 1970-01-01 (how the local store keys its rows)."""
    return (when.astimezone(UTC).date() - _EPOCH).days


def from_epoch_day(day: int) -> date:
    return _EPOCH + timedelta(days=day)
