"""Build one week's report from the local store, scrubbed against the catalog.

Scrubbing: only catalog metrics the user consented to leave, only catalog
attribute keys, a value outside its enum or pattern becomes "other" (series that then coincide
are merged), counters are summed over the week, gauges give the week's highest daily peak,
"days" metrics the number of days with a record. Timestamps are the week's start and end only;
resource attributes are allowlisted by the catalog.

The result is real OTLP: a hand-built ``ExportMetricsServiceRequest`` with one
``ResourceMetrics`` and one ``ScopeMetrics`` named ``otel_usage``, delta monotonic ``Sum``s and
``Gauge``s with integer points. Its serialized bytes, gzipped, are exactly what leaves.
"""

from __future__ import annotations

import gzip
import json
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, InstrumentationScope, KeyValue
from opentelemetry.proto.metrics.v1 import metrics_pb2 as pb
from opentelemetry.proto.resource.v1.resource_pb2 import Resource

from ..catalog import Catalog, Metric
from ..store.outbox import OutboxTx
from ..weeks import Week
from .environment import Environment

__all__ = ["SCOPE_NAME", "Report", "build_report", "erasure_body", "otlp_json",
           "resource_attributes"]

SCOPE_NAME = "otel_usage"
_CATALOG_VERSION_KEY = "otel_usage.catalog.version"

# (metric name, scrubbed attributes as sorted key/value pairs)
_PointKey = tuple[str, tuple[tuple[str, str], ...]]


@dataclass(frozen=True)
class Report:
    """One week's report: the exact protobuf bytes, their gzip, and a readable rendering."""

    week: Week
    payload: bytes
    body: bytes
    rendering: dict[str, Any]

    @property
    def points(self) -> int:
        return sum(len(m["points"]) for m in self.rendering["metrics"])


def build_report(
    tx: OutboxTx,
    catalog: Catalog,
    week: Week,
    consent_version: int,
    resource: Mapping[str, str],
) -> Report:
    """The scrubbed report of `week`; `resource` comes from :func:`resource_attributes`.
    Scrubbed against what catalog version `consent_version` lets leave (its metrics, keys,
    values and resource attributes): what a newer version added is not sent."""
    view = catalog.as_of(consent_version)
    allowed = dict(view.metrics)
    rows = tx.week_rows(week.first_day, week.first_day + 7)
    values = _aggregate(rows, allowed)
    adjusted: list[dict[str, Any]] = []
    metrics = [_rendered(m, values, adjusted) for m in view.metrics.values()]
    rendering: dict[str, Any] = {
        "week": week.label,
        "start": week.start.isoformat().replace("+00:00", "Z"),
        "end": week.end.isoformat().replace("+00:00", "Z"),
        "resource": _consented_resource(view, resource),
        "metrics": [m for m in metrics if m["points"]],
    }
    if adjusted:  # values outside the catalog's range, clamped or left out
        rendering["adjusted"] = adjusted
    payload = _encode(rendering, week).SerializeToString(deterministic=True)
    return Report(week, payload, gzip.compress(payload, mtime=0), rendering)


def _consented_resource(view: Catalog, resource: Mapping[str, str]) -> dict[str, str]:
    """`resource` as `view` allows it; the catalog version it names is the consented one."""
    out = {key: spec.scrub(resource[key]) for key, spec in view.resource.items()
           if key in resource}
    if _CATALOG_VERSION_KEY in out:
        out[_CATALOG_VERSION_KEY] = str(view.version)
    return out


def _aggregate(
    rows: Iterable[tuple[str, str, int, float | None, float | None]],
    allowed: Mapping[str, Metric],
) -> dict[_PointKey, float | set[int]]:
    """Scrub each row's attributes and fold the week's rows into one value per point."""
    values: dict[_PointKey, Any] = {}
    for name, attributes, day, total, peak in rows:
        metric = allowed.get(name)
        if metric is None:
            continue
        key = (name, _scrub_attributes(metric, json.loads(attributes)))
        if metric.weekly == "sum":
            values[key] = values.get(key, 0) + (total or 0)
        elif metric.weekly == "max":
            if peak is not None:
                values[key] = max(values.get(key, peak), peak)
        else:
            values.setdefault(key, set()).add(day)
    return values


def _scrub_attributes(metric: Metric, attributes: Mapping[str, Any]) -> tuple[tuple[str, str], ...]:
    """Only the catalog's keys; a value outside its enum or pattern becomes "other"."""
    return tuple(sorted(
        (key, spec.scrub(attributes[key]))
        for key, spec in metric.attributes.items() if key in attributes
    ))


