"""Which cells of a week may be shown: none from which a group under k can be computed.

Hiding the groups of fewer than k installations (primary suppression) is not enough: a visible
total minus the visible groups under it gives the hidden rest. So the cells of a week are
checked against every way the views let one subtract one number from another, and more
cells are hidden (secondary suppression) until none gives a group under k:

- Partitions: a parent cell and the cells that split it (the installations of a week by the
  value of a resource attribute, or by the bucket of a metric's weekly total; a metric's
  installations and total by the value of one of its attributes; a week's installations into
  those with and without a metric). What the parent holds beyond its visible children, by
  installations and by the points behind its total, must be empty or at least k
  installations; and a single hidden child, the rest being visible, is hidden along with
  another (or its count could be computed, and with it whatever it was hidden for).
- Containment: of any two visible cells where one holds the other's installations and more,
  the difference must be at least k installations (two features whose users are nested, the
  week's installations and the users of a metric, ...); otherwise the smaller is hidden.

The rules run until nothing changes (each step only hides, so they end). A cell hidden to
protect another is chosen smallest first. Cells are compared by their members (`Cell.bits`).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from otel_usage.catalog import Catalog

from ._cells import ACTIVE, MISSING, Cell, Key
from ._validate import INSTALLATION_KEY


@dataclass(frozen=True)
class Family:
    """A parent cell and the cells that split it; `missing`: the members of the parent in no
    child (installations without an optional attribute; points without an attribute key)."""

    parent: Key
    children: list[Key]
    missing: int = 0  # a bit set of installations


def visible(found: dict[Key, Cell], k: int, catalog: Catalog) -> set[Key]:
    """The keys of the cells that may be shown."""
    if ACTIVE not in found or found[ACTIVE].count < k:
        return set()
    bits = {key: cell.bits() for key, cell in found.items()}
    counts = {key: cell.count for key, cell in found.items()}
    shown = {key for key, count in counts.items() if key[0] != MISSING and count >= k}
    families = list(_families(found, bits, catalog))
    changed = True
    while changed:
        changed = any([_partitions(families, shown, bits, counts, k),
                       _containment(shown, bits, counts, k)])
    return shown


def _families(found: dict[Key, Cell], bits: dict[Key, int],
              catalog: Catalog) -> Iterator[Family]:
    everyone = bits[ACTIVE]
    for key in catalog.resource:
        if key != INSTALLATION_KEY:
            children = [c for c in found if c[0] == "resource" and c[2] == key]
            yield Family(ACTIVE, children, everyone & ~_union(bits, children))
    for name, metric in catalog.metrics.items():
        whole = ("metric", name, "", "")
        buckets = [c for c in found if c[0] == "distribution" and c[1] == name]
        yield Family(ACTIVE, buckets)
        zero = ("distribution", name, "", "0")
        yield Family(ACTIVE, [c for c in (whole, zero) if c in found])
        if whole not in found:
            continue
        yield Family(whole, [c for c in buckets if c != zero])
        for attribute in metric.attributes:
            children = [c for c in found if c[:3] == ("metric", name, attribute)]
            missing = bits.get((MISSING, name, attribute, ""), 0)
            yield Family(whole, children, missing)


def _union(bits: dict[Key, int], keys: list[Key]) -> int:
    union = 0
    for key in keys:
        union |= bits[key]
    return union


def _partitions(families: list[Family], shown: set[Key], bits: dict[Key, int],
                counts: dict[Key, int], k: int) -> bool:
    """Hide one more child in every partition whose hidden rest is computable and small."""
    changed = False
    for family in families:
        if family.parent not in shown:
            continue
        while _leaks(family, shown, bits, k):
            smallest = min((c for c in family.children if c in shown),
                           key=lambda c: (counts[c], c), default=None)
            if smallest is None:
                break
            shown.discard(smallest)
            changed = True
    return changed


def _leaks(family: Family, shown: set[Key], bits: dict[Key, int], k: int) -> bool:
    hidden = [c for c in family.children if c not in shown and bits[c]]
    if not hidden and not family.missing:
        return False
    shown_union = _union(bits, [c for c in family.children if c in shown])
    rest = bits[family.parent] & ~shown_union  # by installations
    rest_of_points = _union(bits, hidden) | family.missing  # by the points behind the total
    if any(0 < n.bit_count() < k for n in (rest, rest_of_points)):
        return True
    return len(hidden) == 1 and not family.missing


def _containment(shown: set[Key], bits: dict[Key, int], counts: dict[Key, int],
                 k: int) -> bool:
    """Hide the smaller of two visible cells where one holds the other and fewer than k more."""
    ordered = sorted(shown, key=lambda c: (counts[c], c))
    for index, small in enumerate(ordered):
        for large in ordered[index + 1:]:
            difference = counts[large] - counts[small]
            if difference >= k:
                break
            if difference > 0 and bits[small] & ~bits[large] == 0:
                shown.discard(small)
                return True
    return False
