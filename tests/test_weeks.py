"""ISO weeks in UTC and each installation's report slot."""

from __future__ import annotations

import sqlite3
from datetime import UTC, date, datetime, timedelta, timezone
from pathlib import Path

from otel_usage.send.uploader import ReportSlot, report_slot
from otel_usage.store import connect
from otel_usage.store.outbox import OutboxTx
from otel_usage.weeks import Week, closed_weeks, day_start


def test_a_week_runs_from_monday_to_monday_in_utc() -> None:
    """A Sunday evening in New York is already Monday in UTC: it belongs to the next week."""
    new_york = timezone(timedelta(hours=-5))
    week = Week.of(datetime(2026, 11, 29, 20, 0, tzinfo=new_york))
    assert (week.label, week.start, week.end, week.first_day) == (
        "2026-W49", datetime(2026, 11, 30, tzinfo=UTC), datetime(2026, 12, 7, tzinfo=UTC),
        20787)
    assert (week.start_nanos, week.end_nanos) == (1_795_996_800_000_000_000,
                                                  1_796_601_600_000_000_000)


def test_iso_week_labels_round_trip_across_the_year_boundary() -> None:
    """2026-12-31 is a Thursday of ISO week 2026-W53; 2027-01-04 starts 2027-W01."""
    assert Week.of(date(2026, 12, 31)).label == "2026-W53"
    assert Week.of(date(2027, 1, 4)).label == "2027-W01"
    for label in ("2026-W53", "2027-W01", "2025-W01"):
        assert Week.parse(label).label == label
    assert Week.parse("2025-W01").monday == date(2024, 12, 30)


def test_only_weeks_that_began_after_the_opt_in_and_have_closed_are_listed() -> None:
    opt_in = datetime(2026, 11, 4, 15, tzinfo=UTC)  # a Wednesday
    now = datetime(2026, 11, 30, 0, 0, tzinfo=UTC)  # the Monday W48 closes
    weeks = closed_weeks(opt_in, now, oldest=datetime(2026, 1, 1, tzinfo=UTC))
    assert [w.label for w in weeks] == ["2026-W46", "2026-W47", "2026-W48"]


def test_an_opt_in_at_monday_midnight_covers_that_week() -> None:
    opt_in = datetime(2026, 11, 9, tzinfo=UTC)
    weeks = closed_weeks(opt_in, datetime(2026, 11, 17, tzinfo=UTC),
                         oldest=datetime(2026, 1, 1, tzinfo=UTC))
    assert [w.label for w in weeks] == ["2026-W46"]


def test_weeks_older_than_the_oldest_are_not_listed() -> None:
    weeks = closed_weeks(datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 11, 30, tzinfo=UTC),
                         oldest=datetime(2026, 11, 10, tzinfo=UTC))
    assert [w.label for w in weeks] == ["2026-W47", "2026-W48"]


def test_the_report_is_due_at_the_slot_after_the_week_closed() -> None:
    week = Week.parse("2026-W48")
    assert ReportSlot(weekday=0, hour=0).due(week) == datetime(2026, 11, 30, tzinfo=UTC)
    assert ReportSlot(weekday=3, hour=17).due(week) == datetime(2026, 12, 3, 17, tzinfo=UTC)


def test_the_slot_is_drawn_once_and_kept(tmp_path: Path) -> None:
    conn = connect(tmp_path / "usage.sqlite3")
    first = report_slot(OutboxTx(conn))
    assert 0 <= first.weekday <= 6 and 0 <= first.hour <= 23
    conn.close()
    conn = connect(tmp_path / "usage.sqlite3")
    assert report_slot(OutboxTx(conn)) == first
    rows = conn.execute("SELECT key, value FROM meta ORDER BY key").fetchall()
    assert rows == [("report_hour", str(first.hour)), ("report_weekday", str(first.weekday))]
    conn.close()


def test_slots_are_spread_over_the_week(tmp_path: Path) -> None:
    """A fleet does not submit at one moment: 200 installations draw many different slots."""
    slots = set()
    for _ in range(200):
        conn = sqlite3.connect(":memory:")
        conn.execute("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
        slots.add(report_slot(OutboxTx(conn)))
        conn.close()
    assert len({s.weekday for s in slots}) == 7
    assert len(slots) > 100


def _ns(*args: int) -> int:
    return int(datetime(*args, tzinfo=UTC).timestamp()) * 10**9


def test_only_monday_midnight_utc_starts_a_week() -> None:
    assert Week.from_start_ns(_ns(2025, 6, 9)) == Week(date(2025, 6, 9))
    for not_a_start in (_ns(2025, 6, 10), _ns(2025, 6, 9, 1), _ns(2025, 6, 9) + 1):
        assert Week.from_start_ns(not_a_start) is None


def test_the_ingest_keeps_a_week_as_a_naive_utc_monday() -> None:
    assert Week.of(datetime(2025, 6, 15, 23, 59)).naive_start == datetime(2025, 6, 9)


def test_day_start_is_midnight_utc() -> None:
    new_york = timezone(timedelta(hours=-5))
    assert day_start(datetime(2025, 6, 18, 20, 30, tzinfo=new_york)) == datetime(
        2025, 6, 19, tzinfo=UTC)
