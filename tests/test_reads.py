"""What the user sees of the local store: the statistics viewer, the export, delete-all."""

from __future__ import annotations

import math
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from otel_usage import ManualClock, StoreUnavailableError, UsageTelemetry

MONDAY = datetime(2026, 11, 16, 8, 0, tzinfo=UTC)


def record_two_weeks(data_dir: Path) -> tuple[UsageTelemetry, ManualClock]:
    """Last week: 4 jobs, 1 error, two printers; this week (Mon-Tue): 3 jobs, 2 downloads."""
    clock = ManualClock(MONDAY)
    usage = UsageTelemetry(data_dir, export_interval_s=math.inf, clock=clock)
    printers = {"bambu_lab": 1, "prusa_core": 1}
    usage.observe_printers(lambda: dict(printers))
    usage.observe_features(lambda: {"library": True, "auto_job_creation": True,
                                    "timelapse": False})
    meter = usage.meter()
    jobs = meter.create_counter("printernizer.jobs")
    downloads = meter.create_counter("printernizer.file.downloads")
    errors = meter.create_counter("printernizer.errors")
    jobs.add(4, {"job.status": "completed", "printer.type": "bambu_lab"})
    jobs.add(9, {"job.status": "created", "printer.type": "bambu_lab"})  # not "completed"
    errors.add(1, {"error.category": "network", "error.type": "connection_refused"})
    usage.flush()
    clock.advance(timedelta(days=7))
    printers["octoprint"] = 1
    jobs.add(2, {"job.status": "completed", "printer.type": "octoprint"})
    downloads.add(2, {"printer.type": "octoprint"})
    usage.flush()
    clock.advance(timedelta(days=1))
    printers.pop("octoprint")
    jobs.add(1, {"job.status": "completed", "printer.type": "prusa_core"})
    usage.flush()
    return usage, clock


async def test_the_viewer_shows_this_week_the_last_weeks_and_features(data_dir: Path) -> None:
    usage, _ = record_two_weeks(data_dir)
    stats = await usage.statistics()
    weeks = stats.pop("weeks")
    installation_id = stats.pop("installation_id")
    assert len(installation_id) == 36
    assert stats == {
        "mode": "local",
        "first_used": "2026-11-16",
        "days_active": 3,
        "week_start": "2026-11-23",
        "this_week": {"jobs_completed": 3, "files_downloaded": 2, "active_printers": 3,
                      "errors": 0},
        "features": {"library": True, "library_search": None, "timelapse": False,
                     "auto_job_creation": True, "german_business": None,
                     "watch_folders": None},
        "last_submitted": None,
    }
    assert [w["week_start"] for w in weeks] == [
        "2026-10-05", "2026-10-12", "2026-10-19", "2026-10-26", "2026-11-02", "2026-11-09",
        "2026-11-16", "2026-11-23"]
    assert weeks[-2] == {"week_start": "2026-11-16", "jobs_completed": 4, "files_downloaded": 0,
                         "active_printers": 2, "errors": 1}
    assert all(w == {"week_start": w["week_start"], "jobs_completed": 0, "files_downloaded": 0,
                     "active_printers": 0, "errors": 0} for w in weeks[:-2])


async def test_the_viewer_of_a_new_installation_is_empty_and_creates_nothing(
    data_dir: Path,
) -> None:
    usage = UsageTelemetry(data_dir, clock=ManualClock(MONDAY))
    stats = await usage.statistics()
    assert (stats["installation_id"], stats["first_used"], stats["days_active"]) == (
        None, None, 0)
    assert stats["this_week"] == {"jobs_completed": 0, "files_downloaded": 0,
                                  "active_printers": 0, "errors": 0}
    assert list(data_dir.iterdir()) == []


async def test_the_export_holds_everything_stored_but_the_credential(data_dir: Path) -> None:
    usage, _ = record_two_weeks(data_dir)
    usage.set_mode("on")
    usage.shutdown()
    with sqlite3.connect(data_dir / "usage.sqlite3") as conn:
        conn.execute("INSERT OR REPLACE INTO meta VALUES ('credential', 'sekrit-token-value')")
    exported = await usage.export_json()
    assert "sekrit-token-value" not in repr(exported)
    assert exported["format"] == "otel-usage-export/1"
    assert exported["mode"] == "on"
    assert exported["installation"]["first_used"] == "2026-11-16"
    assert exported["mode_changes"] == [
        {"changed_at": "2026-11-24T08:00:00+00:00", "mode": "on",
         "catalog_version": usage.catalog.version, "source": "user"}]
    jobs = [s for s in exported["series"] if s["metric"] == "printernizer.jobs"]
    assert jobs == [
        {"metric": "printernizer.jobs", "attributes": {"job.status": "completed",
                                                       "printer.type": "bambu_lab"},
         "kind": "sum", "unit": "", "local_only": False,
         "days": [{"day": "2026-11-16", "total": 4}]},
        {"metric": "printernizer.jobs", "attributes": {"job.status": "created",
                                                       "printer.type": "bambu_lab"},
         "kind": "sum", "unit": "", "local_only": False,
         "days": [{"day": "2026-11-16", "total": 9}]},
        {"metric": "printernizer.jobs", "attributes": {"job.status": "completed",
                                                       "printer.type": "octoprint"},
         "kind": "sum", "unit": "", "local_only": False,
         "days": [{"day": "2026-11-23", "total": 2}]},
        {"metric": "printernizer.jobs", "attributes": {"job.status": "completed",
                                                       "printer.type": "prusa_core"},
         "kind": "sum", "unit": "", "local_only": False,
         "days": [{"day": "2026-11-24", "total": 1}]},
    ]


async def test_delete_all_leaves_no_rows_and_a_new_id_on_next_use(data_dir: Path) -> None:
    usage, clock = record_two_weeks(data_dir)
    old_id = (await usage.statistics())["installation_id"]
    await usage.delete_all()
    path = data_dir / "usage.sqlite3"
    with sqlite3.connect(path) as conn:
        tables = [r[0] for r in conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table'")]
        assert {t: conn.execute(f'SELECT count(*) FROM "{t}"').fetchone()[0] for t in tables} == {
            t: 0 for t in tables}
    assert old_id.encode() not in path.read_bytes()
    wal = data_dir / "usage.sqlite3-wal"
    assert not wal.exists() or old_id.encode() not in wal.read_bytes()
    stats = await usage.statistics()
    assert (stats["installation_id"], stats["days_active"]) == (None, 0)
    # The running host goes on counting: the next export starts a new installation.
    clock.advance(timedelta(days=1))
    usage.meter().create_counter("printernizer.jobs").add(1, {"job.status": "completed"})
    usage.shutdown()
    stats = await usage.statistics()
    assert stats["installation_id"] not in (None, old_id)
    assert stats["first_used"] == "2026-11-25"
    assert stats["this_week"]["jobs_completed"] == 1


async def test_an_unreadable_store_is_reported_as_store_unavailable(data_dir: Path) -> None:
    (data_dir / "usage.sqlite3").mkdir()  # there, but no database can be opened
    usage = UsageTelemetry(data_dir, clock=ManualClock(MONDAY))
    with pytest.raises(StoreUnavailableError, match="the local usage database cannot be used"):
        await usage.statistics()
    with pytest.raises(StoreUnavailableError):
        await usage.export_json()
