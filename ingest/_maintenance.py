"""The service's scheduled work, on its clock: publish the weeks that are due, prune old ones.

Runs in a thread of its own, so a week's publication (reading every report of that week)
never holds up the writer or the event loop. `publish_due` and `prune` are also what the
`publish` and `prune` commands run.
"""

from __future__ import annotations

import threading
from datetime import datetime

import structlog

from otel_usage.weeks import day_start, retention_cutoff

from ._errors import StoreUnavailable
from ._publish import Publication, due_range, publish_week
from ._settings import Settings
from ._store import Store

log = structlog.get_logger("ingest.maintenance")
_PRUNE_S = 86_400.0


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
    oldest, newest = due_range(now, settings.publish_after, settings.retention)
    today = day_start(now).replace(tzinfo=None)
    published = []
    with _PUBLISHING:
        weeks = store.unpublished_weeks(oldest, newest)
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


def prune(store: Store, settings: Settings) -> int:
    """Delete what is older than the retention; the installation-weeks deleted."""
    cutoff = retention_cutoff(settings.now(), settings.retention).naive_start
    deleted = store.prune(cutoff)
    log.info("store.pruned", before=cutoff.date().isoformat(), weeks=deleted)
    return deleted


class Maintenance:
    """Publishes due weeks every `publish_interval_s` and prunes once a day, until stopped."""

    def __init__(self, store: Store, settings: Settings) -> None:
        self._store = store
        self._settings = settings
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="ingest-maintenance",
                                        daemon=True)
        self._last_prune = float("-inf")

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
            if self._settings.clock() - self._last_prune >= _PRUNE_S:
                prune(self._store, self._settings)
                self._last_prune = self._settings.clock()
            publish_due(self._store, self._settings)
        except StoreUnavailable as exc:  # the next round tries again
            log.warning("maintenance.failed", error=str(exc))
