"""End to end through the collector gateway into the real ingest service."""

from __future__ import annotations

import secrets
import sqlite3
import threading
import uuid
from collections.abc import Iterator
from contextlib import closing
from datetime import datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from collector_harness import (
    Certificates,
    Gateway,
    Ingest,
    build_collector,
    free_port,
    last_week,
    outside_metric,
    send,
    wait_until,
    weekly_report,
)

from otel_usage.catalog import load_catalog
from otel_usage.clock import NOW_ENV
from otel_usage.weeks import Week

pytestmark = pytest.mark.collector


@pytest.fixture(autouse=True)
def _dated(now: datetime) -> None:
    """Every test here sends reports of a week before "now": each runs at the end-to-end date."""


@pytest.fixture(scope="module")
def collector_binary() -> Path:
    return build_collector()


@pytest.fixture
def ingest(tmp_path: Path) -> Iterator[Ingest]:
    service = Ingest(tmp_path / "ingest.db", tmp_path / "ingest.log")
    yield service
    service.stop()


@pytest.fixture
def gateway(collector_binary: Path, ingest: Ingest, tmp_path: Path) -> Iterator[Gateway]:
    process = Gateway(collector_binary, Certificates.make(tmp_path), tmp_path / "queue",
                      ingest.url, tmp_path / "gateway.log")
    yield process
    process.stop()


def _credential() -> str:
    return secrets.token_urlsafe(24)


def test_report_through_the_gateway_is_stored_without_what_the_catalog_forbids_then_erased(
    gateway: Gateway, ingest: Ingest,
) -> None:
    """A report with an unknown metric and attributes is stored, and only its catalog part.
    Then the contract's erasure request (an OTLP export of the erasure metric) passes the
    gateway's allowlist and scrub, and the ingest erases the installation's stored week."""
    from ingest.testing import erasure_request

    ingest.start()
    gateway.start()
    installation, credential, week = str(uuid.uuid4()), _credential(), last_week()
    report = weekly_report(installation, resource_extra={"host.name": "kitchen-pi"},
                           point_extra={"file.name": "benchy.3mf"},
                           metrics_extra=[outside_metric(week)], week=week)
    with gateway.client() as client:
        assert send(client, report, credential).status_code == 200
        wait_until(lambda: len(ingest.stored_reports()) == 1, 15,
                   lambda: f"the stored report\n{gateway.log_tail()}")

        ((stored_id, resource, points),) = ingest.stored_reports()
        assert stored_id == installation
        assert [word for word in ("kitchen-pi", "host.name") if word in resource] == []
        assert [word for word in ("benchy", "file.name", "printernizer.file.names")
                if word in points] == []
        assert "printernizer.jobs" in points

        erasure = erasure_request(installation, week.start.date())
        assert send(client, erasure, credential).status_code == 200
    wait_until(lambda: ingest.stored_reports() == [], 15, lambda: f"the erasure\n{gateway.log_tail()}")


