"""The HTTP API end to end, on SQLite and on a real PostgreSQL, per the OTLP/HTTP spec."""

from __future__ import annotations

import contextlib
import gzip
import json
import re
import threading
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta

import httpx
import pytest
import sqlalchemy as sa
from google.protobuf import json_format
from google.rpc.status_pb2 import Status
from ingest_reports import (
    CATALOG,
    WEEK,
    add_week,
    encode,
    new_credential,
    new_installation,
    parsed,
    request,
    resource,
)
from ingest_support import (  # noqa: F401  (fixture)
    app_client,
    database_url,
    insert_published,
    published_cell,
    published_week,
    query,
    settings,
)
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
    ExportMetricsServiceResponse,
)

from ingest._store import Store, create_engine
from ingest.site import RECHECK_S, build_site, read_engine, site_files
from ingest.testing import erasure_request

HEADER = CATALOG.protocol.credential_header
PATH = CATALOG.protocol.metrics_path
UPTIME = {"printernizer.uptime": [({}, 5)]}


def _post_args(installation: str, credential: str, fmt: str = "protobuf", compress: bool = True,
               **kwargs: object) -> dict[str, object]:
    body, headers = encode(request(installation, **kwargs), fmt, compress)  # type: ignore[arg-type]
    return {"content": body, "headers": headers | {HEADER: credential}}


def _answer(response: httpx.Response) -> dict[str, object]:
    """An export's protobuf answer in OTLP's JSON field names."""
    answer: dict[str, object] = json_format.MessageToDict(
        ExportMetricsServiceResponse.FromString(response.content))
    return answer


def _count(url: str, table: str = "weekly_reports") -> int:
    return int(query(url, f"SELECT COUNT(*) FROM {table}")[0][0])


@pytest.mark.parametrize("compress", [True, False])
async def test_a_valid_report_is_stored_and_answered_in_protobuf(
        database_url: str, compress: bool) -> None:  # noqa: F811
    async with app_client(settings(database_url)) as client:
        response = await client.post(PATH, **_post_args(new_installation(), new_credential(),
                                                        "protobuf", compress))  # type: ignore[arg-type]
    assert (response.status_code, response.content) == (200, b"")
    assert response.headers["content-type"] == "application/x-protobuf"
    assert _count(database_url) == 1


async def test_a_json_body_is_415_before_it_is_read(database_url: str) -> None:  # noqa: F811
    """OTLP/HTTP JSON is not taken (the client and the gateway send protobuf; converting JSON
    cost a refused body up to 19 times a valid report): a valid JSON report is refused, and so
    is one whose declared length is over the body limit, with the same 415 (not the 413 that
    reading it would give), counted, and nothing stored."""
    installation, credential = new_installation(), new_credential()
    config = settings(database_url, max_body_bytes=1000)
    async with app_client(config) as client:
        valid = await client.post(PATH, **_post_args(installation, credential, "json",
                                                     data=UPTIME))  # type: ignore[arg-type]
        large = await client.post(PATH, content=b"{" * 5000, headers={
            "content-type": "application/json; charset=utf-8", HEADER: credential})
    refusal = Status(code=3, message="send application/x-protobuf (OTLP/HTTP JSON is not taken)")
    for response in (valid, large):
        assert (response.status_code, response.headers["content-type"]) == (
            415, "application/x-protobuf")
        assert Status.FromString(response.content) == refusal
    assert (_count(database_url), _count(database_url, "installations")) == (0, 0)
    assert query(database_url, "SELECT outcome, reason, requests FROM usage_submissions") == [
        ("rejected", "unsupported_media_type", 2)]


async def test_refused_points_are_reported_as_partial_success(database_url: str) -> None:  # noqa: F811
    data = UPTIME | {"printernizer.telemetry.secret": [({}, 1)], "printernizer.app.starts": [({"host": "x"}, 1)]}
    async with app_client(settings(database_url)) as client:
        response = await client.post(PATH, **_post_args(new_installation(), new_credential(),
                                                        data=data))  # type: ignore[arg-type]
    assert response.status_code == 200
    assert _answer(response) == {"partialSuccess": {
        "rejectedDataPoints": "2",
        "errorMessage": "metric 'printernizer.telemetry.secret' is not in the catalog; "
                        "metric 'printernizer.app.starts' has no attribute 'host'"}}
    assert query(database_url, "SELECT points FROM weekly_reports") == [
        ('[["printernizer.uptime",{},5]]',)]


async def test_a_value_above_its_metrics_max_is_stored_clamped_with_a_warning(database_url: str) -> None:  # noqa: F811
    """999,999 printers: the catalog's max for printernizer.printers is 1,000 and its rule is
    clamp, so 1,000 is stored (what the client would have sent), and partial_success says so
    with no point refused (a warning, in OTLP's terms)."""
    data = {"printernizer.printers": [({"printer.type": "octoprint"}, 999_999)]}
    async with app_client(settings(database_url)) as client:
        response = await client.post(PATH, **_post_args(new_installation(), new_credential(),
                                                        data=data))  # type: ignore[arg-type]
    assert response.status_code == 200
    assert _answer(response) == {"partialSuccess": {
        "errorMessage": "metric 'printernizer.printers' takes values up to 1000: 999999 was "
                        "stored as 1000"}}
    assert query(database_url, "SELECT points FROM weekly_reports") == [
        ('[["printernizer.printers",{"printer.type":"octoprint"},1000]]',)]


