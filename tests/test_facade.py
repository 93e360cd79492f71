"""The facade: one start, one shutdown, ordinary OTel meters, and the catalog's views."""

from __future__ import annotations

import asyncio
import math
import sqlite3
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from opentelemetry import metrics

from otel_usage import InvalidModeError, ManualClock, UsageTelemetry

START = datetime(2026, 11, 23, 9, 30, tzinfo=UTC)  # a Monday


def make(data_dir: Path, clock: ManualClock | None = None, **kwargs: object) -> UsageTelemetry:
    return UsageTelemetry(data_dir, service_version="2.7.0", export_interval_s=math.inf,
                          clock=clock or ManualClock(START), **kwargs)  # type: ignore[arg-type]


def rows(data_dir: Path) -> list[tuple[str, str, str, object, object, object, int]]:
    with sqlite3.connect(data_dir / "usage.sqlite3") as conn:
        return conn.execute(
            "SELECT date(d.day * 86400, 'unixepoch'), s.metric, s.attributes, d.total, d.last, "
            "d.peak, s.local_only FROM daily d JOIN series s ON s.id = d.series_id "
            "WHERE s.metric NOT IN ('printernizer.app.starts', 'printernizer.uptime') "
            "ORDER BY 1, 2, 3").fetchall()


def test_printernizer_counts_with_the_global_otel_api(data_dir: Path) -> None:
    """Code that only knows OTel's API is recorded once the facade set the global provider."""
    usage = make(data_dir, set_global=True)
    usage.start()
    jobs = metrics.get_meter("printernizer").create_counter("printernizer.jobs", unit="{job}")
    for _ in range(3):
        jobs.add(1, {"job.status": "completed", "printer.type": "bambu_lab"})
    usage.shutdown()
    assert rows(data_dir) == [
        ("2026-11-23", "printernizer.jobs",
         '{"job.status":"completed","printer.type":"bambu_lab"}', 3, None, None, 0),
    ]


def test_views_keep_only_the_catalogs_attribute_keys(data_dir: Path) -> None:
    usage = make(data_dir)
    jobs = usage.meter().create_counter("printernizer.jobs")
    jobs.add(2, {"job.status": "failed", "printer.type": "prusa_core",
                 "file.name": "benchy.3mf", "printer.serial": "01S00C123456"})
    usage.shutdown()
    assert rows(data_dir) == [
        ("2026-11-23", "printernizer.jobs",
         '{"job.status":"failed","printer.type":"prusa_core"}', 2, None, None, 0),
    ]


def test_instruments_outside_the_catalog_are_kept_and_marked_local_only(data_dir: Path) -> None:
    usage = make(data_dir)
    usage.meter().create_counter("printernizer.slicer.runs").add(4, {"slicer": "prusaslicer"})
    usage.meter().create_histogram("printernizer.jobs").record(12.5)  # catalog name, wrong kind
    usage.shutdown()
    assert rows(data_dir) == [
        ("2026-11-23", "printernizer.jobs", "{}", 12.5, None, None, 1),
        ("2026-11-23", "printernizer.slicer.runs", '{"slicer":"prusaslicer"}', 4, None, None, 1),
    ]


def test_observable_gauges_keep_the_days_last_and_max(data_dir: Path) -> None:
    clock = ManualClock(START)
    usage = make(data_dir, clock)
    printers = {"bambu_lab": 2}
    usage.observe_printers(lambda: dict(printers))
    usage.observe_features(lambda: {"library": True, "timelapse": False})
    usage.flush()
    printers["bambu_lab"] = 5
    usage.flush()
    printers["bambu_lab"] = 3
    usage.flush()
    clock.advance(timedelta(days=1))
    usage.shutdown()
    assert rows(data_dir) == [
        ("2026-11-23", "printernizer.features.enabled", '{"feature.name":"library"}', None, 1, 1, 0),
        ("2026-11-23", "printernizer.features.enabled", '{"feature.name":"timelapse"}', None, 0, 0, 0),
        ("2026-11-23", "printernizer.printers", '{"printer.type":"bambu_lab"}', None, 3, 5, 0),
        ("2026-11-24", "printernizer.features.enabled", '{"feature.name":"library"}', None, 1, 1, 0),
        ("2026-11-24", "printernizer.features.enabled", '{"feature.name":"timelapse"}', None, 0, 0, 0),
        ("2026-11-24", "printernizer.printers", '{"printer.type":"bambu_lab"}', None, 3, 3, 0),
    ]


