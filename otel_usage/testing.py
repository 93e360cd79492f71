"""The testing API: what tests, benchmarks and simulations need beyond the host's API.

Documented and kept stable like the public API, so that nothing outside the package reaches
into its internals:

- :class:`ManualClock` (also in ``otel_usage``): a clock that moves only when told to; inject
  it with ``UsageTelemetry(..., clock=ManualClock(start))``.
- :func:`week_report`: build and scrub one week's report from an installation's store exactly as
  the sender would, without storing or sending it (to measure or inspect the weekly aggregation).
- :func:`wait_for_uploads`: wait until the sender's background thread has finished the run a
  start or a change of mode woke it for (to look at what it sent, without sleeping).
- :func:`loopback_endpoint`: a server on 127.0.0.1 that records what was sent to it (each
  report's installation, week and points; each erasure) and answers as told
  (:meth:`LoopbackEndpoint.fail_next`): pass its ``url`` as ``UsageTelemetry(endpoint=...)``.
- :func:`report_when_week_closes`: make an installation's weekly report due the moment its
  week closes (Monday 00:00 UTC) instead of at its drawn weekday and hour.
"""

from __future__ import annotations

import gzip
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from .clock import ManualClock
from .telemetry import UsageTelemetry
from .weeks import Week

__all__ = ["LoopbackEndpoint", "ManualClock", "Received", "WeekReport", "loopback_endpoint",
           "report_when_week_closes", "wait_for_uploads", "week_report"]


@dataclass(frozen=True)
class WeekReport:
    """A built report: its week, the gzipped protobuf body that would leave, how many points
    it holds, and its readable rendering."""

    week: Week
    body: bytes
    points: int
    rendering: dict[str, Any]


def week_report(usage: UsageTelemetry, week: Week,
                consent_version: int | None = None) -> WeekReport:
    """`week`'s report from `usage`'s store, scrubbed for `consent_version` (default: the
    catalog's version), with the resource attributes the sender would give it."""
    from .report.build import build_report
    from .store.outbox import OutboxTx

    version = usage.catalog.version if consent_version is None else consent_version
    with usage.store.read(OutboxTx) as tx:
        installation_id = tx.meta("installation_id") or ""
        resource = usage.uploads.resource(installation_id)
        report = build_report(tx, usage.catalog, week, version, resource)
    return WeekReport(week, report.body, report.points, report.rendering)


def wait_for_uploads(usage: UsageTelemetry, timeout_s: float = 10.0) -> bool:
    """Wait until `usage`'s background sender is between runs: True once the run in progress
    (or woken, not yet begun) has finished, False when `timeout_s` passed first."""
    return usage.uploads.idle.wait(timeout_s)


def report_when_week_closes(usage: UsageTelemetry) -> None:
    """Make `usage`'s weekly report due when its week closes (Monday 00:00 UTC), not at the
    weekday and hour drawn for the installation (which spread a fleet's reports over a week)."""
    with usage.store.transaction() as tx:
        tx.set_meta("report_weekday", "0")
        tx.set_meta("report_hour", "0")


Point = tuple[str, tuple[tuple[str, str], ...]]  # (metric, sorted attributes)


@dataclass(frozen=True)
class Received:
    """One request the endpoint received: a weekly report or an erasure, decoded."""

    path: str
    installation_id: str
    is_erasure: bool
    week_start: datetime | None  # the week a report covers (None for an erasure)
    points: dict[Point, int]  # every point of a report: (metric, attributes) -> value


@dataclass
class LoopbackEndpoint:
    """What :func:`loopback_endpoint` received, and how it answers next."""

    url: str = ""
    received: list[Received] = field(default_factory=list)
    _failures: list[int] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def reports(self) -> list[Received]:
        """The weekly reports received, in order (a refused one included)."""
        with self._lock:
            return [r for r in self.received if not r.is_erasure]

    @property
    def erasures(self) -> list[Received]:
        with self._lock:
            return [r for r in self.received if r.is_erasure]

    def fail_next(self, times: int = 1, status: int = 503) -> None:
        """Answer the next `times` requests with `status` (a server down for maintenance)."""
        with self._lock:
            self._failures.extend([status] * times)

    def _record(self, path: str, body: bytes) -> int:
        received = _decode(path, body)
        with self._lock:
            self.received.append(received)
            return self._failures.pop(0) if self._failures else 200


def _decode(path: str, body: bytes) -> Received:
    """A request's gzipped OTLP protobuf body as a :class:`Received`."""
    from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
        ExportMetricsServiceRequest,
    )

    from .catalog import load_catalog

    request = ExportMetricsServiceRequest()
    request.ParseFromString(gzip.decompress(body))
    (resource_metrics,) = request.resource_metrics
    resource = {kv.key: kv.value.string_value for kv in resource_metrics.resource.attributes}
    points: dict[Point, int] = {}
    start: int | None = None
    for scope in resource_metrics.scope_metrics:
        for metric in scope.metrics:
            data = metric.sum if metric.WhichOneof("data") == "sum" else metric.gauge
            for point in data.data_points:
                attributes = tuple(sorted((kv.key, kv.value.string_value)
                                          for kv in point.attributes))
                points[(metric.name, attributes)] = point.as_int
                start = point.start_time_unix_nano
    erasure = {name for name, _ in points} == {load_catalog().protocol.erasure_metric}
    week_start = None if erasure or start is None else datetime.fromtimestamp(start / 1e9, UTC)
    return Received(path, resource.get("service.instance.id", ""), erasure, week_start,
                    {} if erasure else points)


@contextmanager
def loopback_endpoint() -> Iterator[LoopbackEndpoint]:
    """A loopback OTLP/HTTP endpoint, served from a thread while the block runs."""
    endpoint = LoopbackEndpoint()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            self.send_response(endpoint._record(self.path, body))
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            """Quiet: what arrived is in `endpoint.received`."""

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    endpoint.url = f"http://127.0.0.1:{server.server_port}"
    try:
        yield endpoint
    finally:
        server.shutdown()
        server.server_close()
