"""ISO weeks in UTC, the only time a report carries (catalog `[protocol]`)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

WEEK_NS = 7 * 86_400 * 10**9
_MONDAY_OFFSET_NS = 4 * 86_400 * 10**9  # 1970-01-01 was a Thursday
_EPOCH = datetime(1970, 1, 1)


def is_week_start(unix_ns: int) -> bool:
    return (unix_ns - _MONDAY_OFFSET_NS) % WEEK_NS == 0


def from_unix_ns(unix_ns: int) -> datetime:
    """A naive UTC datetime (the stores keep naive UTC)."""
    return _EPOCH + timedelta(microseconds=unix_ns // 1000)


def week_of(moment: datetime) -> datetime:
    """Monday 00:00 of the ISO week holding `moment` (naive UTC)."""
    day = moment.date() - timedelta(days=moment.weekday())
    return datetime(day.year, day.month, day.day)


def utc_now(clock_s: float) -> datetime:
    return datetime.fromtimestamp(clock_s, UTC).replace(tzinfo=None)


def day_of(clock_s: float) -> datetime:
    moment = utc_now(clock_s)
    return datetime(moment.year, moment.month, moment.day)


def retention_cutoff(clock_s: float, months: int) -> datetime:
    """The first week kept: the week holding the same day `months` months ago."""
    today = utc_now(clock_s).date()
    total = today.year * 12 + today.month - 1 - months
    then = date(total // 12, total % 12 + 1, min(today.day, 28))
    return week_of(datetime(then.year, then.month, then.day))
