"""End to end through the collector gateway into the real ingest service (issue 5)."""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from collector_harness import (
    Certificates,
    Gateway,
    Ingest,
    build_collector,
    last_week,
    outside_metric,
    send,
    wait_until,
    weekly_report,
)

from otel_usage.catalog import load_catalog
from otel_usage.weeks import Week

pytestmark = pytest.mark.collector


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


def test_report_through_the_gateway_is_stored_without_what_the_catalog_forbids(
    gateway: Gateway, ingest: Ingest,
) -> None:
    """A report with an unknown metric and attributes is stored, and only its catalog part."""
    ingest.start()
    gateway.start()
    installation, week = str(uuid.uuid4()), last_week()
    report = weekly_report(installation, resource_extra={"host.name": "kitchen-pi"},
                           point_extra={"file.name": "benchy.3mf"},
                           metrics_extra=[outside_metric(week)], week=week)
    with gateway.client() as client:
        assert send(client, report, _credential()).status_code == 200
    wait_until(lambda: len(ingest.stored_reports()) == 1, 15, f"the stored report\n{gateway.log_tail()}")

    ((stored_id, resource, points),) = ingest.stored_reports()
    assert stored_id == installation
    assert [word for word in ("kitchen-pi", "host.name") if word in resource] == []
    assert [word for word in ("benchy", "file.name", "printernizer.file.names") if word in points] == []
    assert "printernizer.jobs" in points


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
               f"the stored report\n{gateway.log_tail()}")
    ((stored_id, resource, points),) = ingest.stored_reports()
    sent = usage.preview()["last_sent"]["resource"]
    assert stored_id == sent["service.instance.id"]
    assert '"pi"' in resource and "prusa_core" in points and "benchy" not in points
    assert usage.history()[0]["status"] == 200

    usage.set_mode("local")
    assert usage.send_now()["erasures_acknowledged"] == 1
    usage.shutdown()
    wait_until(lambda: ingest.stored_reports() == [], 15, f"the erasure\n{gateway.log_tail()}")
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
               f"the stored reports\n{gateway.log_tail()}")
    gateway.stop()
    assert [row[0] for row in ingest.stored_reports()] == installations


def test_erasure_travels_through_the_gateway(gateway: Gateway, ingest: Ingest) -> None:
    """The contract's erasure request (an OTLP export of the erasure metric) passes the
    gateway's allowlist and scrub, and the ingest erases the installation's stored week."""
    from ingest.testing import erasure_request

    ingest.start()
    gateway.start()
    installation, credential, week = str(uuid.uuid4()), _credential(), last_week()
    with gateway.client() as client:
        assert send(client, weekly_report(installation, week=week), credential).status_code == 200
        wait_until(lambda: len(ingest.stored_reports()) == 1, 15,
                   f"the stored report\n{gateway.log_tail()}")
        erasure = erasure_request(installation, week.start.date())
        assert send(client, erasure, credential).status_code == 200
    wait_until(lambda: ingest.stored_reports() == [], 15, f"the erasure\n{gateway.log_tail()}")


def test_a_client_erased_at_the_ingest_learns_it_through_the_gateway_and_starts_over(
    gateway: Gateway, ingest: Ingest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The maintainers erase an installation at the ingest. Its next report passes the gateway
    (acknowledged once queued) and is refused by the ingest (410), which teaches the gateway;
    the report after that is refused by the gateway itself (403 with the catalog's erased
    message in a protobuf google.rpc.Status), and the client starts over under a new id and
    credential, whose report is stored."""
    from google.protobuf.json_format import MessageToJson
    from google.rpc.status_pb2 import Status

    from otel_usage import ManualClock, UsageTelemetry

    protocol = load_catalog().protocol
    ca_file = tmp_path / "ca.pem"
    gateway.certificates.ca.cert_pem.write_to_path(str(ca_file))
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_CERTIFICATE", str(ca_file))
    ingest.start()
    gateway.start()
    third = last_week()
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
               f"the first report\n{gateway.log_tail()}")
    old_id, old_credential = identity()
    erased = httpx.delete(ingest.url + protocol.installation_path.format(installation_id=old_id),
                          headers={protocol.credential_header: old_credential}, timeout=10)
    assert erased.status_code == 204
    assert ingest.stored_reports() == []

    # Acknowledged by the gateway; the ingest's 410 ends at the gateway, which learns from it.
    assert send_week(second)["sent"] == [second.label]
    refused = f"responded with HTTP Status Code {protocol.erased_status}"
    wait_until(lambda: refused in gateway.log_file.read_text(errors="replace"), 15,
               f"the ingest's refusal of the second report\n{gateway.log_tail()}")

    # Refused by the gateway before its queue: the client starts over.
    assert send_week(third)["failed"] == [third.label]
    assert usage.history()[-1]["status"] == 403
    new_id, new_credential = identity()
    assert new_id != old_id and new_credential != old_credential
    assert usage.send_now()["sent"] == [third.label]
    wait_until(lambda: len(ingest.stored_reports()) == 1, 15,
               f"the report under the new id\n{gateway.log_tail()}")
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
