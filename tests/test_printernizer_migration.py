"""The old feature's data on the user's disk, migrated once at start: each settings case, a
damaged row, a crash half-way; tested on a database made with Printernizer's table definitions."""

from __future__ import annotations

import json
import math
import sqlite3
import uuid
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from capture_server import capture_server

from otel_usage import ManualClock, StoreUnavailableError, UsageTelemetry
from otel_usage.printernizer import MigrationResult, UsageStatisticsService, migration
from otel_usage.printernizer import migrate_printernizer_database as migrate
from otel_usage.testing import week_report
from otel_usage.weeks import Week

# Printernizer's own definitions of its usage-statistics tables.
PRINTERNIZER_TABLES = """
CREATE TABLE IF NOT EXISTS usage_events (
    id TEXT PRIMARY KEY,
    event_type TEXT NOT NULL,
    timestamp DATETIME NOT NULL,
    metadata TEXT,
    submitted BOOLEAN DEFAULT 0,
    created_at DATETIME DEFAULT CURRENT_TIMESTAMP
);
CREATE INDEX IF NOT EXISTS idx_usage_events_type ON usage_events(event_type);
CREATE INDEX IF NOT EXISTS idx_usage_events_timestamp ON usage_events(timestamp);
CREATE TABLE IF NOT EXISTS usage_settings (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL,
    updated_at DATETIME DEFAULT CURRENT_TIMESTAMP
);
"""
OLD_ID = str(uuid.UUID(int=0x1234, version=4))


def sql_time(when: datetime) -> str:
    """As Printernizer stored it: naive UTC, a space between date and time."""
    return when.replace(tzinfo=None).isoformat(sep=" ", timespec="seconds")


def printernizer_db(path: Path, midweek: datetime, opt_in: str | None,
                    damaged: bool = False) -> Path:
    """A Printernizer database of today: its tables, its settings, a few weeks of events."""
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.executescript(PRINTERNIZER_TABLES)
    settings = [("installation_id", OLD_ID, sql_time(midweek - timedelta(days=60))),
                ("first_run_date", (midweek - timedelta(days=60)).replace(tzinfo=None)
                 .isoformat(), sql_time(midweek - timedelta(days=60)))]
    if opt_in is not None:
        settings.append(("opt_in_status", opt_in, sql_time(midweek - timedelta(days=30))))
    conn.executemany("INSERT INTO usage_settings VALUES (?, ?, ?)", settings)
    events = [
        ("job_completed", midweek - timedelta(days=9), {"printer_type": "bambu_lab",
                                                         "file_name": "secret-prototype.3mf"}),
        ("job_completed", midweek - timedelta(days=9, hours=2), {"printer_type": "bambu_lab"}),
        ("job_failed", midweek - timedelta(days=8), {"printer_type": "prusa_core"}),
        ("file_downloaded", midweek - timedelta(days=8), {"printer_type": "bambu_lab"}),
        ("app_start", midweek - timedelta(days=8), {"app_version": "2.7.0"}),
        ("error_occurred", midweek - timedelta(days=8), {"error_type": "PRINTER_BUSY"}),
    ]
    rows = [(str(uuid.uuid4()), kind, sql_time(when), json.dumps(meta), 0)
            for kind, when, meta in events]
    if damaged:
        rows += [(str(uuid.uuid4()), "job_completed", "last tuesday", "{}", 0),
                 (str(uuid.uuid4()), "job_completed", sql_time(midweek), "{not json", 0),
                 (str(uuid.uuid4()), "teleported", sql_time(midweek), "{}", 0),
                 (str(uuid.uuid4()), "job_failed", sql_time(midweek), "[1, 2]", 0)]
    conn.executemany("INSERT INTO usage_events (id, event_type, timestamp, metadata, submitted) "
                     "VALUES (?, ?, ?, ?, ?)", rows)
    conn.close()
    return path


def telemetry(data_dir: Path, midweek: datetime) -> UsageTelemetry:
    return UsageTelemetry(data_dir, service_version="2.42.0", export_interval_s=math.inf,
                          clock=ManualClock(midweek))


