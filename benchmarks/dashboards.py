"""Benchmark of the dashboards: every panel's query on a store of a year of a fleet.

Fills a store with 10,000 installations x 52 weeks of the simulated fleet the tests use
(`dashboards.testing`: joins, churn, version rollouts, an error surge) through the ingest's
own write path in bulk (`ingest.testing.store_weeks`: batches of 500 reports, the rows the
service writes, minus HTTP and validation, which `benchmarks/ingest.py` measures), then
publishes every week (`ingest.publish`). Then runs every panel's query with Grafana's macros
expanded for the whole year, `--repeat` times, and prints per-panel times (best run, ms). The
last line is one JSON object with `panel_ms_max`.

Run it as a module from the checkout's root (the file is named like the package it measures):

    python -m benchmarks.dashboards                       # a temporary SQLite file
    python -m benchmarks.dashboards --database postgresql+psycopg://user@127.0.0.1:5432/db
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from collections.abc import Iterator
from datetime import timedelta

from dashboards import queries
from dashboards import testing as fleet
from ingest import Settings, publish
from ingest.testing import StoredWeek, store_counts, store_weeks
from otel_usage.clock import default_clock


def _weeks(population: list[fleet.Installation], weeks: int) -> Iterator[StoredWeek]:
    for week in range(weeks):
        start = fleet.week_start(week).replace(tzinfo=None)
        for inst in population:
            resource = inst.resource | {"service.instance.id": inst.installation_id,
                                        "service.version": fleet.version(inst, week)}
            points = [(name, dict(attributes), value)
                      for name, series in fleet.points(inst, week, weeks).items()
                      for attributes, value in series.items()]
            yield StoredWeek(inst.installation_id, start, resource, points,
                             start + timedelta(weeks=1))


def fill(database: str, installations: int, weeks: int) -> dict[str, float]:
    """Write the fleet's reports week by week, then publish every week; the seconds and
    reports it took."""
    population = fleet.make_fleet(installations, weeks)
    for inst in population:  # every installation reports every week: installations x weeks
        inst.joined, inst.left = 0, weeks
    started = time.perf_counter()
    reports = store_weeks(database, _weeks(population, weeks))
    for week in range(weeks):
        day = fleet.week_start(week + 1).replace(tzinfo=None) + timedelta(days=2)
        store_counts(database, {(day, "accepted", ""): installations,
                                (day, "throttled", "rate_limited"): installations // 50,
                                (day, "rejected", "value_not_allowed"): installations // 200})
    filled = time.perf_counter()
    after = timedelta(days=fleet.CATALOG.policy.publish_after_days, hours=1)
    published_at = (fleet.week_start(weeks) + after).timestamp()
    publish(Settings(database_url=database, clock=lambda: published_at, catalog=fleet.CATALOG))
    return {"fill_s": round(filled - started, 1),
            "publish_s": round(time.perf_counter() - filled, 1), "reports": reports}


# Panels a small fleet (the test's) may rightly leave empty: its error surge within the noise,
# no Python version with the installations partition selection needs, no country above twice
# its margin.
MAY_BE_EMPTY = frozenset({"anomalies", "python_versions", "countries"})


def time_panels(database: str, weeks: int, repeat: int) -> dict[str, float]:
    import sqlalchemy as sa

    engine = sa.create_engine(database)
    start, end = fleet.time_range(weeks)
    timings = {}
    for panel in queries.panels():
        runs = []
        for _ in range(repeat):
            began = time.perf_counter()
            result = queries.run_panel(engine, panel, start, end)
            runs.append((time.perf_counter() - began) * 1000)
        assert result.rows or panel.key in MAY_BE_EMPTY, f"{panel.key} returned no rows"
        timings[panel.key] = round(min(runs), 1)
    engine.dispose()
    return timings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database", default=None, help="an empty store (default: temp SQLite)")
    parser.add_argument("--installations", type=int, default=10_000)
    parser.add_argument("--weeks", type=int, default=52)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    database = args.database or f"sqlite:///{tempfile.mkdtemp(prefix='dash-bench.')}/store.db"
    import sqlalchemy as sa

    result: dict[str, object] = {"database": sa.make_url(database).get_backend_name(),
                                 "installations": args.installations, "weeks": args.weeks,
                                 "started": default_clock().now().isoformat(timespec="seconds")}
    result.update(fill(database, args.installations, args.weeks))
    timings = time_panels(database, args.weeks, args.repeat)
    for key, ms in timings.items():
        print(f"{key:45} {ms:8.1f} ms")
    result["panel_ms_max"] = max(timings.values())
    result["panel_ms"] = timings
    print(json.dumps(result))


if __name__ == "__main__":
    main()
