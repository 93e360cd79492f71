"""The collector gateway, built from collector-config/ and run for real on loopback.

Its downstream here is a recording OTLP/HTTP receiver, standing where the ingest stands, so the
tests see exactly what the gateway forwards.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import uuid
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import httpx
import pytest
from collector_harness import (
    BUILD_SCRIPT,
    CONFIG_DIR,
    CREDENTIAL_HEADER,
    GATEWAY_CONFIG,
    Certificates,
    Gateway,
    RecordingReceiver,
    build_collector,
    last_week,
    outside_metric,
    point_attributes,
    resource_attributes,
    send,
    wait_until,
    weekly_report,
)
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue

from otel_usage.catalog import load_catalog

ALLOWED_RESOURCE = {
    "service.name": "printernizer", "service.version": "2.7.0",
    "printernizer.deployment.mode": "docker", "os.type": "linux",
    "process.runtime.version": "3.12.3",
    "otel_usage.catalog.version": str(load_catalog().version),
}


def _generator():  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location("generate", CONFIG_DIR / "generate.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def collector_binary() -> Path:
    return build_collector()


@pytest.fixture(scope="module")
def certificates(tmp_path_factory: pytest.TempPathFactory) -> Certificates:
    return Certificates.make(tmp_path_factory.mktemp("tls"))


@pytest.fixture
def receiver() -> Iterator[RecordingReceiver]:
    recording = RecordingReceiver()
    recording.start()
    yield recording
    recording.stop()


@pytest.fixture
def gateway(collector_binary: Path, certificates: Certificates, receiver: RecordingReceiver,
            tmp_path: Path) -> Iterator[Gateway]:
    process = Gateway(collector_binary, certificates, tmp_path / "queue", receiver.url,
                      tmp_path / "gateway.log")
    yield process
    process.stop()


def test_gateway_yaml_is_generated_from_the_current_catalog() -> None:
    """gateway.yaml is what generate.py writes from the catalog; regenerate it when this fails."""
    assert GATEWAY_CONFIG.read_text() == _generator().render(load_catalog())


def test_gateway_yaml_names_every_catalog_metric_and_the_body_limit() -> None:
    """The allowlist and the body limit come from the catalog, not from a hand-kept list."""
    text = GATEWAY_CONFIG.read_text()
    catalog = load_catalog()
    assert [name for name in catalog.metrics if f'name == "{name}"' not in text] == []
    assert f"max_request_body_size: {catalog.protocol.max_body_bytes}\n" in text


@pytest.mark.collector
def test_second_build_reuses_the_cached_collector(collector_binary: Path) -> None:
    """build.sh finds the cached binary for this manifest and links it: it says nothing, so it
    built nothing (a build announces itself on stderr)."""
    built = collector_binary.resolve()
    mtime = built.stat().st_mtime_ns
    result = subprocess.run([BUILD_SCRIPT], capture_output=True, text=True, timeout=60)
    assert (result.returncode, result.stderr) == (0, "")
    assert (collector_binary.resolve(), built.stat().st_mtime_ns) == (built, mtime)
    assert collector_binary.resolve().is_file()


@pytest.mark.collector
def test_build_fails_loudly_without_go(tmp_path: Path) -> None:
    """With no Go on PATH and nothing cached, build.sh exits non-zero and says why."""
    result = subprocess.run(
        [BUILD_SCRIPT], capture_output=True, text=True, timeout=60,
        env={"PATH": "/usr/bin:/bin", "OTEL_USAGE_CACHE_DIR": str(tmp_path / "cache"),
             "HOME": str(tmp_path)},
    )
    assert result.returncode == 1
    assert "Go is not installed" in result.stderr


@pytest.mark.collector
def test_build_fails_loudly_without_the_module_proxy(tmp_path: Path) -> None:
    """With the Go module proxy out of reach and nothing cached, build.sh says so."""
    result = subprocess.run(
        [BUILD_SCRIPT], capture_output=True, text=True, timeout=120,
        env={"PATH": os.environ["PATH"], "HOME": str(tmp_path), "GOPROXY": "off",
             "GOMODCACHE": str(tmp_path / "gomod"), "GOCACHE": str(tmp_path / "gocache"),
             "OTEL_USAGE_CACHE_DIR": str(tmp_path / "cache")},
    )
    assert result.returncode == 1
    assert "Go module proxy" in result.stderr


@pytest.mark.collector
def test_gateway_config_validates(gateway: Gateway) -> None:
    """`validate --config` accepts gateway.yaml with its environment set."""
    result = gateway.validate()
    assert (result.returncode, result.stderr) == (0, "")


@pytest.mark.collector
def test_validate_rejects_a_broken_allowlist(gateway: Gateway, tmp_path: Path) -> None:
    """validate parses the OTTL statements, so the test above checks the allowlist too."""
    broken = tmp_path / "broken.yaml"
    broken.write_text(GATEWAY_CONFIG.read_text().replace("keep_keys(", "keep_kyes(", 1))
    result = gateway.validate(broken)
    assert result.returncode != 0
    assert "keep_kyes" in result.stderr


@pytest.mark.collector
def test_metric_and_attributes_outside_the_catalog_are_dropped(now: datetime,
    gateway: Gateway, receiver: RecordingReceiver,
) -> None:
    """A raw OTLP client's unknown metric, resource, scope and point attributes never pass."""
    gateway.start()
    installation, week = str(uuid.uuid4()), last_week()
    report = weekly_report(
        installation, resource_extra={"host.name": "kitchen-pi"},
        scope_extra={"code.filepath": "/home/anna/printernizer/app.py"},
        point_extra={"file.name": "benchy.3mf"}, metrics_extra=[outside_metric(week)], week=week,
    )
    with gateway.client() as client:
        response = send(client, report, "secret-1", {"X-Printer-Serial": "01S00A123"})
    assert response.status_code == 200
    wait_until(lambda: len(receiver.snapshot()) == 1, 10, "the forwarded report")

    (received,) = receiver.snapshot()
    (resource_metrics,) = received.request.resource_metrics
    assert resource_attributes(resource_metrics) == {
        **ALLOWED_RESOURCE, "service.instance.id": installation,
    }
    assert [list(sm.scope.attributes) for sm in resource_metrics.scope_metrics] == [[]]
    assert point_attributes(received.request) == {
        "printernizer.jobs": [{"job.status": "completed", "printer.type": "bambu_lab"}],
        "printernizer.printers": [{"printer.type": "prusa_core"}],
        "printernizer.app.starts": [{}],
    }
    assert received.headers[CREDENTIAL_HEADER.lower()] == "secret-1"
    assert "x-printer-serial" not in received.headers