def legacy_rows(path: Path) -> tuple[list[tuple[object, ...]], list[tuple[object, ...]]]:
    with sqlite3.connect(path) as conn:
        return (conn.execute("SELECT * FROM usage_events").fetchall(),
                conn.execute("SELECT key, value FROM usage_settings").fetchall())


def migrated(usage: UsageTelemetry) -> dict[tuple[str, str, str], int]:
    """(day, metric, attributes) -> total of the local-only migrated series."""
    with sqlite3.connect(usage.store.path) as conn:
        rows = conn.execute(
            "SELECT date(d.day * 86400, 'unixepoch'), s.metric, s.attributes, d.total "
            "FROM daily d JOIN series s ON s.id = d.series_id WHERE s.local_only = 1").fetchall()
    return {(day, m, a): t for day, m, a, t in rows}


def day(when: datetime) -> str:
    return when.date().isoformat()


def test_an_opted_in_user_consents_to_version_1_from_the_migration_on_and_events_become_days(
    tmp_path: Path, data_dir: Path, midweek: datetime,
) -> None:
    """The consent starts when it is recorded here; the old opt-in's date is kept to show."""
    db = printernizer_db(tmp_path / "printernizer.db", midweek, "enabled")
    usage = telemetry(data_dir, midweek)
    assert migrate(db, usage) == MigrationResult("done", "enabled", 6, 0)
    with usage.store.read() as tx:
        history = [(c.changed_at, c.mode, c.catalog_version, c.source)
                   for c in tx.mode_history()]
        identity = (tx.meta("installation_id"), tx.meta("first_used"))
        opted_in_at = tx.meta(migration.OPTED_IN_AT)
    assert history == [(midweek, "on", 1, "printernizer")]
    old_opt_in = (midweek - timedelta(days=30)).replace(microsecond=0)
    assert opted_in_at == old_opt_in.isoformat()
    assert identity == (OLD_ID, day(midweek - timedelta(days=60)))
    tag = '"migrated":"printernizer_usage_events"'
    assert migrated(usage) == {
        (day(midweek - timedelta(days=9)), "printernizer.jobs",
         '{"job.status":"completed",' + tag + ',"printer.type":"bambu_lab"}'): 2,
        (day(midweek - timedelta(days=8)), "printernizer.jobs",
         '{"job.status":"failed",' + tag + ',"printer.type":"prusa_core"}'): 1,
        (day(midweek - timedelta(days=8)), "printernizer.file.downloads",
         '{' + tag + ',"printer.type":"bambu_lab"}'): 1,
        (day(midweek - timedelta(days=8)), "printernizer.app.starts", '{' + tag + '}'): 1,
        (day(midweek - timedelta(days=8)), "printernizer.errors",
         '{"error.category":"printer","error.type":"printer_busy",' + tag + '}'): 1,
    }
    assert legacy_rows(db) == ([], [("migrated_to", "otel-usage")])
    assert b"secret-prototype" not in db.read_bytes()
    wal = db.with_name(db.name + "-wal")
    assert not wal.exists() or b"secret-prototype" not in wal.read_bytes()
    # The old history is the user's to see, never sent: the week it fell in reports nothing.
    usage.start()
    assert usage.mode == "on"
    assert week_report(usage, Week.of(midweek - timedelta(days=8)), 1).points == 0
    usage.shutdown()


