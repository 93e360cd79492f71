"""Measures the client's budgets in one run and prints them; the last line is one JSON object.

    python benchmarks/client.py [--quick | --tiny] [--memory]

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
- idle_cpu_s_per_day, busy_cpu_s_per_day: CPU seconds a day of the reader's export cycles (one
  a minute), idle and with a busy farm's counts every minute; measured per cycle on an injected
  clock and multiplied by 1,440 cycles (`cpu_per_day`); the bare SDK's beside them.
- host_rss_over_bare_sdk_mb: a FastAPI host that keeps its data in SQLite, as Printernizer
  does, with otel-usage started and its privacy page mounted, minus the same host with a bare
  OTel SDK (one periodic reader, an exporter that does nothing); resident memory after start,
  20 requests and one export, in fresh processes. Target <= 1.0 (MiB). CPython keeps one table
  of interned strings (the names of every module's code); it doubles when it is two-thirds
  full, a step of 0.5-0.8 MiB in this host that whichever import crosses the mark pays. Where
  the mark falls depends on how many strings the host has interned, which no library chooses:
  so each run's processes first intern a number of placeholder strings (the same in every
  variant of the run), spread evenly over one doubling of the table across the runs, and the
  figure is the mean over the runs of the difference, the cost expected in a host whose count
  is arbitrary (Printernizer's). The 31 runs are about 705 strings apart, about as many as
  otel-usage's start interns, so the step falls in about the share of runs it would fall in
  for hosts spread over the doubling (one in 31); fewer runs weigh it more (--quick's 7 give
  it a weight of 1/7, --tiny's one run is the host without placeholders). The run without
  placeholders, this host as it is, is reported beside it (`..._unpadded`), and each run's
  (`..._by_run`). The same in a host without SQLite
  (`..._host_without_sqlite`: the SQLite library is then ours too), the private part (RssAnon),
  the same once glibc's malloc_trim has returned the free memory the allocator keeps
  (`host_trimmed_...`: what the processes hold alive), and the modules we add to the host.
  Every module's bytecode is cached first (each variant runs once uncounted), as an installed
  app has it. `--memory` measures the host's memory alone (the `host_*` figures).
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
from opentelemetry.sdk.metrics.export import (
    InMemoryMetricReader,
    MetricExporter,
    MetricExportResult,
    MetricsData,
    PeriodicExportingMetricReader,
)

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


# A FastAPI host in its own process: bare, with the bare OTel SDK (one periodic reader, an
# exporter that does nothing), with otel-usage started, or with otel-usage and its privacy page.
# Like Printernizer, the host keeps its own data in SQLite (argv[2] "db"): Python's sqlite3 and
# the SQLite library are then the host's, not ours ("nodb": a host without them). It starts
# through its lifespan, answers a few requests (each counts a job and, with "db", reads the
# host's table), exports once (what a start puts off to its first export is counted too) and
# prints its resident memory in KiB (VmRSS, RssAnon: private, RssFile: mapped files such as
# shared libraries), the same once glibc's malloc_trim has returned free memory, and the modules
# it has imported.
HOST = """
import sys
placeholders = [sys.intern(f"otel_usage_benchmark_{i}") for i in range(int(sys.argv[4]))]
import asyncio, gc, json, tempfile
from contextlib import asynccontextmanager
from fastapi import FastAPI
from opentelemetry import metrics

variant, host_db, data_dir = sys.argv[1:4]
flushes = []
if host_db == "db":
    import sqlite3
    db = sqlite3.connect(data_dir + "/host.db", check_same_thread=False)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("CREATE TABLE printers (id INTEGER PRIMARY KEY, name TEXT)")
    db.execute("INSERT INTO printers (name) VALUES ('bambu')")
    db.commit()

def bare_sdk():
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import (
        MetricExporter, MetricExportResult, PeriodicExportingMetricReader)

    class Nothing(MetricExporter):
        def export(self, metrics_data, timeout_millis=10_000, **kwargs):
            return MetricExportResult.SUCCESS
        def force_flush(self, timeout_millis=10_000):
            return True
        def shutdown(self, timeout_millis=30_000, **kwargs):
            pass

    provider = MeterProvider(metric_readers=[
        PeriodicExportingMetricReader(Nothing(), export_interval_millis=60_000)])
    metrics.set_meter_provider(provider)
    return provider

@asynccontextmanager
async def lifespan(app):
    if variant == "bare_sdk":
        provider = bare_sdk()
        flushes.append(provider.force_flush)
        yield
        provider.shutdown()
    elif variant in ("client", "client_page"):
        await app.state.usage.astart()
        flushes.append(app.state.usage.flush)
        yield
        await app.state.usage.ashutdown()
    else:
        yield

