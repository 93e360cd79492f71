"""A minimal stand-in for Printernizer, instrumented the way Printernizer would be.

    uvicorn examples.printernizer_app:app      # then open http://127.0.0.1:8000/usage/

- start-up and shutdown: one `UsageTelemetry` in the FastAPI lifespan, set as the global
  MeterProvider, so every module counts with `opentelemetry.metrics.get_meter(...)`;
- jobs, downloads and feature use counted where they happen, with the catalog's attribute keys;
- errors counted once, in the central exception handler, by category and error type;
- printers and feature switches observed from the app's own state;
- the privacy page mounted under /usage (behind Home Assistant's ingress prefix too).
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from opentelemetry import metrics

from otel_usage import UsageTelemetry
from otel_usage.web import privacy_router

VERSION = "2.7.0"
meter = metrics.get_meter("printernizer")  # resolves to the app's provider once it is set
jobs = meter.create_counter("printernizer.jobs", unit="{job}")
downloads = meter.create_counter("printernizer.file.downloads", unit="{file}")
feature_uses = meter.create_counter("printernizer.feature.uses", unit="{use}")
errors = meter.create_counter("printernizer.errors", unit="{error}")


class PrinternizerError(Exception):
    """Printernizer's error hierarchy carries a category and an error code."""

    category = "unknown"
    code = "unknown"
    status = 500


class PrinterConnectionError(PrinternizerError):
    category, code, status = "printer", "connection_timeout", 503


class FileDownloadError(PrinternizerError):
    category, code, status = "file_operation", "download_failed", 502


@dataclass
class Printers:
    """What the printer service knows: configured printers by id and type."""

    by_id: dict[str, str] = field(default_factory=lambda: {
        "p1s-workshop": "bambu_lab", "x1c-office": "bambu_lab", "mk4-garage": "prusa_core"})
    online: set[str] = field(default_factory=lambda: {"p1s-workshop", "mk4-garage"})

    def counts(self) -> dict[str, int]:
        result: dict[str, int] = {}
        for kind in self.by_id.values():
            result[kind] = result.get(kind, 0) + 1
        return result


FEATURES = {"library": True, "library_search": True, "timelapse": False,
            "auto_job_creation": True, "german_business": False, "watch_folders": False}


def create_app(data_dir: str | None = None) -> FastAPI:
    printers = Printers()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        usage = UsageTelemetry(data_dir or os.environ.get("PRINTERNIZER_DATA_DIR"),
                               service_version=VERSION, set_global=True)
        await usage.astart()
        usage.observe_printers(printers.counts)
        usage.observe_features(lambda: FEATURES)
        app.state.usage = usage
        app.include_router(privacy_router(usage, prefix="/usage"))
        yield
        await usage.ashutdown()

    app = FastAPI(title="Printernizer (example)", lifespan=lifespan)

    @app.exception_handler(PrinternizerError)
    async def count_errors(request: Request, exc: PrinternizerError) -> JSONResponse:
        errors.add(1, {"error.category": exc.category, "error.type": exc.code})
        return JSONResponse({"error": exc.code}, status_code=exc.status)

    @app.post("/api/v1/printers/{printer_id}/jobs")
    async def start_job(printer_id: str, file_name: str) -> dict[str, str]:
        if printer_id not in printers.online:
            raise PrinterConnectionError
        kind = printers.by_id[printer_id]
        # file_name is the user's: it is never an attribute (the catalog would drop it anyway).
        jobs.add(1, {"job.status": "created", "printer.type": kind})
        return {"printer": printer_id, "file": file_name, "status": "created"}

    @app.post("/api/v1/printers/{printer_id}/jobs/complete")
    async def complete_job(printer_id: str, failed: bool = False) -> dict[str, str]:
        status = "failed" if failed else "completed"
        jobs.add(1, {"job.status": status, "printer.type": printers.by_id[printer_id]})
        return {"printer": printer_id, "status": status}

    @app.post("/api/v1/printers/{printer_id}/files/download")
    async def download(printer_id: str) -> dict[str, str]:
        if printer_id not in printers.online:
            raise FileDownloadError
        downloads.add(1, {"printer.type": printers.by_id[printer_id]})
        return {"printer": printer_id, "status": "downloaded"}

    @app.get("/api/v1/library/search")
    async def search(q: str) -> dict[str, list[str]]:
        feature_uses.add(1, {"feature.name": "library_search"})
        return {"results": []}

    return app


app = create_app()
