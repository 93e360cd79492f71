"""Building and scrubbing a week's report: exactly the catalog's metrics, keys and values."""

from __future__ import annotations

import gzip
import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest
from catalog_support import grown_raw, write_catalog
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
)
from opentelemetry.proto.metrics.v1 import metrics_pb2 as pb

from otel_usage import Environment
from otel_usage.catalog import CATALOG_PATH, load_catalog
from otel_usage.report.build import build_report, otlp_json, resource_attributes
from otel_usage.store import connect
from otel_usage.store.outbox import OutboxTx
from otel_usage.weeks import Week

CATALOG = load_catalog()
WEEK = Week.parse("2026-W48")  # 2026-11-23 .. 2026-11-30, epoch days 20780 .. 20786
MONDAY = WEEK.first_day
INSTALLATION = "0b7e2a9c-2f4e-4c1a-9d3b-6a5f0e1c2d3e"
ENV = Environment(deployment_mode="docker", os_type="linux", host_arch="arm64",
                  python_version="3.11.7", country_code="DE")
RESOURCE = resource_attributes(CATALOG, ENV, service_name="printernizer",
                               service_version="2.7.0", installation_id=INSTALLATION)


@pytest.fixture
def conn(tmp_path: Path) -> Iterator[sqlite3.Connection]:
    db = connect(tmp_path / "usage.sqlite3")
    yield db
    db.close()


def put(conn: sqlite3.Connection, metric: str, attributes: dict[str, object], day: int, *,
        total: float | None = None, peak: float | None = None, kind: str = "sum",
        local_only: int = 0) -> None:
    """One daily row, as the SQLite exporter writes it."""
    text = json.dumps(attributes, sort_keys=True, separators=(",", ":"))
    conn.execute("INSERT OR IGNORE INTO series (metric, attributes, kind, unit, local_only) "
                 "VALUES (?, ?, ?, '', ?)", (metric, text, kind, local_only))
    (sid,) = conn.execute("SELECT id FROM series WHERE metric = ? AND attributes = ?",
                          (metric, text)).fetchone()
    conn.execute("INSERT INTO daily (day, series_id, total, last, peak) VALUES (?, ?, ?, ?, ?)",
                 (day, sid, total, peak, peak))


def test_a_week_is_summed_maxed_counted_and_scrubbed(conn: sqlite3.Connection) -> None:
    """Counters sum over the 7 days, gauges take the highest daily peak, uptime counts days;
    a value outside the enum becomes "other" and merges with other such values."""
    done_bambu = {"job.status": "completed", "printer.type": "bambu_lab"}
    put(conn, "printernizer.jobs", done_bambu, MONDAY - 1, total=50)  # the week before
    put(conn, "printernizer.jobs", done_bambu, MONDAY, total=3)
    put(conn, "printernizer.jobs", done_bambu, MONDAY + 6, total=4)
    put(conn, "printernizer.jobs", done_bambu, MONDAY + 7, total=70)  # the week after
    put(conn, "printernizer.jobs", {"job.status": "completed", "printer.type": "Ender 3"},
        MONDAY + 1, total=2)
    put(conn, "printernizer.jobs", {"job.status": "completed", "printer.type": "SN-0042"},
        MONDAY + 2, total=5)
    put(conn, "printernizer.printers", {"printer.type": "prusa_core"}, MONDAY, peak=2,
        kind="gauge")
    put(conn, "printernizer.printers", {"printer.type": "prusa_core"}, MONDAY + 3, peak=5,
        kind="gauge")
    put(conn, "printernizer.printers", {"printer.type": "prusa_core"}, MONDAY + 4, peak=3,
        kind="gauge")
    for day in (MONDAY, MONDAY + 2, MONDAY + 5):
        put(conn, "printernizer.uptime", {}, day, peak=1, kind="gauge")
    put(conn, "printernizer.errors", {"error.category": "network", "error.type": "timeout",
                                      "error.message": "GET http://10.0.0.7/api failed"},
        MONDAY, total=1)
    put(conn, "printernizer.jobs.by_file", {"file": "/home/anna/benchy.gcode"}, MONDAY,
        total=9, local_only=1)
    report = build_report(OutboxTx(conn), CATALOG, WEEK, CATALOG.version, RESOURCE)
    assert report.rendering == {
        "week": "2026-W48", "start": "2026-11-23T00:00:00Z", "end": "2026-11-30T00:00:00Z",
        "resource": RESOURCE,
        "metrics": [
            {"name": "printernizer.jobs", "unit": "{job}", "type": "sum", "points": [
                {"attributes": {"job.status": "completed", "printer.type": "bambu_lab"},
                 "value": 7},
                {"attributes": {"job.status": "completed", "printer.type": "other"},
                 "value": 7}]},
            {"name": "printernizer.printers", "unit": "{printer}", "type": "gauge", "points": [
                {"attributes": {"printer.type": "prusa_core"}, "value": 5}]},
            {"name": "printernizer.errors", "unit": "{error}", "type": "sum", "points": [
                {"attributes": {"error.category": "network", "error.type": "timeout"},
                 "value": 1}]},
            {"name": "printernizer.uptime", "unit": "d", "type": "gauge", "points": [
                {"attributes": {}, "value": 3}]},
        ],
    }


