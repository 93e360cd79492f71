"""The publication step: each closed week's reports become frozen, k-anonymous published cells.

A week is published once its reporting window has ended (`[policy] publish_after_days` after
the week), once, and never changes after: no two snapshots of a week exist to subtract, and a
late report or an erasure leaves the published cells as they are. The service runs this step
on its clock; `otel-usage-ingest publish` runs it by hand.

A cell is one published group of one week (`kind`, `metric`, `attribute`, `value`): the
installations in it and the sum of their values. Cells are built with their members, so that
what is suppressed can be decided on the groups themselves (`_suppress`).
"""

from __future__ import annotations

import bisect
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import structlog

from otel_usage.catalog import Catalog
from otel_usage.weeks import Week, retention_cutoff

from ._validate import INSTALLATION_KEY

log = structlog.get_logger("ingest.publish")

Key = tuple[str, str, str, str]  # kind, metric, attribute, value
ACTIVE: Key = ("active", "", "", "")
# Lower bounds of the buckets of a metric's weekly total per installation (fleet sizes, jobs).
BUCKETS = (0, 1, 2, 3, 6, 11, 21, 51, 101, 501, 1001, 10001)
# Helper cells that are never published: installations with positive points lacking a key.
MISSING = "missing"


def bucket(total: int) -> int:
    return BUCKETS[bisect.bisect_right(BUCKETS, total) - 1]


class Cell:
    """One group of installations of a week: who is in it (a bit per installation), how
    many, and the sum of their values."""

    __slots__ = ("count", "members", "total")

    def __init__(self) -> None:
        self.members = bytearray()
        self.count = 0
        self.total = 0

    def add(self, index: int, value: int = 0) -> None:
        byte = index >> 3
        if byte >= len(self.members):
            self.members.extend(bytes(byte - len(self.members) + 256))
        self.members[byte] |= 1 << (index & 7)
        self.count += 1
        self.total += value

    def bits(self) -> int:
        """The members as an int, one bit per installation (for set algebra)."""
        return int.from_bytes(self.members, "little")


Points = list[tuple[str, dict[str, str], int]]


def cells(reports: Iterable[tuple[dict[str, str], Points]], catalog: Catalog) -> dict[Key, Cell]:
    """Every group of the week, from its reports (resource, points), one per installation."""
    found: dict[Key, Cell] = {}

    def cell(key: Key) -> Cell:
        got = found.get(key)
        if got is None:
            got = found[key] = Cell()
        return got

    for index, (resource, points) in enumerate(reports):
        cell(ACTIVE).add(index)
        for key, value in resource.items():
            if key != INSTALLATION_KEY:
                cell(("resource", "", key, value)).add(index)
        for key, amount in _groups(points, catalog).items():
            cell(key).add(index, amount)
    return found


def _groups(points: Points, catalog: Catalog) -> dict[Key, int]:
    """The groups one installation's week puts it in, with its value in each."""
    totals: dict[str, int] = {}
    groups: dict[Key, int] = {}
    for metric, attributes, value in points:
        totals[metric] = totals.get(metric, 0) + value
        spec = catalog.metrics.get(metric)
        for key in spec.attributes if spec is not None else ():
            text = attributes.get(key)
            group = ("metric", metric, key, text) if text is not None else (
                MISSING, metric, key, "")
            groups[group] = groups.get(group, 0) + value
    kept = {key: amount for key, amount in groups.items() if amount > 0}
    for name in catalog.metrics:
        total = totals.get(name, 0)
        kept[("distribution", name, "", str(bucket(total)))] = total
        if total > 0:
            kept[("metric", name, "", "")] = total
    return kept


def visible(found: dict[Key, Cell], k: int) -> dict[Key, Cell]:
    """The cells that may be shown: groups of at least k installations."""
    if ACTIVE not in found or found[ACTIVE].count < k:
        return {}
    return {key: c for key, c in found.items() if key[0] != MISSING and c.count >= k}


@dataclass(frozen=True)
class Publication:
    """One week as published: its cells, and how many installations it counted."""

    week: datetime
    counted: int
    cells: dict[Key, Cell]


def publish_week(week: datetime, reports: Iterable[tuple[str, str]], catalog: Catalog,
                 k: int) -> Publication:
    """Publish one week from its stored reports (resource JSON, points JSON)."""
    found = cells(_parsed(reports), catalog)
    counted = found[ACTIVE].count if ACTIVE in found else 0
    return Publication(week, counted, visible(found, k))


def _parsed(rows: Iterable[tuple[str, str]]) -> Iterator[tuple[dict[str, str], Points]]:
    for resource, points in rows:
        yield json.loads(resource), [(m, a, int(v)) for m, a, v in json.loads(points)]


def due_range(now: datetime, after_days: int, retention_months: int) -> tuple[datetime, datetime]:
    """The oldest and newest week that may be published at `now`: within the retention, and
    ended at least `after_days` ago."""
    after = timedelta(days=after_days)
    newest = Week.of(now.astimezone(UTC) - after).previous()
    return retention_cutoff(now, retention_months).naive_start, newest.naive_start
