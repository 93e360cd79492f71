"""A loopback OTLP/HTTP server for the consent tests: it records every request, decodes every
report body (gzip, then protobuf) into points, and answers from a script: a status with
headers (and a body), a stall (the request is held until released, or the client gives up), or
a drip (200 with a 100 MB length declared, the body a byte at a time until the client hangs
up); while `always` is set, it answers everything (a hostile server: 410 to everything,
drips, redirects)."""

from __future__ import annotations

import gzip
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
)

from otel_usage.catalog import load_catalog

STALL = -1  # an answer: hold the request until `release()`
DRIP = -2  # an answer: 200, a 100 MB Content-Length, then a byte every 20 ms (at most 2 s)
ERASURE_METRIC = load_catalog().protocol.erasure_metric


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    credential: str
    body: bytes

    def decoded(self) -> ExportMetricsServiceRequest:
        request = ExportMetricsServiceRequest()
        request.ParseFromString(gzip.decompress(self.body))
        return request

    @property
    def is_erasure(self) -> bool:
        """The contract's erasure request: an export whose only metric is the erasure metric."""
        names = [m.name for rm in self.decoded().resource_metrics
                 for sm in rm.scope_metrics for m in sm.metrics]
        return names == [ERASURE_METRIC]

    @property
    def installation_id(self) -> str:
        return self.resource()["service.instance.id"]

    def resource(self) -> dict[str, str]:
        (resource_metrics,) = self.decoded().resource_metrics
        return {kv.key: kv.value.string_value for kv in resource_metrics.resource.attributes}

    def week_start_nanos(self) -> int:
        """The start of the week the report covers (every point spans it)."""
        (resource_metrics,) = self.decoded().resource_metrics
        metric = resource_metrics.scope_metrics[0].metrics[0]
        data = metric.sum if metric.WhichOneof("data") == "sum" else metric.gauge
        return int(data.data_points[0].start_time_unix_nano)

    def points(self) -> dict[tuple[str, tuple[tuple[str, str], ...]], int]:
        """Every point of the report: (metric, sorted attributes) -> value."""
        out: dict[tuple[str, tuple[tuple[str, str], ...]], int] = {}
        (resource_metrics,) = self.decoded().resource_metrics
        for scope in resource_metrics.scope_metrics:
            for metric in scope.metrics:
                data = metric.sum if metric.WhichOneof("data") == "sum" else metric.gauge
                for point in data.data_points:
                    key = (metric.name, tuple(sorted(
                        (kv.key, kv.value.string_value) for kv in point.attributes)))
                    out[key] = point.as_int
        return out


@dataclass
class CaptureServer:
    url: str = ""
    requests: list[Request] = field(default_factory=list)
    # Each answer: a status and headers, and optionally a body.
    answers: list[tuple[int, dict[str, str]] | tuple[int, dict[str, str], bytes]] = field(
        default_factory=list)
    # The answer to every request while set, before any scripted one (a hostile server).
    always: tuple[int, dict[str, str]] | tuple[int, dict[str, str], bytes] | None = None
    arrived: threading.Event = field(default_factory=threading.Event)
    _release: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def answer(self) -> tuple[int, dict[str, str], bytes]:
        with self.lock:
            if self.always is not None:
                answer = self.always
            else:
                answer = self.answers.pop(0) if self.answers else (200, {})
        return (answer[0], answer[1], answer[2] if len(answer) == 3 else b"")

    def release(self) -> None:
        self._release.set()

    def rearm(self) -> None:
        """Stalls hold again (after a release)."""
        self._release.clear()

    def reports(self) -> list[Request]:
        return [r for r in self.requests if r.method == "POST" and not r.is_erasure]

    def erasures(self) -> list[Request]:
        return [r for r in self.requests if r.method == "POST" and r.is_erasure]


@contextmanager
def capture_server() -> Iterator[CaptureServer]:
    state = CaptureServer()

    class Handler(BaseHTTPRequestHandler):
        def _handle(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length)
            if len(body) < length:  # the client gave up mid-request (its deadline): no arrival
                self.close_connection = True
                return
            request = Request(self.command, self.path,
                              self.headers.get("X-Otel-Usage-Credential", ""), body)
            if request.method == "POST":
                request.decoded()  # every body must decode
            with state.lock:
                state.requests.append(request)
            state.arrived.set()
            status, headers, answer_body = state.answer()
            if status == DRIP:
                self._drip()
                return
            if status == STALL:
                state._release.wait(30)
                status = 200
            self.send_response(status)
            for key, value in headers.items():
                self.send_header(key, value)
            self.send_header("Content-Length", str(len(answer_body)))
            self.end_headers()
            self.wfile.write(answer_body)

        def _drip(self) -> None:
            self.send_response(200)
            self.send_header("Content-Length", "100000000")
            self.end_headers()
            try:
                for _ in range(100):
                    self.wfile.write(b"x")
                    if state._release.wait(0.02):
                        break
            except OSError:
                pass  # the client hung up
            self.close_connection = True

        do_POST = _handle

        def log_message(self, format: str, *args: Any) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    state.url = f"http://127.0.0.1:{httpd.server_port}"
    try:
        yield state
    finally:
        state.release()
        httpd.shutdown()
        httpd.server_close()