async def test_a_body_of_more_points_than_a_report_can_hold_is_refused_at_once(
        database_url: str) -> None:  # noqa: F811
    """A few hundred bytes of gzip that expand to 1,500 points no catalog metric has: refused
    on counting, before a point is read, with one problem that says why; nothing is stored."""
    data = {"printernizer.nope": [({}, 1)] * 1500}
    async with app_client(settings(database_url)) as client:
        response = await client.post(PATH, **_post_args(new_installation(), new_credential(),
                                                        data=data))  # type: ignore[arg-type]
    assert response.status_code == 400
    assert Status.FromString(response.content) == Status(
        code=3, message="1500 points of metrics the catalog lacks; at most 64 are refused")
    assert (_count(database_url), _count(database_url, "installations")) == (0, 0)


async def test_invalid_data_is_a_400_with_a_status_and_stores_nothing(
        database_url: str) -> None:  # noqa: F811
    async with app_client(settings(database_url)) as client:
        response = await client.post(PATH, **_post_args(new_installation(), new_credential(),
                                                        data={"printernizer.secret": [({}, 1)]}))  # type: ignore[arg-type]
    assert response.status_code == 400
    status = Status.FromString(response.content)
    assert status == Status(code=3, message="metric 'printernizer.secret' is not in the catalog")
    assert _count(database_url) == 0
    assert _count(database_url, "installations") == 0


async def test_a_version_1_user_on_a_build_from_source_reports_its_version_as_other(
        database_url: str) -> None:  # noqa: F811
    """A user who agreed to catalog version 1 runs a build from source (2.7.0-dev, which only
    version 2's pattern allows): the client's scrubber sends service.version "other", as it
    sends "other" for any value outside a pattern (Python 4, a country code it cannot read).
    The ingest takes what the scrubber sends: the report is stored with those values."""
    installation = new_installation()
    odd = {"service.version": "2.7.0-dev", "process.runtime.version": "4.0.0",
           "geo.country.iso_code": "Germany"}
    old = CATALOG.as_of(1)
    sent = resource(installation) | {key: old.resource[key].scrub(value)
                                     for key, value in odd.items()}
    sent["otel_usage.catalog.version"] = "1"
    assert [sent[key] for key in odd] == ["other", "other", "other"]
    async with app_client(settings(database_url)) as client:
        response = await client.post(PATH, **_post_args(installation, new_credential(),
                                                        res=sent, data=UPTIME))  # type: ignore[arg-type]
    assert (response.status_code, response.content) == (200, b"")
    stored = query(database_url, "SELECT installation_id, resource FROM weekly_reports")
    assert [(row[0], json.loads(row[1])) for row in stored] == [(installation, sent)]


async def test_an_installation_id_of_other_is_refused(database_url: str) -> None:  # noqa: F811
    """"other" stands for a value the catalog does not know; as an installation id it would
    merge every installation that sent it into one: the client always has a real id, and the
    ingest refuses "other" there."""
    sent = resource(new_installation()) | {"service.instance.id": "other"}
    async with app_client(settings(database_url)) as client:
        response = await client.post(PATH, **_post_args("other", new_credential(), res=sent,
                                                        data=UPTIME))  # type: ignore[arg-type]
    assert response.status_code == 400
    assert Status.FromString(response.content) == Status(
        code=3, message="resource attribute 'service.instance.id' must be a string of pattern "
                        + CATALOG.resource["service.instance.id"].describe_values()[8:])
    assert (_count(database_url), _count(database_url, "installations")) == (0, 0)


async def test_bodies_over_the_limit_are_413_even_when_gzip_hides_it(database_url: str) -> None:  # noqa: F811
    async with app_client(settings(database_url, max_body_bytes=1000)) as client:
        big = await client.post(PATH, content=b"\0" * 1001, headers={
            "content-type": "application/x-protobuf", HEADER: new_credential()})
        bomb = await client.post(PATH, content=gzip.compress(b"\0" * 100_000), headers={
            "content-type": "application/x-protobuf", "content-encoding": "gzip",
            HEADER: new_credential()})
    assert (big.status_code, bomb.status_code) == (413, 413)
    assert Status.FromString(bomb.content) == Status(
        code=8, message="body is over 1000 bytes after decompression")


async def test_other_content_types_are_415(database_url: str) -> None:  # noqa: F811
    async with app_client(settings(database_url)) as client:
        response = await client.post(PATH, content=b"hello", headers={"content-type": "text/plain"})
    assert response.status_code == 415
    assert Status.FromString(response.content).code == 3