def test_weeks_recorded_in_local_while_the_migration_failed_are_never_sent(
    tmp_path: Path, data_dir: Path, midweek: datetime,
) -> None:
    """Printernizer's database (opted in a month ago) is locked at the first start: the
    migration fails, mode local records two weeks; the next start migrates. The consent
    starts then, not at the old opt-in: the two local weeks are never sent."""
    db = printernizer_db(tmp_path / "printernizer.db", midweek, "enabled")
    clock = ManualClock(midweek)
    with capture_server() as server:
        def start() -> tuple[UsageTelemetry, MigrationResult]:
            usage = UsageTelemetry(data_dir, service_version="2.42.0", clock=clock,
                                   export_interval_s=math.inf, endpoint=server.url,
                                   background_uploads=False, environ={})
            result = migrate(db, usage, busy_timeout_s=0.05)
            usage.start()
            return usage, result

        holder = sqlite3.connect(db, isolation_level=None)  # Printernizer holds it, alone
        holder.execute("PRAGMA locking_mode=EXCLUSIVE")
        holder.execute("BEGIN EXCLUSIVE")
        usage, result = start()
        assert (result, usage.mode) == (MigrationResult("failed"), "local")
        weeks = [Week.of(midweek + timedelta(weeks=n)) for n in (1, 2, 3)]
        for week in weeks[:2]:
            clock.set(week.start + timedelta(hours=8))
            usage.meter().create_counter("printernizer.jobs").add(
                2, {"job.status": "completed", "printer.type": "bambu_lab"})
            usage.flush()
        usage.shutdown()
        holder.rollback()
        holder.close()
        usage, result = start()
        assert (result, usage.mode) == (MigrationResult("done", "enabled", 6, 0), "on")
        with usage.store.transaction() as tx:  # due the moment a week closes
            tx.set_meta("report_weekday", "0")
            tx.set_meta("report_hour", "0")
        clock.set(weeks[2].start + timedelta(hours=8))
        usage.meter().create_counter("printernizer.jobs").add(
            3, {"job.status": "completed", "printer.type": "bambu_lab"})
        usage.flush()
        clock.set(weeks[2].end + timedelta(hours=1))
        assert usage.send_now()["sent"] == [weeks[2].label]
        usage.shutdown()
        (report,) = server.reports()
        assert report.points()[("printernizer.jobs", (("job.status", "completed"),
                                                      ("printer.type", "bambu_lab")))] == 3


@pytest.mark.parametrize(("opt_in", "history"), [
    ("disabled", [("local", 1, "printernizer")]),
    (None, []),
])
def test_opted_out_and_never_asked_users_keep_mode_local(
    tmp_path: Path, data_dir: Path, midweek: datetime, opt_in: str | None,
    history: list[tuple[str, int, str]],
) -> None:
    db = printernizer_db(tmp_path / "printernizer.db", midweek, opt_in)
    usage = telemetry(data_dir, midweek)
    assert migrate(db, usage) == MigrationResult("done", opt_in, 6, 0)
    with usage.store.read() as tx:
        assert [(c.mode, c.catalog_version, c.source) for c in tx.mode_history()] == history
        assert tx.meta("installation_id") == OLD_ID
    assert usage.mode == "local"
    assert sum(migrated(usage).values()) == 6
    assert legacy_rows(db) == ([], [("migrated_to", "otel-usage")])


def test_a_choice_already_made_here_is_kept_over_the_old_switchs(
        tmp_path: Path, data_dir: Path, midweek: datetime) -> None:
    """The user chose on the privacy page before the old tables were migrated (a crash in
    between, or a restored backup): the old switch's ``enabled`` does not overrule them."""
    db = printernizer_db(tmp_path / "printernizer.db", midweek, "enabled")
    usage = telemetry(data_dir, midweek)
    usage.set_mode("off")
    assert migrate(db, usage) == MigrationResult("done", "enabled", 6, 0)
    with usage.store.read() as tx:
        assert [(c.mode, c.catalog_version, c.source) for c in tx.mode_history()] == [
            ("off", usage.catalog.version, "user")]
    assert usage.mode == "off"


def test_migration_runs_once(tmp_path: Path, data_dir: Path, midweek: datetime) -> None:
    db = printernizer_db(tmp_path / "printernizer.db", midweek, "enabled")
    usage = telemetry(data_dir, midweek)
    migrate(db, usage)
    before = migrated(usage)
    assert migrate(db, usage) == MigrationResult("already")
    assert migrated(usage) == before


