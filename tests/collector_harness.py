"""What the collector tests start: the gateway built from collector-config/, test certificates,
a recording OTLP/HTTP receiver as the gateway's downstream, and raw OTLP weekly reports.

Everything listens on loopback only; every wait polls with a bounded timeout.
"""

from __future__ import annotations

import gzip
import os
import signal
import sqlite3
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from contextlib import closing
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest
import trustme
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
    ExportMetricsServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, InstrumentationScope, KeyValue
from opentelemetry.proto.metrics.v1 import metrics_pb2 as pb
from opentelemetry.proto.resource.v1.resource_pb2 import Resource

from ingest.testing import free_port
from otel_usage.catalog import load_catalog
from otel_usage.clock import default_clock
from otel_usage.weeks import Week

ROOT = Path(__file__).resolve().parent.parent
CONFIG_DIR = ROOT / "collector-config"
BUILD_SCRIPT = CONFIG_DIR / "build.sh"
BINARY = CONFIG_DIR / "_build" / "otelcol-otel-usage"
GATEWAY_CONFIG = CONFIG_DIR / "gateway.yaml"
CREDENTIAL_HEADER = load_catalog().protocol.credential_header


def last_week() -> Week:
    """The last complete week by the clock hook (asked at each use, never frozen at import):
    Monday 00:00 UTC to the next Monday, as the catalog's [protocol] says."""
    return Week.of(default_clock().now()).previous()


def build_collector() -> Path:
    """The gateway binary, built by build.sh or reused from its cache; fails with the reason."""
    result = subprocess.run([BUILD_SCRIPT], capture_output=True, text=True, timeout=1200)
    if result.returncode != 0:
        pytest.fail(f"collector-config/build.sh failed:\n{result.stderr.strip()}")
    return BINARY