def test_the_clients_weekly_report_travels_over_https_through_the_gateway_into_the_ingest(
    gateway: Gateway, ingest: Ingest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The real client, opted in, sends last week's scrubbed report over HTTPS (trusting the
    gateway's test CA through OTel's own OTEL_EXPORTER_OTLP_CERTIFICATE); it is stored once.
    Then it opts out: its erasure request takes the same path and the stored week is gone."""
    from otel_usage import ManualClock, UsageTelemetry

    ca_file = tmp_path / "ca.pem"
    gateway.certificates.ca.cert_pem.write_to_path(str(ca_file))
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_CERTIFICATE", str(ca_file))
    ingest.start()
    gateway.start()
    week = last_week()
    monday = week.start + timedelta(hours=9)
    clock = ManualClock(monday - timedelta(days=1))
    usage = UsageTelemetry(tmp_path / "client", clock=clock, endpoint=gateway.url,
                           service_version="2.7.0", export_interval_s=float("inf"),
                           background_uploads=False, environ={"DEPLOYMENT_MODE": "pi"})
    usage.set_mode("on")
    clock.set(monday)
    jobs = usage.meter().create_counter("printernizer.jobs")
    jobs.add(4, {"job.status": "completed", "printer.type": "prusa_core",
                 "file.name": "benchy.3mf"})
    usage.flush()
    # After the week's latest possible report slot, before the next week closes.
    clock.set(monday + timedelta(days=13, hours=14, minutes=30))
    summary = usage.send_now()
    assert summary["sent"] == [week.label]
    wait_until(lambda: len(ingest.stored_reports()) == 1, 15,
               lambda: f"the stored report\n{gateway.log_tail()}")
    ((stored_id, resource, points),) = ingest.stored_reports()
    sent = usage.preview()["last_sent"]["resource"]
    assert stored_id == sent["service.instance.id"]
    assert '"pi"' in resource and "prusa_core" in points and "benchy" not in points
    assert usage.history()[0]["status"] == 200

    usage.set_mode("local")
    assert usage.send_now()["erasures_acknowledged"] == 1
    usage.shutdown()
    wait_until(lambda: ingest.stored_reports() == [], 15, lambda: f"the erasure\n{gateway.log_tail()}")
    assert [(h["kind"], h["status"]) for h in usage.history()] == [
        ("report", 200), ("erasure", 200)]


def test_reports_queued_while_the_ingest_is_down_are_stored_once(
    gateway: Gateway, ingest: Ingest,
) -> None:
    """Ingest down: reports are acknowledged and queued; the gateway restarts; the ingest comes
    back; each installation's week is stored exactly once."""
    gateway.start()
    installations = sorted(str(uuid.uuid4()) for _ in range(4))
    with gateway.client() as client:
        for installation in installations:
            assert send(client, weekly_report(installation), _credential()).status_code == 200
    wait_until(lambda: gateway.queue_size() == len(installations), 10, "the queued reports")
    gateway.stop()

    gateway.start()
    ingest.start()
    wait_until(lambda: len(ingest.stored_reports()) >= len(installations), 20,
               lambda: f"the stored reports\n{gateway.log_tail()}")
    gateway.stop()
    assert [row[0] for row in ingest.stored_reports()] == installations