def test_damaged_rows_are_skipped_and_deleted_with_the_rest(
    tmp_path: Path, data_dir: Path, midweek: datetime,
) -> None:
    db = printernizer_db(tmp_path / "printernizer.db", midweek, "enabled", damaged=True)
    usage = telemetry(data_dir, midweek)
    assert migrate(db, usage) == MigrationResult("done", "enabled", 6, 4)
    assert sum(migrated(usage).values()) == 6
    assert legacy_rows(db) == ([], [("migrated_to", "otel-usage")])


def test_rows_that_are_not_utf8_are_skipped_counted_and_deleted(
    tmp_path: Path, data_dir: Path, midweek: datetime,
) -> None:
    """An event type, a metadata value or a setting that is not UTF-8 made every start's
    migration fail, and the old rows stayed on disk: such rows are skipped, counted, deleted."""
    db = printernizer_db(tmp_path / "printernizer.db", midweek, "enabled")
    with sqlite3.connect(db) as conn:
        when = sql_time(midweek - timedelta(days=8))
        conn.executemany(
            "INSERT INTO usage_events (id, event_type, timestamp, metadata) "
            "VALUES (?, CAST(? AS TEXT), ?, CAST(? AS TEXT))",
            [("a", b"job_completed\xff", when, b"{}"),
             ("b", b"job_completed", when, b'{"printer_type": "bambu\xfe"}')])
        conn.execute("INSERT INTO usage_settings VALUES ('note', CAST(? AS TEXT), ?)",
                     (b"caf\xe9", when))
    usage = telemetry(data_dir, midweek)
    assert migrate(db, usage) == MigrationResult("done", "enabled", 6, 3)
    assert sum(migrated(usage).values()) == 6
    assert legacy_rows(db) == ([], [("migrated_to", "otel-usage")])
    assert migrate(db, usage) == MigrationResult("already")


def test_a_crash_after_the_copy_resumes_without_counting_twice(
    tmp_path: Path, data_dir: Path, midweek: datetime, monkeypatch: pytest.MonkeyPatch,
) -> None:
    db = printernizer_db(tmp_path / "printernizer.db", midweek, "enabled")
    usage = telemetry(data_dir, midweek)
    clear = migration._clear

    def crash(*args: object) -> None:
        raise sqlite3.OperationalError("disk I/O error")

    monkeypatch.setattr(migration, "_clear", crash)
    assert migrate(db, usage) == MigrationResult("failed")
    assert len(legacy_rows(db)[0]) == 6  # the old rows are still there
    monkeypatch.setattr(migration, "_clear", clear)
    assert migrate(db, usage) == MigrationResult("resumed", "enabled", 0, 0)
    assert sum(migrated(usage).values()) == 6
    with usage.store.read() as tx:
        assert len(tx.mode_history()) == 1
    assert legacy_rows(db) == ([], [("migrated_to", "otel-usage")])


def test_a_crash_during_the_copy_changes_nothing(
    tmp_path: Path, data_dir: Path, midweek: datetime, monkeypatch: pytest.MonkeyPatch,
) -> None:
    db = printernizer_db(tmp_path / "printernizer.db", midweek, "enabled")
    usage = telemetry(data_dir, midweek)
    sums = migration._sums

    def crash(*args: object) -> object:
        raise sqlite3.OperationalError("database or disk is full")

    monkeypatch.setattr(migration, "_sums", crash)
    with pytest.raises(StoreUnavailableError):
        migrate(db, usage)
    with usage.store.read() as tx:
        assert (tx.mode_history(), tx.meta("installation_id"), tx.meta(migration.MARKER)) == (
            [], None, None)
    assert len(legacy_rows(db)[0]) == 6
    monkeypatch.setattr(migration, "_sums", sums)
    assert migrate(db, usage) == MigrationResult("done", "enabled", 6, 0)


