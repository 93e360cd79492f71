"""Measures the client's budgets in one run and prints them; the last line is one JSON object.

    python benchmarks/client.py [--quick]

Ratios compare against baselines measured in the same run (these machines are noisy):
- add_ratio_vs_bare_otel: median `counter.add` (two attributes) through our provider, divided
  by the same call on a bare OTel SDK MeterProvider with one reader. Target <= 1.15.
- speedup_vs_per_event_sqlite: one aiosqlite INSERT + commit per event (how Printernizer
  records usage today) divided by our `counter.add`. Target >= 50.
- export_ms_500_series: one export of 500 distinct series. Target <= 20.
- year_db_bytes: database size after a simulated year of a heavy user. Target <= 1,000,000.
- import_ms, rss_mb_delta: importing and starting the client in mode local, over a bare
  interpreter; the OTLP exporter must stay unimported. Targets <= 150 ms, <= 15 MB.
- weekly_report_ms: building and scrubbing one week's report from the year's store. Target <= 50.
- report_gzip_bytes: that report's size on the wire (gzipped protobuf). Target <= 4,096.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

from otel_usage import ManualClock, UsageTelemetry
from otel_usage.catalog import load_catalog
from otel_usage.clock import default_clock
from otel_usage.testing import week_report
from otel_usage.weeks import Week

CLOCK = default_clock()  # the one clock hook

ATTRS = {"job.status": "completed", "printer.type": "bambu_lab"}


def per_call_ns(fn: Callable[[], None], calls: int) -> float:
    start = time.perf_counter_ns()
    for _ in range(calls):
        fn()
    return (time.perf_counter_ns() - start) / calls


def add_ratio(rounds: int, calls: int) -> dict[str, float]:
    """Interleaved rounds of our counter.add and a bare SDK's, medians compared."""
    with tempfile.TemporaryDirectory() as tmp:
        usage = UsageTelemetry(tmp, export_interval_s=math.inf)
        ours = usage.meter().create_counter("printernizer.jobs")
        bare_provider = MeterProvider(metric_readers=[InMemoryMetricReader()])
        bare = bare_provider.get_meter("printernizer").create_counter("printernizer.jobs")
        ours_ns, bare_ns = [], []
        for _ in range(rounds):
            ours_ns.append(per_call_ns(lambda: ours.add(1, ATTRS), calls))
            bare_ns.append(per_call_ns(lambda: bare.add(1, ATTRS), calls))
        usage.shutdown()
        bare_provider.shutdown()
    ours_median, bare_median = statistics.median(ours_ns), statistics.median(bare_ns)
    return {"add_ns": round(ours_median, 1), "bare_add_ns": round(bare_median, 1),
            "add_ratio_vs_bare_otel": round(ours_median / bare_median, 3)}


async def per_event_insert_ns(events: int) -> float:
    """One row per event, INSERT + commit, as Printernizer's usage_events table does today."""
    import aiosqlite

    with tempfile.TemporaryDirectory() as tmp:
        async with aiosqlite.connect(Path(tmp) / "events.db") as db:
            await db.execute("PRAGMA journal_mode=WAL")
            await db.execute(
                "CREATE TABLE usage_events (id INTEGER PRIMARY KEY, event_type TEXT, "
                "timestamp TEXT, metadata TEXT, submitted INTEGER DEFAULT 0)")
            await db.commit()
            start = time.perf_counter_ns()
            for _ in range(events):
                await db.execute(
                    "INSERT INTO usage_events (event_type, timestamp, metadata) VALUES (?, ?, ?)",
                    ("job_completed", CLOCK.now().isoformat(), json.dumps(ATTRS)))
                await db.commit()
            return (time.perf_counter_ns() - start) / events


def export_ms(series: int, runs: int) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        usage = UsageTelemetry(tmp, export_interval_s=math.inf)
        counter = usage.meter().create_counter("printernizer.local.series")
        times = []
        for run in range(runs + 1):
            for i in range(series):
                counter.add(1, {"n": str(i)})
            start = time.perf_counter()
            usage.flush()
            if run:  # the first export also creates the series rows: steady state is what recurs
                times.append((time.perf_counter() - start) * 1000)
        usage.shutdown()
    return round(statistics.median(times), 2)


PRINTERS = {"bambu_lab": 5, "prusa_core": 3, "octoprint": 2}
FEATURES = ("library", "library_search", "timelapse", "auto_job_creation", "german_business",
            "watch_folders")


FIRST_DAY = datetime(2025, 11, 24, tzinfo=UTC)


