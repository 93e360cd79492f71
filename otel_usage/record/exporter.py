"""The SQLite exporter: OTel's delta metrics, added into one row per (UTC day, series).

A real ``MetricExporter`` for a ``PeriodicExportingMetricReader``. Every export is one
transaction, so a crash between exports loses at most the interval in flight and never counts
anything twice (deltas are added exactly once, when their transaction commits). A batch that
cannot be written (full disk, locked or read-only file) stays in memory and is merged into the
next export; the host is never told, only the log is, once.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

from opentelemetry.sdk.metrics import (
    Counter,
    Histogram,
    ObservableCounter,
    ObservableGauge,
    ObservableUpDownCounter,
    UpDownCounter,
)
from opentelemetry.sdk.metrics import _Gauge as SyncGauge
from opentelemetry.sdk.metrics.export import (
    AggregationTemporality,
    Gauge,
    MetricExporter,
    MetricExportResult,
    MetricsData,
    Sum,
)
from opentelemetry.sdk.metrics.export import Histogram as HistogramData

from ..catalog import Catalog
from ..clock import Clock, epoch_day
from ..consent import Mode, effective_mode, mark_not_sending, stored_choice
from ..errors import StoreUnavailableError
from ..log import ProblemLog
from ..store import Store, Tx

__all__ = ["SQLiteMetricExporter"]

_DELTA: dict[type, AggregationTemporality] = {
    kind: AggregationTemporality.DELTA
    for kind in (
        Counter, UpDownCounter, Histogram, ObservableCounter, ObservableUpDownCounter,
        ObservableGauge, SyncGauge,
    )
}
_CATALOG_KIND = {"counter": "sum", "observable_counter": "sum", "gauge": "gauge",
                 "observable_gauge": "gauge"}
# A batch that could not be written is kept for the next export, up to this many rows.
MAX_PENDING_ROWS = 20_000


class _Row:
    """What one export adds to one (day, series): a delta, or a gauge's last and peak."""

    __slots__ = ("last", "peak", "total")

    def __init__(self, total: float | None = None, last: float | None = None,
                 peak: float | None = None) -> None:
        self.total, self.last, self.peak = total, last, peak

    def merge(self, later: _Row) -> None:
        if later.total is not None:
            self.total = (self.total or 0) + later.total
        if later.last is not None:
            self.last = later.last
        if later.peak is not None:
            self.peak = later.peak if self.peak is None else max(self.peak, later.peak)


# (metric, canonical attributes JSON, kind, unit)
_SeriesKey = tuple[str, str, str, str]


class Seen(NamedTuple):
    """What the exporter knew at its last export: the latest mode change's number, the mode
    then in force, and the store's epoch (a new one after each delete-all)."""

    change_id: int
    mode: Mode
    epoch: str | None


