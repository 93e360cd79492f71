"""Sending weekly reports to a local OTLP/HTTP server that records what arrives."""

from __future__ import annotations

import asyncio
import dataclasses
import gzip
import socket
import sqlite3
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
)

from otel_usage import ManualClock, TransportError, UsageTelemetry
from otel_usage.send.transport import check_endpoint, post_report
from otel_usage.testing import wait_for_uploads

# Wednesday of ISO week 2026-W47; the user opts in then, so W48 is the first week sent.
OPT_IN = datetime(2026, 11, 18, 10, 0, tzinfo=UTC)
W48_MONDAY = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
AFTER_W48 = datetime(2026, 12, 6, 23, 0, tzinfo=UTC)  # the latest possible slot for W48
JOB = {"job.status": "completed", "printer.type": "bambu_lab"}


@dataclass
class Received:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    @property
    def erased(self) -> str | None:
        """The installation an erasure request names (the catalog's erasure metric, one
        resource, one Gauge point of 1), or None for any other request."""
        request = ExportMetricsServiceRequest()
        request.ParseFromString(gzip.decompress(self.body))
        (rm,) = request.resource_metrics
        metrics = [m for sm in rm.scope_metrics for m in sm.metrics]
        if [m.name for m in metrics] != ["otel_usage.erasure"]:
            return None
        assert [p.as_int for p in metrics[0].gauge.data_points] == [1]
        return {kv.key: kv.value.string_value for kv in rm.resource.attributes}[
            "service.instance.id"]

    def described(self) -> tuple[str, str, str | None, str]:
        return (self.method, self.path, self.erased, self.headers["X-Otel-Usage-Credential"])


@dataclass
class Server:
    """A loopback OTLP/HTTP endpoint: records requests, answers from a script."""

    url: str = ""
    requests: list[Received] = field(default_factory=list)
    answers: list[tuple[int, dict[str, str]]] = field(default_factory=list)

    def answer(self) -> tuple[int, dict[str, str]]:
        return self.answers.pop(0) if self.answers else (200, {})

    def reports(self) -> list[ExportMetricsServiceRequest]:
        out = []
        for r in self.requests:
            if r.method == "POST":
                request = ExportMetricsServiceRequest()
                request.ParseFromString(gzip.decompress(r.body))
                out.append(request)
        return out