def test_the_report_is_real_otlp_with_week_timestamps_only(conn: sqlite3.Connection) -> None:
    put(conn, "printernizer.feature.uses", {"feature.name": "timelapse"}, MONDAY + 2, total=4)
    put(conn, "printernizer.features.enabled", {"feature.name": "timelapse"}, MONDAY, peak=1,
        kind="gauge")
    report = build_report(OutboxTx(conn), CATALOG, WEEK, CATALOG.version, RESOURCE)
    assert gzip.decompress(report.body) == report.payload
    request = ExportMetricsServiceRequest()
    request.ParseFromString(report.payload)
    assert len(request.resource_metrics) == 1
    (resource_metrics,) = request.resource_metrics
    assert {kv.key: kv.value.string_value for kv in resource_metrics.resource.attributes} == \
        RESOURCE
    (scope,) = resource_metrics.scope_metrics
    assert scope.scope.name == "otel_usage"
    enabled, uses = scope.metrics
    assert (uses.name, uses.WhichOneof("data"), uses.sum.is_monotonic,
            uses.sum.aggregation_temporality) == (
        "printernizer.feature.uses", "sum", True, pb.AGGREGATION_TEMPORALITY_DELTA)
    (point,) = uses.sum.data_points
    assert (point.start_time_unix_nano, point.time_unix_nano, point.WhichOneof("value"),
            point.as_int) == (WEEK.start_nanos, WEEK.end_nanos, "as_int", 4)
    assert (enabled.name, enabled.WhichOneof("data"), enabled.gauge.data_points[0].as_int) == (
        "printernizer.features.enabled", "gauge", 1)
    assert otlp_json(report.payload)["resourceMetrics"][0]["scopeMetrics"][0]["metrics"][1] == {
        "name": "printernizer.feature.uses", "unit": "{use}",
        "sum": {"aggregationTemporality": "AGGREGATION_TEMPORALITY_DELTA", "isMonotonic": True,
                "dataPoints": [{
                    "attributes": [{"key": "feature.name",
                                    "value": {"stringValue": "timelapse"}}],
                    "startTimeUnixNano": str(WEEK.start_nanos),
                    "timeUnixNano": str(WEEK.end_nanos), "asInt": "4"}]},
    }


def test_building_twice_gives_the_same_bytes(conn: sqlite3.Connection) -> None:
    put(conn, "printernizer.jobs", {"job.status": "failed", "printer.type": "octoprint"},
        MONDAY, total=1)
    put(conn, "printernizer.file.downloads", {"printer.type": "octoprint"}, MONDAY, total=2)
    first = build_report(OutboxTx(conn), CATALOG, WEEK, CATALOG.version, RESOURCE)
    assert build_report(OutboxTx(conn), CATALOG, WEEK, CATALOG.version, RESOURCE).body == first.body