def heavy_user_year(data_dir: Path, days: int = 365, exports_per_day: int = 4) -> int:
    """A year of a heavy user: 10 printers, 100 jobs a day, 30 error types, every feature,
    the app restarted daily. Returns the database size in bytes."""
    error_types = (load_catalog().metrics["printernizer.errors"]
                   .attributes["error.type"].values or ())[:30]
    clock = ManualClock(FIRST_DAY + timedelta(hours=6))
    types = list(PRINTERS)
    for day in range(days):
        usage = UsageTelemetry(data_dir, export_interval_s=math.inf, clock=clock,
                               service_version="2.7.0")
        usage.observe_printers(lambda: PRINTERS)
        usage.observe_features(lambda: {f: True for f in FEATURES})
        meter = usage.meter()
        jobs = meter.create_counter("printernizer.jobs")
        downloads = meter.create_counter("printernizer.file.downloads")
        uploads = meter.create_counter("printernizer.file.uploads")
        connections = meter.create_counter("printernizer.printer.connections")
        uses = meter.create_counter("printernizer.feature.uses")
        errors = meter.create_counter("printernizer.errors")
        for part in range(exports_per_day):
            for job in range(100 // exports_per_day):
                kind = types[(job + day) % len(types)]
                jobs.add(1, {"job.status": "created", "printer.type": kind})
                jobs.add(1, {"job.status": "started", "printer.type": kind})
                status = ("failed" if job % 13 == 0 else
                          "cancelled" if job % 31 == 0 else "completed")
                jobs.add(1, {"job.status": status, "printer.type": kind})
                downloads.add(1, {"printer.type": kind})
                uploads.add(1, {"printer.type": kind})
                uses.add(1, {"feature.name": FEATURES[job % len(FEATURES)]})
            for kind in types:
                connections.add(1, {"printer.type": kind, "connection.event": "connected"})
                connections.add(1, {"printer.type": kind, "connection.event": "disconnected"})
            for i, error_type in enumerate(error_types):
                errors.add(1 + (i + part) % 3,
                           {"error.category": "printer", "error.type": error_type})
            clock.advance(timedelta(hours=3))
            usage.flush()
        usage.shutdown()
        clock.advance(timedelta(hours=24 - 3 * exports_per_day))
    path = data_dir / "usage.sqlite3"
    return path.stat().st_size + _size(data_dir / "usage.sqlite3-wal")


def _size(path: Path) -> int:
    return path.stat().st_size if path.exists() else 0


# The peak RSS of this process image (VmHWM: unlike ru_maxrss, not inherited from the parent).
STARTUP = """
import sys, tempfile, time
start = time.perf_counter()
if sys.argv[1] == "client":
    from otel_usage import UsageTelemetry
    usage = UsageTelemetry(tempfile.mkdtemp(), export_interval_s=60)
    usage.start()
    usage.meter().create_counter("printernizer.jobs").add(1, {"job.status": "created"})
elapsed = (time.perf_counter() - start) * 1000
otlp = any(m.startswith("opentelemetry.exporter.otlp") for m in sys.modules)
hwm = [l.split()[1] for l in open("/proc/self/status") if l.startswith("VmHWM")][0]
print(elapsed, hwm, otlp)
"""


def startup_cost(runs: int) -> dict[str, Any]:
    def sample(kind: str) -> tuple[float, float, bool]:
        out = subprocess.run([sys.executable, "-c", STARTUP, kind], capture_output=True,
                             text=True, check=True,
                             env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"})
        ms, rss_kb, otlp = out.stdout.split()
        return float(ms), float(rss_kb), otlp == "True"

    bare = [sample("bare") for _ in range(runs)]
    client = [sample("client") for _ in range(runs)]
    return {
        "import_ms": round(statistics.median(c[0] for c in client), 1),
        "rss_mb_delta": round((statistics.median(c[1] for c in client)
                               - statistics.median(b[1] for b in bare)) / 1024, 1),
        "otlp_exporter_imported": any(c[2] for c in client),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer rounds and days")
    args = parser.parse_args()
    quick = args.quick
    result: dict[str, Any] = {}
    result.update(add_ratio(rounds=9 if quick else 31, calls=5_000 if quick else 20_000))
    print(f"counter.add: ours {result['add_ns']} ns, bare SDK {result['bare_add_ns']} ns")
    insert_ns = asyncio.run(per_event_insert_ns(200 if quick else 1000))
    result["per_event_insert_ns"] = round(insert_ns, 1)
    result["speedup_vs_per_event_sqlite"] = round(insert_ns / result["add_ns"], 1)
    print(f"per-event aiosqlite insert+commit: {insert_ns / 1000:.1f} µs")
    result["export_ms_500_series"] = export_ms(500, runs=5 if quick else 15)
    print(f"export of 500 series: {result['export_ms_500_series']} ms")
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        days = 60 if quick else 365
        result["year_db_bytes"] = heavy_user_year(Path(tmp), days=days)
        span = "60 days" if quick else "a year"
        print(f"simulated {span} in {time.perf_counter() - start:.1f} s:"
              f" {result['year_db_bytes']} bytes")
        result.update(_weekly_report(Path(tmp), FIRST_DAY + timedelta(days=days - 1)))
    result.update(startup_cost(runs=3 if quick else 7))
    print(f"import and start: {result['import_ms']} ms, +{result['rss_mb_delta']} MB RSS")
    print(json.dumps(result))


def _weekly_report(year_dir: Path, last_day: datetime, runs: int = 25) -> dict[str, Any]:
    """weekly_report_ms: build and scrub the year's last full week (median of `runs`);
    report_gzip_bytes: that report's size on the wire."""
    usage = UsageTelemetry(year_dir, service_version="2.7.0", background_uploads=False)
    week = Week.of(last_day).previous()
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        report = week_report(usage, week)
        times.append((time.perf_counter() - start) * 1000)
    usage.shutdown()
    print(f"weekly report of {week.label}: {statistics.median(times):.2f} ms, "
          f"{report.points} points, {len(report.body)} bytes gzip")
    return {"weekly_report_ms": round(statistics.median(times), 2),
            "report_gzip_bytes": len(report.body)}


if __name__ == "__main__":
    main()