@pytest.fixture
def server() -> Iterator[Server]:
    state = Server()

    class Handler(BaseHTTPRequestHandler):
        def _handle(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            state.requests.append(Received(self.command, self.path, dict(self.headers),
                                           self.rfile.read(length)))
            status, headers = state.answer()
            self.send_response(status)
            for key, value in headers.items():
                self.send_header(key, value)
            self.send_header("Content-Length", "0")
            self.end_headers()

        do_POST = _handle

        def log_message(self, format: str, *args: object) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    state.url = f"http://127.0.0.1:{httpd.server_port}"
    yield state
    httpd.shutdown()
    httpd.server_close()


def make(data_dir: Path, clock: ManualClock, endpoint: str, **kwargs: object) -> UsageTelemetry:
    return UsageTelemetry(data_dir, clock=clock, endpoint=endpoint, service_version="2.7.0",
                          export_interval_s=float("inf"), background_uploads=False,
                          environ={"DEPLOYMENT_MODE": "docker", "TZ": "Europe/Berlin"},
                          **kwargs)  # type: ignore[arg-type]


def pin_report_slot(data_dir: Path) -> None:
    """Wednesday noon: W48 is due by AFTER_W48 (its latest possible slot) whatever the slot,
    but a random Monday-midnight slot would also make W49 due within some tests' windows."""
    with sqlite3.connect(data_dir / "usage.sqlite3") as conn:
        conn.executemany("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)",
                         [("report_weekday", "2"), ("report_hour", "12")])


def record_w48(data_dir: Path, server: Server, mode: str = "on") -> tuple[UsageTelemetry,
                                                                          ManualClock]:
    """Opt in (or not) on W47's Wednesday, count jobs in W47 and W48."""
    clock = ManualClock(OPT_IN)
    usage = make(data_dir, clock, server.url)
    usage.set_mode(mode)
    pin_report_slot(data_dir)
    usage.start()
    jobs = usage.meter().create_counter("printernizer.jobs")
    jobs.add(5, JOB)  # W47: began before the opt-in, never sent
    usage.flush()
    clock.set(W48_MONDAY)
    jobs.add(2, JOB)
    jobs.add(1, {"job.status": "completed", "printer.type": "Prusa MK4 SN CZPX1234"})
    usage.meter().create_counter("printernizer.printer.serials").add(1, {"serial": "CZPX1234"})
    usage.flush()
    return usage, clock


def test_a_closed_week_arrives_exactly_once_with_its_credential(data_dir: Path,
                                                                server: Server) -> None:
    usage, clock = record_w48(data_dir, server)
    clock.set(AFTER_W48)
    summary = usage.send_now()
    assert (summary["built"], summary["sent"]) == (["2026-W48"], ["2026-W48"])
    assert usage.send_now()["sent"] == []
    (received,) = server.requests
    assert (received.method, received.path, received.headers["Content-Type"],
            received.headers["Content-Encoding"]) == (
        "POST", "/v1/metrics", "application/x-protobuf", "gzip")
    secret = received.headers["X-Otel-Usage-Credential"]
    assert len(secret) == 43
    (report,) = server.reports()
    resource = {kv.key: kv.value.string_value
                for kv in report.resource_metrics[0].resource.attributes}
    installation_id = resource.pop("service.instance.id")
    assert resource == {
        "service.name": "printernizer", "service.version": "2.7.0",
        "printernizer.deployment.mode": "docker", "os.type": "linux", "host.arch": "amd64",
        "process.runtime.version": "{}.{}.{}".format(*sys.version_info[:3]),
        "geo.country.iso_code": "DE",
        "otel_usage.catalog.version": str(usage.catalog.version),
    }
    metrics = {m.name: [(dict((kv.key, kv.value.string_value) for kv in p.attributes), p.as_int)
                        for p in m.sum.data_points or m.gauge.data_points]
               for m in report.resource_metrics[0].scope_metrics[0].metrics}
    assert metrics == {
        "printernizer.jobs": [(JOB, 2), ({"job.status": "completed", "printer.type": "other"}, 1)],
        "printernizer.uptime": [({}, 1)],  # the start itself was counted in W47
    }
    history = usage.history()
    assert history == [{"kind": "report", "week": "2026-W48",
                        "attempted_at": history[0]["attempted_at"], "endpoint": server.url,
                        "bytes": len(received.body), "status": 200, "answer": "OK"}]
    last_submitted = asyncio.run(usage.statistics())["last_submitted"]
    assert last_submitted == history[0]["attempted_at"] == "2026-12-06T23:00:00+00:00"
    assert secret not in repr(usage.preview()) + repr(history)
    assert installation_id == usage.preview()["last_sent"]["resource"]["service.instance.id"]


@pytest.mark.parametrize("mode", ["local", "off"])
def test_nothing_is_sent_unless_mode_is_on(data_dir: Path, server: Server, mode: str) -> None:
    usage, clock = record_w48(data_dir, server, mode)
    clock.set(AFTER_W48)
    assert usage.send_now()["built"] == []
    usage.shutdown()
    assert server.requests == []


def test_weeks_that_began_before_the_opt_in_are_never_sent(data_dir: Path,
                                                           server: Server) -> None:
    usage, clock = record_w48(data_dir, server)
    clock.set(datetime(2026, 12, 15, tzinfo=UTC))
    assert usage.send_now()["built"] == ["2026-W48", "2026-W49", "2026-W50"]
    labels = sorted({m.sum.data_points[0].start_time_unix_nano
                     for r in server.reports()
                     for m in r.resource_metrics[0].scope_metrics[0].metrics if m.sum.data_points})
    assert labels == [int(datetime(2026, 11, 23, tzinfo=UTC).timestamp()) * 10**9]
    assert [h["week"] for h in usage.history()] == ["2026-W48"]  # W49 and W50 were empty


def test_503_with_retry_after_is_honoured(data_dir: Path, server: Server) -> None:
    usage, clock = record_w48(data_dir, server)
    server.answers = [(503, {"Retry-After": "7200"})]
    clock.set(AFTER_W48)
    assert usage.send_now()["retry"] == ["2026-W48"]
    clock.advance(timedelta(seconds=7199))
    assert usage.send_now()["sent"] == []
    clock.advance(timedelta(seconds=1))
    assert usage.send_now()["sent"] == ["2026-W48"]
    assert [(h["status"], h["answer"]) for h in usage.history()] == [
        (503, "Service Unavailable"), (200, "OK")]
    assert len(server.requests) == 2 and server.requests[0].body == server.requests[1].body


def test_an_http_date_retry_after_is_measured_on_the_injected_clock(data_dir: Path,
                                                                    server: Server) -> None:
    """Retry-After as an HTTP-date two hours after the injected now (years from the machine's
    date either way): the next attempt is due exactly then."""
    usage, clock = record_w48(data_dir, server)
    clock.set(AFTER_W48)
    server.answers = [(503, {"Retry-After": format_datetime(AFTER_W48 + timedelta(hours=2),
                                                            usegmt=True)})]
    assert usage.send_now()["retry"] == ["2026-W48"]
    clock.advance(timedelta(hours=2) - timedelta(seconds=1))
    assert usage.send_now()["sent"] == []
    clock.advance(timedelta(seconds=1))
    assert usage.send_now()["sent"] == ["2026-W48"]


def test_a_400_is_not_retried(data_dir: Path, server: Server) -> None:
    usage, clock = record_w48(data_dir, server)
    server.answers = [(400, {})]
    clock.set(AFTER_W48)
    assert usage.send_now()["failed"] == ["2026-W48"]
    clock.advance(timedelta(days=30))
    usage.send_now()
    assert len(server.requests) == 1


def test_backoff_is_kept_across_a_restart(data_dir: Path, server: Server) -> None:
    usage, clock = record_w48(data_dir, server)
    server.answers = [(500, {}), (500, {})]
    clock.set(AFTER_W48)
    assert usage.send_now()["retry"] == ["2026-W48"]
    usage.shutdown()
    # A new process on the same directory keeps the 30-minute wait, then doubles it.
    usage = make(data_dir, clock, server.url)
    clock.advance(timedelta(minutes=29))
    assert usage.send_now()["retry"] == []
    clock.advance(timedelta(minutes=1))
    assert usage.send_now()["retry"] == ["2026-W48"]
    clock.advance(timedelta(minutes=59))
    assert usage.send_now()["sent"] == []
    clock.advance(timedelta(minutes=1))
    assert usage.send_now()["sent"] == ["2026-W48"]
    assert [h["status"] for h in usage.history()] == [500, 500, 200]


def test_reports_older_than_8_weeks_are_dropped_unsent(data_dir: Path, server: Server) -> None:
    usage, clock = record_w48(data_dir, server)
    server.answers = [(500, {})]
    clock.set(AFTER_W48)
    usage.send_now()
    clock.set(datetime(2026, 11, 30, tzinfo=UTC) + timedelta(weeks=8))
    summary = usage.send_now()
    assert (summary["expired"], summary["sent"]) == (1, [])
    assert len(server.requests) == 1
    with sqlite3.connect(data_dir / "usage.sqlite3") as conn:
        assert conn.execute("SELECT state, body FROM outbox WHERE week = '2026-W48'"
                            ).fetchone() == ("expired", None)


def test_a_week_found_at_the_next_start_is_caught_up(data_dir: Path, server: Server) -> None:
    """The app was not running when W48's report was due: the next start sends it."""
    usage, clock = record_w48(data_dir, server)
    usage.shutdown()
    clock.set(AFTER_W48)
    usage = UsageTelemetry(data_dir, clock=clock, endpoint=server.url, service_version="2.7.0",
                           export_interval_s=float("inf"))
    usage.start()
    assert wait_for_uploads(usage)
    usage.shutdown()
    assert [h["week"] for h in usage.history()] == ["2026-W48"]


def sent_w48(data_dir: Path, server: Server) -> tuple[UsageTelemetry, ManualClock, str, str]:
    """W48 recorded and sent: the telemetry, its clock, the installation id and its secret."""
    usage, clock = record_w48(data_dir, server)
    clock.set(AFTER_W48)
    usage.send_now()
    installation_id = usage.preview()["last_sent"]["resource"]["service.instance.id"]
    return usage, clock, installation_id, server.requests[0].headers["X-Otel-Usage-Credential"]


def test_opting_out_clears_the_outbox_and_erases_on_the_server(data_dir: Path,
                                                               server: Server) -> None:
    usage, clock, installation_id, secret = sent_w48(data_dir, server)
    server.answers = [(503, {}), (204, {})]
    usage.set_mode("local")
    assert usage.send_now()["erasures_pending"] == 1
    clock.advance(timedelta(minutes=30))
    assert usage.send_now()["erasures_acknowledged"] == 1
    erasure = ("POST", "/v1/metrics", installation_id, secret)
    assert [r.described() for r in server.requests[1:]] == [erasure, erasure]
    clock.advance(timedelta(days=7))
    usage.send_now()
    assert len(server.requests) == 3
    with sqlite3.connect(data_dir / "usage.sqlite3") as conn:
        assert conn.execute("SELECT count(*) FROM outbox").fetchone() == (0,)
        assert conn.execute("SELECT count(*) FROM erasures").fetchone() == (0,)


def test_delete_all_after_a_sent_report_erases_it_on_the_server(data_dir: Path,
                                                                 server: Server) -> None:
    """Deleting everything locally leaves only the user's choice and the erasure request,
    until it is acknowledged."""
    usage, clock, installation_id, secret = sent_w48(data_dir, server)
    asyncio.run(usage.delete_all())
    with sqlite3.connect(data_dir / "usage.sqlite3") as conn:
        tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        counts = {t: conn.execute(f'SELECT count(*) FROM "{t}"').fetchone()[0] for t in tables}
        kept = conn.execute("SELECT installation_id FROM erasures").fetchall()
        choice = conn.execute("SELECT changed_at, mode, source FROM mode_changes").fetchall()
    assert counts == {t: int(t in ("erasures", "mode_changes")) for t in tables}
    assert kept == [(installation_id,)]
    assert choice == [(clock.now().isoformat(timespec="seconds"), "on", "kept after delete")]
    assert usage.send_now()["erasures_acknowledged"] == 1
    (erasure,) = server.requests[1:]
    assert erasure.described() == ("POST", "/v1/metrics", installation_id, secret)
    stats = asyncio.run(usage.statistics())
    # Still on: the installation starts over under a new id.
    assert stats["installation_id"] not in (None, installation_id)
    assert (stats["last_submitted"], stats["days_active"]) == (None, 0)


def test_a_plain_http_remote_endpoint_is_refused(data_dir: Path, server: Server) -> None:
    usage, clock = record_w48(data_dir, server)
    usage.shutdown()
    usage = make(data_dir, clock, "http://stats.example.com")
    clock.set(AFTER_W48)
    summary = usage.send_now()
    assert summary["refused"] == ("refusing to send to http://stats.example.com: usage reports "
                                  "travel over HTTPS only (plain HTTP only to this machine)")
    assert server.requests == []
    assert usage.history()[0]["status"] is None


def _request_head(conn: socket.socket) -> bytes | None:
    """What arrived up to the end of a request's head (and any body bytes with it); None when
    the client left before the head ended."""
    received = b""
    while b"\r\n\r\n" not in received:
        chunk = conn.recv(65536)
        if not chunk:
            return None
        received += chunk
    return received


class EndlessAnswer:
    """A loopback endpoint that answers 400 with a body of a gigabyte declared, written in
    64 KB pieces until the client stops reading (the writes then fail) or 256 MB went out."""

    CAP = 256 * 1024 * 1024

    def __init__(self, extra_headers: str = "") -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.extra_headers = extra_headers
        self.written = 0
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        with self.listener:
            conn, _ = self.listener.accept()
        with conn:
            received = _request_head(conn)
            if received is None:
                return
            head, _, body = received.partition(b"\r\n\r\n")
            length = int(next(line.split(b":")[1] for line in head.split(b"\r\n")
                              if line.lower().startswith(b"content-length:")))
            while len(body) < length:
                body += conn.recv(65536)
            conn.sendall(b"HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain\r\n"
                         + self.extra_headers.encode()
                         + b"Content-Length: %d\r\n\r\n" % (1 << 30))
            piece = b"x" * 65536
            try:
                while self.written < self.CAP:
                    conn.sendall(piece)
                    self.written += len(piece)
            except OSError:
                pass  # the client closed the connection


@pytest.mark.parametrize("extra_headers", ["", "Content-Type: text/plain; charset=nonesuch\r\n"])
def test_an_answer_without_end_is_read_only_so_far(extra_headers: str) -> None:
    """(The instant given is what a Retry-After date would be measured from: the answer has
    none, so the test runs once, not at every test date.)"""
    endpoint = EndlessAnswer(extra_headers)
    answer = post_report(f"http://127.0.0.1:{endpoint.port}", "/v1/metrics",
                         {"X-Otel-Usage-Credential": "c" * 43}, gzip.compress(b"report"),
                         OPT_IN)
    endpoint.thread.join(30)
    assert (answer.status, answer.text, answer.status_message) == (400, "x" * 200, None)
    # What the socket buffers took beyond the client's 64 KB, never the declared gigabyte.
    assert endpoint.written < 16 * 1024 * 1024


class DripFedAnswer:
    """A loopback endpoint that reads one request, answers 200 with a 100 MB Content-Length
    and drips the body a byte every 50 ms, at most `BYTES` of them, until the client hangs up
    (a write then fails): `hung_up` says whether the client left before the drip ended."""

    BYTES = 200  # ten seconds of dripping (the status line alone takes two and a half)

    def __init__(self, status_line: bool = False) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.listener.getsockname()[1]}"
        self.status_line = status_line  # drip the status line too
        self.requests = 0
        self.hung_up = False
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        with self.listener:
            conn, _ = self.listener.accept()
        with conn:
            if _request_head(conn) is None:
                return
            self.requests += 1
            head = b"HTTP/1.1 200 OK\r\nContent-Length: 100000000\r\n\r\n"
            drip = (head if self.status_line else b"") + b"x" * self.BYTES
            if not self.status_line:
                conn.sendall(head)
            stop = threading.Event()
            try:
                for byte in drip:
                    conn.sendall(bytes([byte]))
                    if stop.wait(0.05):
                        break
            except OSError:
                self.hung_up = True


