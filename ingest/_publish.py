"""The publication step: each closed week's reports become frozen, differentially private cells.

A week is published once its reporting window has ended (`[policy] publish_after_days` after
the week; its reports are refused from then on), once, and never changes after: its noise is
drawn once (`_privacy`: one composed OpenDP measurement per week, invoked once) and stored
with the week, so no second sample of a cell exists to average the noise away, and a late
report or an erasure leaves the published cells as they are. Then its raw reports are
forgotten (`_maintenance.forget`). The service runs this step on its clock;
`otel-usage-ingest publish` runs it by hand.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from otel_usage.catalog import Catalog
from otel_usage.weeks import Week

from ._privacy import Cell, Loss, Record, margin, mechanism


@dataclass(frozen=True)
class Publication:
    """One week as published: its noisy cells, drawn once, and what drawing them cost each
    installation in privacy."""

    week: datetime
    cells: tuple[Cell, ...]
    loss: Loss

    def week_row(self, published_on: datetime) -> dict[str, Any]:
        """The week's row of `published_weeks`."""
        loss = self.loss
        return {"week_start": self.week, "published_on": published_on, "rho": loss.rho,
                "epsilon": loss.epsilon, "delta": loss.delta,
                "yearly_epsilon": loss.yearly_epsilon}

    def cell_rows(self) -> list[dict[str, Any]]:
        """The week's rows of `published_cells`: each number with its noise's scale and 95 %
        margin (computed once per scale: a release's cells share theirs)."""
        margins: dict[float, float] = {}

        def half_width(scale: float | None) -> float | None:
            if scale is None:
                return None
            if scale not in margins:
                margins[scale] = margin(scale)
            return margins[scale]

        return [{"week_start": self.week, "kind": c.kind, "metric": c.metric,
                 "attribute": c.attribute, "value": c.value,
                 "installations": c.installations, "installations_scale": c.installations_scale,
                 "installations_margin": half_width(c.installations_scale),
                 "total": c.total, "total_scale": c.total_scale,
                 "total_margin": half_width(c.total_scale)} for c in self.cells]


def publish_week(week: datetime, reports: Iterable[tuple[str, str]],
                 catalog: Catalog) -> Publication:
    """Draw one week's publication from its stored reports (resource JSON, points JSON), one
    per installation: the catalog's mechanism is invoked once."""
    drawn = mechanism(catalog).publish(_records(reports))
    return Publication(week, drawn.cells, drawn.loss)


def _records(rows: Iterable[tuple[str, str]]) -> Iterator[Record]:
    for resource, points in rows:
        yield json.loads(resource), [(m, a, int(v)) for m, a, v in json.loads(points)]


def newest_due(now: datetime, after_days: int) -> datetime:
    """The newest week that may be published at `now`: it ended at least `after_days` ago, so
    its reporting window has ended (the week after it is the oldest still accepted)."""
    return Week.of(now.astimezone(UTC) - timedelta(days=after_days)).previous().naive_start