app = FastAPI(lifespan=lifespan)
if variant in ("client", "client_page"):
    from otel_usage import UsageTelemetry
    app.state.usage = UsageTelemetry(data_dir + "/usage", set_global=True)
    if variant == "client_page":
        from otel_usage.web import privacy_router
        app.include_router(privacy_router(app.state.usage, prefix="/usage"))
jobs = metrics.get_meter("printernizer").create_counter("printernizer.jobs")

@app.get("/api/v1/printers")
async def printers():
    jobs.add(1, {"job.status": "completed", "printer.type": "bambu_lab"})
    rows = db.execute("SELECT id, name FROM printers").fetchall() if host_db == "db" else []
    return {"printers": [{"id": i, "name": n} for i, n in rows]}

def kib():
    status = dict(line.split(":", 1) for line in open("/proc/self/status"))
    return {key: int(status[key].split()[0]) for key in ("VmRSS", "RssAnon", "RssFile")}

async def request(path):
    sent = []
    async def receive():
        return {"type": "http.request", "body": b"", "more_body": False}
    async def send(message):
        sent.append(message)
    await app({"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
               "method": "GET", "scheme": "http", "path": path, "raw_path": path.encode(),
               "query_string": b"", "root_path": "", "headers": [(b"host", b"localhost")],
               "client": ("127.0.0.1", 50000), "server": ("127.0.0.1", 8000)}, receive, send)
    assert sent[0]["status"] == 200, sent

async def main():
    inbox, outbox = asyncio.Queue(), asyncio.Queue()
    await inbox.put({"type": "lifespan.startup"})
    life = asyncio.create_task(app({"type": "lifespan", "asgi": {"version": "3.0"}, "state": {}},
                                   inbox.get, outbox.put))
    assert (await outbox.get())["type"] == "lifespan.startup.complete"
    for _ in range(20):
        await request("/api/v1/printers")
    for flush in flushes:
        flush()
    gc.collect()
    memory = kib()
    # Then what it holds once the allocator has returned its free memory (glibc's malloc_trim):
    # RSS alone also counts what the allocator happens to keep after the imports' churn.
    import ctypes
    ctypes.CDLL("libc.so.6").malloc_trim(0)
    memory |= {f"{key}_trimmed": value for key, value in kib().items()}
    print(json.dumps(memory | {"modules": sorted(sys.modules)}))
    await inbox.put({"type": "lifespan.shutdown"})
    assert (await outbox.get())["type"] == "lifespan.shutdown.complete"
    await life

