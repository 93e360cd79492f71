"""A running server (uvicorn on loopback) under many concurrent clients, and saturated."""

from __future__ import annotations

import asyncio
import gzip
import socket
import time
from datetime import date, datetime
from pathlib import Path

import httpx
import ingest_wire as wire
import pytest
import sqlalchemy as sa
from ingest_reports import CATALOG, encode, last_week, new_credential, new_installation, request
from ingest_support import (  # noqa: F401  (fixture)
    LOOPBACK,
    database_url,
    query,
    running_server,
    server_process,
    settings,
)

from ingest import _server, create_app
from ingest.testing import free_port

HEADER = CATALOG.protocol.credential_header
PATH = CATALOG.protocol.metrics_path


def _args(installation: str, credential: str, week: date = date(2025, 6, 9), seed: int = 0) -> dict[str, object]:
    body, headers = encode(request(installation, week, seed=seed), "protobuf", True)
    return {"content": body, "headers": headers | {HEADER: credential}}


async def _post_all(base: str, bodies: list[dict[str, object]]) -> list[int]:
    limits = httpx.Limits(max_connections=len(bodies), max_keepalive_connections=len(bodies))
    async with httpx.AsyncClient(base_url=base, limits=limits, timeout=30) as client:
        answers = await asyncio.gather(*(client.post(PATH, **b) for b in bodies))  # type: ignore[arg-type]
    return [a.status_code for a in answers]


def test_256_concurrent_clients_all_get_stored(database_url: str) -> None:  # noqa: F811
    bodies = [_args(new_installation(), new_credential(), seed=i) for i in range(256)]
    with running_server(settings(database_url, unlimited_addresses=LOOPBACK)) as base:
        statuses = asyncio.run(_post_all(base, bodies))
    assert statuses == [200] * 256
    assert query(database_url, "SELECT COUNT(*) FROM weekly_reports") == [(256,)]
    assert query(database_url, "SELECT COUNT(*) FROM installations") == [(256,)]


def test_concurrent_reports_of_one_installation_neither_duplicate_nor_fail(database_url: str) -> None:  # noqa: F811
    installation, credential = new_installation(), new_credential()
    weeks = [date(2025, 6, 2), date(2025, 6, 9), date(2025, 6, 16)]  # every week still open
    bodies = [_args(installation, credential, w, seed=i) for i in range(4) for w in weeks]
    with running_server(settings(database_url, unlimited_addresses=LOOPBACK)) as base:
        statuses = asyncio.run(_post_all(base, bodies))
    assert statuses == [200] * 12
    assert query(database_url, "SELECT COUNT(*) FROM weekly_reports") == [(3,)]
    assert query(database_url, "SELECT COUNT(*) FROM installations") == [(1,)]


def _lock(url: str) -> tuple[sa.engine.Engine, sa.engine.Connection]:
    """Hold the database's write lock from outside, as a stuck batch job would."""
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool, isolation_level="AUTOCOMMIT")
    conn = engine.connect()
    if engine.dialect.name == "sqlite":
        conn.exec_driver_sql("BEGIN EXCLUSIVE")
    else:
        conn.exec_driver_sql("BEGIN")
        conn.exec_driver_sql("LOCK TABLE installations IN ACCESS EXCLUSIVE MODE")
    return engine, conn


@pytest.mark.end_to_end
def test_a_saturated_database_gets_503s_fast_and_the_server_keeps_answering(now: datetime, database_url: str) -> None:  # noqa: F811
    """With the database stuck, 256 clients at once each get 503 + Retry-After while it is
    still stuck (every answer arrives before the lock is released: none waits for the
    database), the health check answers meanwhile, and writes resume once the database does.
    How fast is a figure (printed here, measured by benchmarks/ingest.py), not an assertion."""
    week = last_week()  # the server in its own process takes the clock hook's now
    requests = [wire.export_request(gzip.compress(request(new_installation(), week, seed=i)
                                                  .SerializeToString()), new_credential())
                for i in range(256)]
    flags = ("--max-pending", "32", "--write-timeout", "0.5", "--unlimited-address", "127.0.0.1")
    with server_process(database_url, *flags) as (base, _process):
        engine, conn = _lock(database_url)
        try:
            answers, probe_s = asyncio.run(_saturate(base, requests))
        finally:
            conn.exec_driver_sql("ROLLBACK")
            conn.close()
            engine.dispose()
        after = _post_until_stored(base, week)
    assert {(a.status, a.headers["retry-after"]) for a in answers} == {(503, "5")}
    assert len(answers) == 256
    print(f"\nslowest 503 {max(a.seconds for a in answers):.2f} s; /healthz {probe_s:.2f} s")
    assert after == 200