@pytest.mark.collector
def test_a_catalog_name_with_the_wrong_kind_is_dropped(now: datetime,
    gateway: Gateway, receiver: RecordingReceiver,
) -> None:
    """printernizer.jobs is a Sum in the catalog; sent as a Gauge it is not forwarded."""
    gateway.start()
    report = weekly_report(str(uuid.uuid4()))
    metrics = report.resource_metrics[0].scope_metrics[0].metrics
    gauge_jobs = metrics[0]
    gauge_jobs.gauge.data_points.extend(gauge_jobs.sum.data_points)
    assert gauge_jobs.WhichOneof("data") == "gauge"
    with gateway.client() as client:
        assert send(client, report, "secret-2").status_code == 200
    wait_until(lambda: len(receiver.snapshot()) == 1, 10, "the forwarded report")
    assert sorted(point_attributes(receiver.snapshot()[0].request)) == [
        "printernizer.app.starts", "printernizer.printers",
    ]


@pytest.mark.collector
def test_request_without_credential_is_refused(now: datetime,
    gateway: Gateway, receiver: RecordingReceiver,
) -> None:
    """No credential header: 401 to the client, and nothing reaches the downstream."""
    gateway.start()
    with gateway.client() as client:
        response = send(client, weekly_report(str(uuid.uuid4())), None)
        # A second, good request shows the first one was not merely slow.
        assert send(client, weekly_report(str(uuid.uuid4())), "secret-3").status_code == 200
    assert response.status_code == 401
    wait_until(lambda: len(receiver.snapshot()) == 1, 10, "the good report")
    assert [r.headers[CREDENTIAL_HEADER.lower()] for r in receiver.snapshot()] == ["secret-3"]


