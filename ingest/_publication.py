"""Publication and forgetting, on the service's clock: each closed week's reports become
frozen, differentially private cells, then what publication no longer needs is deleted.

A week is published once its reporting window has ended (`[policy] publish_after_days` after
the week; its reports are refused from then on), once, and never changes after: its noise is
drawn once (`_privacy`: one composed OpenDP measurement per week, invoked once) and stored
with the week, so no second sample of a cell exists to average the noise away, and a late
report or an erasure leaves the published cells as they are. Forgetting follows the catalog's
`[policy]` windows:

- a week's raw reports, once the week is published (`raw_weeks_after_publication` later);
- an erasure's record, `tombstone_days` after the day of the erasure;
- an installation's id and credential hash, once it has sent nothing for
  `installation_silent_days` (and has no raw week left).

The service runs both in a thread of its own (`Maintenance`), so a week's publication
(reading every report of that week) never holds up the writer or the event loop; `publish_due`
and `forget` are also what the `publish` and `forget` commands run.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import structlog

from otel_usage.catalog import Catalog
from otel_usage.weeks import Week, day_start, newest_publishable

from ._errors import StoreUnavailable
from ._privacy import Cell, Loss, Record, margin, mechanism
from ._settings import Settings
from ._store import Forgotten, Store

log = structlog.get_logger("ingest.maintenance")


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
    """The newest week that may be published at `now` (its Monday, naive UTC)."""
    return newest_publishable(now, after_days).naive_start


# Weeks drawn but not yet stored (their transaction failed), per store: the retry stores the
# same sample rather than drawing a second one. A sample that was never stored was never
# published, so a restart that forgets it costs nothing.
_DRAWN: dict[tuple[str, datetime], Publication] = {}
_PUBLISHING = threading.Lock()  # one publication step at a time in a process


def publish_due(store: Store, settings: Settings) -> list[Publication]:
    """Publish every week whose reporting window has ended and that is not yet published: its
    mechanism is invoked once, its cells and loss stored in one transaction. A week published
    already (by this process before, or another replica meanwhile) is never drawn again."""
    now = settings.now()
    newest = newest_due(now, settings.publish_after)
    today = day_start(now).replace(tzinfo=None)
    published = []
    with _PUBLISHING:
        weeks = store.unpublished_weeks(newest)
        for gone in [key for key in _DRAWN if key[0] == store.name and key[1] not in weeks]:
            del _DRAWN[gone]  # published meanwhile (by another replica), or out of range
        for week in weeks:
            key = (store.name, week)
            publication = _DRAWN.get(key)
            if publication is None:
                publication = _DRAWN[key] = publish_week(week, store.week_reports(week),
                                                         settings.catalog)
            if store.save_publication(publication, today):  # raises: kept for the retry
                del _DRAWN[key]
                loss = publication.loss
                log.info("week.published", week=week.date().isoformat(),
                         cells=len(publication.cells), epsilon=loss.epsilon, delta=loss.delta,
                         yearly_epsilon=loss.yearly_epsilon)
                published.append(publication)
    return published


def forget(store: Store, settings: Settings) -> Forgotten:
    """Delete what publication no longer needs, by the catalog's windows at the settings'
    clock (run after `publish_due`: only published weeks' raw reports go)."""
    cutoffs = forget_cutoffs(settings)
    forgotten = store.forget(*cutoffs)
    log.info("store.forgotten", reports=forgotten.reports, erasures=forgotten.erasures,
             installations=forgotten.installations)
    return forgotten


def forget_cutoffs(settings: Settings) -> tuple[datetime, datetime, datetime]:
    """At the settings' clock: the newest week whose raw reports may go (if published), the
    day before which erasures are forgotten, and the week of a last report before which an
    installation is forgotten (its last report may have come at the end of that week, so the
    week after it must have begun `installation_silent_days` ago)."""
    now, policy = settings.now(), settings.catalog.policy
    kept = timedelta(weeks=policy.raw_weeks_after_publication)
    newest = newest_due(now - kept, settings.publish_after)
    erased_before = day_start(now) - timedelta(days=policy.tombstone_days)
    silent_before = Week.of(now - timedelta(days=policy.installation_silent_days))
    return newest, erased_before.replace(tzinfo=None), silent_before.naive_start


class Maintenance:
    """Every `publish_interval_s`, until stopped: publishes due weeks, then forgets."""

    def __init__(self, store: Store, settings: Settings) -> None:
        self._store = store
        self._settings = settings
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="ingest-maintenance",
                                        daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 30.0) -> None:
        self._stopping.set()
        if self._thread.is_alive():
            self._thread.join(timeout)

    def _run(self) -> None:
        while not self._stopping.is_set():
            self._once()
            self._stopping.wait(self._settings.publish_interval_s)

    def _once(self) -> None:
        try:
            publish_due(self._store, self._settings)
            forget(self._store, self._settings)
        except StoreUnavailable as exc:  # the next round tries again
            log.warning("maintenance.failed", error=str(exc))
