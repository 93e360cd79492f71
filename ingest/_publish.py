"""The publication step: each closed week's reports become frozen, k-anonymous published cells.

A week is published once its reporting window has ended (`[policy] publish_after_days` after
the week; its reports are refused from then on), once, and never changes after: no two
snapshots of a week exist to subtract, and an erasure leaves the published cells as they are.
Then its raw reports are forgotten (`_maintenance.forget`). The service runs this step
on its clock; `otel-usage-ingest publish` runs it by hand. The week's groups (`_cells`) are
shown only where no group under k can be computed from them (`_suppress`).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from otel_usage.catalog import Catalog
from otel_usage.weeks import Week

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


def newest_due(now: datetime, after_days: int) -> datetime:
    """The newest week that may be published at `now`: it ended at least `after_days` ago, so
    its reporting window has ended (the week after it is the oldest still accepted)."""
    return Week.of(now.astimezone(UTC) - timedelta(days=after_days)).previous().naive_start