asyncio.run(main())
"""
HOST_VARIANTS = ("bare", "bare_sdk", "client", "client_page")


# Placeholder strings interned before the host starts, spread over the runs: from none to just
# under one doubling of CPython's interned-string table in this host (it holds just under
# 21,845 strings, where the table of 2**15 slots doubles, then at 43,690: one period, so that
# one run's client crosses a mark that its bare SDK does not, and only one).
PLACEHOLDER_SPAN = 21_845
# Runs of the full measure: PLACEHOLDER_SPAN / 31 is about 705 strings between two runs, about
# as many as otel-usage's start interns (so the step's weight is about its expectation).
HOST_RUNS = 31


def host_memory(runs: int, host_db: str = "db") -> dict[str, Any]:
    """Each variant of the host in fresh processes, interleaved, once per run with that run's
    placeholder strings; the differences over the bare SDK in MiB, averaged over the runs."""
    pads = [run * PLACEHOLDER_SPAN // runs for run in range(runs)]
    samples: dict[str, list[dict[str, Any]]] = {v: [] for v in HOST_VARIANTS}
    # A first run of each variant, not counted, leaves every module's bytecode cached, as an
    # installed app has it: compiling a module from source churns memory that the modules
    # imported after it then reuse, and the comparison would depend on what was compiled.
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    for pad in [0, *pads]:
        for variant in HOST_VARIANTS:
            with tempfile.TemporaryDirectory() as tmp:
                out = subprocess.run([sys.executable, "-c", HOST, variant, host_db, tmp,
                                      str(pad)], capture_output=True, text=True, check=True,
                                     env=env)
            samples[variant].append(json.loads(out.stdout.splitlines()[-1]))
    samples = {v: s[1:] for v, s in samples.items()}  # the uncounted first run

    def over(variant: str, key: str) -> list[float]:
        return [(a[key] - b[key]) / 1024 for a, b in zip(samples[variant], samples["bare_sdk"],
                                                         strict=True)]

    def mean_over(variant: str, key: str) -> float:
        return round(statistics.fmean(over(variant, key)), 2)

    modules = {v: set(samples[v][0]["modules"]) for v in HOST_VARIANTS}
    return {
        # The host as it is (no placeholders): each variant's own resident memory.
        "rss_mb": {v: round(samples[v][0]["VmRSS"] / 1024, 2) for v in HOST_VARIANTS},
        "trimmed_mb": {v: round(samples[v][0]["VmRSS_trimmed"] / 1024, 2)
                       for v in HOST_VARIANTS},
        "page_over": mean_over("client_page", "VmRSS"),
        "page_over_by_run": [round(d, 2) for d in over("client_page", "VmRSS")],
        "started_over": mean_over("client", "VmRSS"),
        "private_over": mean_over("client_page", "RssAnon"),
        "trimmed_over": mean_over("client_page", "VmRSS_trimmed"),
        "modules_over_bare_sdk": sorted(modules["client_page"] - modules["bare_sdk"]),
    }


def host_overhead(runs: int) -> dict[str, Any]:
    """The host comparison, in a host with its own SQLite database (as Printernizer) and in
    one without (then the SQLite library is ours too)."""
    figures: dict[str, Any] = {}
    for host_db, suffix in (("db", ""), ("nodb", "_host_without_sqlite")):
        host = host_memory(runs, host_db)
        figures[f"host_rss_mb{suffix}"] = host["rss_mb"]
        figures[f"host_rss_over_bare_sdk_mb{suffix}"] = host["page_over"]
        figures[f"host_rss_over_bare_sdk_mb_by_run{suffix}"] = host["page_over_by_run"]
        figures[f"host_rss_over_bare_sdk_mb_unpadded{suffix}"] = host["page_over_by_run"][0]
        figures[f"host_started_rss_over_bare_sdk_mb{suffix}"] = host["started_over"]
        figures[f"host_private_over_bare_sdk_mb{suffix}"] = host["private_over"]
        figures[f"host_trimmed_rss_mb{suffix}"] = host["trimmed_mb"]
        figures[f"host_trimmed_over_bare_sdk_mb{suffix}"] = host["trimmed_over"]
        figures[f"host_modules_over_bare_sdk{suffix}"] = host["modules_over_bare_sdk"]
        print(f"FastAPI host{' without SQLite' if suffix else ' with SQLite'} (MiB): "
              + ", ".join(f"{v} {mb}" for v, mb in host["rss_mb"].items())
              + f"; otel-usage with its page over the bare SDK: {host['page_over']} MiB "
              f"(each run: {', '.join(map(str, host['page_over_by_run']))}; the first without "
              f"placeholder strings), after malloc_trim {host['trimmed_over']} MiB")
    return figures


CYCLES_PER_DAY = 24 * 60  # the reader's default interval: one export a minute


class _NoExport(MetricExporter):
    """The bare SDK's exporter: takes the batch and does nothing with it."""

    def export(self, metrics_data: MetricsData, timeout_millis: float = 10_000,
               **kwargs: Any) -> MetricExportResult:
        return MetricExportResult.SUCCESS

    def force_flush(self, timeout_millis: float = 10_000) -> bool:
        return True

    def shutdown(self, timeout_millis: float = 30_000, **kwargs: Any) -> None:
        pass


def _busy_minute(meter: Any) -> Callable[[int], None]:
    """What a busy printer farm counts in one minute: a job's three stages, a download, an
    upload, a feature used, a connection event and an error, on a printer type that changes."""
    jobs = meter.create_counter("printernizer.jobs")
    downloads = meter.create_counter("printernizer.file.downloads")
    uploads = meter.create_counter("printernizer.file.uploads")
    uses = meter.create_counter("printernizer.feature.uses")
    connections = meter.create_counter("printernizer.printer.connections")
    errors = meter.create_counter("printernizer.errors")
    types = list(PRINTERS)

    def count(minute: int) -> None:
        kind = types[minute % len(types)]
        for status in ("created", "started", "completed"):
            jobs.add(1, {"job.status": status, "printer.type": kind})
        downloads.add(1, {"printer.type": kind})
        uploads.add(1, {"printer.type": kind})
        uses.add(1, {"feature.name": FEATURES[minute % len(FEATURES)]})
        connections.add(1, {"printer.type": kind, "connection.event": "connected"})
        errors.add(1, {"error.category": "network", "error.type": "connection_timeout"})

    return count