class SQLiteMetricExporter(MetricExporter):
    """Adds each export's deltas into the local database, when the mode allows recording.

    The cut is exact: counts held in memory since the last export are stored only if every
    mode in force since then allows recording (a change of mode by another process, seen by
    its number, that passed through ``off`` drops them), never after a delete-all they were
    counted before (the store's epoch changed), and across a change of mode they are dated
    the day of the change (so they never fall into a week a newer consent covers)."""

    def __init__(
        self,
        store: Store,
        catalog: Catalog,
        clock: Clock,
        forced: Callable[[], Mode | None],
        problems: ProblemLog | None = None,
    ) -> None:
        super().__init__(preferred_temporality=_DELTA)
        self._store = store
        self._catalog = catalog
        self._clock = clock
        self._forced = forced
        self._problems = problems or ProblemLog()
        self._series_ids: dict[_SeriesKey, int] = {}
        self._series_owner: str | None = None
        self._pending: dict[tuple[int, _SeriesKey], _Row] = {}
        self._seen: Seen | None = None
        self._lock = threading.Lock()

    def seen(self, tx: Tx) -> None:
        """Take the store's state as known (at start, and after this process's own change
        of mode or delete-all, once what was counted before it was exported)."""
        # Not under the export lock: the caller holds the store's, which an export takes
        # after this lock (one reference is replaced, atomically).
        self._seen = self._state(tx)

    def _state(self, tx: Tx) -> Seen:
        latest = stored_choice(tx)
        mode = effective_mode(self._forced(), latest.mode if latest else None)
        return Seen(tx.last_mode_change_id(), mode, tx.meta("store_epoch"))

    def export(
        self, metrics_data: MetricsData, timeout_millis: float = 10_000, **kwargs: Any
    ) -> MetricExportResult:
        with self._lock:
            try:
                return self._export(metrics_data)
            except Exception as exc:  # telemetry never raises into the host
                self._problems.problem("exporter", "usage export failed", error=repr(exc))
                return MetricExportResult.FAILURE

    def _export(self, metrics_data: MetricsData) -> MetricExportResult:
        if self._forced() == "off":
            self._pending.clear()
            return MetricExportResult.SUCCESS
        rows = self._rows(metrics_data)
        for key, older in self._pending.items():
            if key in rows:
                _merge_first(rows, key, older)
            else:
                rows[key] = older
        if not rows:
            return MetricExportResult.SUCCESS
        previous = self._seen
        try:
            with self._store.transaction() as tx:
                epoch = self._write(tx, self._admitted(tx, rows))
        except StoreUnavailableError as exc:
            self._seen = previous  # nothing of that transaction happened
            # Ids of series made in the rolled-back transaction were never stored.
            self._series_ids.clear()
            self._keep_pending(rows)
            self._problems.problem(
                f"store:{exc.kind}", "usage statistics could not be saved; will retry",
                path=str(self._store.path), error=str(exc.__cause__ or exc),
            )
            return MetricExportResult.FAILURE
        if epoch is not None and self._seen is not None:
            self._seen = self._seen._replace(epoch=epoch)
        self._pending.clear()
        self._problems.resolved_all("store:", "usage statistics are saved again")
        return MetricExportResult.SUCCESS

    def _rows(self, metrics_data: MetricsData) -> dict[tuple[int, _SeriesKey], _Row]:
        day = epoch_day(self._clock.now())
        rows: dict[tuple[int, _SeriesKey], _Row] = {}
        for resource_metrics in metrics_data.resource_metrics:
            for scope_metrics in resource_metrics.scope_metrics:
                for metric in scope_metrics.metrics:
                    self._add_metric(rows, day, metric.name, metric.unit or "", metric.data)
        return rows

    def _add_metric(
        self, rows: dict[tuple[int, _SeriesKey], _Row], day: int, name: str, unit: str, data: Any
    ) -> None:
        if isinstance(data, Sum):
            # An up-down counter is another series than a counter of the same name.
            kind = "sum" if data.is_monotonic else "updown"
        elif isinstance(data, Gauge):
            kind = "gauge"
        elif isinstance(data, HistogramData):
            kind = "histogram"
        else:  # exponential histograms and future types: kept out of the local store
            return
        for point in data.data_points:
            attributes = _canonical(point.attributes or {})
            key = (day, (name, attributes, kind, unit))
            if kind == "gauge":
                row = _Row(last=point.value, peak=point.value)
            elif kind == "histogram":
                row = _Row(total=point.sum)
            else:
                if point.value == 0:
                    continue
                row = _Row(total=point.value)
            if key in rows:
                rows[key].merge(row)
            else:
                rows[key] = row

    def _admitted(self, tx: Tx, rows: dict[tuple[int, _SeriesKey], _Row]
                  ) -> dict[tuple[int, _SeriesKey], _Row]:
        """`rows` as the modes in force since the last export allow them (see the class)."""
        now = self._clock.now()
        state = self._state(tx)
        seen, self._seen = self._seen, state
        if seen is not None and seen.epoch is not None and seen.epoch != state.epoch:
            return {}  # counted before a delete-all
        changes = tx.mode_changes_after(seen.change_id) if seen is not None else []
        modes = [state.mode] if self._forced() is not None else (
            [seen.mode] if seen is not None else []) + [m for _, m in changes] + [state.mode]
        if "off" in modes:
            return {}
        if state.mode != "on":
            latest = stored_choice(tx)
            if latest is not None and latest.mode == "on":
                mark_not_sending(tx, now)
        if self._forced() is None and changes:
            day = min(epoch_day(changes[0][0]), epoch_day(now))
            moved: dict[tuple[int, _SeriesKey], _Row] = {}
            for (_, series), row in rows.items():
                if (day, series) in moved:
                    moved[(day, series)].merge(row)
                else:
                    moved[(day, series)] = row
            return moved
        return rows

    def _write(self, tx: Tx, rows: Mapping[tuple[int, _SeriesKey], _Row]) -> str | None:
        """Add `rows`; the store's new epoch when this write began one (first use, or the
        first write after a delete-all)."""
        if not rows:
            return None
        epoch = tx.new_epoch() if tx.meta("store_epoch") is None else None
        owner = tx.installation_id(self._clock.now())
        if owner != self._series_owner:  # the store was wiped (delete-all): forget cached ids
            self._series_ids.clear()
            self._series_owner = owner
        tx.add_daily([
            (day, self._series_id(tx, series), _storable(row.total), _storable(row.last),
             _storable(row.peak))
            for (day, series), row in rows.items()
        ])
        return epoch

    def _series_id(self, tx: Tx, series: _SeriesKey) -> int:
        series_id = self._series_ids.get(series)
        if series_id is None:
            name, attributes, kind, unit = series
            series_id = tx.series_id(name, attributes, kind, unit, self._local_only(name, kind))
            self._series_ids[series] = series_id
        return series_id

    def _local_only(self, name: str, kind: str) -> bool:
        """True for instruments outside the catalog, or recorded with another kind."""
        metric = self._catalog.metric(name)
        return metric is None or _CATALOG_KIND[metric.instrument] != kind

    def _keep_pending(self, rows: dict[tuple[int, _SeriesKey], _Row]) -> None:
        if len(rows) > MAX_PENDING_ROWS:
            self._problems.problem(
                "pending_overflow", "usage statistics dropped: the store was unavailable too long"
            )
            self._pending = {}
            return
        self._pending = rows

    def force_flush(self, timeout_millis: float = 10_000) -> bool:
        return True

    def shutdown(self, timeout_millis: float = 30_000, **kwargs: Any) -> None:
        with self._lock:
            self._store.close()


def _merge_first(rows: dict[tuple[int, _SeriesKey], _Row], key: tuple[int, _SeriesKey],
                 older: _Row) -> None:
    """Merge an older pending row under a newer one (gauges keep the newer 'last')."""
    newer = rows[key]
    merged = _Row(older.total, older.last, older.peak)
    merged.merge(newer)
    rows[key] = merged


_INT64_MAX = 2**63 - 1


def _storable(value: float | None) -> float | None:
    """A whole number beyond SQLite's 64-bit integers is kept as a float (the report clamps
    it): one huge value never fails an export."""
    if isinstance(value, int) and abs(value) > _INT64_MAX:
        return float(value)
    return value


def _canonical(attributes: Mapping[str, Any]) -> str:
    """Attributes as compact JSON with sorted keys: the same set always gives the same text."""
    if not attributes:
        return "{}"
    return json.dumps(
        {k: list(v) if isinstance(v, tuple) else v for k, v in attributes.items()},
        sort_keys=True, separators=(",", ":"),
    )