async def _saturate(base: str, requests: list[bytes]) -> tuple[list[wire.Answer], float]:
    port = int(base.rsplit(":", 1)[1])
    posts = asyncio.ensure_future(wire.send_all(port, requests, len(requests)))
    await asyncio.sleep(0.3)
    # The probe runs in its own thread: this process's own event loop is busy with the posts.
    health, probe_s = await asyncio.to_thread(_timed_health, base)
    assert health.status_code == 200
    return await posts, probe_s


def _timed_health(base: str) -> tuple[httpx.Response, float]:
    started = time.monotonic()
    answer = httpx.get(f"{base}/healthz", timeout=10)
    return answer, time.monotonic() - started


def _post_until_stored(base: str, week: date) -> int:
    """A client retrying after its 503 gets through once the database is back."""
    args = _args(new_installation(), new_credential(), week)
    for _ in range(20):
        status = httpx.post(f"{base}{PATH}", timeout=10, **args).status_code  # type: ignore[arg-type]
        if status != 503:
            return status
        time.sleep(0.25)
    return status


def test_the_export_path_answers_other_methods_405(tmp_path: Path) -> None:
    with running_server(settings(f"sqlite:///{tmp_path}/ingest.db")) as base:
        port = int(base.rsplit(":", 1)[1])
        answer = asyncio.run(wire.one(port, f"GET {PATH} HTTP/1.1\r\nHost: i\r\n\r\n".encode()))
    assert (answer.status, answer.headers["allow"]) == (405, "POST")


def test_a_client_gone_before_its_body_ends_is_not_answered_and_stores_nothing(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    sqlite_url = f"sqlite:///{tmp_path}/ingest.db"
    raw = wire.export_request(gzip.compress(request(new_installation()).SerializeToString()),
                              new_credential())

    async def send_half_and_go(port: int) -> bytes:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(raw[:-20])
        await writer.drain()
        await asyncio.sleep(0.2)
        writer.close()
        return await asyncio.wait_for(reader.read(), 10)

    with caplog.at_level("ERROR"), running_server(settings(sqlite_url)) as base:
        port = int(base.rsplit(":", 1)[1])
        answered = asyncio.run(send_half_and_go(port))
        after = asyncio.run(wire.one(port, wire.export_request(
            gzip.compress(request(new_installation()).SerializeToString()), new_credential())))
    assert (answered, after.status) == (b"", 200)
    assert query(sqlite_url, "SELECT COUNT(*) FROM weekly_reports") == [(1,)]
    assert [r.getMessage() for r in caplog.records] == []


def test_the_server_runs_on_asyncios_loop_which_accepts_every_waiting_connection() -> None:
    """libuv (uvloop, which uvicorn picks when it is installed) accepts one connection per
    turn of its loop: with 300 connections pipelining refused bodies, a /healthz waited
    12 s behind the connections queued before it (benchmarks/ingest_attacks.py). asyncio's
    selector loop accepts every waiting connection each turn."""
    factory = _server.config(create_app(settings("sqlite://")), "127.0.0.1", 0).get_loop_factory()
    assert factory is not None
    loop = factory()
    try:
        assert type(loop).__module__ == "asyncio.unix_events"
    finally:
        loop.close()


def test_the_testing_apis_free_port_is_below_the_ephemeral_range_and_free() -> None:
    """Outgoing connections take their local ports from the ephemeral range: a server's port
    chosen there could be taken before the server binds it. Nor does it give a process the
    same port twice: a server chosen a port but started later would share it. (Three hundred
    random ports of the 8,000 below the range repeat one with a chance of 99.6 %.)"""
    low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    chosen = [free_port() for _ in range(300)]
    ports = set(chosen)
    assert len(ports) == len(chosen)
    assert all(1024 <= port < low for port in ports)
    for port in ports:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", port))
