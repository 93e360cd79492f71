"""What one report adds to the weekly rollups (`events_summary`), computed at load time.

Each rollup row counts, for one week and one group, the installations in it and the sum of
their values. Replacing or erasing a report subtracts what it added, so the reporting views read
a few thousand rollup rows per week instead of every report.
"""

from __future__ import annotations

import bisect

from otel_usage.catalog import Catalog

from ._validate import INSTALLATION_KEY, Report

Key = tuple[str, str, str, str]  # kind, metric, attribute, value
Delta = dict[Key, tuple[int, int]]  # installations, total

ACTIVE: Key = ("active", "", "", "")
# Lower bounds of the buckets of a metric's weekly total per installation (fleet sizes, jobs).
BUCKETS = (0, 1, 2, 3, 6, 11, 21, 51, 101, 501, 1001, 10001)


def bucket(total: int) -> int:
    return BUCKETS[bisect.bisect_right(BUCKETS, total) - 1]


def contributions(report: Report, catalog: Catalog) -> Delta:
    """The rollup rows this report adds to its week."""
    delta: Delta = {ACTIVE: (1, 1)}
    for key, value in report.resource.items():
        if key != INSTALLATION_KEY:
            delta[("resource", "", key, value)] = (1, 1)
    totals: dict[str, int] = {}
    by_value: dict[tuple[str, str, str], int] = {}
    for metric, attributes, value in report.points:
        totals[metric] = totals.get(metric, 0) + value
        for key, text in attributes:
            group = (metric, key, text)
            by_value[group] = by_value.get(group, 0) + value
    for name in catalog.metrics:
        total = totals.get(name, 0)
        delta[("distribution", name, "", str(bucket(total)))] = (1, total)
        if total > 0:
            delta[("metric", name, "", "")] = (1, total)
    for (name, key, text), total in by_value.items():
        if total > 0:
            delta[("metric", name, key, text)] = (1, total)
    return delta


def merge(into: dict[tuple[object, ...], list[int]], week: object, delta: Delta, sign: int) -> None:
    """Add (sign=1) or subtract (sign=-1) a report's rows into a batch's running sums."""
    for key, (installations, total) in delta.items():
        row = into.setdefault((week, *key), [0, 0])
        row[0] += sign * installations
        row[1] += sign * total


WeekSums = dict[object, dict[Key, list[int]]]


def add(into: WeekSums, week: object, delta: Delta, sign: int) -> None:
    """`merge` for the writer's hot path: sums kept per week, so no key is rebuilt per report."""
    rows = into.get(week)
    if rows is None:
        rows = into[week] = {}
    get = rows.get
    for key, (installations, total) in delta.items():
        row = get(key)
        if row is None:
            rows[key] = [sign * installations, sign * total]
        else:
            row[0] += sign * installations
            row[1] += sign * total


def flatten(sums: WeekSums) -> dict[tuple[object, ...], list[int]]:
    """Per-week sums in `merge`'s layout: (week, kind, metric, attribute, value) -> sums."""
    return {(week, *key): row for week, rows in sums.items() for key, row in rows.items()}