def test_a_failing_host_callback_is_logged_and_does_not_stop_recording(data_dir: Path) -> None:
    usage = make(data_dir)

    def broken() -> dict[str, int]:
        raise RuntimeError("printer service not ready")

    usage.observe_printers(broken)
    usage.meter().create_counter("printernizer.errors").add(
        1, {"error.category": "printer", "error.type": "printer_offline"})
    usage.shutdown()
    assert rows(data_dir) == [
        ("2026-11-23", "printernizer.errors",
         '{"error.category":"printer","error.type":"printer_offline"}', 1, None, None, 0),
    ]
    assert "callback:printernizer.printers" in usage.problems.open_problems


def test_the_library_records_starts_and_days_up(data_dir: Path) -> None:
    clock = ManualClock(START)
    for _ in range(2):
        usage = make(data_dir, clock)
        usage.start()
        usage.shutdown()
        clock.advance(timedelta(days=1))
    with sqlite3.connect(data_dir / "usage.sqlite3") as conn:
        found = conn.execute(
            "SELECT date(d.day * 86400, 'unixepoch'), s.metric, d.total, d.last FROM daily d "
            "JOIN series s ON s.id = d.series_id ORDER BY 1, 2").fetchall()
    assert found == [
        ("2026-11-23", "printernizer.app.starts", 1, None),
        ("2026-11-23", "printernizer.uptime", None, 1),
        ("2026-11-24", "printernizer.app.starts", 1, None),
        ("2026-11-24", "printernizer.uptime", None, 1),
    ]