def test_a_client_erased_at_the_ingest_learns_it_through_the_gateway_and_starts_over(
    gateway: Gateway, ingest: Ingest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    midweek: datetime,
) -> None:
    """The maintainers erase an installation at the ingest. Its next report passes the gateway
    (acknowledged once queued) and is refused by the ingest (410), which teaches the gateway;
    the report after that is refused by the gateway itself (403 with the catalog's erased
    message in a protobuf google.rpc.Status), and the client starts over under a new id and
    credential: that week is not sent again under it (it would link the two), the next week's
    report is, and is stored. The ingest's clock is pinned to Wednesday, so the three weeks the
    client sends first (this one, whose end the client's own clock has passed, and the two
    before) are all still open for reports (until 14 days after their end); the ingest is then
    restarted a week later for the next week's report."""
    from google.protobuf.json_format import MessageToJson
    from google.rpc.status_pb2 import Status

    from otel_usage import ManualClock, UsageTelemetry

    protocol = load_catalog().protocol
    ca_file = tmp_path / "ca.pem"
    gateway.certificates.ca.cert_pem.write_to_path(str(ca_file))
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_CERTIFICATE", str(ca_file))
    ingest.start()
    gateway.start()
    third = Week.of(midweek)
    fourth = third.next()
    second = third.previous()
    first = second.previous()
    clock = ManualClock(first.start - timedelta(hours=12))
    usage = UsageTelemetry(tmp_path / "client", clock=clock, endpoint=gateway.url,
                           service_version="2.7.0", export_interval_s=float("inf"),
                           background_uploads=False, environ={"DEPLOYMENT_MODE": "pi"})
    usage.set_mode("on")
    with usage.store.transaction() as tx:  # each report is due the moment its week closes
        tx.set_meta("report_weekday", "0")
        tx.set_meta("report_hour", "0")
    jobs = usage.meter().create_counter("printernizer.jobs")

    def send_week(week: Week) -> dict[str, Any]:
        clock.set(week.start + timedelta(hours=9))
        jobs.add(2, {"job.status": "completed", "printer.type": "prusa_core"})
        usage.flush()
        clock.set(week.end + timedelta(hours=1))
        return usage.send_now()

    def identity() -> tuple[str, str]:
        with usage.store.read() as tx:
            return str(tx.meta("installation_id")), str(tx.meta("credential"))

    assert send_week(first)["sent"] == [first.label]
    wait_until(lambda: len(ingest.stored_reports()) == 1, 15,
               lambda: f"the first report\n{gateway.log_tail()}")
    old_id, old_credential = identity()
    erased = httpx.delete(ingest.url + protocol.installation_path.format(installation_id=old_id),
                          headers={protocol.credential_header: old_credential}, timeout=10)
    assert erased.status_code == 204
    assert ingest.stored_reports() == []

    # Acknowledged by the gateway; the ingest's 410 ends at the gateway, which learns from it.
    assert send_week(second)["sent"] == [second.label]
    refused = f"responded with HTTP Status Code {protocol.erased_status}"
    wait_until(lambda: refused in gateway.log_file.read_text(errors="replace"), 15,
               lambda: f"the ingest's refusal of the second report\n{gateway.log_tail()}")

    # Refused by the gateway before its queue: the client starts over.
    assert send_week(third)["failed"] == [third.label]
    assert usage.history()[-1]["status"] == 403
    new_id, new_credential = identity()
    assert new_id != old_id and new_credential != old_credential
    assert usage.send_now()["sent"] == []
    ingest.stop()  # a week on: the next week is the ingest's own, open for reports
    monkeypatch.setenv(NOW_ENV, (midweek + timedelta(weeks=1)).isoformat())
    ingest.start()
    assert send_week(fourth)["sent"] == [fourth.label]
    wait_until(lambda: len(ingest.stored_reports()) == 1, 15,
               lambda: f"the report under the new id\n{gateway.log_tail()}")
    usage.shutdown()
    assert [row[0] for row in ingest.stored_reports()] == [new_id]

    # The gateway's answer as it is on the wire, for the client's protobuf request.
    with gateway.client() as client:
        answer = send(client, weekly_report(old_id, week=third), old_credential)
    assert (answer.status_code, answer.headers["content-type"]) == (403, "application/x-protobuf")
    assert Status.FromString(answer.content) == Status(code=7, message=protocol.erased_message)
    # and, for a JSON request (which the client never sends), as JSON.
    with gateway.client() as client:
        answer = client.post(protocol.metrics_path, headers={
            "Content-Type": "application/json", protocol.credential_header: old_credential},
            content=MessageToJson(weekly_report(old_id, week=third)))
    assert (answer.status_code, answer.headers["content-type"]) == (403, "application/json")
    assert answer.json() == {"code": 7, "message": protocol.erased_message}


class ForwardingRecorder:
    """Stands between the gateway and the ingest on loopback: records the headers of each
    request the gateway sends and forwards it to the ingest (so the ingest's peer is
    127.0.0.1, its trusted proxy), answering with the ingest's answer."""

    def __init__(self, ingest_url: str) -> None:
        self.port = free_port()
        self.ingest_url = ingest_url
        self.seen: list[tuple[dict[str, str], int]] = []
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        recorder = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                headers = {k.lower(): v for k, v in self.headers.items()
                           if k.lower() not in ("host", "content-length", "connection")}
                answer = httpx.post(recorder.ingest_url + self.path, content=body,
                                    headers=headers, timeout=10)
                with recorder._lock:
                    recorder.seen.append((headers, answer.status_code))
                self.send_response(answer.status_code)
                for name in ("content-type", "retry-after"):
                    if name in answer.headers:
                        self.send_header(name, answer.headers[name])
                self.send_header("Content-Length", str(len(answer.content)))
                self.end_headers()
                self.wfile.write(answer.content)

            def log_message(self, format: str, *args: object) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def snapshot(self) -> list[tuple[dict[str, str], int]]:
        with self._lock:
            return list(self.seen)


