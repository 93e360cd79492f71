"""Fuzzing: schemathesis against the OpenAPI schema, hypothesis on OTLP bodies.

Whatever arrives, the answer is never a 5xx, and nothing that is not in the catalog is stored.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from datetime import date
from typing import Any

import httpx
import pytest
import schemathesis
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from ingest_reports import CATALOG, encode, new_credential, request, resource, week_ns
from ingest_support import query, running_server
from ingest_support import settings as ingest_settings
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from schemathesis import checks

HEADER = CATALOG.protocol.credential_header
PATH = CATALOG.protocol.metrics_path
FUZZ = settings(max_examples=60, deadline=None, derandomize=True,
                suppress_health_check=list(HealthCheck))


@schemathesis.serializer("application/x-protobuf")
def _protobuf(_ctx: Any, value: Any) -> dict[str, Any]:
    return {"data": value if isinstance(value, bytes) else str(value).encode()}


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    """A running ingest for the module: (base URL, database URL)."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path_factory.mktemp('fuzz')}/ingest.db"
    else:
        url = _fresh_postgres_schema(request.getfixturevalue("postgres_url"))
    # The fuzzer sends from loopback, hundreds of requests: exempt from the per-address limits.
    with running_server(ingest_settings(url, installation_burst=10_000,
                                        unlimited_addresses=frozenset({"127.0.0.1"}))) as base:
        yield base, url


def _fresh_postgres_schema(base: str) -> str:
    name = f"f_{uuid.uuid4().hex[:12]}"
    engine = sa.create_engine(base, poolclass=sa.pool.NullPool)
    with engine.begin() as conn:
        conn.exec_driver_sql(f"CREATE SCHEMA {name}")
    engine.dispose()
    return f"{base}?options=-csearch_path%3D{name}"


def test_no_request_the_schema_allows_gets_a_server_error(server: tuple[str, str]) -> None:
    """Every operation of the app's OpenAPI schema, with schemathesis' generated requests."""
    schema = schemathesis.openapi.from_url(f"{server[0]}/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]
    assert sorted(f"{o.method.upper()} {o.path}" for o in operations) == sorted([
        f"POST {PATH}", f"DELETE {CATALOG.protocol.installation_path}", "GET /healthz",
        "GET /readyz"])
    for operation in operations:

        @given(case=operation.as_strategy())
        @FUZZ
        def check(case: Any) -> None:
            case.call_and_validate(checks=[checks.not_a_server_error])

        check()


def _stored_points_are_all_in_the_catalog(url: str) -> None:
    for resource_json, points_json in query(url, "SELECT resource, points FROM weekly_reports"):
        for key, value in json.loads(resource_json).items():
            assert CATALOG.resource[key].allows(value)
        for metric, attributes, value in json.loads(points_json):
            spec = CATALOG.metrics[metric]
            assert all(spec.attributes[k].allows(v) for k, v in attributes.items())
            assert 0 <= value <= CATALOG.protocol.max_counter_value


def test_the_schema_fuzz_stored_nothing(server: tuple[str, str]) -> None:
    """Runs after the schemathesis cases: random bodies never make a report."""
    assert query(server[1], "SELECT COUNT(*) FROM weekly_reports") == [(0,)]


# Hypothesis on OTLP bodies: valid reports bent in every way the catalog forbids.

NAMES = st.sampled_from([*CATALOG.metrics, "printernizer.secret", "", "x" * 300])
KEYS = st.sampled_from(sorted({k for m in CATALOG.metrics.values() for k in m.attributes}
                              | {"host.name", ""}))
VALUES = st.one_of(st.sampled_from(["completed", "bambu_lab", "other", "library", "", "<script>"]),
                   st.text(max_size=80))
NUMBERS = st.one_of(st.integers(-(2**63), 2**63 - 1), st.integers(-2, 10))
WEEKS = st.sampled_from([week_ns(date(2025, 6, 9)), week_ns(date(2025, 6, 16)),
                         week_ns(date(2025, 6, 23)), week_ns(date(2020, 1, 6)), 0, 12345])


@st.composite
def bent_requests(draw: st.DrawFn) -> ExportMetricsServiceRequest:
    installation = draw(st.uuids(version=4)).hex
    installation = f"{installation[:8]}-{installation[8:12]}-{installation[12:16]}-{installation[16:20]}-{installation[20:]}"
    message = request(installation, data={})
    rm = message.resource_metrics[0]
    if draw(st.booleans()):
        rm.resource.attributes.append(KeyValue(key=draw(st.sampled_from([*CATALOG.resource, "ip"])),
                                               value=AnyValue(string_value=draw(VALUES))))
    scope = rm.scope_metrics[0]
    start = draw(WEEKS)
    for _ in range(draw(st.integers(0, 4))):
        metric = scope.metrics.add()
        metric.name = draw(NAMES)
        points = metric.sum.data_points if draw(st.booleans()) else metric.gauge.data_points
        if draw(st.booleans()):
            metric.sum.aggregation_temporality = draw(st.integers(0, 2))
            metric.sum.is_monotonic = draw(st.booleans())
        for _ in range(draw(st.integers(0, 3))):
            point = points.add()
            point.start_time_unix_nano = start
            point.time_unix_nano = start + draw(st.sampled_from([7 * 86400 * 10**9, 1]))
            if draw(st.booleans()):
                point.as_int = draw(NUMBERS)
            else:
                point.as_double = 1.5
            for _ in range(draw(st.integers(0, 3))):
                point.attributes.append(KeyValue(key=draw(KEYS), value=AnyValue(string_value=draw(VALUES))))
    return message


@given(message=bent_requests(), compress=st.booleans())
@FUZZ
def test_bent_reports_never_get_a_server_error_nor_store_anything_unknown(
        server: tuple[str, str], message: ExportMetricsServiceRequest, compress: bool) -> None:
    base, url = server
    before = query(url, "SELECT COUNT(*) FROM weekly_reports")[0][0]
    body, headers = encode(message, "protobuf", compress)
    answer = httpx.post(f"{base}{PATH}", content=body, headers=headers | {HEADER: new_credential()})
    assert answer.status_code in {200, 400}
    after = query(url, "SELECT COUNT(*) FROM weekly_reports")[0][0]
    assert after == before + (1 if answer.status_code == 200 else 0)
    _stored_points_are_all_in_the_catalog(url)


@given(body=st.binary(max_size=2000), fmt=st.sampled_from(["application/x-protobuf", "application/json"]),
       encoding=st.sampled_from([None, "gzip", "deflate"]))
@FUZZ
def test_random_bytes_are_refused_cleanly(server: tuple[str, str], body: bytes, fmt: str,
                                          encoding: str | None) -> None:
    headers = {"content-type": fmt, HEADER: new_credential()}
    if encoding:
        headers["content-encoding"] = encoding
    answer = httpx.post(f"{server[0]}{PATH}", content=body, headers=headers)
    assert answer.status_code in {400, 413, 415}


def test_a_valid_report_still_goes_through_after_the_fuzz(server: tuple[str, str]) -> None:
    """The fuzzing left the service healthy (and shows the harness can store at all)."""
    installation = "0a0b0c0d-0000-4000-8000-000000000001"
    body, headers = encode(request(installation), "protobuf", True)
    answer = httpx.post(f"{server[0]}{PATH}", content=body, headers=headers | {HEADER: new_credential()})
    assert answer.status_code == 200
    stored = query(server[1], "SELECT resource FROM weekly_reports WHERE installation_id = "
                              f"'{installation}'")
    assert [json.loads(r) for (r,) in stored] == [resource(installation)]