async def test_a_missing_or_wrong_credential_is_403(database_url: str) -> None:  # noqa: F811
    """The first report registers the credential; later ones must carry it."""
    installation, credential = new_installation(), new_credential()
    async with app_client(settings(database_url)) as client:
        first = await client.post(PATH, **_post_args(installation, credential))  # type: ignore[arg-type]
        wrong = await client.post(PATH, **_post_args(installation, new_credential(), seed=2))  # type: ignore[arg-type]
        args = _post_args(installation, credential)
        del args["headers"][HEADER]  # type: ignore[attr-defined]
        missing = await client.post(PATH, **args)  # type: ignore[arg-type]
        again = await client.post(PATH, **_post_args(installation, credential, seed=3))  # type: ignore[arg-type]
    assert [r.status_code for r in (first, wrong, missing, again)] == [200, 403, 403, 200]
    assert Status.FromString(wrong.content) == Status(
        code=7, message="credential does not match this installation")
    assert _count(database_url) == 1


async def test_an_installation_over_its_rate_is_429_with_retry_after(database_url: str) -> None:  # noqa: F811
    installation, credential = new_installation(), new_credential()
    config = settings(database_url, installation_burst=2, installation_rate=1 / 60)
    async with app_client(config) as client:
        answers = [await client.post(PATH, **_post_args(installation, credential, seed=i))  # type: ignore[arg-type]
                   for i in range(3)]
    assert [a.status_code for a in answers] == [200, 200, 429]
    assert answers[2].headers["retry-after"] == "60"


async def test_an_address_over_its_rate_is_429_before_the_body_is_read(database_url: str) -> None:  # noqa: F811
    config = settings(database_url, address_burst=1, address_rate=0.5)
    async with app_client(config) as client:
        first = await client.post(PATH, **_post_args(new_installation(), new_credential()))  # type: ignore[arg-type]
        second = await client.post(PATH, content=b"garbage", headers={
            "content-type": "application/x-protobuf", HEADER: new_credential()})
    assert (first.status_code, second.status_code) == (200, 429)
    assert second.headers["retry-after"] == "2"


async def test_a_full_write_queue_is_503_with_retry_after(database_url: str) -> None:  # noqa: F811
    async with app_client(settings(database_url, max_pending=0, retry_after_s=7)) as client:
        response = await client.post(PATH, **_post_args(new_installation(), new_credential()))  # type: ignore[arg-type]
    assert response.status_code == 503
    assert response.headers["retry-after"] == "7"
    assert Status.FromString(response.content) == Status(code=14, message="the write queue is full")
    assert _count(database_url) == 0


async def test_erasure_removes_the_installation_and_needs_its_credential(database_url: str) -> None:  # noqa: F811
    installation, credential = new_installation(), new_credential()
    other = new_installation()
    path = CATALOG.protocol.installation_path.format(installation_id=installation)
    async with app_client(settings(database_url)) as client:
        await client.post(PATH, **_post_args(installation, credential))  # type: ignore[arg-type]
        await client.post(PATH, **_post_args(other, new_credential()))  # type: ignore[arg-type]
        without = await client.delete(path)
        wrong = await client.delete(path, headers={HEADER: new_credential()})
        erased = await client.delete(path, headers={HEADER: credential})
        again = await client.delete(path, headers={HEADER: credential})
        malformed = await client.delete("/v1/installations/abc", headers={HEADER: credential})
    assert [r.status_code for r in (without, wrong, erased, again, malformed)] == [
        403, 403, 204, 204, 400]
    assert query(database_url, "SELECT installation_id FROM weekly_reports") == [(other,)]
    assert query(database_url, "SELECT installation_id FROM installations") == [(other,)]


class _Transactions:
    """What every transaction on any engine of this process ran, and in which thread: the
    verb and the report tables of each statement (SQLAlchemy's own events; the store is the
    real one)."""

    TABLES = ("installations", "erasures", "weekly_reports")

    def __init__(self) -> None:
        self.runs: list[tuple[str, list[str]]] = []
        self._open: dict[int, list[str]] = {}

    def begin(self, conn: sa.Connection) -> None:
        statements: list[str] = []
        self._open[id(conn)] = statements
        self.runs.append((threading.current_thread().name, statements))

    def execute(self, conn: sa.Connection, _cursor: object, statement: str, *_args: object) -> None:
        verb = statement.split()[0].upper()
        if verb in ("BEGIN", "PRAGMA"):
            return
        tables = [t for t in self.TABLES if re.search(rf"\b{t}\b", statement)]
        self._open.setdefault(id(conn), []).append(" ".join([verb, *tables]))

    def of_reports(self) -> list[tuple[str, list[str]]]:
        """The transactions that touched the report tables, but for the publication's own
        (its thread publishes and forgets at start)."""
        return [(thread, statements) for thread, statements in self.runs
                if thread != "ingest-maintenance"
                and any(len(s.split()) > 1 for s in statements)]

    @contextlib.contextmanager
    def recorded(self) -> Iterator[_Transactions]:
        sa.event.listen(sa.Engine, "begin", self.begin)
        sa.event.listen(sa.Engine, "before_cursor_execute", self.execute)
        try:
            yield self
        finally:
            sa.event.remove(sa.Engine, "begin", self.begin)
            sa.event.remove(sa.Engine, "before_cursor_execute", self.execute)


