# ruff: noqa: E501  (its router line, as Printernizer has it, is longer than ours)
"""Printernizer's ``src/main.py`` before the switch-over, in its shape (a stand-in).

``create_application()`` binds ``settings`` to the web server's ``Settings`` (not
``get_settings()``'s ``PrinternizerSettings``, which ``lifespan()`` imports), includes the
routers, then mounts the front end at ``/`` (a mount that catches every path), then adds the
exception handlers (``printernizer_exception_handler`` under its alias). ``lifespan()`` builds
the services, keeps them on ``app.state`` and stops them through ``shutdown_with_timeout``.

    DATABASE_PATH=/tmp/printernizer/printernizer.db uvicorn src.main:app   # in this folder
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import FastAPI, HTTPException, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse
from fastapi.staticfiles import StaticFiles
from starlette.middleware.base import BaseHTTPMiddleware

from src.api.routers.jobs import router as jobs_router
from src.api.routers.printers import router as printers_router
from src.api.routers.usage_statistics import router as usage_statistics_router
from src.database.database import Database
from src.database.repositories import JobRepository
from src.services.printer_service import PrinterService
from src.services.usage_statistics_scheduler import UsageStatisticsScheduler
from src.services.usage_statistics_service import UsageStatisticsService
from src.utils.errors import (
    PrinternizerError,
    generic_exception_handler,
    http_exception_handler,
)
from src.utils.errors import (
    printernizer_exception_handler as new_printernizer_exception_handler,
)

APP_VERSION = "2.42.0-3-gbe0da09"  # as a git checkout names itself


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    """Start its services, keep them on ``app.state``, stop them at shutdown."""
    from src.utils.config import get_settings

    settings = get_settings()
    database = Database(settings.database_path)
    await database.initialize()
    app.state.database = database

    usage_statistics_service = UsageStatisticsService(database)
    await usage_statistics_service.initialize()
    await usage_statistics_service.record_event("app_start", {"app_version": APP_VERSION})

    printer_service = PrinterService(database, usage_stats_service=usage_statistics_service)
    usage_statistics_service.set_printer_service(printer_service)

    usage_statistics_scheduler = UsageStatisticsScheduler(usage_statistics_service)
    await usage_statistics_scheduler.start()

    app.state.printer_service = printer_service
    app.state.job_repository = JobRepository(database)
    app.state.usage_statistics_service = usage_statistics_service
    app.state.usage_statistics_scheduler = usage_statistics_scheduler

    yield

    async def shutdown_with_timeout(coro: Coroutine[Any, Any, Any], service_name: str,
                                    timeout: float = 5.0) -> None:
        """Stop one service, waiting at most `timeout` seconds."""
        try:
            await asyncio.wait_for(coro, timeout=timeout)
        except Exception as exc:  # one service's failure stops none of the others
            logging.getLogger(__name__).warning("Error stopping %s: %r", service_name, exc)

    shutdown_tasks = []
    if hasattr(app.state, "usage_statistics_scheduler") and app.state.usage_statistics_scheduler:
        shutdown_tasks.append(shutdown_with_timeout(
            app.state.usage_statistics_scheduler.stop(), "Usage statistics scheduler"))
    await asyncio.gather(*shutdown_tasks)


class SecurityHeadersMiddleware(BaseHTTPMiddleware):
    """Its security headers, set on every answer (a privacy page's own CSP included)."""

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


def create_application() -> FastAPI:
    """Build the app: its middleware, its routers, the front end at ``/``, its handlers."""
    from src.services.config_service import Settings
    settings = Settings()

    app = FastAPI(
        title="Printernizer (stand-in)",
        version=APP_VERSION,
        lifespan=lifespan,
    )

    cors_origins = settings.get_cors_origins()
    app.add_middleware(CORSMiddleware, allow_origins=cors_origins, allow_credentials=True,
                       allow_methods=["*"], allow_headers=["*"])
    if settings.environment == "development":
        app.debug = True
    app.add_middleware(SecurityHeadersMiddleware)

    app.include_router(printers_router, prefix="/api/v1/printers", tags=["Printers"])
    app.include_router(jobs_router, prefix="/api/v1/jobs", tags=["Jobs"])
    app.include_router(usage_statistics_router, prefix="/api/v1/usage-stats", tags=["Usage Statistics"])

    frontend_path = Path(__file__).parent.parent / "frontend"
    app.mount("/", StaticFiles(directory=str(frontend_path), html=True), name="frontend")

    app.add_exception_handler(PrinternizerError, new_printernizer_exception_handler)
    app.add_exception_handler(HTTPException, http_exception_handler)

    @app.exception_handler(RequestValidationError)
    async def validation_exception_handler(request: Request,
                                           exc: RequestValidationError) -> JSONResponse:
        """Answer a request that failed validation with 422 and what was wrong."""
        return JSONResponse({"status": "error", "error_code": "VALIDATION_ERROR"},
                            status_code=422)

    app.add_exception_handler(Exception, generic_exception_handler)
    return app


app = create_application()
