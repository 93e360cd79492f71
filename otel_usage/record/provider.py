"""The MeterProvider Printernizer's meters feed, and the instruments the library keeps itself.

Its only reader is a ``PeriodicExportingMetricReader`` around the SQLite exporter. Views keep only
the catalog's attribute keys on catalog instruments; any other instrument keeps its attributes
but is marked local-only by the exporter. The library counts the app's starts and the days it
runs, and observes the printers and features the host reports, each under its catalog role.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping

from opentelemetry.metrics import CallbackOptions, Observation
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics._internal.exemplar import AlwaysOffExemplarFilter
from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
from opentelemetry.sdk.metrics.view import View
from opentelemetry.sdk.resources import Resource

from ..catalog import Catalog, Role
from ..log import ProblemLog, logger
from .exporter import SQLiteMetricExporter
from .rebind import bind_global

__all__ = ["LIBRARY_METER", "build_provider", "count_start", "observe"]

LIBRARY_METER = "otel_usage"


def build_provider(exporter: SQLiteMetricExporter, catalog: Catalog, *, interval_s: float,
                   resource: Mapping[str, str], set_global: bool) -> MeterProvider:
    """A MeterProvider whose one reader exports to `exporter` every `interval_s` seconds
    (never on its own when infinite: tests and simulations flush).

    Its resource is `resource` alone: ``Resource.create`` would run the SDK's resource detectors
    on a pool of threads and merge the host's ``OTEL_RESOURCE_ATTRIBUTES``, for a resource the
    local store never keeps (a weekly report names its own)."""
    views = [View(instrument_name=m.name, attribute_keys=set(m.attributes))
             for m in catalog.metrics.values()]
    interval_ms = interval_s * 1000 if math.isfinite(interval_s) else math.inf
    reader = PeriodicExportingMetricReader(exporter, export_interval_millis=interval_ms)
    provider = MeterProvider(
        metric_readers=[reader], resource=Resource(dict(resource)), views=views,
        exemplar_filter=AlwaysOffExemplarFilter(), shutdown_on_exit=True,
    )
    if set_global and not bind_global(provider):
        logger.warning("a global MeterProvider was already set; usage statistics "
                       "record only instruments made from UsageTelemetry.meter()")
    return provider


def count_start(provider: MeterProvider, catalog: Catalog) -> None:
    """Count this start, and observe that the app runs today (the catalog's starts and uptime)."""
    meter = provider.get_meter(LIBRARY_METER)
    starts, uptime = catalog.role("app_starts").metric, catalog.role("uptime").metric
    meter.create_counter(starts.name, unit=starts.unit).add(1)
    meter.create_observable_gauge(uptime.name, [lambda options: [Observation(1)]],
                                  unit=uptime.unit)


def observe(provider: MeterProvider, role: Role, values: Callable[[], Iterable[tuple[str, int]]],
            problems: ProblemLog) -> None:
    """An observable gauge for `role`: one observation per (attribute value, number) that
    `values` gives at each collection; a failing host callback is logged once."""
    key = role.key or ""

    def callback(options: CallbackOptions) -> Iterable[Observation]:
        try:
            return [Observation(v, {key: k}) for k, v in values()]
        except Exception as exc:  # a failing host callback is logged once
            problems.problem(f"callback:{role.metric.name}", "usage callback failed",
                             instrument=role.metric.name, error=repr(exc))
            return []

    provider.get_meter(LIBRARY_METER).create_observable_gauge(
        role.metric.name, [callback], unit=role.metric.unit)