async def test_a_request_is_checked_and_written_in_one_transaction_of_the_writer(
        database_url: str) -> None:  # noqa: F811
    """A report's credential, the erased ids and the write, and an erasure's, are one job of
    the writer thread in one transaction: the event loop never reaches the store itself, and
    a request goes to the store and back once (a wrong credential too, writing nothing)."""
    installation, credential = new_installation(), new_credential()
    path = CATALOG.protocol.installation_path.format(installation_id=installation)
    sends: list[tuple[str, str, dict[str, object]]] = [
        ("POST", PATH, _post_args(installation, credential)),
        ("POST", PATH, _post_args(installation, credential, seed=1)),
        ("POST", PATH, _post_args(installation, new_credential())),
        ("DELETE", path, {"headers": {HEADER: credential}})]
    answers, seen = [], []
    async with app_client(settings(database_url)) as client:
        for method, url, args in sends:
            with _Transactions().recorded() as transactions:
                answers.append((await client.request(method, url, **args)).status_code)  # type: ignore[arg-type]
            seen.append(transactions.of_reports())
    assert answers == [200, 200, 403, 204]
    checks = ["SELECT installations", "SELECT erasures"]
    assert seen == [
        [("ingest-writer", [*checks, "INSERT installations", "INSERT weekly_reports"])],
        [("ingest-writer", [*checks, "DELETE weekly_reports", "INSERT weekly_reports"])],
        [("ingest-writer", checks)],
        [("ingest-writer", [*checks, "DELETE weekly_reports", "DELETE installations",
                            "INSERT erasures"])],
    ]


async def test_health_and_readiness(database_url: str) -> None:  # noqa: F811
    async with app_client(settings(database_url)) as client:
        health = await client.get("/healthz")
        ready = await client.get("/readyz")
    assert (health.status_code, health.json()) == (200, {"status": "ok"})
    assert (ready.status_code, ready.json()) == (200, {"status": "ready"})


async def test_requests_are_counted_per_day_without_identifiers(database_url: str) -> None:  # noqa: F811
    """accepted / rejected by reason / throttled, and no address anywhere in the store."""
    config = settings(database_url, installation_burst=1)
    installation, credential = new_installation(), new_credential()
    async with app_client(config) as client:
        await client.post(PATH, **_post_args(installation, credential))  # type: ignore[arg-type]
        await client.post(PATH, **_post_args(installation, credential, seed=1))  # type: ignore[arg-type]
        await client.post(PATH, content=b"x", headers={"content-type": "text/csv"})
        await client.post(PATH, **_post_args(new_installation(), new_credential(), data=UPTIME | {
            "printernizer.secret": [({}, 1)]}))  # type: ignore[arg-type]
    rows = query(database_url, "SELECT day, outcome, reason, requests FROM usage_submissions "
                               "ORDER BY outcome, reason")
    assert [(str(r[0])[:19], *r[1:]) for r in rows] == [
        ("2025-06-18 00:00:00", "accepted", "", 1),
        ("2025-06-18 00:00:00", "accepted", "partial", 1),
        ("2025-06-18 00:00:00", "rejected", "unsupported_media_type", 1),
        ("2025-06-18 00:00:00", "throttled", "rate_limited", 1),
    ]
    for table in ("weekly_reports", "installations", "daily_stats"):
        dump = repr(query(database_url, f"SELECT * FROM {table}"))
        assert "203.0.113" not in dump


async def test_the_openapi_schema_documents_the_export_and_erasure(database_url: str) -> None:  # noqa: F811
    async with app_client(settings(database_url)) as client:
        schema = (await client.get("/openapi.json")).json()
    export = schema["paths"][PATH]["post"]
    assert sorted(export["requestBody"]["content"]) == ["application/x-protobuf"]
    assert sorted(export["responses"]) == ["200", "400", "403", "410", "413", "415", "429", "503"]
    assert "delete" in schema["paths"][CATALOG.protocol.installation_path]


def _erasure_args(installation: str, credential: str, **changes: object) -> dict[str, object]:
    message = erasure_request(installation, WEEK)
    for name, value in changes.items():
        setattr(message.resource_metrics[0].scope_metrics[0].metrics[0].gauge.data_points[0],
                name, value)
    body, headers = encode(message, "protobuf", True)
    return {"content": body, "headers": headers | {HEADER: credential}}


async def test_an_erasure_sent_as_an_export_erases_and_later_reports_get_410(database_url: str) -> None:  # noqa: F811
    """The contract: an OTLP export of the erasure metric erases; a report of that
    installation afterwards, even replayed with its credential, gets 410 FAILED_PRECONDITION."""
    installation, credential, other = new_installation(), new_credential(), new_installation()
    async with app_client(settings(database_url)) as client:
        stored = await client.post(PATH, **_post_args(installation, credential))  # type: ignore[arg-type]
        await client.post(PATH, **_post_args(other, new_credential()))  # type: ignore[arg-type]
        erased = await client.post(PATH, **_erasure_args(installation, credential))  # type: ignore[arg-type]
        again = await client.post(PATH, **_erasure_args(installation, credential))  # type: ignore[arg-type]
        replayed = await client.post(PATH, **_post_args(installation, credential))  # type: ignore[arg-type]
    assert [r.status_code for r in (stored, erased, again, replayed)] == [200, 200, 200, 410]
    assert (erased.content, again.content) == (b"", b"")
    assert Status.FromString(replayed.content) == Status(
        code=9, message="this installation was erased: start over with a new installation id")
    assert query(database_url, "SELECT installation_id FROM weekly_reports") == [(other,)]
    assert query(database_url, "SELECT installation_id FROM installations") == [(other,)]
    assert query(database_url, "SELECT COUNT(*) FROM erasures") == [(1,)]


