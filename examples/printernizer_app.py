"""A stand-in for Printernizer as it is today, switched over to otel-usage.

    DATABASE_PATH=/tmp/printernizer/printernizer.db uvicorn examples.printernizer_app:app
    # the front end at http://127.0.0.1:8000/, the privacy page at /usage/

It has Printernizer's shape, so that what works here works there:

- ``create_application()`` builds the app, includes the routers and mounts the front end's
  static files at ``/`` (a mount that catches every path): our routers are included *before*
  that mount, at app creation; the statistics start in the lifespan;
- its security-headers middleware sets its own Content-Security-Policy and
  ``X-Frame-Options: DENY`` on every answer (the privacy page works under it);
- its SQLite database at ``DATABASE_PATH`` (no ``data_dir`` setting), made by its migrations,
  with the old ``usage_events`` / ``usage_settings`` tables of its usage-statistics feature;
- ``app.state.usage_statistics_service`` is the drop-in service its code and its front end's
  ``/api/v1/usage-stats`` calls use (the six of its privacy tab: status, local, opt-in,
  opt-out, export, delete; and the offer of what a newer catalog adds); its modules count with
  ``metrics.get_meter(...)`` at import;
- errors are counted once, in the central exception handler, by category and code;
- printers are observed through its async printer service, features from its settings.
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse
from fastapi.staticfiles import StaticFiles
from opentelemetry import metrics
from starlette.middleware.base import BaseHTTPMiddleware

from otel_usage import UsageTelemetry
from otel_usage.printernizer import (
    UsageStatisticsService,
    error_attributes,
    features_from_settings,
    normalise_version,
)
from otel_usage.printernizer.api import usage_stats_router
from otel_usage.web import privacy_router

APP_VERSION = "2.42.0-3-gbe0da09"  # as a git checkout names itself: reported as 2.42.0-dev
FRONTEND = Path(__file__).with_name("printernizer_frontend")

# Its modules make their instruments at import, on the global provider.
meter = metrics.get_meter("printernizer")
jobs_counter = meter.create_counter("printernizer.jobs", unit="{job}")
errors_counter = meter.create_counter("printernizer.errors", unit="{error}")

# Its numbered SQL migrations, the usage-statistics feature's tables included.
MIGRATIONS = """
CREATE TABLE IF NOT EXISTS printers (id TEXT PRIMARY KEY, name TEXT NOT NULL, type TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS jobs (id TEXT PRIMARY KEY, printer_id TEXT NOT NULL,
    file_name TEXT, status TEXT NOT NULL DEFAULT 'pending');
CREATE TABLE IF NOT EXISTS usage_events (id TEXT PRIMARY KEY, event_type TEXT NOT NULL,
    timestamp DATETIME NOT NULL, metadata TEXT, submitted BOOLEAN DEFAULT 0,
    created_at DATETIME DEFAULT CURRENT_TIMESTAMP);
CREATE TABLE IF NOT EXISTS usage_settings (key TEXT PRIMARY KEY, value TEXT NOT NULL,
    updated_at DATETIME DEFAULT CURRENT_TIMESTAMP);
"""


@dataclass
class Settings:
    """Its pydantic settings, reduced to what the switch-over touches."""

    database_path: str = "data/printernizer.db"
    library_enabled: bool = True
    timelapse_enabled: bool = False
    job_creation_auto_create: bool = True
    enable_german_compliance: bool = False
    watch_folders_enabled: bool = False

    @classmethod
    def from_env(cls) -> Settings:
        return cls(database_path=os.environ.get("DATABASE_PATH", cls.database_path))


class PrinternizerError(Exception):
    """Its errors: a status and a code made from the class name."""

    status_code = 500


class PrinterNotFoundError(PrinternizerError):
    status_code = 404


class PrinterBusyError(PrinternizerError):
    status_code = 409


class Database:
    """Its database (aiosqlite there; sqlite3 in a thread here)."""

    def __init__(self, path: str) -> None:
        self.path = path

    async def execute(self, sql: str, *params: Any) -> list[tuple[Any, ...]]:
        return await asyncio.to_thread(self._execute, sql, params)

    def _execute(self, sql: str, params: tuple[Any, ...]) -> list[tuple[Any, ...]]:
        with sqlite3.connect(self.path) as conn:
            return conn.execute(sql, params).fetchall()

    def initialize(self) -> None:
        Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        with sqlite3.connect(self.path) as conn:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.executescript(MIGRATIONS)


class PrinterService:
    """Its printer service answers with an async call."""

    def __init__(self, database: Database) -> None:
        self.database = database

    async def list_printers(self) -> list[dict[str, str]]:
        rows = await self.database.execute("SELECT id, name, type FROM printers ORDER BY id")
        return [{"id": i, "name": n, "type": t} for i, n, t in rows]

    async def printer_type(self, printer_id: str) -> str:
        rows = await self.database.execute("SELECT type FROM printers WHERE id = ?", printer_id)
        if not rows:
            raise PrinterNotFoundError(printer_id)
        return str(rows[0][0])


class SecurityHeadersMiddleware(BaseHTTPMiddleware):
    """Its security headers, set on every answer (the privacy page's own CSP included)."""

    async def dispatch(self, request: Request,
                       call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        response = await call_next(request)
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["X-Frame-Options"] = "DENY"
        response.headers["Content-Security-Policy"] = (
            "default-src 'self'; script-src 'self' 'unsafe-inline' 'unsafe-eval'; "
            "style-src 'self' 'unsafe-inline'; img-src 'self' data: blob:; "
            "connect-src 'self' ws: wss:; font-src 'self'")
        return response


def create_application(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings.from_env()
    database = Database(settings.database_path)
    printers = PrinterService(database)
    # The statistics live beside its database; made here, started in the lifespan.
    usage = UsageTelemetry(Path(settings.database_path).parent,
                           service_version=normalise_version(APP_VERSION), set_global=True)
    stats = UsageStatisticsService(usage, database_path=settings.database_path,
                                   features=lambda: features_from_settings(settings))

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await asyncio.to_thread(database.initialize)
        await stats.initialize()  # migrates the old usage tables once, then starts recording
        stats.set_printer_service(printers)
        yield
        await stats.record_event("app_shutdown")
        await usage.ashutdown()

    app = FastAPI(title="Printernizer (example)", version=APP_VERSION, lifespan=lifespan)
    app.state.usage_statistics_service = stats
    app.add_middleware(SecurityHeadersMiddleware)

    @app.exception_handler(PrinternizerError)
    async def count_errors(request: Request, exc: PrinternizerError) -> JSONResponse:
        errors_counter.add(1, error_attributes(exc))
        code = error_attributes(exc)["error.type"].upper()
        return JSONResponse({"status": "error", "error_code": code},
                            status_code=exc.status_code)

    @app.post("/api/v1/printers")
    async def add_printer(body: dict[str, str]) -> dict[str, str]:
        printer_id = str(uuid.uuid4())
        await database.execute("INSERT INTO printers (id, name, type) VALUES (?, ?, ?)",
                               printer_id, body["name"], body["type"])
        await stats.record_event("printer_connected", {"printer_type": body["type"]})
        return {"id": printer_id}

    @app.post("/api/v1/jobs")
    async def create_job(body: dict[str, str]) -> dict[str, str]:
        kind = await printers.printer_type(body["printer_id"])
        job_id = str(uuid.uuid4())
        await database.execute("INSERT INTO jobs (id, printer_id, file_name) VALUES (?, ?, ?)",
                               job_id, body["printer_id"], body.get("file_name"))
        # Its old call, and a module's own counter: both count into the same series.
        await stats.record_event("job_created", {"printer_type": kind,
                                                 "file_name": body.get("file_name")})
        return {"id": job_id, "status": "pending"}

    @app.put("/api/v1/jobs/{job_id}/status")
    async def finish_job(job_id: str, body: dict[str, str]) -> dict[str, str]:
        rows = await database.execute("SELECT p.type FROM jobs j JOIN printers p "
                                      "ON p.id = j.printer_id WHERE j.id = ?", job_id)
        if body["status"] == "printing":
            raise PrinterBusyError(job_id)
        await database.execute("UPDATE jobs SET status = ? WHERE id = ?", body["status"],
                               job_id)
        jobs_counter.add(1, {"job.status": body["status"], "printer.type": rows[0][0]})
        return {"id": job_id, "status": body["status"]}

    # Ours, before the catch-all mount of the front end.
    app.include_router(usage_stats_router(stats))
    app.include_router(privacy_router(usage, prefix="/usage"))
    app.mount("/", StaticFiles(directory=FRONTEND, html=True), name="frontend")
    return app


app = create_application()
