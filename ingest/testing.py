"""A testing API for the ingest's tests and benchmarks (and anyone who drives an ingest); the
service does not use it.

- Valid weekly reports built from the catalog, as the client sends them:

      message = request(new_installation(), Week.of(now).previous().monday, seed=7)
      body, headers = encode(message, "protobuf", compress=True)

- `store_weeks`, `store_counts`: seed a store in bulk through the service's own write path,
  without HTTP.

- `free_port`: a loopback port to start an ingest (or a gateway) on.

- A fleet made to tempt differencing (`make_fleet`), sent week by week to a running ingest on
  a moved clock (`send_fleet`), and what it publishes read back (`published_rows`), for the
  attacks' tests and benchmark. It has what subtraction fed on when published numbers were
  exact: a majority with a rare remainder (an OS, a country, an architecture some
  installations do not send), a metric almost everyone uses, features whose users are nested
  in those who enabled them, points without an attribute, rare error types, small buckets.
  Every published number now comes out of the differentially private mechanism; the attacks
  on it (differencing across weeks, k - 1 fakes) are tested at the mechanism over many worlds
  (tests/test_ingest_privacy.py).
"""

from __future__ import annotations

import gzip
import itertools
import random
import secrets
import socket
import threading
import urllib.request
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
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

if TYPE_CHECKING:  # the store and SQLAlchemy are imported only by the functions that use them
    from ._store import ReportJob, Store

__all__ = ["CATALOG", "FIRST", "Clock", "Data", "Member", "Sent", "StoredWeek", "add_week",
           "encode", "erasure_request", "free_port", "listing_releases", "make_fleet",
           "new_credential", "new_installation", "points", "published_rows", "request",
           "resource", "send_fleet", "store_counts", "store_weeks", "week_ns"]

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
    versions = privacy.resource["service.version"].replace(values=listed)
    privacy = privacy.replace(resource={**privacy.resource, "service.version": versions})
    return catalog.replace(policy=catalog.policy.replace(privacy=privacy))


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
_handed_out: dict[int, None] = {}  # the ports handed out, oldest first
_handed_out_lock = threading.Lock()


def free_port() -> int:
    """A loopback port nothing listens on, below the kernel's ephemeral range, and not one of
    the last 4,000 this process has been given (half the ports it chooses from).

    Every outgoing connection of every process takes its local port from the ephemeral range,
    so a port found free there can be taken before the server binds it (a gateway once failed
    to start with "address already in use"); below the range only another server can. A port
    chosen for a server that starts later (an ingest that is down while a gateway queues) is
    free until then: without the memory, the same process could choose it again for another
    server, and the gateway would send to that one instead."""
    low = int(_RANGE_FILE.read_text().split()[0]) if _RANGE_FILE.exists() else 32768
    first = max(1024, low - _SPAN)
    with _handed_out_lock:
        while len(_handed_out) >= (low - first) // 2:  # the oldest servers are long gone
            del _handed_out[next(iter(_handed_out))]
        rng = secrets.SystemRandom()
        guesses = (rng.randrange(first, low) for _ in range(32))
        every = itertools.chain.from_iterable(  # shuffled only if every guess was taken
            rng.sample(range(first, low), low - first) for _ in range(1))
        for port in itertools.chain(guesses, every):
            if port in _handed_out:
                continue
            with socket.socket() as sock:
                try:
                    sock.bind(("127.0.0.1", port))
                except OSError:
                    continue
            _handed_out[port] = None
            return port
    raise OSError(f"no free loopback port in {first}-{low - 1}")


# A fleet made to tempt differencing --------------------------------------------------------

FIRST = date(2025, 5, 5)  # the fleet's first week


@dataclass
class Member:
    """One simulated installation: its traits, and what it reports each week."""

    rng: random.Random
    resource: dict[str, str]
    enabled: dict[str, int]
    installation_id: str = field(default_factory=new_installation)
    credential: str = field(default_factory=new_credential)

    def points(self) -> Data:
        rng, data = self.rng, {}
        status = [({"job.status": "completed", "printer.type": "prusa_core"}, rng.randint(1, 9))]
        if rng.random() < 0.3:
            status.append(({"job.status": "failed", "printer.type": "prusa_core"}, 1))
        if rng.random() < 0.04:
            status.append(({"job.status": "cancelled", "printer.type": "octoprint"}, 2))
        if rng.random() < 0.05:
            status.append(({}, rng.randint(1, 30)))  # no attributes: only in the whole row
        data["printernizer.jobs"] = status
        data["printernizer.features.enabled"] = [({"feature.name": f}, on)
                                                 for f, on in self.enabled.items()]
        data["printernizer.feature.uses"] = [
            ({"feature.name": f}, rng.randint(1, 4) if on and rng.random() < 0.9 else 0)
            for f, on in self.enabled.items()]
        data["printernizer.printers"] = [({"printer.type": "prusa_core"}, rng.choice(
            (1, 1, 1, 2, 2, 3, 7)))]
        if rng.random() < 0.12:
            kind = rng.choice(("connection_timeout", "dns_resolution_failed"))
            data["printernizer.errors"] = [
                ({"error.category": "network", "error.type": kind}, 1)]
        data["printernizer.uptime"] = [({}, rng.choice((7, 7, 7, 7, 6, 3)))]
        return data


