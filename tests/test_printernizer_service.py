"""The drop-in UsageStatisticsService: Printernizer's method names and result shapes, over one
UsageTelemetry; its events and the app's own meters count into the same series."""

from __future__ import annotations

import asyncio
import json
import math
import sqlite3
from dataclasses import asdict
from datetime import datetime
from pathlib import Path

from opentelemetry import metrics

from otel_usage import ManualClock, UsageTelemetry
from otel_usage.printernizer import RecordedEvent, UsageStatisticsService
from otel_usage.testing import week_report
from otel_usage.weeks import Week


def make(data_dir: Path, midweek: datetime, **kwargs: object) -> UsageStatisticsService:
    usage = UsageTelemetry(data_dir, service_version="2.42.0", export_interval_s=math.inf,
                           clock=ManualClock(midweek), set_global=True)
    return UsageStatisticsService(usage, **kwargs)  # type: ignore[arg-type]


def series(data_dir: Path) -> dict[tuple[str, str], tuple[object, object, int]]:
    """(metric, attributes) -> (total, last, local_only), starts and uptime left out."""
    with sqlite3.connect(data_dir / "usage.sqlite3") as conn:
        rows = conn.execute(
            "SELECT s.metric, s.attributes, sum(d.total), max(d.last), s.local_only "
            "FROM daily d JOIN series s ON s.id = d.series_id WHERE s.metric NOT IN "
            "('printernizer.app.starts', 'printernizer.uptime') GROUP BY s.id").fetchall()
    return {(m, a): (t, last, lo) for m, a, t, last, lo in rows}


async def test_record_event_and_the_apps_own_meters_count_into_the_same_series(
    data_dir: Path, midweek: datetime,
) -> None:
    service = make(data_dir, midweek)
    await service.initialize()
    jobs = metrics.get_meter("printernizer").create_counter("printernizer.jobs", unit="{job}")
    jobs.add(1, {"job.status": "completed", "printer.type": "bambu_lab"})
    recorded = await service.record_event("job_completed", {
        "printer_type": "bambu_lab", "duration_seconds": 5400, "file_name": "secret.3mf"})
    assert recorded == RecordedEvent("job_completed", "printernizer.jobs",
                                     {"job.status": "completed", "printer.type": "bambu_lab"})
    for event, metadata in [
        ("job_created", {"printer_type": "prusa_core"}),
        ("job_failed", {"printer_type": "prusa_core"}),
        ("file_downloaded", {"printer_type": "bambu_lab", "file_size": 123}),
        ("file_uploaded", {"printer_type": "octoprint"}),
        ("printer_connected", {"printer_type": "bambu_lab", "ip": "192.168.1.20"}),
        ("printer_disconnected", {"printer_type": "bambu_lab"}),
        ("error_occurred", {"error_type": "PRINTER_BUSY", "message": "busy: /home/me"}),
        ("app_start", {}), ("app_shutdown", {}),
    ]:
        await service.record_event(event, metadata)
    assert await service.record_event("made_up", {"x": 1}) is None
    service.usage.shutdown()
    assert series(data_dir) == {
        ("printernizer.jobs", '{"job.status":"completed","printer.type":"bambu_lab"}'):
            (2, None, 0),
        ("printernizer.jobs", '{"job.status":"created","printer.type":"prusa_core"}'):
            (1, None, 0),
        ("printernizer.jobs", '{"job.status":"failed","printer.type":"prusa_core"}'):
            (1, None, 0),
        ("printernizer.file.downloads", '{"printer.type":"bambu_lab"}'): (1, None, 0),
        ("printernizer.file.uploads", '{"printer.type":"octoprint"}'): (1, None, 0),
        ("printernizer.printer.connections",
         '{"connection.event":"connected","printer.type":"bambu_lab"}'): (1, None, 0),
        ("printernizer.printer.connections",
         '{"connection.event":"disconnected","printer.type":"bambu_lab"}'): (1, None, 0),
        ("printernizer.errors", '{"error.category":"printer","error.type":"printer_busy"}'):
            (1, None, 0),
    }
    assert b"secret" not in (data_dir / "usage.sqlite3").read_bytes()


async def test_the_switch_is_the_privacy_pages_mode_and_opt_in_consents_to_version_1(
    data_dir: Path, midweek: datetime,
) -> None:
    service = make(data_dir, midweek)
    await service.initialize()
    assert await service.is_opted_in() is False
    answer = await service.opt_in()
    with service.usage.store.read() as tx:
        installation_id = tx.meta("installation_id")
        history = [(c.mode, c.catalog_version, c.source) for c in tx.mode_history()]
    assert asdict(answer) == {"success": True, "installation_id": installation_id,
                              "message": "Usage statistics enabled. Thank you for helping "
                                         "improve Printernizer!"}
    assert (await service.is_opted_in(), service.usage.mode) == (True, "on")
    assert history == [("on", 1, "printernizer")]
    answer = await service.opt_out()
    assert asdict(answer) == {"success": True, "installation_id": None,
                              "message": "Usage statistics disabled. Your data will remain "
                                         "local."}
    assert (await service.is_opted_in(), service.usage.mode) == (False, "local")
    assert await service.submit_stats() is True  # not opted in: nothing to send
    service.usage.shutdown()