async def test_an_erasure_needs_the_stored_credential_and_refuses_other_shapes(database_url: str) -> None:  # noqa: F811
    installation, credential = new_installation(), new_credential()
    async with app_client(settings(database_url)) as client:
        await client.post(PATH, **_post_args(installation, credential))  # type: ignore[arg-type]
        wrong = await client.post(PATH, **_erasure_args(installation, new_credential()))  # type: ignore[arg-type]
        two = await client.post(PATH, **_erasure_args(installation, credential, as_int=2))  # type: ignore[arg-type]
        unaligned = await client.post(PATH, **_erasure_args(installation, credential, start_time_unix_nano=1))  # type: ignore[arg-type]
        message = erasure_request(installation, WEEK)
        add_week(message, resource(installation), {"printernizer.uptime": [({}, 3)]}, WEEK)
        body, headers = encode(message, "protobuf", True)
        mixed = await client.post(PATH, content=body, headers=headers | {HEADER: credential})
    assert [r.status_code for r in (wrong, two, unaligned, mixed)] == [403, 400, 400, 400]
    assert Status.FromString(mixed.content).message == (
        "otel_usage.erasure must be the request's only metric, of one resource")
    assert _count(database_url) == 1


async def test_an_erasure_of_an_installation_never_stored_is_remembered(database_url: str) -> None:  # noqa: F811
    """The erasure may overtake a report still queued in the gateway: the report then gets 410."""
    installation, credential = new_installation(), new_credential()
    async with app_client(settings(database_url)) as client:
        erased = await client.post(PATH, **_erasure_args(installation, credential))  # type: ignore[arg-type]
        late = await client.post(PATH, **_post_args(installation, credential))  # type: ignore[arg-type]
    assert (erased.status_code, late.status_code) == (200, 410)
    assert _count(database_url) == 0


async def test_erasures_of_ids_never_seen_spend_the_allowance_of_new_installations(database_url: str) -> None:  # noqa: F811
    """Each erasure of an id never stored leaves a record (a report of it may still be queued),
    so it counts as a new installation of its address: two a day here, by DELETE or by the
    OTLP erasure, registrations included. Erasing a stored installation (with its credential)
    or an id already remembered costs nothing."""
    config = settings(database_url, registrations_per_day=2)
    known, credential = new_installation(), new_credential()

    def path(installation: str) -> str:
        return CATALOG.protocol.installation_path.format(installation_id=installation)

    async with app_client(config) as client:
        stored = await client.post(PATH, **_post_args(known, credential))  # type: ignore[arg-type]
        unseen = new_installation()
        first = await client.delete(path(unseen), headers={HEADER: new_credential()})
        again = await client.delete(path(unseen), headers={HEADER: new_credential()})
        over = await client.post(PATH, **_erasure_args(new_installation(), new_credential()))  # type: ignore[arg-type]
        over_by_delete = await client.delete(path(new_installation()),
                                             headers={HEADER: new_credential()})
        registration = await client.post(PATH, **_post_args(new_installation(), new_credential()))  # type: ignore[arg-type]
        owner = await client.delete(path(known), headers={HEADER: credential})
    assert [a.status_code for a in (stored, first, again, over, over_by_delete, registration,
                                    owner)] == [200, 204, 204, 429, 429, 429, 204]
    assert (over.headers["retry-after"], over_by_delete.headers["retry-after"]) == ("43200", "43200")
    assert Status.FromString(over.content).message == "too many new installations from this address"
    assert _count(database_url, "erasures") == 2
    assert _count(database_url, "installations") == 0


async def test_behind_a_trusted_proxy_erasures_of_ids_never_seen_are_limited_per_pseudonym(
        database_url: str) -> None:  # noqa: F811
    """Through the gateway each client's pseudonym has its own allowance, and an erasure over
    it gets the 403 the gateway drops rather than retries."""
    first, second = "c" * 32, "d" * 32
    config = settings(database_url, registrations_per_day=1, trusted_proxies=("203.0.113.7",))
    async with app_client(config) as client:
        answers = [await client.post(PATH, **_through_gateway(pseudonym, _erasure_args(  # type: ignore[arg-type]
            new_installation(), new_credential()))) for pseudonym in (first, first, second)]
        direct = await client.delete(
            CATALOG.protocol.installation_path.format(installation_id=new_installation()),
            headers={HEADER: new_credential(), PSEUDONYM_HEADER: first})
    assert [a.status_code for a in (*answers, direct)] == [200, 403, 200, 403]
    assert Status.FromString(answers[1].content) == Status(
        code=7, message="too many new installations from this address: refused, not to be "
                        "retried")
    assert _count(database_url, "erasures") == 2


