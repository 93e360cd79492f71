"""Builds valid weekly reports from the catalog, as the client sends them (tests only)."""

from __future__ import annotations

import gzip
import random
import secrets
import uuid
from datetime import UTC, date, datetime

from google.protobuf import json_format
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.metrics.v1.metrics_pb2 import AggregationTemporality

from otel_usage.catalog import Attribute, Catalog, load_catalog
from otel_usage.clock import default_clock
from otel_usage.weeks import Week

CATALOG = load_catalog()
# The "now" of tests that inject it into an app in this process: Wednesday 2025-06-18 12:00
# UTC; the last complete week began 2025-06-09. A server in another process takes the clock
# hook's now instead: send it `last_week()`.
NOW = datetime(2025, 6, 18, 12, tzinfo=UTC).timestamp()
WEEK = date(2025, 6, 9)


def last_week() -> date:
    """Monday of the last complete week by the clock hook (what a running server expects)."""
    return Week.of(default_clock().now()).previous().monday
# Examples for the catalog's pattern attributes (enums need none).
EXAMPLES = {
    "service.version": "2.7.0",
    "service.instance.id": "00000000-0000-4000-8000-000000000000",
    "process.runtime.version": "3.11.7",
    "geo.country.iso_code": "DE",
    "otel_usage.catalog.version": str(CATALOG.version),
}


def week_ns(week: date) -> int:
    return Week.of(week).start_nanos


def new_installation() -> str:
    return str(uuid.uuid4())


def new_credential() -> str:
    return secrets.token_urlsafe(32)


def _example(attribute: Attribute, rng: random.Random) -> str:
    if attribute.values is not None:
        return rng.choice(attribute.values)
    return EXAMPLES[attribute.key]


def resource(installation_id: str, rng: random.Random | None = None,
             catalog: Catalog = CATALOG) -> dict[str, str]:
    rng = rng or random.Random(0)
    values = {key: _example(attr, rng) for key, attr in catalog.resource.items()}
    values["service.instance.id"] = installation_id
    return values


def points(rng: random.Random | None = None, catalog: Catalog = CATALOG
           ) -> dict[str, list[tuple[dict[str, str], int]]]:
    """One to three points per catalog metric, with allowed attribute values."""
    rng = rng or random.Random(0)
    out: dict[str, list[tuple[dict[str, str], int]]] = {}
    for name, metric in catalog.metrics.items():
        seen: dict[tuple[tuple[str, str], ...], int] = {}
        for _ in range(rng.randint(1, 3)):
            attrs = {k: _example(a, rng) for k, a in metric.attributes.items()}
            ceiling = 7 if metric.weekly == "days" else 40
            seen[tuple(sorted(attrs.items()))] = rng.randint(0, ceiling)
        out[name] = [(dict(k), v) for k, v in seen.items()]
    return out


def request(installation_id: str, week: date = WEEK, *, res: dict[str, str] | None = None,
            data: dict[str, list[tuple[dict[str, str], int]]] | None = None,
            seed: int = 0, catalog: Catalog = CATALOG) -> ExportMetricsServiceRequest:
    """An ExportMetricsServiceRequest with one ResourceMetrics for one installation-week."""
    rng = random.Random(seed)
    message = ExportMetricsServiceRequest()
    add_week(message, res if res is not None else resource(installation_id, rng, catalog),
             data if data is not None else points(rng, catalog), week, catalog)
    return message


def add_week(message: ExportMetricsServiceRequest, res: dict[str, str],
             data: dict[str, list[tuple[dict[str, str], int]]], week: date,
             catalog: Catalog = CATALOG) -> None:
    rm = message.resource_metrics.add()
    rm.resource.attributes.extend(_kvs(res))
    scope = rm.scope_metrics.add()
    scope.scope.name = "otel_usage"
    start, end = Week.of(week).start_nanos, Week.of(week).end_nanos
    for name, series in data.items():
        spec = catalog.metric(name)
        metric = scope.metrics.add()
        metric.name = name
        if spec is None or spec.is_sum:
            metric.sum.aggregation_temporality = AggregationTemporality.AGGREGATION_TEMPORALITY_DELTA
            metric.sum.is_monotonic = True
            container = metric.sum.data_points
        else:
            container = metric.gauge.data_points
        for attrs, value in series:
            point = container.add()
            point.start_time_unix_nano = start
            point.time_unix_nano = end
            point.as_int = value
            point.attributes.extend(_kvs(attrs))


def _kvs(values: dict[str, str]) -> list[KeyValue]:
    return [KeyValue(key=k, value=AnyValue(string_value=v)) for k, v in values.items()]


def encode(message: ExportMetricsServiceRequest, fmt: str = "protobuf",
           compress: bool = False) -> tuple[bytes, dict[str, str]]:
    """The body and headers (without the credential) for a format."""
    if fmt == "protobuf":
        body = message.SerializeToString()
        headers = {"content-type": "application/x-protobuf"}
    else:
        body = json_format.MessageToJson(message).encode()
        headers = {"content-type": "application/json"}
    if compress:
        body = gzip.compress(body)
        headers["content-encoding"] = "gzip"
    return body, headers