def test_a_database_without_the_old_tables_is_left_alone(
    tmp_path: Path, data_dir: Path, midweek: datetime,
) -> None:
    db = tmp_path / "printernizer.db"
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE printers (id TEXT PRIMARY KEY)")
    usage = telemetry(data_dir, midweek)
    assert migrate(db, usage) == MigrationResult("absent")
    assert migrate(tmp_path / "missing.db", usage) == MigrationResult("absent")
    with sqlite3.connect(db) as conn:
        assert [r[0] for r in conn.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table'")] == ["printers"]


async def test_the_service_migrates_at_initialize(
    tmp_path: Path, data_dir: Path, midweek: datetime,
) -> None:
    db = printernizer_db(tmp_path / "printernizer.db", midweek, "enabled")
    service = UsageStatisticsService(telemetry(data_dir, midweek), database_path=db)
    await service.initialize()
    assert service.migration == MigrationResult("done", "enabled", 6, 0)
    assert await service.is_opted_in() is True
    service.usage.flush()
    stats = await service.get_local_stats()
    assert (stats.installation_id, stats.total_events) == (OLD_ID, 7)  # and this start
    await service.usage.ashutdown()


async def test_do_not_track_makes_no_store_records_nothing_and_deletes_the_old_rows(
    tmp_path: Path, data_dir: Path, midweek: datetime,
) -> None:
    """DO_NOT_TRACK with the drop-in: no usage.sqlite3 is made and nothing is recorded, while
    the old raw rows are deleted (removing data is not recording it); a later start without
    it finds the move made and starts fresh, in mode local."""
    db = printernizer_db(tmp_path / "printernizer.db", midweek, "enabled")
    usage = UsageTelemetry(data_dir, service_version="2.42.0", export_interval_s=math.inf,
                           clock=ManualClock(midweek), environ={"DO_NOT_TRACK": "1"})
    service = UsageStatisticsService(usage, database_path=db)
    await service.initialize()
    assert service.migration == MigrationResult("deleted", "enabled", 6, 0)
    await service.record_event("job_completed", {"printer_type": "bambu_lab"})
    usage.flush()
    assert (await service.is_opted_in(), await service.total_events()) == (False, 0)
    await usage.ashutdown()
    assert list(data_dir.iterdir()) == []
    assert legacy_rows(db) == ([], [("migrated_to", "otel-usage")])
    later = UsageStatisticsService(telemetry(data_dir, midweek), database_path=db)
    await later.initialize()
    assert later.migration == MigrationResult("already", None)
    assert (later.usage.mode_state().stored, await later.total_events()) == (None, 0)
    await later.usage.ashutdown()


async def test_a_store_that_cannot_be_written_leaves_the_old_rows_and_the_host_starts(
    tmp_path: Path, midweek: datetime,
) -> None:
    db = printernizer_db(tmp_path / "printernizer.db", midweek, "enabled")
    not_a_directory = tmp_path / "usage"
    not_a_directory.write_text("a file where the data directory should be")
    service = UsageStatisticsService(telemetry(not_a_directory, midweek), database_path=db)
    await service.initialize()
    assert service.migration == MigrationResult("failed")
    assert len(legacy_rows(db)[0]) == 6
    assert await service.record_event("job_completed", {}) is not None
    await service.usage.ashutdown()


def test_an_event_stamped_with_an_offset_counts_on_its_utc_day(
    tmp_path: Path, data_dir: Path, midweek: datetime,
) -> None:
    db = tmp_path / "printernizer.db"
    with sqlite3.connect(db) as conn:
        conn.executescript(PRINTERNIZER_TABLES)
        local = (midweek - timedelta(days=3)).replace(hour=23, minute=30, tzinfo=None)
        conn.execute("INSERT INTO usage_events (id, event_type, timestamp, metadata) "
                     "VALUES ('a', 'job_completed', ?, NULL)", (f"{local.isoformat()}-02:00",))
    usage = telemetry(data_dir, midweek)
    assert migrate(db, usage) == MigrationResult("done", None, 1, 0)
    assert migrated(usage) == {
        ((local + timedelta(hours=2)).date().isoformat(), "printernizer.jobs",
         '{"job.status":"completed","migrated":"printernizer_usage_events"}'): 1}