async def test_a_wrong_credential_does_not_spend_the_owners_limit(database_url: str) -> None:  # noqa: F811
    """Someone who knows an installation's id sends under it with another credential: 403,
    and the owner's own reports still go through (the limit is charged after the check)."""
    installation, credential = new_installation(), new_credential()
    config = settings(database_url, installation_burst=2, installation_rate=1 / 3600)
    async with app_client(config) as client:
        first = await client.post(PATH, **_post_args(installation, credential))  # type: ignore[arg-type]
        forged = [await client.post(PATH, **_post_args(installation, new_credential(), seed=i))  # type: ignore[arg-type]
                  for i in range(5)]
        second = await client.post(PATH, **_post_args(installation, credential, seed=9))  # type: ignore[arg-type]
        third = await client.post(PATH, **_post_args(installation, credential, seed=10))  # type: ignore[arg-type]
    assert [first.status_code, *(f.status_code for f in forged), second.status_code,
            third.status_code] == [200, 403, 403, 403, 403, 403, 200, 429]


def _from(address: str, args: dict[str, object]) -> dict[str, object]:
    return args | {"headers": args["headers"] | {"x-forwarded-for": address}}  # type: ignore[operator]


async def test_new_installations_per_client_address_are_limited(database_url: str) -> None:  # noqa: F811
    """Two a day per address: a third new installation from the same address gets 429; one
    already known still reports; another address may register its own."""
    config = settings(database_url, registrations_per_day=2)
    async with app_client(config) as client:
        known = new_installation(), new_credential()
        answers = [await client.post(PATH, **_post_args(*known))]  # type: ignore[arg-type]
        answers += [await client.post(PATH, **_post_args(new_installation(), new_credential()))  # type: ignore[arg-type]
                    for _ in range(2)]
        answers.append(await client.post(PATH, **_post_args(*known, seed=5)))  # type: ignore[arg-type]
    assert [a.status_code for a in answers] == [200, 200, 429, 200]
    assert answers[2].headers["retry-after"] == "43200"
    assert Status.FromString(answers[2].content).message == (
        "too many new installations from this address")
    assert _count(database_url, "installations") == 2


async def test_the_address_comes_from_x_forwarded_for_only_behind_a_trusted_proxy(database_url: str) -> None:  # noqa: F811
    """The app's peer is 203.0.113.7. Trusted, it passes each client's address; untrusted,
    its X-Forwarded-For is ignored and every request is its own."""
    for trusted, expected in (((), [200, 429, 429]), (("203.0.113.0/24",), [200, 200, 200])):
        config = settings(database_url, registrations_per_day=1, trusted_proxies=trusted)
        async with app_client(config) as client:
            answers = [await client.post(PATH, **_from(f"198.51.100.{i}", _post_args(  # type: ignore[arg-type]
                new_installation(), new_credential()))) for i in range(3)]
        assert [a.status_code for a in answers] == expected


PSEUDONYM_HEADER = CATALOG.protocol.client_pseudonym_header


def _everything_stored(url: str) -> str:
    """Every row of every table (and view) of the database, as one text."""
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    try:
        inspector = sa.inspect(engine)
        names = inspector.get_table_names() + inspector.get_view_names()
    finally:
        engine.dispose()
    return " ".join(str(row) for name in names for row in query(url, f'SELECT * FROM "{name}"'))


def _through_gateway(pseudonym: str, args: dict[str, object]) -> dict[str, object]:
    return args | {"headers": args["headers"] | {PSEUDONYM_HEADER: pseudonym}}  # type: ignore[operator]


async def test_behind_a_trusted_proxy_new_installations_are_limited_per_pseudonym(
        database_url: str) -> None:  # noqa: F811
    """The gateway (the app's peer, 203.0.113.7, trusted) passes a pseudonym of each client's
    address: each has its own allowance, one over it gets a 403 (which the gateway does not
    retry, unlike a 429), and the pseudonym is stored nowhere."""
    first, second = "a" * 32, "0123456789abcdef" * 2
    config = settings(database_url, registrations_per_day=2, trusted_proxies=("203.0.113.7",))
    async with app_client(config) as client:
        answers = [await client.post(PATH, **_through_gateway(pseudonym, _post_args(  # type: ignore[arg-type]
            new_installation(), new_credential()))) for pseudonym in (first, first, first, second)]
    assert [a.status_code for a in answers] == [200, 200, 403, 200]
    assert "retry-after" not in answers[2].headers
    assert Status.FromString(answers[2].content) == Status(
        code=7, message="too many new installations from this address: refused, not to be "
                        "retried")
    assert _count(database_url, "installations") == 3
    stored = _everything_stored(database_url)
    assert first not in stored and second not in stored


async def test_a_pseudonym_from_an_untrusted_peer_is_ignored(database_url: str) -> None:  # noqa: F811
    """Anyone may send the header: from a peer that is no trusted proxy it changes nothing,
    so the peer's own allowance holds, and a refusal is the direct client's 429."""
    config = settings(database_url, registrations_per_day=1)
    async with app_client(config) as client:
        answers = [await client.post(PATH, **_through_gateway(str(i) * 32, _post_args(  # type: ignore[arg-type]
            new_installation(), new_credential()))) for i in range(2)]
    assert [a.status_code for a in answers] == [200, 429]
    assert _count(database_url, "installations") == 1


