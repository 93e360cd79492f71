"""``otel-usage demo``: a short, local demonstration of recording and showing statistics.

One simulated Printernizer installation counts three weeks of jobs, downloads, errors and
feature switches through ordinary OTel meters (the clock is injected, nothing waits), then the
local statistics viewer is shown and the JSON export written. Nothing leaves the machine.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import random
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from ._clock import ManualClock
from ._facade import UsageTelemetry

__all__ = ["register"]


def register(sub: Any) -> None:
    demo = sub.add_parser("demo", help="simulate an installation and show its statistics")
    demo.add_argument("--days", type=int, default=21, help="days to simulate (default 21)")
    demo.add_argument("--seed", type=int, default=7, help="random seed")
    demo.set_defaults(run=run)


def run(usage: UsageTelemetry, args: argparse.Namespace) -> int:
    from ._cli import render_statistics

    data_dir = usage.data_dir if args.data_dir else Path(tempfile.mkdtemp(prefix="otel-usage-"))
    rng = random.Random(args.seed)
    now = datetime.now(UTC).replace(hour=8, minute=0, second=0, microsecond=0)
    clock = ManualClock(now - timedelta(days=args.days - 1))
    for _ in range(args.days):
        simulate_day(UsageTelemetry(data_dir, service_version="2.7.0", clock=clock,
                                    export_interval_s=math.inf), rng)
        clock.advance(timedelta(days=1))
    viewer = UsageTelemetry(data_dir, clock=ManualClock(now))
    print(render_statistics(asyncio.run(viewer.statistics())))
    target = data_dir / "export.json"
    target.write_text(json.dumps(asyncio.run(viewer.export_json()), indent=2) + "\n")
    print(f"\nData directory: {data_dir}")
    print(f"JSON export:    {target}")
    return 0


def simulate_day(usage: UsageTelemetry, rng: random.Random) -> None:
    """One day of a small workshop: two Bambu Lab printers and a Prusa, a few jobs."""
    usage.observe_printers(lambda: {"bambu_lab": 2, "prusa_core": 1})
    usage.observe_features(lambda: {"library": True, "auto_job_creation": True,
                                    "timelapse": False, "german_business": False})
    meter = usage.meter()
    jobs = meter.create_counter("printernizer.jobs", unit="{job}")
    downloads = meter.create_counter("printernizer.file.downloads", unit="{file}")
    errors = meter.create_counter("printernizer.errors", unit="{error}")
    for _ in range(rng.randint(1, 8)):
        printer = rng.choice(["bambu_lab", "bambu_lab", "prusa_core"])
        jobs.add(1, {"job.status": "created", "printer.type": printer})
        outcome = "completed" if rng.random() < 0.9 else "failed"
        jobs.add(1, {"job.status": outcome, "printer.type": printer})
        downloads.add(1, {"printer.type": printer})
    if rng.random() < 0.2:
        errors.add(1, {"error.category": "network", "error.type": "connection_timeout"})
    usage.shutdown()
