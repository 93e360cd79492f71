"""The publication step: each closed week's reports become frozen, k-anonymous published cells.

A week is published once its reporting window has ended (`[policy] publish_after_days` after
the week), once, and never changes after: no two snapshots of a week exist to subtract, and a
late report or an erasure leaves the published cells as they are. The service runs this step
on its clock; `otel-usage-ingest publish` runs it by hand. The week's groups (`_cells`) are
shown only where no group under k can be computed from them (`_suppress`).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from otel_usage.catalog import Catalog
from otel_usage.weeks import Week, retention_cutoff

from . import _suppress
from ._cells import ACTIVE, Cell, Key, Parsed, cells


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
    shown = _suppress.visible(found, k, catalog)
    return Publication(week, counted, {key: found[key] for key in sorted(shown)})


def _parsed(rows: Iterable[tuple[str, str]]) -> Iterator[Parsed]:
    for resource, points in rows:
        yield json.loads(resource), [(m, a, int(v)) for m, a, v in json.loads(points)]


def due_range(now: datetime, after_days: int, retention_months: int) -> tuple[datetime, datetime]:
    """The oldest and newest week that may be published at `now`: within the retention, and
    ended at least `after_days` ago."""
    after = timedelta(days=after_days)
    newest = Week.of(now.astimezone(UTC) - after).previous()
    return retention_cutoff(now, retention_months).naive_start, newest.naive_start
