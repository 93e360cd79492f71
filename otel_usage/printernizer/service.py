"""A drop-in for Printernizer's ``UsageStatisticsService``, backed by :class:`UsageTelemetry`.

The method names and result shapes are those Printernizer's app and front end use today
(``initialize``, ``record_event``, ``is_opted_in``, ``opt_in``, ``opt_out``,
``get_local_stats``, ``export_stats``, ``delete_all_stats``, ``submit_stats``,
``set_printer_service``); behind them there is one store and one switch, the same the privacy
page shows: "opted in" is mode ``on``, opting out is mode ``local``.

``record_event`` keeps no event: it adds one to the catalog instrument the event maps to
(:mod:`.events`), on the same provider as the app's own meters, so both count into the same
daily series. Nothing here raises into the host: a failure is logged and answered as the old
service answered it.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from opentelemetry.metrics import Counter
from opentelemetry.sdk.metrics import MeterProvider

from ..errors import UsageError
from ..log import logger
from ..store.reads import ReadsTx
from ..telemetry import UsageTelemetry
from ..weeks import Week
from .events import event_point, feature_switch, known_event
from .migration import LEGACY_CATALOG_VERSION, MigrationResult, migrate_printernizer_database
from .observe import AsyncSource

__all__ = ["LEGACY_CATALOG_VERSION", "LocalStats", "OptInResponse", "RecordedEvent",
           "UsageStatisticsService"]

EXPORT_VERSION = "2.0"
METER_NAME = "printernizer"
_ALL_DAYS = 10**7  # epoch days: beyond any date a store holds


@dataclass(frozen=True)
class OptInResponse:
    success: bool
    installation_id: str | None = None
    message: str = ""


@dataclass(frozen=True)
class LocalStats:
    installation_id: str
    first_seen: str | None
    opt_in_status: str
    total_events: int
    this_week: dict[str, int] = field(default_factory=dict)
    last_submission: str | None = None


@dataclass(frozen=True)
class RecordedEvent:
    """What one ``record_event`` counted (nothing of the event itself is kept)."""

    event_type: str
    metric: str | None
    attributes: Mapping[str, str] = field(default_factory=dict)


class UsageStatisticsService:
    """Printernizer's usage-statistics service, over one started :class:`UsageTelemetry`.

    ``database_path`` is Printernizer's own SQLite database (``DATABASE_PATH``): its old
    ``usage_events`` and ``usage_settings`` are migrated once by :meth:`initialize`.
    ``features`` reads the feature switches from the host's settings.
    """

    def __init__(self, usage: UsageTelemetry, *, database_path: str | Path | None = None,
                 features: Callable[[], Mapping[str, bool]] | None = None) -> None:
        self.usage = usage
        self.database_path = Path(database_path) if database_path is not None else None
        self.migration: MigrationResult | None = None
        self._features = features
        self._switched: dict[str, bool] = {}
        self._counters: dict[str, Counter] = {}
        self._provider: MeterProvider | None = None

    # Start-up.

    async def initialize(self) -> None:
        """Migrate the old tables (once), start recording, observe the feature switches."""
        if self.database_path is not None:
            try:
                self.migration = await asyncio.to_thread(
                    migrate_printernizer_database, self.database_path, self.usage)
            except UsageError as exc:  # the host starts regardless; the next start retries
                logger.warning("Printernizer's old usage statistics not migrated yet",
                               error=str(exc))
                self.migration = MigrationResult("failed")
        await self.usage.astart()
        self.usage.observe_features(self._feature_states)

    def set_printer_service(self, printer_service: Any) -> None:
        """Observe the configured printers by type through the host's async printer service
        (``await printer_service.list_printers()``), polled on the host's event loop."""
        source: AsyncSource[dict[str, int]] = AsyncSource(
            lambda: _printer_counts(printer_service), {})
        self.usage.observe_printers(source)

    # Recording.

    async def record_event(self, event_type: Any,
                           metadata: Mapping[str, Any] | None = None) -> RecordedEvent | None:
        """Count `event_type` on its catalog instrument (None for an unknown type)."""
        try:
            return self._record(event_type, metadata)
        except Exception as exc:  # never let statistics break the application
            logger.warning("usage event not counted", error=repr(exc))
            return None

    def _record(self, event_type: Any, metadata: Mapping[str, Any] | None) -> RecordedEvent | None:
        name = known_event(event_type)
        if name is None:
            logger.debug("unknown usage event type", event_type=str(event_type))
            return None
        switch = feature_switch(name, metadata)
        if switch is not None:
            self._switched[switch[0]] = switch[1]
            return RecordedEvent(name, None, {"feature.name": switch[0]})
        if name in ("app_start", "app_shutdown"):  # counted by the library itself
            return RecordedEvent(name, None)
        point = event_point(self.usage.catalog, name, metadata)
        if point is None:
            return RecordedEvent(name, None)
        self._counter(point.metric, point.unit).add(1, dict(point.attributes))
        return RecordedEvent(name, point.metric, point.attributes)

    def _counter(self, metric: str, unit: str) -> Counter:
        provider = self.usage.meter_provider
        if provider is not self._provider:  # a new start: instruments of the live provider
            self._counters, self._provider = {}, provider
        counter = self._counters.get(metric)
        if counter is None:
            counter = provider.get_meter(METER_NAME).create_counter(metric, unit=unit)
            self._counters[metric] = counter
        return counter

    def _feature_states(self) -> dict[str, bool]:
        states = dict(self._features()) if self._features is not None else {}
        states.update(self._switched)
        return states

    # The switch.

    async def is_opted_in(self) -> bool:
        try:
            return await self.usage.amode() == "on"
        except Exception as exc:  # the old service answered False
            logger.warning("usage statistics opt-in status unknown", error=repr(exc))
            return False

    async def opt_in(self) -> OptInResponse:
        """Mode ``on``, consenting to what the old switch described (catalog version 1)."""
        try:
            installation_id = await asyncio.to_thread(self._opt_in)
        except UsageError as exc:
            return OptInResponse(False, None, f"Failed to enable usage statistics: {exc}")
        return OptInResponse(True, installation_id, "Usage statistics enabled. Thank you for "
                             "helping improve Printernizer!")

    def _opt_in(self) -> str:
        self.usage.set_mode("on", source="printernizer", catalog_version=LEGACY_CATALOG_VERSION)
        with self.usage.store.transaction() as tx:  # made already, unless deleted since
            return tx.installation_id(self.usage.clock.now())

    async def opt_out(self) -> OptInResponse:
        """Mode ``local``: statistics stay on this machine; what was sent is erased. The answer
        names no installation id, as the old one did (``get_local_stats`` shows the one kept)."""
        try:
            await self.usage.aset_mode("local", source="printernizer")
        except UsageError as exc:
            return OptInResponse(False, None, f"Failed to disable usage statistics: {exc}")
        return OptInResponse(True, None,
                             "Usage statistics disabled. Your data will remain local.")

    # What the user sees and does.

    async def get_local_stats(self) -> LocalStats:
        try:
            return await asyncio.to_thread(self._local_stats)
        except Exception as exc:  # the old service's empty answer
            logger.warning("usage statistics could not be read", error=repr(exc))
            return LocalStats("error", None, "unknown", 0, {}, None)

    def _local_stats(self) -> LocalStats:
        usage = self.usage
        status = "enabled" if usage.mode == "on" else "disabled"
        if not usage.store.exists:
            return LocalStats("not_generated", None, status, 0,
                              {"job_count": 0, "file_count": 0, "error_count": 0}, None)
        week = Week.of(usage.clock.now())
        first, end = week.first_day, week.first_day + 7
        with usage.store.read(ReadsTx) as tx:
            def week_total(metric: str, where: Mapping[str, str] | None = None) -> int:
                return int(tx.total(metric, where or {}, first, end))

            jobs = sum(week_total("printernizer.jobs", {"job.status": s})
                       for s in ("completed", "failed"))
            this_week = {"job_count": jobs,
                         "file_count": week_total("printernizer.file.downloads"),
                         "error_count": week_total("printernizer.errors")}
            total = _total_events(tx, _sum_metrics(usage))
            return LocalStats(tx.meta("installation_id") or "not_generated",
                              tx.meta("first_used"), status, total, this_week,
                              tx.last_submitted())

    async def total_events(self) -> int:
        """Every count kept here (the old service's number of stored events)."""
        try:
            return await asyncio.to_thread(self._total)
        except Exception as exc:
            logger.warning("usage statistics could not be read", error=repr(exc))
            return 0

    def _total(self) -> int:
        if not self.usage.store.exists:
            return 0
        with self.usage.store.read(ReadsTx) as tx:
            return _total_events(tx, _sum_metrics(self.usage))

    async def export_stats(self) -> str:
        """Everything kept here as a JSON string: the old export's keys (``events`` is empty:
        no event is kept), and the whole local store under ``usage``."""
        try:
            data = await self.usage.export_json()
            mode = data.get("mode")
            installation = data.get("installation", {})
            settings = {"opt_in_status": "enabled" if mode == "on" else "disabled",
                        "mode": mode, **installation}
            export = {"events": [], "settings": settings,
                      "exported_at": self.usage.clock.now().isoformat(),
                      "export_version": EXPORT_VERSION, "usage": data}
            return json.dumps(export, indent=2, default=str, ensure_ascii=False)
        except Exception as exc:
            logger.warning("usage statistics export failed", error=repr(exc))
            return json.dumps({"error": "export failed"})

    async def delete_all_stats(self) -> bool:
        """Delete every statistic kept here (and, for what was sent, ask the server to)."""
        try:
            await self.usage.delete_all()
        except Exception as exc:
            logger.warning("usage statistics could not be deleted", error=repr(exc))
            return False
        return True

    async def submit_stats(self) -> bool:
        """Send what is due now when opted in; True when nothing failed (or nothing was due),
        False when a send failed (it is retried later) or the server refused this installation."""
        if not await self.is_opted_in():
            return True
        try:
            summary = await asyncio.to_thread(self.usage.send_now)
        except Exception as exc:
            logger.warning("usage statistics could not be sent", error=repr(exc))
            return False
        failed = summary.get("failed") or summary.get("retry")
        return not failed and summary.get("refused") is None


def _sum_metrics(usage: UsageTelemetry) -> list[str]:
    return [m.name for m in usage.catalog.metrics.values() if m.is_sum]


def _total_events(tx: ReadsTx, metrics: Iterable[str]) -> int:
    return int(sum(tx.total(m, {}, -_ALL_DAYS, _ALL_DAYS) for m in metrics))


async def _printer_counts(printer_service: Any) -> dict[str, int]:
    """Printers by type from ``await printer_service.list_printers()`` (objects or dicts)."""
    counts: dict[str, int] = {}
    for printer in await printer_service.list_printers():
        kind = printer.get("type") if isinstance(printer, Mapping) else getattr(
            printer, "type", None)
        name = str(getattr(kind, "value", kind) or "unknown").lower()
        counts[name] = counts.get(name, 0) + 1
    return counts