def wait_until(condition: Callable[[], bool], timeout: float,
               what: str | Callable[[], str]) -> None:
    """Polls `condition` every 50 ms until it holds; fails after `timeout` seconds, saying
    `what` (called then, if it is a function: a log's tail as it is at the failure)."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            said = what() if callable(what) else what
            pytest.fail(f"timed out after {timeout} s waiting for {said}")
        time.sleep(0.05)


def terminate(process: subprocess.Popen[bytes] | None, timeout: float) -> bool:
    """A graceful shutdown (SIGTERM), as an orchestrator stops a service; False when it had to
    be killed."""
    if process is None or process.poll() is not None:
        return True
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
        return False
    return True


@dataclass
class Certificates:
    """A test CA and a server certificate for 127.0.0.1, as PEM files."""

    ca: trustme.CA
    cert_file: Path
    key_file: Path

    @classmethod
    def make(cls, directory: Path) -> Certificates:
        ca = trustme.CA()
        server = ca.issue_cert("127.0.0.1", "localhost")
        cert_file, key_file = directory / "gateway.crt", directory / "gateway.key"
        cert_file.write_bytes(b"".join(pem.bytes() for pem in server.cert_chain_pems))
        server.private_key_pem.write_to_path(str(key_file))
        return cls(ca, cert_file, key_file)

    def client_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context()
        self.ca.configure_trust(context)
        return context


@dataclass(frozen=True)
class Received:
    """One request the recording receiver got: its headers and its decoded OTLP body."""

    headers: Mapping[str, str]
    request: ExportMetricsServiceRequest

    @property
    def installation_ids(self) -> list[str]:
        return [resource_attributes(rm)["service.instance.id"] for rm in self.request.resource_metrics]


class RecordingReceiver:
    """A loopback OTLP/HTTP metrics receiver that records what the gateway forwards to it.

    It stands where the ingest stands, answers 200 to every well-formed request, and can be
    stopped and started again on the same port.
    """

    def __init__(self) -> None:
        self.port = free_port()
        self.received: list[Received] = []
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        handler = _recording_handler(self._record)
        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), handler)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def _record(self, item: Received) -> None:
        with self._lock:
            self.received.append(item)

    def snapshot(self) -> list[Received]:
        with self._lock:
            return list(self.received)


def _recording_handler(record: Callable[[Received], None]) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            if self.headers.get("Content-Encoding") == "gzip":
                body = gzip.decompress(body)
            request = ExportMetricsServiceRequest.FromString(body)
            record(Received({k.lower(): v for k, v in self.headers.items()}, request))
            reply = ExportMetricsServiceResponse().SerializeToString()
            self.send_response(200)
            self.send_header("Content-Type", "application/x-protobuf")
            self.send_header("Content-Length", str(len(reply)))
            self.end_headers()
            self.wfile.write(reply)

        def log_message(self, format: str, *args: object) -> None:
            pass  # the test reads what was recorded, not an access log

    return Handler


@dataclass
class Gateway:
    """The collector gateway as a process, with gateway.yaml and its environment."""

    binary: Path
    certificates: Certificates
    queue_dir: Path
    downstream_url: str
    log_file: Path
    port: int = field(default_factory=free_port)
    health_port: int = field(default_factory=free_port)
    telemetry_port: int = field(default_factory=free_port)
    config: Path = GATEWAY_CONFIG
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    def environment(self) -> dict[str, str]:
        return {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "OTEL_USAGE_GATEWAY_CERT": str(self.certificates.cert_file),
            "OTEL_USAGE_GATEWAY_KEY": str(self.certificates.key_file),
            "OTEL_USAGE_GATEWAY_ENDPOINT": f"127.0.0.1:{self.port}",
            "OTEL_USAGE_GATEWAY_QUEUE_DIR": str(self.queue_dir),
            "OTEL_USAGE_INGEST_URL": self.downstream_url,
            "OTEL_USAGE_GATEWAY_HEALTH_ENDPOINT": f"127.0.0.1:{self.health_port}",
            "OTEL_USAGE_GATEWAY_TELEMETRY_PORT": str(self.telemetry_port),
            # Tests wait for retries and compactions: keep them frequent.
            "OTEL_USAGE_GATEWAY_RETRY_MAX_INTERVAL": "1s",
            "OTEL_USAGE_GATEWAY_COMPACTION_INTERVAL": "1s",
        }

    def validate(self, config: Path = GATEWAY_CONFIG) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [self.binary, "validate", "--config", config],
            env=self.environment(), capture_output=True, text=True, timeout=60,
        )

    def start(self, timeout: float = 30.0) -> None:
        log = self.log_file.open("ab")
        self.process = subprocess.Popen(
            [self.binary, "--config", self.config],
            env=self.environment(), stdout=log, stderr=subprocess.STDOUT,
        )
        log.close()
        wait_until(self._healthy, timeout, lambda: f"the gateway's health check\n{self.log_tail()}")

    def _healthy(self) -> bool:
        assert self.process is not None
        if self.process.poll() is not None:
            pytest.fail(f"the gateway exited with {self.process.returncode}:\n{self.log_tail()}")
        try:
            return httpx.get(f"http://127.0.0.1:{self.health_port}/", timeout=1).status_code == 200
        except httpx.TransportError:
            return False

    def stop(self, timeout: float = 30.0) -> None:
        if not terminate(self.process, timeout):
            pytest.fail(f"the gateway did not stop within {timeout} s:\n{self.log_tail()}")

    def queue_size(self) -> int:
        """The exporter's queue length, from the collector's own metrics on loopback."""
        text = httpx.get(f"http://127.0.0.1:{self.telemetry_port}/metrics", timeout=5).text
        for line in text.splitlines():
            if line.startswith("otelcol_exporter_queue_size{"):
                return int(float(line.rsplit(" ", 1)[1]))
        return 0

    def queue_files(self) -> dict[str, bytes]:
        """Every file in the queue directory, by name, with its bytes."""
        return {path.name: path.read_bytes() for path in sorted(self.queue_dir.rglob("*"))
                if path.is_file()}

    def queue_bytes(self) -> bytes:
        return b"".join(self.queue_files().values())

    def log_tail(self, lines: int = 40) -> str:
        if not self.log_file.exists():
            return ""
        return "\n".join(self.log_file.read_text(errors="replace").splitlines()[-lines:])

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.url, verify=self.certificates.client_context(), timeout=10)


@dataclass
class Ingest:
    """The real ingest service (`otel-usage-ingest serve`) on loopback, on a SQLite file."""

    database: Path
    log_file: Path
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None
    options: tuple[str, ...] = ()  # more `serve` options

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 30.0) -> None:
        log = self.log_file.open("ab")
        self.process = subprocess.Popen(
            [Path(sys.executable).parent / "otel-usage-ingest", "serve",
             "--database", f"sqlite:///{self.database}", "--host", "127.0.0.1",
             "--port", str(self.port), *self.options],
            stdout=log, stderr=subprocess.STDOUT,
        )
        log.close()
        wait_until(self._ready, timeout, "the ingest's /readyz")

    def _ready(self) -> bool:
        assert self.process is not None
        if self.process.poll() is not None:
            pytest.fail(f"the ingest exited with {self.process.returncode}:\n"
                        + self.log_file.read_text(errors="replace")[-4000:])
        try:
            return httpx.get(f"{self.url}/readyz", timeout=1).status_code == 200
        except httpx.TransportError:
            return False

    def stop(self, timeout: float = 30.0) -> None:
        if not terminate(self.process, timeout):
            pytest.fail(f"the ingest did not stop within {timeout} s")

    def stored_reports(self) -> list[tuple[str, str, str]]:
        """(installation id, resource, points) of every stored week, read from the database."""
        if not self.database.exists():
            return []
        with closing(sqlite3.connect(self.database)) as db:
            try:
                rows = db.execute("SELECT installation_id, resource, points FROM weekly_reports"
                                  " ORDER BY installation_id").fetchall()
            except sqlite3.OperationalError:  # not created yet
                return []
        return [(str(i), str(r), str(p)) for i, r, p in rows]


def send(client: httpx.Client, report: ExportMetricsServiceRequest, credential: str | None,
         extra_headers: Mapping[str, str] | None = None) -> httpx.Response:
    """POSTs a report as the client does: protobuf, gzip, the credential header."""
    headers = {"Content-Type": "application/x-protobuf", "Content-Encoding": "gzip"}
    if credential is not None:
        headers[CREDENTIAL_HEADER] = credential
    headers.update(extra_headers or {})
    body = gzip.compress(report.SerializeToString())
    return client.post(load_catalog().protocol.metrics_path, content=body, headers=headers)


def _kv(key: str, value: str) -> KeyValue:
    return KeyValue(key=key, value=AnyValue(string_value=value))


def _sum(name: str, unit: str, points: Iterable[tuple[dict[str, str], int]],
         week: Week) -> pb.Metric:
    return pb.Metric(name=name, unit=unit, sum=pb.Sum(
        aggregation_temporality=pb.AGGREGATION_TEMPORALITY_DELTA, is_monotonic=True,
        data_points=[_point(attrs, value, week) for attrs, value in points],
    ))


def _gauge(name: str, unit: str, points: Iterable[tuple[dict[str, str], int]],
           week: Week) -> pb.Metric:
    return pb.Metric(name=name, unit=unit, gauge=pb.Gauge(
        data_points=[_point(attrs, value, week) for attrs, value in points],
    ))


def _point(attributes: dict[str, str], value: int, week: Week) -> pb.NumberDataPoint:
    return pb.NumberDataPoint(
        attributes=[_kv(k, v) for k, v in attributes.items()],
        start_time_unix_nano=week.start_nanos, time_unix_nano=week.end_nanos, as_int=value,
    )


def weekly_report(installation_id: str, *, jobs: int = 3,
                  resource_extra: Mapping[str, str] | None = None,
                  scope_extra: Mapping[str, str] | None = None,
                  point_extra: Mapping[str, str] | None = None,
                  metrics_extra: Iterable[pb.Metric] = (),
                  week: Week | None = None) -> ExportMetricsServiceRequest:
    """A week's report (by default the last complete one) shaped as the catalog's [protocol]
    describes, with optional additions that the catalog does not allow (a raw OTLP client may
    send anything)."""
    week = week or last_week()
    resource = {
        "service.name": "printernizer", "service.version": "2.7.0",
        "service.instance.id": installation_id, "printernizer.deployment.mode": "docker",
        "os.type": "linux", "process.runtime.version": "3.12.3",
        "otel_usage.catalog.version": str(load_catalog().version),
        **(resource_extra or {}),
    }
    metrics = [
        _sum("printernizer.jobs", "{job}", [
            ({"job.status": "completed", "printer.type": "bambu_lab", **(point_extra or {})}, jobs),
        ], week),
        _gauge("printernizer.printers", "{printer}", [({"printer.type": "prusa_core"}, 2)], week),
        _sum("printernizer.app.starts", "{start}", [({}, 4)], week),
        *metrics_extra,
    ]
    scope = InstrumentationScope(name="otel_usage",
                                 attributes=[_kv(k, v) for k, v in (scope_extra or {}).items()])
    return ExportMetricsServiceRequest(resource_metrics=[pb.ResourceMetrics(
        resource=Resource(attributes=[_kv(k, v) for k, v in resource.items()]),
        scope_metrics=[pb.ScopeMetrics(scope=scope, metrics=metrics)],
    )])


def outside_metric(week: Week | None = None) -> pb.Metric:
    """A metric the catalog does not list, carrying something personal."""
    return _sum("printernizer.file.names", "{file}", [({"file.name": "benchy.3mf"}, 1)],
                week or last_week())


def resource_attributes(resource_metrics: pb.ResourceMetrics) -> dict[str, str]:
    return {kv.key: kv.value.string_value for kv in resource_metrics.resource.attributes}


def point_attributes(request: ExportMetricsServiceRequest) -> dict[str, list[dict[str, str]]]:
    """Every metric's points' attributes, by metric name."""
    found: dict[str, list[dict[str, str]]] = {}
    for rm in request.resource_metrics:
        for sm in rm.scope_metrics:
            for metric in sm.metrics:
                points = metric.sum.data_points if metric.HasField("sum") else metric.gauge.data_points
                found[metric.name] = [
                    {kv.key: kv.value.string_value for kv in p.attributes} for p in points
                ]
    return found
