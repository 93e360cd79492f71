"""ISO weeks in UTC: alignment, conversion and the retention cutoff."""

from __future__ import annotations

from datetime import UTC, datetime

from ingest import _weeks


def _ns(*args: int) -> int:
    return int(datetime(*args, tzinfo=UTC).timestamp()) * 10**9


def test_only_monday_midnight_utc_starts_a_week() -> None:
    assert _weeks.is_week_start(_ns(2025, 6, 9))
    assert not _weeks.is_week_start(_ns(2025, 6, 10))
    assert not _weeks.is_week_start(_ns(2025, 6, 9, 1))
    assert not _weeks.is_week_start(_ns(2025, 6, 9) + 1)


def test_nanoseconds_become_a_naive_utc_datetime() -> None:
    assert _weeks.from_unix_ns(_ns(2025, 6, 9)) == datetime(2025, 6, 9)


def test_week_of_a_sunday_is_the_monday_before() -> None:
    assert _weeks.week_of(datetime(2025, 6, 15, 23, 59)) == datetime(2025, 6, 9)


def test_retention_cutoff_is_the_week_holding_the_same_day_months_ago() -> None:
    """24 months before 2025-06-18 is 2023-06-18, a Sunday: its week began 2023-06-12."""
    now = datetime(2025, 6, 18, 12, tzinfo=UTC).timestamp()
    assert _weeks.retention_cutoff(now, 24) == datetime(2023, 6, 12)
    assert _weeks.retention_cutoff(now, 5) == datetime(2025, 1, 13)


def test_day_of_is_midnight_utc() -> None:
    assert _weeks.day_of(datetime(2025, 6, 18, 23, 30, tzinfo=UTC).timestamp()) == datetime(2025, 6, 18)