def test_the_providers_resource_is_the_apps_name_and_version_alone(
        data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No resource detector runs and the host's OTEL_RESOURCE_ATTRIBUTES and OTEL_SERVICE_NAME
    are not merged in: the local store keeps no resource, and a report names its own."""
    monkeypatch.setenv("OTEL_RESOURCE_ATTRIBUTES", "host.name=kitchen-pi")
    monkeypatch.setenv("OTEL_SERVICE_NAME", "someone-elses-app")
    usage = make(data_dir)
    provider = usage.start()
    # The SDK keeps a provider's resource in its configuration only.
    resource = provider._sdk_config.resource
    usage.shutdown()
    assert dict(resource.attributes) == {"service.name": "printernizer",
                                         "service.version": "2.7.0"}


async def test_async_start_and_shutdown_flush_what_was_counted(data_dir: Path) -> None:
    usage = make(data_dir)
    provider = await usage.astart()
    assert await usage.astart() is provider
    provider.get_meter("printernizer").create_counter("printernizer.file.downloads").add(
        7, {"printer.type": "octoprint"})
    await usage.ashutdown()
    await usage.ashutdown()  # a second shutdown is harmless
    assert rows(data_dir) == [
        ("2026-11-23", "printernizer.file.downloads", '{"printer.type":"octoprint"}', 7, None,
         None, 0),
    ]


async def test_an_async_start_waits_for_a_locked_store_off_the_loop_and_leaves_no_thread(
        data_dir: Path) -> None:
    """While another process holds the store's write lock, the host's event loop runs on; the
    start settles once the lock is released; and the thread it waited on has ended (a pool's
    worker would stay for the host's life, with its memory)."""
    first = make(data_dir)
    first.start()
    first.shutdown()
    holder = sqlite3.connect(data_dir / "usage.sqlite3", isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    holder.execute("UPDATE meta SET value = '1.0.0' WHERE key = 'service_version'")
    usage = make(data_dir)
    start = asyncio.create_task(usage.astart())
    for _ in range(20):  # the loop turns while the start waits for the lock
        await asyncio.sleep(0.01)
    waiting = not start.done()
    holder.execute("COMMIT")
    holder.close()
    provider = await start
    threads = sorted(t.name for t in threading.enumerate()
                     if t.name == "otel-usage-start" or t.name.startswith("asyncio_"))
    with sqlite3.connect(data_dir / "usage.sqlite3") as conn:
        version = conn.execute("SELECT value FROM meta WHERE key = 'service_version'").fetchone()
    await usage.ashutdown()
    assert (waiting, provider is usage.meter_provider, threads, version) == (
        True, True, [], ("2.7.0",))


def test_a_start_whose_disk_work_fails_unexpectedly_still_counts(
        data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Whatever the start's disk work raises (here a stand-in for a failure no one foresaw),
    the start returns its provider, a second start the same one, and the meters count."""
    from otel_usage import consent

    def broken(*args: object) -> None:
        raise RuntimeError("unforeseen")

    monkeypatch.setattr(consent, "on_start", broken)
    usage = make(data_dir)
    provider = usage.start()
    again = usage.start()
    usage.meter().create_counter("printernizer.file.downloads").add(
        2, {"printer.type": "octoprint"})
    usage.shutdown()
    assert (again is provider, rows(data_dir)) == (True, [
        ("2026-11-23", "printernizer.file.downloads", '{"printer.type":"octoprint"}', 2, None,
         None, 0)])


def test_mode_changes_are_stored_with_their_date(data_dir: Path) -> None:
    clock = ManualClock(START)
    usage = make(data_dir, clock)
    assert usage.mode == "local"
    usage.set_mode("on")
    clock.advance(timedelta(days=3))
    usage.set_mode("local")
    usage.set_mode("local")  # no change, no row
    assert usage.mode == "local"
    with sqlite3.connect(data_dir / "usage.sqlite3") as conn:
        changes = conn.execute(
            "SELECT changed_at, mode, catalog_version, source FROM mode_changes ORDER BY id"
        ).fetchall()
    version = usage.catalog.version  # a choice is stored with the catalog it was made under
    assert changes == [
        ("2026-11-23T09:30:00+00:00", "on", version, "user"),
        ("2026-11-26T09:30:00+00:00", "local", version, "user"),
    ]


def test_an_unknown_mode_is_refused_and_changes_nothing(data_dir: Path) -> None:
    usage = make(data_dir)
    usage.set_mode("on")
    with pytest.raises(InvalidModeError, match="unknown mode 'always': choose one of off, local, on"):
        usage.set_mode("always")
    assert usage.mode == "on"


def test_a_choice_consents_to_the_catalog_version_asked_and_one_it_lacks_is_refused(
        data_dir: Path) -> None:
    """Printernizer's old switch agrees to what it described (version 1), not to the newest."""
    usage = make(data_dir)
    newest = usage.catalog.version
    assert newest > 1
    usage.set_mode("on", source="printernizer", catalog_version=1)
    for wrong in (0, newest + 1, True):
        with pytest.raises(InvalidModeError, match=f"unknown catalog version {wrong!r} to "
                                                   f"consent to: choose one of 1 to {newest}"):
            usage.set_mode("on", catalog_version=wrong)
    assert usage.catalog_additions()["consented_version"] == 1
    usage.set_mode("on")  # the newest, in one action
    with sqlite3.connect(data_dir / "usage.sqlite3") as conn:
        assert conn.execute("SELECT mode, catalog_version, source FROM mode_changes ORDER BY id"
                            ).fetchall() == [("on", 1, "printernizer"), ("on", newest, "user")]


def test_mode_off_records_nothing(data_dir: Path) -> None:
    usage = make(data_dir)
    usage.set_mode("off")
    usage.meter().create_counter("printernizer.jobs").add(1, {"job.status": "created"})
    usage.shutdown()
    assert rows(data_dir) == []
    with sqlite3.connect(data_dir / "usage.sqlite3") as conn:
        assert conn.execute("SELECT count(*) FROM series").fetchone() == (0,)


def test_do_not_track_forces_off_and_creates_no_file(data_dir: Path) -> None:
    usage = make(data_dir, environ={"DO_NOT_TRACK": "1", "OTEL_USAGE_MODE": "on"})
    usage.start()
    usage.meter().create_counter("printernizer.jobs").add(1, {"job.status": "created"})
    usage.shutdown()
    assert usage.mode == "off"
    assert list(data_dir.iterdir()) == []


def test_the_environment_mode_holds_for_the_process_and_is_not_stored(data_dir: Path) -> None:
    usage = make(data_dir, environ={"OTEL_USAGE_MODE": "on"})
    usage.start()
    usage.shutdown()
    assert usage.mode == "on"
    assert make(data_dir).mode == "local"
    with sqlite3.connect(data_dir / "usage.sqlite3") as conn:
        assert conn.execute("SELECT mode, source FROM mode_changes").fetchall() == []
        (installation_id,) = conn.execute(
            "SELECT value FROM meta WHERE key = 'installation_id'").fetchone()
    assert len(installation_id) == 36 and installation_id[14] == "4"


def test_an_installation_id_is_made_on_first_use_and_kept(data_dir: Path) -> None:
    def installation_id() -> str:
        return asyncio.run(usage.statistics())["installation_id"]  # type: ignore[no-any-return]

    usage = make(data_dir)
    usage.start()
    usage.shutdown()
    first = installation_id()
    usage = make(data_dir)
    usage.start()
    usage.shutdown()
    assert installation_id() == first
