"""Fixtures and helpers shared by the ingest's tests: databases, an app client, a server."""

from __future__ import annotations

import contextlib
import resource
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import replace
from datetime import datetime
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
import uvicorn
from ingest_reports import NOW

from ingest import Settings, _schema, _server, create_app
from ingest.testing import free_port


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Any) -> Iterator[str]:
    """An empty database: a SQLite file, or a fresh schema on the real PostgreSQL server."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path}/ingest.db"
        return
    base = request.getfixturevalue("postgres_url")
    schema = f"t_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(base, poolclass=sa.pool.NullPool)
    with admin.begin() as conn:
        conn.exec_driver_sql(f"CREATE SCHEMA {schema}")
    sep = "&" if "?" in base else "?"
    try:
        yield f"{base}{sep}options=-csearch_path%3D{schema}"
    finally:
        with admin.begin() as conn:
            conn.exec_driver_sql(f"DROP SCHEMA {schema} CASCADE")
        admin.dispose()


# Tests that stand for many clients from one process exempt loopback from the per-address limits.
LOOPBACK = frozenset({"127.0.0.1"})


def settings(database_url: str, **overrides: Any) -> Settings:
    base = Settings(database_url=database_url, clock=lambda: NOW)
    return replace(base, **overrides)


@contextlib.asynccontextmanager
async def app_client(config: Settings) -> AsyncIterator[httpx.AsyncClient]:
    """An httpx client on the app in process, with its lifespan run around it."""
    app = create_app(config)
    transport = httpx.ASGITransport(app=app, client=("203.0.113.7", 40000))
    async with (app.router.lifespan_context(app),
                httpx.AsyncClient(transport=transport, base_url="http://ingest") as client):
        yield client


def query(database_url: str, sql: str) -> list[tuple[Any, ...]]:
    engine = sa.create_engine(database_url, poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as conn:
            return [tuple(row) for row in conn.exec_driver_sql(sql)]
    finally:
        engine.dispose()


@contextlib.contextmanager
def running_server(config: Settings, limits: _server.Limits | None = None) -> Iterator[str]:
    """The app served by uvicorn on loopback in a thread, as `serve` serves it; yields its
    base URL."""
    port = free_port()
    server = uvicorn.Server(_server.config(create_app(config), "127.0.0.1", port, limits))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    for _ in range(500):
        if server.started:
            break
        threading.Event().wait(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(30)


@contextlib.contextmanager
def server_process(database_url: str, *flags: str, log: Any = subprocess.PIPE,
                   open_files: tuple[int, int] | None = None,
                   ) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """`otel-usage-ingest serve` as a subprocess on loopback, ready; stopped with SIGTERM.
    Its log goes to `log` (a pipe the test reads, or a file); `open_files` (soft, hard) is
    its limit of open files."""
    port = free_port()
    command = [sys.executable, "-m", "ingest.cli", "serve", "--database", database_url,
               "--port", str(port), *flags]

    def limit_files() -> None:
        if open_files is not None:
            resource.setrlimit(resource.RLIMIT_NOFILE, open_files)

    process = subprocess.Popen(command, stderr=log, preexec_fn=limit_files)
    base = f"http://127.0.0.1:{port}"
    try:
        _wait_ready(base, process)
        yield base, process
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
        process.wait(30)
        if process.stderr is not None:
            process.stderr.close()


def _wait_ready(base: str, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and process.poll() is None:
        try:
            if httpx.get(f"{base}/readyz", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.05)
    raise AssertionError("the ingest did not become ready")


def published_week(week: datetime, on: datetime, epsilon: float = 2.0) -> dict[str, Any]:
    """A row of `published_weeks`, its loss made up."""
    return {"week_start": week, "published_on": on, "rho": 0.1, "epsilon": epsilon,
            "delta": 1e-7, "yearly_epsilon": 19.1}


def published_cell(week: datetime, kind: str, metric: str = "", attribute: str = "",
                   value: str = "", installations: int | None = None,
                   margin: float | None = None, total: int | None = None,
                   total_margin: float | None = None) -> dict[str, Any]:
    """A row of `published_cells` with numbers of the test's choosing (each scale its margin)."""
    return {"week_start": week, "kind": kind, "metric": metric, "attribute": attribute,
            "value": value, "installations": installations, "installations_scale": margin,
            "installations_margin": margin, "total": total, "total_scale": total_margin,
            "total_margin": total_margin}


def insert_published(url: str, weeks: list[dict[str, Any]], cells: list[dict[str, Any]]) -> None:
    """Published weeks and their cells written into a migrated store as they are, as if the
    publication step had drawn them: the views then show exactly these numbers."""
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    with engine.begin() as conn:
        if weeks:
            conn.execute(sa.insert(_schema.published_weeks), weeks)
        if cells:
            conn.execute(sa.insert(_schema.published_cells), cells)
    engine.dispose()
