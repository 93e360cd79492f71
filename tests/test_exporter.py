"""The SQLite exporter never breaks the host and never loses or doubles stored data.

Each failure a host's disk can bring: a read-only data directory, a corrupt or truncated database, a full
disk (SQLite's max_page_count), two processes writing one database, a process killed while it
exports.
"""

from __future__ import annotations

import math
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import pytest
import structlog

from otel_usage import ManualClock, UsageTelemetry
from otel_usage.weeks import epoch_day

START = datetime(2026, 11, 23, 9, 30, tzinfo=UTC)
JOB = {"job.status": "completed", "printer.type": "bambu_lab"}


def make(data_dir: Path) -> UsageTelemetry:
    return UsageTelemetry(data_dir, export_interval_s=math.inf, clock=ManualClock(START))


def job_total(data_dir: Path) -> int:
    with sqlite3.connect(data_dir / "usage.sqlite3") as conn:
        row = conn.execute(
            "SELECT coalesce(sum(d.total), 0) FROM daily d JOIN series s ON s.id = d.series_id "
            "WHERE s.metric = 'printernizer.jobs'").fetchone()
    return int(row[0])


def warnings_of(logs: list[dict[str, object]]) -> list[tuple[object, object]]:
    return [(e["event"], e.get("problem")) for e in logs if e["log_level"] == "warning"]


def test_deltas_from_many_exports_add_into_one_row_per_day_and_series(data_dir: Path) -> None:
    usage = make(data_dir)
    jobs = usage.meter().create_counter("printernizer.jobs")
    for _ in range(5):
        jobs.add(2, JOB)
        usage.flush()
    usage.flush()  # an export with nothing new adds nothing
    usage.shutdown()
    with sqlite3.connect(data_dir / "usage.sqlite3") as conn:
        assert conn.execute(
            "SELECT d.day, d.total FROM daily d JOIN series s ON s.id = d.series_id "
            "WHERE s.metric = 'printernizer.jobs'").fetchall() == [(epoch_day(START), 10)]


def test_a_full_disk_is_logged_once_and_nothing_is_lost(data_dir: Path) -> None:
    usage = make(data_dir)
    jobs = usage.meter().create_counter("printernizer.jobs")
    jobs.add(1, JOB)
    usage.flush()
    conn = usage.store._conn
    assert conn is not None
    pages = conn.execute("PRAGMA page_count").fetchone()[0]
    conn.execute(f"PRAGMA max_page_count = {pages}")
    errors = usage.meter().create_counter("printernizer.errors")
    with structlog.testing.capture_logs() as logs:
        for i in range(3):  # new series need new pages: every export fails
            errors.add(1, {"error.category": "system", "error.type": "disk_full"})
            usage.meter().create_counter(f"printernizer.local.c{i}").add(1, {"n": "x" * 2000})
            jobs.add(1, JOB)
            assert usage.flush() is True  # the host is never told
    assert warnings_of(logs) == [
        ("usage statistics could not be saved; will retry", "store:disk_full")]
    assert job_total(data_dir) == 1  # what was stored is intact
    conn.execute("PRAGMA max_page_count = 1073741823")  # space is freed
    with structlog.testing.capture_logs() as logs:
        usage.shutdown()
    assert [e["event"] for e in logs] == ["usage statistics are saved again"]
    assert job_total(data_dir) == 4  # the batches kept in memory were written
    with sqlite3.connect(data_dir / "usage.sqlite3") as check:
        written = check.execute(
            "SELECT s.metric, d.total FROM daily d LEFT JOIN series s ON s.id = d.series_id "
            "WHERE s.metric IS NULL OR s.metric LIKE 'printernizer.local.%' ORDER BY 1").fetchall()
    # Series first made in a rolled-back transaction are made again, not left dangling.
    assert written == [("printernizer.local.c0", 1), ("printernizer.local.c1", 1),
                       ("printernizer.local.c2", 1)]


def test_a_first_write_that_fails_loses_nothing(data_dir: Path) -> None:
    """The very first write (which begins the store's epoch) fails for want of space: the
    batch is kept and written once there is room, not mistaken for one from before a delete."""
    usage = make(data_dir)
    usage.mode_state()
    with usage.store.transaction():  # the store exists, empty of statistics
        pass
    conn = usage.store._conn
    assert conn is not None
    pages = conn.execute("PRAGMA page_count").fetchone()[0]
    conn.execute(f"PRAGMA max_page_count = {pages}")
    jobs = usage.meter().create_counter("printernizer.jobs")
    jobs.add(2, JOB)
    for i in range(3):  # series that need new pages
        usage.meter().create_counter(f"printernizer.local.c{i}").add(1, {"n": "x" * 2000})
    assert usage.flush() is True
    assert job_total(data_dir) == 0
    conn.execute("PRAGMA max_page_count = 1073741823")
    jobs.add(1, JOB)
    usage.shutdown()
    assert job_total(data_dir) == 3


