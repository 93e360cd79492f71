"""The global MeterProvider is set once per process; each start re-binds it to the live one.

Printernizer makes its instruments at import and runs its app's lifespan more than once in one
process (each `with TestClient(app)` test): every lifespan's counts must land in that
lifespan's store, never in an earlier, shut-down one.
"""

from __future__ import annotations

import gc
import math
import sqlite3
import subprocess
import sys
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path

from opentelemetry import metrics
from opentelemetry.metrics import CallbackOptions, Observation

from otel_usage import ManualClock, UsageTelemetry
from otel_usage.record.rebind import GLOBAL

START = datetime(2026, 11, 25, 9, 30, tzinfo=UTC)
JOB = {"job.status": "completed", "printer.type": "bambu_lab"}


def make(data_dir: Path) -> UsageTelemetry:
    return UsageTelemetry(data_dir, export_interval_s=math.inf, clock=ManualClock(START),
                          set_global=True)


def totals(data_dir: Path, metric: str) -> list[tuple[str, float]]:
    with sqlite3.connect(data_dir / "usage.sqlite3") as conn:
        return conn.execute(
            "SELECT s.attributes, coalesce(d.total, d.last) FROM daily d "
            "JOIN series s ON s.id = d.series_id WHERE s.metric = ? ORDER BY 1",
            (metric,)).fetchall()


def test_a_second_lifespan_counts_into_its_own_provider(tmp_path: Path) -> None:
    """An instrument made before any start (as Printernizer's modules do at import) counts
    into whichever UsageTelemetry started last, and nowhere between two lifespans."""
    jobs = metrics.get_meter("printernizer").create_counter("printernizer.jobs", unit="{job}")
    first, second = make(tmp_path / "first"), make(tmp_path / "second")
    first.start()
    jobs.add(2, JOB)
    first.shutdown()
    jobs.add(100, JOB)  # between the lifespans: no provider is live
    second.start()
    jobs.add(3, JOB)
    later = metrics.get_meter("printernizer").create_counter("printernizer.jobs")
    later.add(4, JOB)
    second.shutdown()
    attributes = '{"job.status":"completed","printer.type":"bambu_lab"}'
    assert totals(tmp_path / "first", "printernizer.jobs") == [(attributes, 2)]
    assert totals(tmp_path / "second", "printernizer.jobs") == [(attributes, 7)]


def test_the_same_telemetry_started_again_begins_a_new_lifespan(tmp_path: Path) -> None:
    """An app made once at import runs its lifespan twice (two `with TestClient(app)` tests):
    the one UsageTelemetry it holds starts a new provider the second time."""
    jobs = metrics.get_meter("printernizer").create_counter("printernizer.jobs", unit="{job}")
    usage = make(tmp_path)
    first = usage.start()
    jobs.add(2, JOB)
    usage.shutdown()
    jobs.add(100, JOB)  # between the lifespans: counted nowhere
    usage.flush()  # and a late call does not start one
    assert usage.meter_provider is first
    second = usage.start()
    jobs.add(3, JOB)
    usage.shutdown()
    assert second is not first
    assert totals(tmp_path, "printernizer.jobs") == [
        ('{"job.status":"completed","printer.type":"bambu_lab"}', 5)]


def test_observable_instruments_move_to_the_live_provider(tmp_path: Path) -> None:
    """A gauge made once, with no reference kept, keeps observing in every lifespan."""
    observing = True

    def printers(options: CallbackOptions) -> Iterable[Observation]:
        return [Observation(2, {"printer.type": "prusa_core"})] if observing else []

    metrics.get_meter("printernizer").create_observable_gauge(
        "printernizer.printers", [printers], unit="{printer}")
    gc.collect()
    try:
        for name in ("first", "second"):
            usage = make(tmp_path / name)
            usage.start()
            usage.shutdown()
            assert totals(tmp_path / name, "printernizer.printers") == [
                ('{"printer.type":"prusa_core"}', 2)]
    finally:  # it observes for the rest of the process, as the host's would: nothing from now
        observing = False


def test_the_global_provider_is_set_once_and_stays_the_forwarding_one(tmp_path: Path) -> None:
    for name in ("first", "second"):
        usage = make(tmp_path / name)
        usage.start()
        assert metrics.get_meter_provider() is GLOBAL
        assert GLOBAL.target is usage.meter_provider
        usage.shutdown()
        assert GLOBAL.target is None


FOREIGN_FIRST = """
import math, sys
from opentelemetry import metrics
from opentelemetry.sdk.metrics import MeterProvider
from otel_usage import UsageTelemetry
from otel_usage.record.rebind import GLOBAL
theirs = MeterProvider()
metrics.set_meter_provider(theirs)
usage = UsageTelemetry(sys.argv[1], export_interval_s=math.inf, set_global=True)
usage.start()
usage.meter().create_counter("printernizer.jobs").add(1, {"job.status": "created"})
print(metrics.get_meter_provider() is theirs, GLOBAL.target is None)
usage.shutdown()
"""


def test_a_provider_set_by_someone_else_first_is_left_alone(tmp_path: Path) -> None:
    """(In a process of its own: the global can be set once.) Only instruments made from
    UsageTelemetry.meter() are recorded then, and the log says so."""
    done = subprocess.run([sys.executable, "-c", FOREIGN_FIRST, str(tmp_path)],
                          capture_output=True, text=True, timeout=60)
    *logged, printed = done.stdout.splitlines()
    assert (done.returncode, printed) == (0, "True True")
    assert "a global MeterProvider was already set" in "\n".join(logged) + done.stderr
    assert totals(tmp_path, "printernizer.jobs") == [('{"job.status":"created"}', 1)]


def test_an_instrument_the_host_drops_is_forgotten() -> None:
    before = len(GLOBAL)
    counters = [GLOBAL.get_meter("m").create_counter(f"c{i}") for i in range(50)]
    assert len(GLOBAL) == before + 50
    del counters
    gc.collect()
    assert len(GLOBAL) == before