def make_fleet(size: int = 64, seed: int = 14) -> list[Member]:
    """The fleet: `size` members drawn from `seed`."""
    rng = random.Random(seed)
    fleet = []
    for index in range(size):
        resource = {
            "service.name": "printernizer", "service.version": "2.7.0",
            "printernizer.deployment.mode": rng.choice(("docker", "homeassistant", "pi")),
            "os.type": "darwin" if index < 3 else "windows" if index == 3 else "linux",
            "process.runtime.version": "3.12.7",
            "geo.country.iso_code": "IS" if index in (10, 11) else "AT" if index < 20 else "DE",
            "otel_usage.catalog.version": str(CATALOG.version),
        }
        if index % 31:  # two installations do not send their architecture
            resource["host.arch"] = "arm32" if index == 5 else "arm64" if index % 3 else "amd64"
        enabled = {"library": int(index % 8 != 0), "timelapse": int(index % 9 == 0)}
        fleet.append(Member(random.Random(rng.random()), resource, enabled))
    return fleet


Row = tuple[str, str, str, str, int | None, int | None]  # kind, metric, attribute, value,
# installations, total (None where the cell publishes no such number)
Truth = dict[str, tuple[dict[str, str], Data]]  # installation -> its week


# Sending the fleet, reading what was published ---------------------------------------------

class Clock:
    """A server's clock (`Settings.clock`), moved by whoever sends the fleet."""

    def __init__(self, when: datetime) -> None:
        self.now = when.timestamp()

    def __call__(self) -> float:
        return self.now

    def at(self, week: date, days: float = 2.5) -> None:
        self.now = (Week.of(week).start + timedelta(days=days)).timestamp()


@dataclass
class Sent:
    """What the fleet sent: per data week, each member's resource and points."""

    weeks: dict[date, Truth]


def send_fleet(base: str, clock: Clock, fleet: list[Member], weeks: int) -> Sent:
    """Each member's weeks to the server at `base`, each week's in the week after it (some
    join late, one reports once), moving `clock` along."""
    sent = Sent({})
    for offset in range(weeks):
        week = FIRST + timedelta(weeks=offset)
        clock.at(week + timedelta(weeks=1))
        sent.weeks[week] = {}
        for index, member in enumerate(fleet):
            if (index % 13 == 0 and offset < 2) or (index == 7 and offset > 0):
                continue
            resource = member.resource | {"service.instance.id": member.installation_id}
            points = member.points()
            _post(base, member.credential, request(member.installation_id, week, data=points,
                                                   res=resource))
            sent.weeks[week][member.installation_id] = (resource, points)
    return sent


def _post(base: str, credential: str, message: ExportMetricsServiceRequest) -> None:
    body, headers = encode(message, "protobuf", True)
    headers[CATALOG.protocol.credential_header] = credential
    sent = urllib.request.Request(base + CATALOG.protocol.metrics_path, body, headers)
    with urllib.request.urlopen(sent, timeout=30) as answer:
        assert answer.status == 200, answer.read()


_VIEWS = {
    "active": "SELECT week_start, '', '', '', installations, 0 FROM usage_active_installations",
    "resource": "SELECT week_start, '', attribute, value, installations, 0 "
                "FROM usage_resource_attributes",
    "metric": "SELECT week_start, metric, attribute, value, installations, total "
              "FROM usage_metrics",
    "distribution": "SELECT week_start, metric, '', bucket_min, installations, NULL "
                    "FROM usage_distributions",
}


def published_rows(url: str) -> dict[date, list[Row]]:
    """Every row of the weekly views, by week, as (kind, metric, attribute, value,
    installations, total): noisy numbers, None where the view has none."""
    import sqlalchemy as sa

    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    rows: dict[date, list[Row]] = {}
    with engine.connect() as conn:
        for kind, sql in _VIEWS.items():
            for week, metric, attribute, value, installations, total in conn.exec_driver_sql(sql):
                day = (week if isinstance(week, datetime) else datetime.fromisoformat(week)).date()
                rows.setdefault(day, []).append(
                    (kind, metric, attribute, str(value), _number(installations),
                     _number(total)))
    engine.dispose()
    return rows


def _number(value: object) -> int | None:
    return None if value is None else int(str(value))