def test_a_corrupt_database_is_set_aside_and_the_host_goes_on(data_dir: Path) -> None:
    """Not a database: moved aside under a dated name (its bytes kept for the user), logged
    once, and a fresh store started, so that statistics go on."""
    path = data_dir / "usage.sqlite3"
    garbage = b"this is not a database, but somebody's data may be in it" * 100
    path.write_bytes(garbage)
    with structlog.testing.capture_logs() as logs:
        usage = make(data_dir)
        usage.start()
        jobs = usage.meter().create_counter("printernizer.jobs")
        for _ in range(3):
            jobs.add(1, JOB)
            usage.flush()
        usage.shutdown()
    assert warnings_of(logs) == [(
        "the usage database was damaged: it was moved aside and a fresh one started",
        "store:set_aside")]
    (aside,) = data_dir.glob("usage.sqlite3.corrupt-*")
    assert aside.read_bytes() == garbage
    assert jobs_total(path) == 3


def test_a_truncated_database_keeps_its_bytes_and_the_host_goes_on(data_dir: Path) -> None:
    usage = make(data_dir)
    usage.meter().create_counter("printernizer.jobs").add(5, JOB)
    usage.shutdown()
    path = data_dir / "usage.sqlite3"
    whole = path.read_bytes()
    path.write_bytes(whole[: len(whole) // 3 + 100])
    truncated = path.read_bytes()
    usage = make(data_dir)
    usage.start()
    usage.meter().create_counter("printernizer.jobs").add(1, JOB)
    usage.flush()
    usage.meter().create_counter("printernizer.jobs").add(1, JOB)
    usage.flush()
    usage.shutdown()
    (aside,) = data_dir.glob("usage.sqlite3.corrupt-*")
    assert aside.read_bytes() == truncated
    assert jobs_total(path) >= 1


def jobs_total(path: Path) -> int:
    with sqlite3.connect(path) as conn:
        (total,) = conn.execute(
            "SELECT coalesce(sum(d.total), 0) FROM daily d JOIN series s ON s.id = d.series_id "
            "WHERE s.metric = 'printernizer.jobs'").fetchone()
    return int(total)


@contextmanager
def read_only(directory: Path) -> Iterator[None]:
    """Make `directory` read-only for this process: a read-only bind mount for root (who
    ignores file modes), the directory's mode bits for anyone else."""
    if os.geteuid() != 0:
        directory.chmod(0o555)
        try:
            yield
        finally:
            directory.chmod(0o755)
        return
    for command in (["mount", "--bind", directory, directory],
                    ["mount", "-o", "remount,ro,bind", directory]):
        done = subprocess.run(command, capture_output=True, text=True)
        if done.returncode != 0:
            subprocess.run(["umount", directory], capture_output=True)
            pytest.fail(f"cannot make {directory} read-only: {done.stderr.strip()}")
    try:
        yield
    finally:
        subprocess.run(["umount", directory], check=True)


@pytest.mark.parametrize("existing", [False, True], ids=["empty-dir", "existing-db"])
def test_a_read_only_data_directory_is_logged_once(data_dir: Path, existing: bool) -> None:
    if existing:
        usage = make(data_dir)
        usage.meter().create_counter("printernizer.jobs").add(2, JOB)
        usage.shutdown()
    before = {p.name: p.read_bytes() for p in data_dir.iterdir()}
    with read_only(data_dir), structlog.testing.capture_logs() as logs:
        usage = make(data_dir)
        usage.start()
        jobs = usage.meter().create_counter("printernizer.jobs")
        for _ in range(3):
            jobs.add(1, JOB)
            assert usage.flush() is True
        usage.shutdown()
    assert len(warnings_of(logs)) == 1, logs
    assert warnings_of(logs)[0][0] == "usage statistics cannot be saved"
    assert {p.name: p.read_bytes() for p in data_dir.iterdir()} == before


CHILD_WRITER = """
import math, sys
from otel_usage import UsageTelemetry
usage = UsageTelemetry(sys.argv[1], export_interval_s=math.inf)
jobs = usage.meter().create_counter("printernizer.jobs")
step = int(sys.argv[2])
for i in range(1, int(sys.argv[3]) + 1):
    jobs.add(step, {"job.status": "completed", "printer.type": "prusa_core"})
    usage.flush()
    print(i * step, flush=True)
usage.shutdown()
"""


def test_two_processes_writing_one_database_add_up(data_dir: Path) -> None:
    make(data_dir).start()  # create the schema once, as the host would have
    children = [
        subprocess.Popen([sys.executable, "-c", CHILD_WRITER, str(data_dir), str(step), "40"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for step in (1, 3)
    ]
    for child in children:
        _, err = child.communicate(timeout=120)
        assert child.returncode == 0, err
        assert "Traceback" not in err
    assert job_total(data_dir) == 40 * 1 + 40 * 3


def test_a_process_killed_mid_export_never_double_counts(now: datetime, data_dir: Path) -> None:
    step = 7
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD_WRITER, str(data_dir), str(step), "100000"],
        stdout=subprocess.PIPE, text=True)
    assert child.stdout is not None
    committed = 0
    deadline = time.monotonic() + 60
    while committed < 30 * step and time.monotonic() < deadline:
        committed = int(child.stdout.readline())
    os.kill(child.pid, signal.SIGKILL)
    rest = child.stdout.read().split()
    child.stdout.close()
    child.wait()
    if rest:
        committed = int(rest[-1])
    total = job_total(data_dir)
    # The last printed total was committed; at most the one export in flight may have
    # committed without being printed. Nothing is ever counted twice.
    assert total in (committed, committed + step)
    with sqlite3.connect(data_dir / "usage.sqlite3") as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