@pytest.mark.collector
def test_oversized_body_is_refused(gateway: Gateway, receiver: RecordingReceiver) -> None:
    """A body above the catalog's max_body_bytes is refused before it is decoded."""
    gateway.start()
    limit = load_catalog().protocol.max_body_bytes
    with gateway.client() as client:
        response = client.post("/v1/metrics", content=b"\0" * (limit + 1), headers={
            "Content-Type": "application/x-protobuf", CREDENTIAL_HEADER: "secret-4",
        })
    assert response.status_code == 400
    assert receiver.snapshot() == []


@pytest.mark.collector
def test_plain_http_is_refused(gateway: Gateway) -> None:
    """The public endpoint speaks TLS only: plain HTTP gets Go's TLS server's refusal."""
    gateway.start()
    response = httpx.post(f"http://127.0.0.1:{gateway.port}/v1/metrics", content=b"", timeout=5)
    assert (response.status_code, response.text) == (
        400, "Client sent an HTTP request to an HTTPS server.\n",
    )


@pytest.mark.collector
def test_reports_survive_a_downstream_outage_and_a_gateway_restart(now: datetime,
    gateway: Gateway, receiver: RecordingReceiver,
) -> None:
    """With the downstream down, reports are acknowledged and queued on disk; after a gateway
    restart and the downstream's return, each arrives exactly once, with its own credential."""
    receiver.stop()
    gateway.start()
    reports = {str(uuid.uuid4()): f"credential-{n}" for n in range(5)}
    with gateway.client() as client:
        for installation, credential in reports.items():
            response = send(client, weekly_report(installation), credential,
                            {"X-Printer-Serial": "01S00A123"})
            assert response.status_code == 200
    wait_until(lambda: gateway.queue_size() == len(reports), 10, "the reports in the queue")
    gateway.stop()
    # On disk: each report with its credential, and none of the client's other headers.
    queued = b"".join(path.read_bytes() for path in gateway.queue_dir.rglob("*") if path.is_file())
    assert (b"credential-0" in queued, b"01S00A123" in queued) == (True, False)

    gateway.start()
    receiver.start()
    wait_until(lambda: len(receiver.snapshot()) >= len(reports), 20, "the queued reports")
    gateway.stop()  # a graceful stop: nothing more is in flight

    delivered = sorted(
        (installation, r.headers[CREDENTIAL_HEADER.lower()])
        for r in receiver.snapshot() for installation in r.installation_ids
    )
    assert delivered == sorted(reports.items())


# What the catalog does not describe: exemplars, descriptions, units, metadata, flags, scope.
EXEMPLAR_TRACE_ID = bytes.fromhex("5ca1ab1e0ddba11dec0de0fca11ab1e5")
EXEMPLAR_SPAN_ID = bytes.fromhex("0ddba11dec0de0f1")
MARKERS = {
    "exemplar attribute": b"anna-exemplar-benchy.3mf",
    "exemplar trace id": EXEMPLAR_TRACE_ID,
    "exemplar span id": EXEMPLAR_SPAN_ID,
    "description": b"jobs of anna's print farm",
    "unit": b"{anna-unit}",
    "metadata": b"anna-metadata",
    "scope version": b"9.9.9-kitchen-pi",
    "schema url": b"https://schema.example/anna",
}


def _with_everything_outside_the_catalog(report: ExportMetricsServiceRequest) -> None:
    """Adds, in place, to every metric and point what the catalog does not describe."""
    (resource_metrics,) = report.resource_metrics
    resource_metrics.schema_url = MARKERS["schema url"].decode()
    for scope_metrics in resource_metrics.scope_metrics:
        scope_metrics.schema_url = MARKERS["schema url"].decode()
        scope_metrics.scope.version = MARKERS["scope version"].decode()
        for metric in scope_metrics.metrics:
            metric.description = MARKERS["description"].decode()
            metric.unit = MARKERS["unit"].decode()
            metric.metadata.add(key="owner", value=AnyValue(string_value="anna-metadata"))
            points = metric.sum.data_points if metric.HasField("sum") else metric.gauge.data_points
            for point in points:
                point.flags = 1  # no recorded value
                point.exemplars.add(
                    filtered_attributes=[KeyValue(key="file.name", value=AnyValue(
                        string_value=MARKERS["exemplar attribute"].decode()))],
                    time_unix_nano=point.time_unix_nano - 1, as_int=1,
                    trace_id=EXEMPLAR_TRACE_ID, span_id=EXEMPLAR_SPAN_ID,
                )