def cpu_per_day(cycles: int, *, busy: bool, bare: bool = False) -> float:
    """CPU seconds a day of the export cycles the reader's thread runs once a minute.

    Each cycle (collect, then export into the store) runs here through `flush`, the same work
    the reader's thread does each interval, with an injected clock moved a minute per cycle;
    `time.thread_time` counts this thread's CPU of the cycle alone (not what the host spends in
    `counter.add` between cycles). The mean of `cycles` cycles times 1,440 cycles a day.
    In mode local (the default) the sender's thread does not run; in mode on it wakes once a
    week. `bare`: the same cycles on a bare SDK MeterProvider with an exporter that does nothing.
    """
    clock = ManualClock(FIRST_DAY)
    with tempfile.TemporaryDirectory() as tmp:
        if bare:
            reader = PeriodicExportingMetricReader(_NoExport(), export_interval_millis=math.inf)
            provider = MeterProvider(metric_readers=[reader])
            meter, flush, stop = provider.get_meter("printernizer"), provider.force_flush, \
                provider.shutdown
        else:
            usage = UsageTelemetry(tmp, export_interval_s=math.inf, clock=clock,
                                   service_version="2.7.0")
            usage.observe_printers(lambda: PRINTERS)
            usage.observe_features(lambda: {f: True for f in FEATURES})
            meter, flush, stop = usage.meter(), usage.flush, usage.shutdown
        count = _busy_minute(meter)
        spent = 0.0
        for minute in range(cycles):
            if busy:
                count(minute)
            clock.advance(timedelta(minutes=1))
            start = time.thread_time()
            flush()
            spent += time.thread_time() - start
        stop()
    return spent / cycles * CYCLES_PER_DAY


def cpu_days(cycles: int) -> dict[str, float]:
    figures = {"idle_cpu_s_per_day": cpu_per_day(cycles, busy=False),
               "busy_cpu_s_per_day": cpu_per_day(cycles, busy=True),
               "bare_sdk_idle_cpu_s_per_day": cpu_per_day(cycles, busy=False, bare=True),
               "bare_sdk_busy_cpu_s_per_day": cpu_per_day(cycles, busy=True, bare=True)}
    rounded = {key: round(value, 3) for key, value in figures.items()}
    print(f"CPU of the export cycles ({cycles} cycles of a minute, times {CYCLES_PER_DAY} a day): "
          f"idle {rounded['idle_cpu_s_per_day']} s/day, busy {rounded['busy_cpu_s_per_day']} "
          f"s/day; the bare SDK: idle {rounded['bare_sdk_idle_cpu_s_per_day']}, busy "
          f"{rounded['bare_sdk_busy_cpu_s_per_day']} s/day")
    return rounded


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer rounds and days")
    parser.add_argument("--tiny", action="store_true",
                        help="the smallest run that still reports every figure (a test's)")
    parser.add_argument("--memory", action="store_true",
                        help="only what the client costs its host's memory (the host_* figures)")
    args = parser.parse_args()
    quick, tiny = args.quick or args.tiny, args.tiny
    result: dict[str, Any] = {}
    if args.memory:
        result.update(host_overhead(runs=1 if tiny else 7 if quick else HOST_RUNS))
        print(json.dumps(result))
        return
    result.update(add_ratio(rounds=3 if tiny else 9 if quick else 31,
                            calls=500 if tiny else 5_000 if quick else 20_000))
    print(f"counter.add: ours {result['add_ns']} ns, bare SDK {result['bare_add_ns']} ns")
    insert_ns = asyncio.run(per_event_insert_ns(20 if tiny else 200 if quick else 1000))
    result["per_event_insert_ns"] = round(insert_ns, 1)
    result["speedup_vs_per_event_sqlite"] = round(insert_ns / result["add_ns"], 1)
    print(f"per-event aiosqlite insert+commit: {insert_ns / 1000:.1f} µs")
    result["export_ms_500_series"] = export_ms(500, runs=1 if tiny else 5 if quick else 15)
    print(f"export of 500 series: {result['export_ms_500_series']} ms")
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        days = 14 if tiny else 60 if quick else 365
        result["year_db_bytes"] = heavy_user_year(Path(tmp), days=days)
        print(f"simulated {days} days in {time.perf_counter() - start:.1f} s:"
              f" {result['year_db_bytes']} bytes")
        result.update(_weekly_report(Path(tmp), FIRST_DAY + timedelta(days=days - 1),
                                     runs=3 if tiny else 25))
    result.update(startup_cost(runs=1 if tiny else 3 if quick else 7))
    print(f"import and start: {result['import_ms']} ms, +{result['rss_mb_delta']} MB RSS")
    result.update(cpu_days(cycles=30 if tiny else 240 if quick else CYCLES_PER_DAY))
    result.update(host_overhead(runs=1 if tiny else 7 if quick else HOST_RUNS))
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
