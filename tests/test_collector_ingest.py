"""End to end through the collector gateway into the real ingest service (issue 5)."""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

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