def _client_from(gateway: Gateway, source: str) -> httpx.Client:
    """A client of the gateway whose connections come from the loopback address `source`."""
    transport = httpx.HTTPTransport(local_address=source,
                                    verify=gateway.certificates.client_context())
    return httpx.Client(base_url=gateway.url, transport=transport, timeout=10)


def test_new_installations_are_limited_per_source_address_behind_the_gateway(
    collector_binary: Path, tmp_path: Path,
) -> None:
    """The ingest trusts the gateway (`--trusted-proxy 127.0.0.1`) and allows 2 new
    installations per address a day. Three arrive from 127.0.0.2, one from 127.0.0.3, queued
    while the ingest is down: two of 127.0.0.2's are stored, its third is refused with a 403
    and dropped (not retried), 127.0.0.3's is stored. The gateway passes a pseudonym of each
    address; neither the address nor the pseudonym is in the ingest's database or log, and the
    address is never in the gateway's queue file."""
    ingest = Ingest(tmp_path / "ingest.db", tmp_path / "ingest.log",
                    options=("--trusted-proxy", "127.0.0.1", "--registrations-per-day", "2"))
    recorder = ForwardingRecorder(ingest.url)
    gateway = Gateway(collector_binary, Certificates.make(tmp_path), tmp_path / "queue",
                      recorder.url, tmp_path / "gateway.log")
    sources = {"127.0.0.2": 3, "127.0.0.3": 1}
    installations = {source: [str(uuid.uuid4()) for _ in range(count)]
                     for source, count in sources.items()}
    try:
        gateway.start()
        for source, ids in installations.items():
            with _client_from(gateway, source) as client:
                for installation in ids:
                    assert send(client, weekly_report(installation), _credential()).status_code == 200
        wait_until(lambda: gateway.queue_size() == 4, 10,
                   lambda: f"the queued reports\n{gateway.log_tail()}")
        queued = gateway.queue_bytes()
        ingest.start()
        recorder.start()
        wait_until(lambda: len(ingest.stored_reports()) == 3
                   and "Dropping data" in gateway.log_tail(200), 30,
                   lambda: f"three stored reports and one dropped\n{gateway.log_tail()}")
        wait_until(lambda: gateway.queue_size() == 0, 10, "the drained queue")
        seen = recorder.snapshot()
    finally:
        gateway.stop()
        recorder.stop()
        ingest.stop()

    stored = {row[0] for row in ingest.stored_reports()}
    from_first = [i for i in installations["127.0.0.2"] if i in stored]
    assert len(from_first) == 2 and installations["127.0.0.3"][0] in stored
    # Each report reached the ingest once: the refused one was not retried.
    assert sorted(status for _, status in seen) == [200, 200, 200, 403]
    pseudonym_header = load_catalog().protocol.client_pseudonym_header.lower()
    pseudonyms = [headers[pseudonym_header] for headers, _ in seen]
    by_status = {status: {headers[pseudonym_header] for headers, s in seen if s == status}
                 for status in (200, 403)}
    assert len(set(pseudonyms)) == 2 and all(
        len(p) == 32 and set(p) <= set("0123456789abcdef") for p in pseudonyms)
    assert by_status[403] < by_status[200]  # the refused one shares its source's pseudonym
    assert [h for h, _ in seen if "x-forwarded-for" in h] == []
    # The pseudonym travels the queue in the address's place.
    assert all(p.encode() in queued for p in pseudonyms)
    for source in sources:
        assert source.encode() not in queued
        assert source.encode() not in gateway.queue_bytes()
    with closing(sqlite3.connect(ingest.database)) as db:
        dump = "\n".join(db.iterdump())
    ingest_log = ingest.log_file.read_text(errors="replace")
    for secret in [*sources, *pseudonyms]:
        assert secret not in dump and secret not in ingest_log
    assert "403" in gateway.log_tail(200)