def _rendered(metric: Metric, values: Mapping[_PointKey, float | set[int]],
              adjusted: list[dict[str, Any]]) -> dict[str, Any]:
    points = []
    for (name, attributes), value in sorted(values.items(), key=lambda kv: kv[0]):
        if name != metric.name:
            continue
        number = _bounded(metric, len(value) if isinstance(value, set) else value)
        if not isinstance(value, set) and (number is None or number != round(value)):
            adjusted.append({"metric": name, "attributes": dict(attributes),
                             "value": _shown(value), "became": number})
        if number is None or (metric.is_sum and number <= 0):
            continue
        points.append({"attributes": dict(attributes), "value": number})
    return {"name": metric.name, "unit": metric.unit,
            "type": "sum" if metric.is_sum else "gauge", "points": points}


def _bounded(metric: Metric, value: float) -> int | None:
    """The value sent: None (left out) when negative, not finite, or above the catalog's
    maximum for a metric that drops; clamped to the maximum for one that clamps."""
    if not math.isfinite(value) or value < 0:
        return None
    number = round(value)
    if number > metric.max:
        return metric.max if metric.out_of_range == "clamp" else None
    return number


def _shown(value: float) -> str:
    """An out-of-range value as the preview shows it."""
    if math.isfinite(value) and float(value).is_integer() and abs(value) < 1e15:
        return str(int(value))
    return f"{value:.1e}"


def _encode(rendering: Mapping[str, Any], week: Week) -> ExportMetricsServiceRequest:
    """The rendering as an OTLP request: the one source of both, so they cannot disagree."""
    metrics = []
    for item in rendering["metrics"]:
        points = [
            pb.NumberDataPoint(attributes=_key_values(p["attributes"]), as_int=p["value"],
                               start_time_unix_nano=week.start_nanos,
                               time_unix_nano=week.end_nanos)
            for p in item["points"]
        ]
        metric = pb.Metric(name=item["name"], unit=item["unit"])
        if item["type"] == "sum":
            metric.sum.CopyFrom(pb.Sum(
                data_points=points, is_monotonic=True,
                aggregation_temporality=pb.AGGREGATION_TEMPORALITY_DELTA))
        else:
            metric.gauge.CopyFrom(pb.Gauge(data_points=points))
        metrics.append(metric)
    scope = pb.ScopeMetrics(scope=InstrumentationScope(name=SCOPE_NAME), metrics=metrics)
    resource = Resource(attributes=_key_values(rendering["resource"]))
    return ExportMetricsServiceRequest(
        resource_metrics=[pb.ResourceMetrics(resource=resource, scope_metrics=[scope])])


def _key_values(attributes: Mapping[str, str]) -> list[KeyValue]:
    return [KeyValue(key=k, value=AnyValue(string_value=v)) for k, v in attributes.items()]


def resource_attributes(
    catalog: Catalog,
    environment: Environment,
    *,
    service_name: str,
    service_version: str,
    installation_id: str,
) -> dict[str, str]:
    """The allowlisted resource attributes: a value outside its pattern becomes "other" when
    the attribute is required and is left out when it is optional."""
    facts: dict[str, str | None] = {
        "service.name": service_name,
        "service.version": service_version,
        "service.instance.id": installation_id,
        "printernizer.deployment.mode": environment.deployment_mode,
        "os.type": environment.os_type,
        "host.arch": environment.host_arch,
        "process.runtime.version": environment.python_version,
        "geo.country.iso_code": environment.country_code,
        _CATALOG_VERSION_KEY: str(catalog.version),
    }
    out: dict[str, str] = {}
    for key, spec in catalog.resource.items():
        value = facts.get(key)
        if spec.allows(value):
            out[key] = str(value)
        elif spec.required:
            out[key] = spec.other
    return out


def erasure_body(catalog: Catalog, installation_id: str, now: datetime, *,
                 service_name: str) -> bytes:
    """The contract's erasure request (catalog ``[protocol] erasure_metric``), gzipped: an OTLP
    export that travels the path of a report, through the public gateway, naming the
    installation and nothing else about the machine; one Gauge point of 1 spanning the
    sender's ISO week."""
    week = Week.of(now)
    resource = Resource(attributes=_key_values({
        "service.name": service_name, "service.instance.id": installation_id,
        _CATALOG_VERSION_KEY: str(catalog.version)}))
    point = pb.NumberDataPoint(start_time_unix_nano=week.start_nanos,
                               time_unix_nano=week.end_nanos, as_int=1)
    metric = pb.Metric(name=catalog.protocol.erasure_metric,
                       gauge=pb.Gauge(data_points=[point]))
    scope = pb.ScopeMetrics(scope=InstrumentationScope(name=SCOPE_NAME), metrics=[metric])
    request = ExportMetricsServiceRequest(
        resource_metrics=[pb.ResourceMetrics(resource=resource, scope_metrics=[scope])])
    return gzip.compress(request.SerializeToString(), mtime=0)


def otlp_json(payload: bytes) -> dict[str, Any]:
    """The protobuf payload in OTLP's JSON form, for the preview."""
    # protobuf ships no type stubs for json_format.
    from google.protobuf.json_format import MessageToDict  # type: ignore[import-untyped]

    request = ExportMetricsServiceRequest()
    request.ParseFromString(payload)
    rendered: dict[str, Any] = MessageToDict(request)
    return rendered