async def test_behind_a_trusted_proxy_the_rate_limits_refuse_for_good(
        database_url: str) -> None:  # noqa: F811
    """The gateway retries a 429 from its disk queue until delivered, so a flood from one
    address, or with one credential, would fill its queue: through a trusted proxy both rate
    limits answer 403 without Retry-After, which it drops. Direct clients keep their 429s
    (the two tests above)."""
    pseudonym = "b" * 32
    config = settings(database_url, address_burst=2, address_rate=0.5,
                      trusted_proxies=("203.0.113.7",))
    async with app_client(config) as client:
        answers = [await client.post(PATH, **_through_gateway(pseudonym, _post_args(  # type: ignore[arg-type]
            new_installation(), new_credential()))) for _ in range(3)]
    assert [a.status_code for a in answers] == [200, 200, 403]
    assert "retry-after" not in answers[2].headers
    assert Status.FromString(answers[2].content) == Status(
        code=7, message="too many requests from this address: refused, not to be retried")

    installation, credential = new_installation(), new_credential()
    config = settings(database_url, installation_burst=2, installation_rate=1 / 60,
                      trusted_proxies=("203.0.113.7",))
    async with app_client(config) as client:
        answers = [await client.post(PATH, **_through_gateway(pseudonym, _post_args(  # type: ignore[arg-type]
            installation, credential, seed=i))) for i in range(3)]
    assert [a.status_code for a in answers] == [200, 200, 403]
    assert "retry-after" not in answers[2].headers
    assert Status.FromString(answers[2].content) == Status(
        code=7, message="too many reports from this installation: refused, not to be retried")


def _with_broken_attribute(message: ExportMetricsServiceRequest, metric: int) -> bytes:
    """The body with bytes that are no KeyValue among a point's attributes (the ingest reads
    a point's attributes only when it checks them)."""
    lazy = parsed(message)
    data = lazy.resource_metrics[0].scope_metrics[0].metrics[metric]
    points = data.sum.data_points if data.WhichOneof("data") == "sum" else data.gauge.data_points
    points[0].attributes.append(b"\x0a\x02\xc3\x28")  # a key that is not UTF-8
    return gzip.compress(lazy.SerializeToString())


@pytest.mark.parametrize("where", ["known metric", "unknown metric", "erasure"])
async def test_a_point_attribute_that_does_not_parse_refuses_the_whole_body(
        database_url: str, where: str) -> None:  # noqa: F811
    installation = new_installation()
    message = (erasure_request(installation, WEEK) if where == "erasure" else request(
        installation, data=UPTIME | {"printernizer.unknown": [({}, 1)]}))
    body = _with_broken_attribute(message, {"known metric": 0, "unknown metric": 1,
                                            "erasure": 0}[where])
    headers = {"content-type": "application/x-protobuf", "content-encoding": "gzip",
               HEADER: new_credential()}
    async with app_client(settings(database_url)) as client:
        response = await client.post(PATH, content=body, headers=headers)
    assert response.status_code == 400
    assert Status.FromString(response.content).message.startswith(
        "body is not an ExportMetricsServiceRequest: ")
    assert (_count(database_url), _count(database_url, "installations"),
            _count(database_url, "erasures")) == (0, 0, 0)


STATS = CATALOG.public.path
# What every answer under the public path carries besides its own type, length and tag.
PUBLIC_HEADERS = {"content-security-policy": "default-src 'self'; frame-ancestors 'none'",
                  "x-content-type-options": "nosniff", "referrer-policy": "no-referrer"}
CACHED = PUBLIC_HEADERS | {"cache-control": "public, max-age=600"}


def _published(url: str, *weeks: tuple[datetime, int]) -> None:
    """A migrated store with these weeks published (their active installations, margin
    3.5), each on the Tuesday two weeks after it."""
    store = Store(create_engine(url))
    store.migrate()
    store.dispose()
    insert_published(url, [published_week(week, week + timedelta(days=15)) for week, _ in weeks],
                     [published_cell(week, "active", installations=count, margin=3.5)
                      for week, count in weeks])


def _headers(response: httpx.Response) -> dict[str, str]:
    return {k: v for k, v in response.headers.items() if k not in ("content-length", "etag")}


async def test_the_public_statistics_are_the_files_the_site_command_writes(database_url: str) -> None:  # noqa: F811
    """The folder's page, the index, a week and the catalog, each with its type, cacheable,
    confined to its own origin, and no cookie."""
    _published(database_url, (datetime(2025, 6, 2), 7))
    async with app_client(settings(database_url)) as client:
        answers = {path: await client.get(STATS + path)
                   for path in ("", "index.json", "weeks/2025-W23.json", "catalog.toml")}
    engine = read_engine(database_url)
    files = site_files(build_site(engine, CATALOG, date(2025, 6, 18)), CATALOG)
    engine.dispose()
    assert {path: (r.status_code, r.content, _headers(r)) for path, r in answers.items()} == {
        "": (200, files["index.html"], CACHED | {"content-type": "text/html; charset=utf-8"}),
        "index.json": (200, files["index.json"], CACHED | {"content-type": "application/json"}),
        "weeks/2025-W23.json": (200, files["weeks/2025-W23.json"],
                                CACHED | {"content-type": "application/json"}),
        "catalog.toml": (200, files["catalog.toml"],
                         CACHED | {"content-type": "text/plain; charset=utf-8"}),
    }


