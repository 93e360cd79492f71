"""ISO weeks in UTC: the only time a report carries, and the one place that computes with them.

A report covers one ISO week in UTC, Monday 00:00 to the next Monday 00:00 (catalog
``[protocol]``). The client, the ingest, the dashboards, the demo and the tests all take their
week arithmetic from here, next to the catalog (the ingest imports these two modules of the
client and the clock, and nothing else). "Now" comes from :mod:`otel_usage.clock`, never from
here; so does the day the local store keys its rows by (:func:`epoch_day`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

from .clock import epoch_day, from_epoch_day

__all__ = [
    "WEEK_NS",
    "Week",
    "closed_weeks",
    "day_start",
    "epoch_day",
    "from_epoch_day",
    "newest_publishable",
]

_NANOS_PER_SECOND = 1_000_000_000
WEEK_NS = 7 * 86_400 * _NANOS_PER_SECOND
_MONDAY_OFFSET_NS = 4 * 86_400 * _NANOS_PER_SECOND  # 1970-01-01 was a Thursday


@dataclass(frozen=True, order=True)
class Week:
    """One ISO week in UTC, named by its Monday."""

    monday: date

    @classmethod
    def of(cls, when: datetime | date) -> Week:
        """The week holding `when` (an aware datetime is taken in UTC; a naive one is UTC)."""
        if isinstance(when, datetime):
            day = (when.astimezone(UTC) if when.tzinfo else when).date()
        else:
            day = when
        return cls(day - timedelta(days=day.weekday()))

    @classmethod
    def parse(cls, label: str) -> Week:
        """The week named like ``2025-W03``."""
        return cls(datetime.strptime(label + "-1", "%G-W%V-%u").date())

    @classmethod
    def from_start_ns(cls, unix_ns: int) -> Week | None:
        """The week starting at `unix_ns`, or None unless that is a Monday 00:00 UTC."""
        if (unix_ns - _MONDAY_OFFSET_NS) % WEEK_NS != 0:
            return None
        return cls.of(from_epoch_day(unix_ns // (86_400 * _NANOS_PER_SECOND)))

    @property
    def label(self) -> str:
        year, week, _ = self.monday.isocalendar()
        return f"{year}-W{week:02d}"

    @property
    def start(self) -> datetime:
        return datetime.combine(self.monday, time(), tzinfo=UTC)

    @property
    def end(self) -> datetime:
        return self.start + timedelta(days=7)

    @property
    def naive_start(self) -> datetime:
        """Monday 00:00 as a naive UTC datetime, how the ingest's databases keep it."""
        return datetime.combine(self.monday, time())

    @property
    def first_day(self) -> int:
        """The Monday as an epoch day, how the local store keys its daily rows."""
        return epoch_day(self.start)

    @property
    def start_nanos(self) -> int:
        return int(self.start.timestamp()) * _NANOS_PER_SECOND

    @property
    def end_nanos(self) -> int:
        return int(self.end.timestamp()) * _NANOS_PER_SECOND

    def next(self) -> Week:
        return Week(self.monday + timedelta(days=7))

    def previous(self) -> Week:
        return Week(self.monday - timedelta(days=7))

    def plus(self, weeks: int) -> Week:
        return Week(self.monday + timedelta(weeks=weeks))


def day_start(when: datetime) -> datetime:
    """Midnight UTC of the day holding `when`."""
    return datetime.combine(when.astimezone(UTC).date(), time(), tzinfo=UTC)


def closed_weeks(since: datetime, now: datetime, *, oldest: datetime) -> list[Week]:
    """Weeks that began at or after `since` and `oldest` and have closed by `now`.

    A week that began before the user opted in is never reported.
    """
    first = Week.of(max(since, oldest))
    if first.start < since or first.start < oldest:
        first = first.next()
    weeks = []
    week = first
    while week.end <= now:
        weeks.append(week)
        week = week.next()
    return weeks


def newest_publishable(now: datetime, publish_after_days: int) -> Week:
    """The newest week that may be published at `now`: its reports are accepted until
    `publish_after_days` after it ends, and only then is it published (the week after it is
    the oldest still accepted). The client's comparison and the ingest's publication share it."""
    return Week.of(now - timedelta(days=publish_after_days)).previous()