@pytest.mark.parametrize("status_line", [False, True])
def test_a_drip_fed_answer_ends_at_the_exchanges_deadline(status_line: bool) -> None:
    """The whole exchange has one deadline (here 1 s, well before even the status line has
    dripped, and long enough for a loaded machine to send the request): an answer dripped a byte at a time with a huge
    declared length is cut off when it passes, however slow each byte. (The deadline is a
    timer, no date; the instant given is what a Retry-After date would be
    measured from, and the answer has none: the test runs once, not at every test date.)"""
    endpoint = DripFedAnswer(status_line)
    answer = post_report(endpoint.url, "/v1/metrics", {"X-Otel-Usage-Credential": "c" * 43},
                         gzip.compress(b"report"), OPT_IN, deadline_s=1.0)
    endpoint.thread.join(30)
    assert (endpoint.requests, endpoint.hung_up) == (1, True)
    expected = (None, "no answer within 1 s") if status_line else (200, "OK")
    assert (answer.status, answer.text) == expected


def test_a_drip_fed_answer_does_not_hold_the_sender(data_dir: Path) -> None:
    """send_now returns once the exchange's deadline has passed (it held the run lock, and so
    erasures and the page's send-now, for as long as the server dripped)."""
    endpoint = DripFedAnswer()
    clock = ManualClock(OPT_IN)
    usage = make(data_dir, clock, endpoint.url)
    usage.set_mode("on")
    pin_report_slot(data_dir)
    usage.start()
    usage.uploads.settings = dataclasses.replace(usage.uploads.settings, deadline_s=0.3)
    clock.set(W48_MONDAY)
    usage.meter().create_counter("printernizer.jobs").add(2, JOB)
    usage.flush()
    clock.set(AFTER_W48)
    assert usage.send_now()["sent"] == ["2026-W48"]
    endpoint.thread.join(30)
    assert (endpoint.requests, endpoint.hung_up) == (1, True)
    assert [(h["kind"], h["status"]) for h in usage.history()] == [("report", 200)]
    usage.shutdown()