def test_metrics_added_after_the_consent_are_left_out(tmp_path: Path,
                                                      conn: sqlite3.Connection) -> None:
    text = CATALOG_PATH.read_text(encoding="utf-8").replace("version = 1\n", "version = 2\n", 1)
    text += ('\n[[metric]]\nname = "printernizer.slicer.runs"\ninstrument = "counter"\n'
             'unit = "{run}"\nweekly = "sum"\nsince = 2\nen = "Slicer runs."\n'
             'de = "Slicer-Läufe."\n')
    path = tmp_path / "catalog.toml"
    path.write_text(text, encoding="utf-8")
    catalog = load_catalog(path)
    put(conn, "printernizer.slicer.runs", {}, MONDAY, total=3)
    put(conn, "printernizer.app.starts", {}, MONDAY, total=1)
    names = [m["name"] for m in build_report(OutboxTx(conn), catalog, WEEK, 1, RESOURCE)
             .rendering["metrics"]]
    assert names == ["printernizer.app.starts"]
    names = [m["name"] for m in build_report(OutboxTx(conn), catalog, WEEK, 2, RESOURCE)
             .rendering["metrics"]]
    assert names == ["printernizer.app.starts", "printernizer.slicer.runs"]


def test_resource_values_outside_the_catalog_become_other_or_are_left_out() -> None:
    odd = Environment(deployment_mode="kubernetes", os_type="linux", host_arch="mips",
                      python_version="3.11.7+local", country_code="Germany")
    resource = resource_attributes(CATALOG, odd, service_name="printernizer",
                                   service_version="2.7.0-dev+anna", installation_id="anna")
    assert resource == {
        "service.name": "printernizer", "service.version": "other",
        "service.instance.id": "other", "printernizer.deployment.mode": "other",
        "os.type": "linux", "process.runtime.version": "other",
        "otel_usage.catalog.version": str(CATALOG.version),
    }



def test_a_version_1_consent_sends_a_build_from_source_as_other(conn: sqlite3.Connection) -> None:
    """Catalog version 2 widened service.version to builds from source (2.7.0-dev); a user who
    agreed to version 1 sends exactly what version 1 allowed: such a version as "other"."""
    put(conn, "printernizer.app.starts", {}, MONDAY, total=1)
    dev = {**RESOURCE, "service.version": "2.7.0-dev"}
    sent = {version: build_report(OutboxTx(conn), CATALOG, WEEK, version, dev).rendering["resource"]
            for version in (1, 2)}
    assert sent == {1: {**RESOURCE, "service.version": "other",
                        "otel_usage.catalog.version": "1"},
                    2: {**RESOURCE, "service.version": "2.7.0-dev",
                        "otel_usage.catalog.version": "2"}}

# Property: nothing personal built into names or values ever reaches the bytes that leave.

_word = st.text(alphabet="abcdefghijklmnopqrstuvwxyz", min_size=2, max_size=8)
_emails = st.builds(lambda a, b: f"{a}@{b}.example", _word, _word)
_ips = st.one_of(
    st.ip_addresses(v=4).map(str).filter(lambda s: s.count(".") == 3),
    st.ip_addresses(v=6).map(lambda ip: f"[{ip}]"),
)
_paths = st.builds(lambda a, b: f"/home/{a}/{b}.gcode", _word, _word)
_urls = st.builds(lambda a, b: f"https://{a}.example/{b}?token=x", _word, _word)
_serials = st.text(alphabet="ABCDEFGHJKLMNPQRSTUVWXYZ0123456789", min_size=10, max_size=16)
_free_text = st.builds(lambda a, b, c: f"{a} {b} {c}", _word, _word, _word)
PERSONAL = st.one_of(_emails, _ips, _paths, _urls, _serials, _free_text)