async def test_the_public_path_answers_head_revalidation_and_nothing_but_reading(database_url: str) -> None:  # noqa: F811
    _published(database_url, (datetime(2025, 6, 2), 7))
    async with app_client(settings(database_url)) as client:
        got = await client.get(STATS + "index.json")
        head = await client.head(STATS + "index.json")
        again = await client.get(STATS + "index.json", headers={"if-none-match": got.headers["etag"]})
        missing = await client.get(STATS + "weeks/2031-W01.json")
        posted = await client.post(STATS + "index.json", content=b"{}")
        deleted = await client.delete(STATS)
        bare = await client.get(STATS.rstrip("/"))
    assert (head.status_code, head.content, head.headers["etag"], _headers(head)) == (
        200, b"", got.headers["etag"], _headers(got))
    assert (again.status_code, again.content, _headers(again)) == (304, b"", CACHED)
    assert (missing.status_code, missing.text, _headers(missing)) == (
        404, "not found\n", PUBLIC_HEADERS | {"cache-control": "no-store",
                                             "content-type": "text/plain; charset=utf-8"})
    assert (posted.status_code, deleted.status_code) == (405, 405)
    assert (bare.status_code, bare.headers["location"]) == (308, STATS)


async def test_the_public_statistics_are_kept_until_another_week_is_published(database_url: str) -> None:  # noqa: F811
    """A day later the index is the one built the day before; once another week is published,
    the site is as it was until the views are asked again (`RECHECK_S` later on the ingest's
    clock), then it has the week, dated by that week's publication (not the day of the
    request: every replica builds the same bytes)."""
    _published(database_url, (datetime(2025, 6, 2), 7))
    clock = [datetime(2025, 6, 18, 12, tzinfo=UTC).timestamp()]
    async with app_client(settings(database_url, clock=lambda: clock[0])) as client:
        first = (await client.get(STATS + "index.json")).json()
        clock[0] += 86400
        kept = (await client.get(STATS + "index.json")).json()
        insert_published(database_url, [published_week(datetime(2025, 6, 9), datetime(2025, 6, 19))],
                         [published_cell(datetime(2025, 6, 9), "active", installations=9, margin=3.5)])
        clock[0] += RECHECK_S - 1
        not_yet = (await client.get(STATS + "index.json")).json()
        clock[0] += 1
        rebuilt = (await client.get(STATS + "index.json")).json()
    assert kept == first == not_yet
    assert [(i["generated_on"], [w["week"] for w in i["weeks"]]) for i in (first, rebuilt)] == [
        ("2025-06-17", ["2025-W23"]), ("2025-06-19", ["2025-W23", "2025-W24"])]


async def test_public_statistics_it_cannot_read_are_a_503_and_the_ingest_goes_on(database_url: str) -> None:  # noqa: F811
    _published(database_url, (datetime(2025, 6, 2), 7))
    async with app_client(settings(database_url)) as client:
        engine = sa.create_engine(database_url, poolclass=sa.pool.NullPool)
        with engine.begin() as conn:
            conn.exec_driver_sql("DROP VIEW usage_published_weeks")
        engine.dispose()
        unavailable = await client.get(STATS + "index.json")
        stored = await client.post(PATH, **_post_args(new_installation(), new_credential()))  # type: ignore[arg-type]
    assert (unavailable.status_code, unavailable.text, _headers(unavailable)) == (
        503, "the statistics are unavailable for now\n", PUBLIC_HEADERS | {
            "cache-control": "no-store", "retry-after": "60",
            "content-type": "text/plain; charset=utf-8"})
    assert stored.status_code == 200


async def test_a_site_that_cannot_be_built_is_a_503_until_the_next_check(database_url: str) -> None:  # noqa: F811
    """A published week without its active installations cannot be made a site (SiteError):
    503 with the public headers, not a bare 500, and not rebuilt for every request; once the
    views are whole, the next check serves the site."""
    _published(database_url, (datetime(2025, 6, 2), 7))
    insert_published(database_url, [published_week(datetime(2025, 6, 9), datetime(2025, 6, 24))], [])
    clock = [datetime(2025, 6, 25, 12, tzinfo=UTC).timestamp()]
    async with app_client(settings(database_url, clock=lambda: clock[0])) as client:
        broken = await client.get(STATS + "index.json")
        insert_published(database_url, [], [
            published_cell(datetime(2025, 6, 9), "active", installations=9, margin=3.5)])
        clock[0] += RECHECK_S - 1
        still = await client.get(STATS + "index.json")
        clock[0] += 1
        mended = await client.get(STATS + "index.json")
    unavailable = (503, "the statistics are unavailable for now\n", PUBLIC_HEADERS | {
        "cache-control": "no-store", "retry-after": "60",
        "content-type": "text/plain; charset=utf-8"})
    assert [(r.status_code, r.text, _headers(r)) for r in (broken, still)] == [unavailable] * 2
    assert (mended.status_code, [w["week"] for w in mended.json()["weeks"]]) == (
        200, ["2025-W23", "2025-W24"])