@pytest.mark.parametrize("url", ["http://127.0.0.1:4318", "http://localhost:4318/",
                                 "http://[::1]:4318", "https://stats.printernizer.com"])
def test_https_and_loopback_endpoints_are_accepted(url: str) -> None:
    assert check_endpoint(url) == url.rstrip("/")


@pytest.mark.parametrize("url", ["http://10.0.0.7", "http://stats.printernizer.com",
                                 "ftp://127.0.0.1", "https://", "stats.printernizer.com"])
def test_other_endpoints_are_refused(url: str) -> None:
    with pytest.raises(TransportError, match="refusing to send"):
        check_endpoint(url)


def test_the_exporter_is_not_imported_in_mode_local(now: datetime, tmp_path: Path) -> None:
    """Start, record and preview in mode local load nothing of the OTLP exporter."""
    code = (
        "import sys\n"
        "from otel_usage import UsageTelemetry\n"
        f"u = UsageTelemetry({str(tmp_path)!r}, background_uploads=True)\n"
        "u.start()\n"
        "u.meter().create_counter('printernizer.jobs').add(1, {'job.status': 'created'})\n"
        "u.flush(); u.preview(); u.send_now(); u.shutdown()\n"
        "print(sorted(m for m in sys.modules if m.startswith('opentelemetry.exporter.otlp')))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "[]"


def test_the_otel_certificate_setting_wins_over_requests_ca_bundle(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """HTTPS is verified against OTEL_EXPORTER_OTLP_CERTIFICATE even where the environment also
    sets REQUESTS_CA_BUNDLE (which requests would otherwise prefer)."""
    import ssl

    import trustme

    from otel_usage.send.transport import post_report

    ca = trustme.CA()
    ca_file = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: object) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(context)
    httpd.socket = context.wrap_socket(httpd.socket, server_side=True)
    threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True).start()
    url = f"https://127.0.0.1:{httpd.server_port}"
    try:
        monkeypatch.setenv("REQUESTS_CA_BUNDLE", "/etc/ssl/certs/ca-certificates.crt")
        now = datetime(2026, 11, 30, tzinfo=UTC)
        assert post_report(url, "/v1/metrics", {}, b"", now).text == "no answer: SSLError"
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_CERTIFICATE", str(ca_file))
        assert post_report(url, "/v1/metrics", {}, b"", now).status == 200
    finally:
        httpd.shutdown()
        httpd.server_close()


def test_a_pending_erasure_is_delivered_in_the_background_after_a_restart(
    data_dir: Path, server: Server,
) -> None:
    """Opted out while the server was down: the next start (mode local) still erases."""
    usage, clock = record_w48(data_dir, server)
    clock.set(AFTER_W48)
    usage.send_now()
    erased = usage.preview()["last_sent"]["resource"]["service.instance.id"]
    server.answers = [(503, {"Retry-After": "60"})]
    usage.set_mode("local")
    assert usage.send_now()["erasures_pending"] == 1
    usage.shutdown()
    clock.advance(timedelta(hours=1))
    restarted = UsageTelemetry(data_dir, clock=clock, endpoint=server.url,
                               export_interval_s=float("inf"), environ={})
    restarted.start()
    assert wait_for_uploads(restarted)
    restarted.shutdown()
    assert [(r.method, r.path, r.erased) for r in server.requests] == [
        ("POST", "/v1/metrics", None), ("POST", "/v1/metrics", erased),
        ("POST", "/v1/metrics", erased)]