@settings(max_examples=150, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(values=st.lists(PERSONAL, min_size=1, max_size=6, unique=True))
def test_personal_strings_never_leave(conn: sqlite3.Connection, values: list[str]) -> None:
    """E-mails, IPs, paths, URLs, serials and free text used as attribute values, attribute
    keys or instrument names do not appear in the report's bytes or its rendering."""
    conn.execute("DELETE FROM daily")
    conn.execute("DELETE FROM series")
    for i, value in enumerate(values):
        put(conn, "printernizer.jobs", {"job.status": value, "printer.type": "bambu_lab"},
            MONDAY, total=1)
        put(conn, "printernizer.errors", {value: "timeout", "error.category": value},
            MONDAY + 1, total=1)
        put(conn, "printernizer.printers", {"printer.type": value}, MONDAY, peak=i,
            kind="gauge")
        # Even a row wrongly marked as sendable leaves nothing when its name is not a metric.
        put(conn, value, {"printer.type": "bambu_lab"}, MONDAY, total=1)
        put(conn, f"printernizer.{value}", {}, MONDAY, total=1)
    environment = Environment(deployment_mode=values[0], os_type=values[-1],
                              host_arch=values[0], python_version=values[-1],
                              country_code=values[0])
    resource = resource_attributes(CATALOG, environment, service_name=values[0],
                                   service_version=values[-1], installation_id=values[0])
    report = build_report(OutboxTx(conn), CATALOG, WEEK, 1, resource)
    rendering = json.dumps(report.rendering)
    for value in values:
        assert value.encode() not in report.payload
        assert value not in rendering
    assert report.rendering["metrics"][0]["points"] == [
        {"attributes": {"job.status": "other", "printer.type": "bambu_lab"},
         "value": len(values)}]


def test_keys_values_and_resource_attributes_added_after_the_consent_are_left_out(
        tmp_path: Path, conn: sqlite3.Connection) -> None:
    """A user who consented to version 1 of a catalog grown to 3 sends version 1's view: the
    newer key is dropped, the newer printer type and os type are sent as "other", the newer
    resource attribute is left out and the report names version 1; at version 2 the key, the
    printer type and the resource attribute go, the key's value of version 3 as "other"."""
    catalog = load_catalog(write_catalog(grown_raw(), tmp_path))
    put(conn, "printernizer.jobs", {"job.status": "completed", "printer.type": "creality",
                                    "job.origin": "api"}, MONDAY, total=2)
    put(conn, "printernizer.jobs", {"job.status": "completed", "printer.type": "creality",
                                    "job.origin": "ui"}, MONDAY, total=1)
    put(conn, "printernizer.slicer.uses", {"printer.type": "creality"}, MONDAY, total=4)
    facts = {**RESOURCE, "os.type": "haiku", "printernizer.ui.language": "de",
             "otel_usage.catalog.version": "3"}

    def sent(version: int) -> tuple[dict[str, str], list[dict[str, object]]]:
        report = build_report(OutboxTx(conn), catalog, WEEK, version, facts)
        request = ExportMetricsServiceRequest()
        request.ParseFromString(report.payload)
        assert report.rendering["resource"] == {
            kv.key: kv.value.string_value
            for kv in request.resource_metrics[0].resource.attributes}
        return report.rendering["resource"], report.rendering["metrics"]

    resource, metrics = sent(1)
    assert resource == {**RESOURCE, "os.type": "other", "otel_usage.catalog.version": "1"}
    assert metrics == [{"name": "printernizer.jobs", "unit": "{job}", "type": "sum", "points": [
        {"attributes": {"job.status": "completed", "printer.type": "other"}, "value": 3}]}]
    resource, metrics = sent(2)
    assert resource == {**RESOURCE, "os.type": "other", "printernizer.ui.language": "de",
                        "otel_usage.catalog.version": "2"}
    assert metrics == [{"name": "printernizer.jobs", "unit": "{job}", "type": "sum", "points": [
        {"attributes": {"job.origin": "other", "job.status": "completed",
                        "printer.type": "creality"}, "value": 2},
        {"attributes": {"job.origin": "ui", "job.status": "completed",
                        "printer.type": "creality"}, "value": 1}]}]
    resource, metrics = sent(3)
    assert resource == {**facts}
    assert [m["name"] for m in metrics] == ["printernizer.jobs", "printernizer.slicer.uses"]
