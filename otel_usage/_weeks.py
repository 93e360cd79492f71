"""ISO weeks in UTC, and when this installation sends a closed week's report.

A report covers one ISO week in UTC, Monday 00:00 to the next Monday 00:00 (catalog
[protocol]). Each installation sends at its own weekday and hour, drawn at random once and kept in
``meta``, so that a fleet does not submit at the same moment (issue 3, item 1).
"""

from __future__ import annotations

import secrets
import sqlite3
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

from ._clock import epoch_day

__all__ = ["ReportSlot", "Week", "closed_weeks", "report_slot"]

_NANOS_PER_SECOND = 1_000_000_000


@dataclass(frozen=True, order=True)
class Week:
    """One ISO week in UTC, named by its Monday."""

    monday: date

    @classmethod
    def of(cls, when: datetime | date) -> Week:
        day = when.astimezone(UTC).date() if isinstance(when, datetime) else when
        return cls(day - timedelta(days=day.weekday()))

    @classmethod
    def parse(cls, label: str) -> Week:
        """The week named like ``2025-W03``."""
        return cls(datetime.strptime(label + "-1", "%G-W%V-%u").date())

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


@dataclass(frozen=True)
class ReportSlot:
    """The weekday (0 = Monday) and UTC hour at which this installation sends."""

    weekday: int
    hour: int

    def due(self, week: Week) -> datetime:
        """When `week`'s report is sent: the first slot after the week has closed."""
        return week.end + timedelta(days=self.weekday, hours=self.hour)


def report_slot(conn: sqlite3.Connection) -> ReportSlot:
    """This installation's slot, drawn at random on first use and kept in ``meta``."""
    rows = dict(conn.execute(
        "SELECT key, value FROM meta WHERE key IN ('report_weekday', 'report_hour')"
    ).fetchall())
    if len(rows) == 2:
        return ReportSlot(int(rows["report_weekday"]), int(rows["report_hour"]))
    slot = ReportSlot(secrets.randbelow(7), secrets.randbelow(24))
    conn.executemany(
        "INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)",
        [("report_weekday", str(slot.weekday)), ("report_hour", str(slot.hour))],
    )
    return slot


def closed_weeks(since: datetime, now: datetime, *, oldest: datetime) -> list[Week]:
    """Weeks that began at or after `since` and `oldest` and have closed by `now`.

    A week that began before the user opted in is never reported (issue 3, item 5).
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
