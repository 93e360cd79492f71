"""Measures Printernizer's switch-over and prints the figures; the last line is one JSON object.

    python benchmarks/printernizer.py [--events N]

- migration_s: migrating a Printernizer database whose old ``usage_events`` holds N events
  (a year of a heavy user by default: 100,000) into the local store, once, at start.
- migrated_rows: the per-day rows they became; store_bytes: the local store's size after
  (its file and write-ahead log).
- record_event_us: median ``await service.record_event("job_completed", {...})`` (the old call,
  now a counter add), and counter_add_us: the same count with ``counter.add`` directly.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import sqlite3
import statistics
import tempfile
import time
import uuid
from datetime import timedelta
from pathlib import Path

from otel_usage import ManualClock, UsageTelemetry
from otel_usage.clock import default_clock
from otel_usage.printernizer import UsageStatisticsService, migrate_printernizer_database

TABLES = """
CREATE TABLE usage_events (id TEXT PRIMARY KEY, event_type TEXT NOT NULL,
    timestamp DATETIME NOT NULL, metadata TEXT, submitted BOOLEAN DEFAULT 0,
    created_at DATETIME DEFAULT CURRENT_TIMESTAMP);
CREATE TABLE usage_settings (key TEXT PRIMARY KEY, value TEXT NOT NULL,
    updated_at DATETIME DEFAULT CURRENT_TIMESTAMP);
"""
KINDS = [("job_created", "bambu_lab"), ("job_completed", "bambu_lab"),
         ("job_failed", "prusa_core"), ("file_downloaded", "bambu_lab"),
         ("printer_connected", "octoprint"), ("app_start", None)]


def old_database(path: Path, events: int) -> None:
    now = default_clock().now().replace(tzinfo=None)
    with sqlite3.connect(path) as conn:
        conn.executescript(TABLES)
        conn.execute("INSERT INTO usage_settings VALUES ('opt_in_status', 'enabled', ?)",
                     (str(now - timedelta(days=400)),))
        rows = []
        for i in range(events):
            kind, printer = KINDS[i % len(KINDS)]
            when = now - timedelta(minutes=i * 365 * 24 * 60 // events)
            meta = {"printer_type": printer, "duration_seconds": 60} if printer else {}
            rows.append((str(uuid.uuid4()), kind, str(when), json.dumps(meta)))
        conn.executemany("INSERT INTO usage_events (id, event_type, timestamp, metadata) "
                         "VALUES (?, ?, ?, ?)", rows)


async def record_costs(usage: UsageTelemetry, rounds: int) -> tuple[float, float]:
    service = UsageStatisticsService(usage)
    await service.initialize()
    counter = usage.meter("printernizer").create_counter("printernizer.jobs", unit="{job}")
    metadata = {"printer_type": "bambu_lab", "duration_seconds": 3600}
    attributes = {"job.status": "completed", "printer.type": "bambu_lab"}
    events, adds = [], []
    for _ in range(rounds):
        start = time.perf_counter()
        await service.record_event("job_completed", metadata)
        events.append(time.perf_counter() - start)
        start = time.perf_counter()
        counter.add(1, attributes)
        adds.append(time.perf_counter() - start)
    await usage.ashutdown()
    return statistics.median(events) * 1e6, statistics.median(adds) * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=100_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "printernizer.db"
        old_database(db, args.events)
        usage = UsageTelemetry(Path(tmp) / "usage", export_interval_s=math.inf,
                               clock=ManualClock(default_clock().now()))
        start = time.perf_counter()
        result = migrate_printernizer_database(db, usage)
        migration_s = time.perf_counter() - start
        exported = asyncio.run(usage.export_json())
        rows = sum(len(s["days"]) for s in exported["series"])
        # The database file and its write-ahead log, as they stand on disk.
        store_bytes = sum(p.stat().st_size for p in (Path(tmp) / "usage").glob("usage.sqlite3*"))
        record_us, add_us = asyncio.run(record_costs(
            UsageTelemetry(Path(tmp) / "usage2", export_interval_s=math.inf), 20_000))
    figures = {"events": args.events, "migrated": result.events, "migration_s":
               round(migration_s, 3), "migrated_rows": rows, "store_bytes": store_bytes,
               "record_event_us": round(record_us, 2), "counter_add_us": round(add_us, 2)}
    for key, value in figures.items():
        print(f"{key}: {value}")
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
