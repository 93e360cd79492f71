"""A testing API for the ingest's tests and benchmarks (and anyone who drives an ingest); the
service does not use it.

- Valid weekly reports built from the catalog, as the client sends them:

      message = request(new_installation(), Week.of(now).previous().monday, seed=7)
      body, headers = encode(message, "protobuf", compress=True)

- `store_weeks`, `store_counts`: seed a store in bulk through the service's own write path,
  without HTTP.

- `free_port`: a loopback port to start an ingest (or a gateway) on.
"""

from __future__ import annotations

import dataclasses
import gzip
import random
import secrets
import socket
import uuid
from collections.abc import Iterable, Mapping
from datetime import date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

from google.protobuf import json_format  # type: ignore[import-untyped]  # untyped: see _decode
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.metrics.v1.metrics_pb2 import AggregationTemporality

from otel_usage.catalog import Attribute, Catalog, load_catalog
from otel_usage.weeks import Week

if TYPE_CHECKING:  # the store and SQLAlchemy are imported only by the functions that seed one
    from ._store import ReportJob, Store

__all__ = ["CATALOG", "Data", "StoredWeek", "add_week", "encode", "erasure_request",
           "free_port", "listing_releases", "new_credential",
           "new_installation", "points", "request", "resource", "store_counts", "store_weeks",
           "week_ns"]

CATALOG = load_catalog()
DELTA = AggregationTemporality.AGGREGATION_TEMPORALITY_DELTA
Data = dict[str, list[tuple[dict[str, str], int]]]
# Examples for the catalog's pattern attributes (enums need none).
EXAMPLES = {
    "service.version": "2.7.0",
    "service.instance.id": "00000000-0000-4000-8000-000000000000",
    "process.runtime.version": "3.11.7",
    "geo.country.iso_code": "DE",
    "otel_usage.catalog.version": str(CATALOG.version),
}


def listing_releases(catalog: Catalog, releases: Iterable[str]) -> Catalog:
    """`catalog` with these Printernizer releases listed as the published versions
    (`[policy.privacy.resource]` "service.version"), as each release adds its number: for a
    simulated fleet, whose releases no real Printernizer release is."""
    listed = tuple(releases)
    attribute = catalog.resource["service.version"]
    if not all(attribute.allows(release) for release in listed):
        raise ValueError(f"not versions of the catalog's pattern: {listed}")
    privacy = catalog.policy.privacy
    versions = dataclasses.replace(privacy.resource["service.version"], values=listed)
    privacy = dataclasses.replace(privacy, resource={**privacy.resource,
                                                     "service.version": versions})
    return dataclasses.replace(catalog, policy=dataclasses.replace(catalog.policy,
                                                                    privacy=privacy))


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
    """Every resource attribute of the catalog, with allowed values."""
    rng = rng or random.Random(0)
    values = {key: _example(attr, rng) for key, attr in catalog.resource.items()}
    values["service.instance.id"] = installation_id
    return values


def points(rng: random.Random | None = None, catalog: Catalog = CATALOG) -> Data:
    """One to three points per catalog metric, with allowed attribute values and values no
    larger than the metric's max (as the client sends them)."""
    rng = rng or random.Random(0)
    out: Data = {}
    for name, metric in catalog.metrics.items():
        seen: dict[tuple[tuple[str, str], ...], int] = {}
        for _ in range(rng.randint(1, 3)):
            attrs = {k: _example(a, rng) for k, a in metric.attributes.items()}
            ceiling = min(metric.max, 7 if metric.weekly == "days" else 40)
            seen[tuple(sorted(attrs.items()))] = rng.randint(0, ceiling)
        out[name] = [(dict(k), v) for k, v in seen.items()]
    return out


def request(installation_id: str, week: date, *, res: dict[str, str] | None = None,
            data: Data | None = None, seed: int = 0,
            catalog: Catalog = CATALOG) -> ExportMetricsServiceRequest:
    """An ExportMetricsServiceRequest with one ResourceMetrics for one installation-week."""
    rng = random.Random(seed)
    message = ExportMetricsServiceRequest()
    add_week(message, res if res is not None else resource(installation_id, rng, catalog),
             data if data is not None else points(rng, catalog), week, catalog)
    return message


