"""The groups of a week: every cell the publication step may publish, with its members.

A cell is one group of one week (`kind`, `metric`, `attribute`, `value`): which installations
are in it (a bit each, so that groups can be compared as sets), how many, and the sum of their
values. Kinds: `active` (every installation counted), `resource` (a value of a resource
attribute), `metric` (a metric's installations with a positive weekly value and their total,
as a whole or per value of one of its attributes), `distribution` (installations by the bucket
of a metric's weekly total). `missing` cells are never published: the installations with
positive points that lack an attribute key, which the suppression step needs.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable

from otel_usage.catalog import Catalog

from ._validate import INSTALLATION_KEY
from .views import DISTRIBUTION_BUCKETS

Key = tuple[str, str, str, str]  # kind, metric, attribute, value
ACTIVE: Key = ("active", "", "", "")
# Lower bounds of the buckets of a metric's weekly total per installation (fleet sizes, jobs).
BUCKETS = DISTRIBUTION_BUCKETS
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
Parsed = tuple[dict[str, str], Points]  # one installation's week: its resource, its points


def cells(reports: Iterable[Parsed], catalog: Catalog) -> dict[Key, Cell]:
    """Every group of the week, from its reports, one per installation."""
    found: dict[Key, Cell] = {}

    def cell(key: Key) -> Cell:
        got = found.get(key)
        if got is None:
            got = found[key] = Cell()
        return got

    for index, (resource, points) in enumerate(reports):
        cell(ACTIVE).add(index)
        for attribute, value in resource.items():
            if attribute != INSTALLATION_KEY:
                cell(("resource", "", attribute, value)).add(index)
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