async def test_local_stats_export_and_delete_in_the_old_shapes(
    data_dir: Path, midweek: datetime,
) -> None:
    service = make(data_dir, midweek)
    await service.initialize()
    for event in ("job_completed", "job_completed", "job_failed", "file_downloaded",
                  "error_occurred"):
        await service.record_event(event, {"printer_type": "bambu_lab"})
    service.usage.flush()
    stats = asdict(await service.get_local_stats())
    with service.usage.store.read() as tx:
        installation_id, first_used = tx.meta("installation_id"), tx.meta("first_used")
    assert stats == {"installation_id": installation_id, "first_seen": first_used,
                     "opt_in_status": "disabled", "total_events": 6,  # and the app's start
                     "this_week": {"job_count": 3, "file_count": 1, "error_count": 1},
                     "last_submission": None}
    exported = json.loads(await service.export_stats())
    assert sorted(exported) == ["events", "export_version", "exported_at", "settings", "usage"]
    assert (exported["events"], exported["export_version"], exported["exported_at"]) == (
        [], "2.0", midweek.isoformat())
    assert exported["settings"]["opt_in_status"] == "disabled"
    assert exported["settings"]["installation_id"] == installation_id
    assert await service.delete_all_stats() is True
    assert await service.total_events() == 0
    service.usage.shutdown()


async def test_feature_switches_from_settings_and_events_are_observed(
    data_dir: Path, midweek: datetime,
) -> None:
    settings = {"library": True, "timelapse": False}
    service = make(data_dir, midweek, features=lambda: settings)
    await service.initialize()
    await service.record_event("feature_enabled", {"feature": "timelapse_enabled"})
    await service.record_event("feature_disabled", {"feature": "watch_folders"})
    service.usage.shutdown()
    assert {a: last for (m, a), (_, last, _) in series(data_dir).items()
            if m == "printernizer.features.enabled"} == {
        '{"feature.name":"library"}': 1, '{"feature.name":"timelapse"}': 1,
        '{"feature.name":"watch_folders"}': 0}


class PrinterService:
    """Printernizer's printer service answers only when awaited, on its own loop."""

    def __init__(self) -> None:
        self.calls = 0

    async def list_printers(self) -> list[dict[str, str]]:
        self.calls += 1
        await asyncio.sleep(0)
        return [{"id": "a", "type": "bambu_lab"}, {"id": "b", "type": "bambu_lab"},
                {"id": "c", "type": "prusa_core"}]


async def test_printers_are_observed_through_the_async_printer_service(
    data_dir: Path, midweek: datetime,
) -> None:
    service = make(data_dir, midweek)
    await service.initialize()
    printers = PrinterService()
    service.set_printer_service(printers)
    await asyncio.to_thread(service.usage.flush)  # the reader's thread, as every minute
    service.usage.flush()  # on the loop's own thread: the cached value, without waiting
    await asyncio.to_thread(service.usage.shutdown)
    assert {a: last for (m, a), (_, last, _) in series(data_dir).items()
            if m == "printernizer.printers"} == {
        '{"printer.type":"bambu_lab"}': 2, '{"printer.type":"prusa_core"}': 1}
    assert printers.calls >= 2


async def test_new_words_wait_for_the_users_agreement_to_version_2(
    data_dir: Path, midweek: datetime,
) -> None:
    """Opted in through the old switch (version 1), Printernizer's own job statuses and error
    codes leave as "other" until the user agrees to version 2 on the privacy page."""
    service = make(data_dir, midweek)
    await service.initialize()
    await service.opt_in()
    jobs = metrics.get_meter("printernizer").create_counter("printernizer.jobs", unit="{job}")
    jobs.add(1, {"job.status": "printing", "printer.type": "bambu_lab"})
    await service.record_event("error_occurred", {"error_type": "LIBRARY_ITEM_NOT_FOUND"})
    service.usage.flush()

    def sent(version: int) -> list[tuple[str, dict[str, str]]]:
        report = week_report(service.usage, Week.of(midweek), version)
        return [(m["name"], p["attributes"]) for m in report.rendering["metrics"]
                for p in m["points"] if m["name"] in ("printernizer.jobs", "printernizer.errors")]

    assert sent(1) == [
        ("printernizer.jobs", {"job.status": "other", "printer.type": "bambu_lab"}),
        ("printernizer.errors", {"error.category": "api", "error.type": "other"})]
    assert sent(2) == [
        ("printernizer.jobs", {"job.status": "printing", "printer.type": "bambu_lab"}),
        ("printernizer.errors", {"error.category": "api",
                                 "error.type": "library_item_not_found"})]
    service.usage.shutdown()