def _found_markers(data: bytes) -> list[str]:
    return [what for what, marker in MARKERS.items() if marker in data]


@pytest.mark.collector
def test_exemplars_descriptions_and_units_never_reach_the_queue_or_the_downstream(now: datetime,
    gateway: Gateway, receiver: RecordingReceiver,
) -> None:
    """Exemplars (filtered attributes, trace and span ids), descriptions, foreign units,
    metadata, flags, schema URLs and the scope's name and version are removed before the queue:
    the queue file holds the waiting report (its credential) and none of them, and the
    downstream receives exactly the catalog's report."""
    receiver.stop()
    gateway.start()
    installation, week = str(uuid.uuid4()), last_week()
    report = weekly_report(installation, week=week)
    _with_everything_outside_the_catalog(report)
    with gateway.client() as client:
        assert send(client, report, "credential-exemplars").status_code == 200
    wait_until(lambda: gateway.queue_size() == 1, 10, "the report in the queue")
    queued = gateway.queue_bytes()
    assert (b"credential-exemplars" in queued, _found_markers(queued)) == (True, [])

    receiver.start()
    wait_until(lambda: len(receiver.snapshot()) == 1, 20, "the forwarded report")
    (received,) = receiver.snapshot()
    expected = weekly_report(installation, week=week)  # the catalog's units, nothing else
    expected.resource_metrics[0].scope_metrics[0].scope.name = ""
    assert received.request == expected
    assert _found_markers(received.request.SerializeToString()) == []


@pytest.mark.collector
def test_the_queue_file_forgets_a_delivered_report_and_its_credential(now: datetime,
    gateway: Gateway, receiver: RecordingReceiver,
) -> None:
    """The queue is compacted as it drains: once a report queued during an outage is
    delivered, its credential is in no file of the queue directory."""
    receiver.stop()
    gateway.start()
    with gateway.client() as client:
        assert send(client, weekly_report(str(uuid.uuid4())), "credential-compacted").status_code == 200
    wait_until(lambda: gateway.queue_size() == 1, 10, "the report in the queue")
    assert b"credential-compacted" in gateway.queue_bytes()
    receiver.start()
    wait_until(lambda: len(receiver.snapshot()) == 1, 20, "the forwarded report")
    wait_until(lambda: b"credential-compacted" not in gateway.queue_bytes(), 15,
               lambda: f"the queue's compaction\n{gateway.log_tail()}")
    assert list(gateway.queue_files()) == ["exporter_otlp_http_ingest_metrics"]


@pytest.mark.collector
@pytest.mark.parametrize("ingest_url", [None, "", "ingest.internal:8000"])
def test_the_gateway_refuses_to_start_without_an_ingest_url(
    gateway: Gateway, ingest_url: str | None,
) -> None:
    """Without an absolute ingest URL the gateway exits at once, saying what is missing, and
    never acknowledges a report it could not deliver."""
    environment = gateway.environment()
    del environment["OTEL_USAGE_INGEST_URL"]
    if ingest_url is not None:
        environment["OTEL_USAGE_INGEST_URL"] = ingest_url
    for command in (["validate", "--config", str(GATEWAY_CONFIG)], ["--config", str(GATEWAY_CONFIG)]):
        result = subprocess.run([gateway.binary, *command], env=environment, capture_output=True,
                                text=True, timeout=60)
        assert result.returncode == 1, result.stderr
        assert "ingest_url" in result.stderr and "OTEL_USAGE_INGEST_URL" in result.stderr


@pytest.mark.collector
def test_the_start_log_has_no_warnings(now: datetime, gateway: Gateway, receiver: RecordingReceiver) -> None:
    """No deprecated component name, no context-prefix notice from the OTTL statements, no
    warning or error at all while the gateway starts and forwards a report."""
    gateway.start()
    with gateway.client() as client:
        assert send(client, weekly_report(str(uuid.uuid4())), "credential-log").status_code == 200
    wait_until(lambda: len(receiver.snapshot()) == 1, 10, "the forwarded report")
    log = gateway.log_file.read_text()
    levels = [line.split("\t")[1] for line in log.splitlines() if line.count("\t") >= 2]
    assert "Everything is ready" in log
    assert sorted(set(levels)) == ["info"], log
    assert [word for word in ("context prefix", "deprecated", "otlphttp") if word in log] == []