def erasure_request(installation_id: str, week: date,
                    catalog: Catalog = CATALOG) -> ExportMetricsServiceRequest:
    """The contract's erasure: one resource, the erasure metric, one point of 1 over a week."""
    message = ExportMetricsServiceRequest()
    rm = message.resource_metrics.add()
    rm.resource.attributes.extend(_kvs({
        "service.name": "printernizer", "service.instance.id": installation_id,
        "otel_usage.catalog.version": str(catalog.version)}))
    metric = rm.scope_metrics.add().metrics.add()
    metric.name = catalog.protocol.erasure_metric
    point = metric.gauge.data_points.add()
    point.start_time_unix_nano = Week.of(week).start_nanos
    point.time_unix_nano = Week.of(week).end_nanos
    point.as_int = 1
    return message


def add_week(message: ExportMetricsServiceRequest, res: dict[str, str], data: Data, week: date,
             catalog: Catalog = CATALOG) -> None:
    """Append one installation-week: a Sum or Gauge per metric, as the catalog says."""
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
            metric.sum.aggregation_temporality = DELTA
            metric.sum.is_monotonic = True
            container = metric.sum.data_points
        else:
            container = metric.gauge.data_points
        for attrs, value in series:
            point = container.add()
            point.start_time_unix_nano, point.time_unix_nano, point.as_int = start, end, value
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


class StoredWeek(NamedTuple):
    """One installation-week to seed a store with: already valid, its weeks naive UTC."""

    installation_id: str
    week_start: datetime
    resource: Mapping[str, str]
    points: Iterable[tuple[str, Mapping[str, str], int]]
    received: datetime


def store_weeks(database_url: str, weeks: Iterable[StoredWeek], batch: int = 500) -> int:
    """Write installation-weeks into a store (migrated first) through the service's write
    path, `batch` per transaction, without HTTP and without validation; how many."""
    from ._store import ReportJob, Store, create_engine
    from ._validate import Point, Report

    store = Store(create_engine(database_url))
    store.migrate()
    jobs: list[ReportJob] = []
    stored = 0
    try:
        for week in weeks:
            points = tuple(Point(m, tuple(sorted(a.items())), v) for m, a, v in week.points)
            report = Report(week.installation_id, week.week_start, dict(week.resource), points)
            jobs.append(ReportJob(week.installation_id, "0" * 64, (report,), week.received))
            if len(jobs) >= batch:
                stored += _write(store, jobs)
        stored += _write(store, jobs)
    finally:
        store.dispose()
    return stored


def _write(store: Store, jobs: list[ReportJob]) -> int:
    outcomes = store.write_reports(jobs)
    jobs.clear()
    return sum(outcome is None for outcome in outcomes)


def store_counts(database_url: str, counts: Mapping[tuple[datetime, str, str], int]) -> None:
    """Add request counts per (UTC day, outcome, reason), as the service counts requests."""
    from ._store import Store, create_engine

    store = Store(create_engine(database_url))
    try:
        store.migrate()
        store.add_counts(counts)
    finally:
        store.dispose()


_RANGE_FILE = Path("/proc/sys/net/ipv4/ip_local_port_range")
_SPAN = 8000


def free_port() -> int:
    """A loopback port nothing listens on, below the kernel's ephemeral range.

    Every outgoing connection of every process takes its local port from the ephemeral range,
    so a port found free there can be taken before the server binds it (a gateway once failed
    to start with "address already in use"); below the range only another server can."""
    low = int(_RANGE_FILE.read_text().split()[0]) if _RANGE_FILE.exists() else 32768
    first = max(1024, low - _SPAN)
    for port in secrets.SystemRandom().sample(range(first, low), low - first):
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise OSError(f"no free loopback port in {first}-{low - 1}")
