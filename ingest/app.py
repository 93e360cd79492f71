"""The ingest's HTTP face: OTLP/HTTP metrics in, erasure, health (FastAPI).

`create_app(settings)` builds the app; the lifespan opens the store, applies migrations and
starts the writer, and on shutdown (after uvicorn has finished the requests in flight) drains
the writer and closes the store.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from typing import Any

import structlog
from fastapi import FastAPI, Header, Request, Response
from fastapi.responses import JSONResponse

from . import _decode, _rollup
from ._asgi import Answer, ExportShortcut, read_body
from ._errors import (
    BodyTooLarge,
    CredentialRejected,
    IngestError,
    MalformedBody,
    ServiceError,
    StoreUnavailable,
    Throttled,
)
from ._ratelimit import RateLimiter
from ._remote import RemoteWriter
from ._settings import Settings
from ._store import ReportJob, Store, create_engine
from ._validate import INSTALLATION_KEY, Accepted, Limits, validate
from ._writer import EraseJob, Writer

__all__ = ["create_app"]

log = structlog.get_logger("ingest.app")
_CREDENTIAL_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_=")
_READY_TIMEOUT_S = 2.0


class Service:
    """The state behind the routes: settings, store, writer and rate limiters."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.catalog = settings.catalog
        self.protocol = settings.catalog.protocol
        self.header = self.protocol.credential_header.lower()
        self.store: Store | None = None
        self.writer: Writer | RemoteWriter | None = None
        self.addresses = RateLimiter(settings.address_rate, settings.address_burst,
                                     settings.limiter_entries, settings.clock)
        self.installations = RateLimiter(settings.installation_rate, settings.installation_burst,
                                         settings.limiter_entries, settings.clock)

    def open(self) -> None:
        if self.settings.writer_socket is not None:
            self.writer = RemoteWriter(self.settings, self.settings.writer_socket)
            log.info("ingest.started", writer="process")
            return
        store = Store(create_engine(self.settings.database_url), self.catalog)
        store.migrate(self.settings.k)
        self.store, self.writer = store, Writer(store, self.settings)
        self.writer.start()
        log.info("ingest.started", schema_k=self.settings.k)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.stop()
        if self.store is not None:
            self.store.dispose()
        log.info("ingest.stopped")

    # POST /v1/metrics -------------------------------------------------------------------

    async def export(self, headers: Mapping[str, str], peer: str,
                     body: Callable[[int], Awaitable[bytes]]) -> Answer:
        """Handle one export: the status, headers and body of the answer."""
        fmt: _decode.Format = "protobuf"
        try:
            fmt = _decode.body_format(headers.get("content-type"))
            self._check_address(peer)
            credential = self._credential_hash(headers.get(self.header, ""))
            limit = self.settings.body_limit
            declared = headers.get("content-length", "")
            if declared.isdigit() and int(declared) > limit:
                raise BodyTooLarge(f"body is over {limit} bytes")
            data = _decode.decompress(await body(limit), headers.get("content-encoding"), limit)
            accepted = validate(_decode.parse(data, fmt), self._limits())
            await self._store_reports(accepted, credential)
        except IngestError as exc:
            return self._error(exc, fmt)
        self._count("accepted", "partial" if accepted.rejected_points else "")
        answer = _decode.success(accepted.rejected_points, accepted.error_message)
        return 200, [("content-type", _decode.CONTENT_TYPES[fmt])], _decode.encode(answer, fmt)

    async def _store_reports(self, accepted: Accepted, credential: str) -> None:
        if not self.installations.allow(accepted.installation_id):
            raise Throttled("too many reports from this installation",
                            retry_after=self.installations.retry_after())
        writer = self._writer()
        if isinstance(writer, RemoteWriter):  # the writer process computes the rollups
            stored = await writer.submit_reports(accepted.installation_id, credential,
                                                 accepted.reports)
        else:
            deltas = tuple((r, _rollup.contributions(r, self.catalog)) for r in accepted.reports)
            stored = await writer.submit(ReportJob(accepted.installation_id, credential, deltas))
        if not stored:
            raise CredentialRejected("credential does not match this installation")

    def _check_address(self, address: str) -> None:
        if address in self.settings.unlimited_addresses or self.addresses.allow(address):
            return
        raise Throttled("too many requests from this address",
                        retry_after=self.addresses.retry_after())

    def _credential_hash(self, value: str) -> str:
        if not 16 <= len(value) <= 128 or not _CREDENTIAL_CHARS.issuperset(value):
            header = self.protocol.credential_header
            raise CredentialRejected(f"header {header} is missing or malformed")
        return hashlib.sha256(value.encode()).hexdigest()

    def _limits(self) -> Limits:
        return Limits(self.catalog, self.settings.clock(), self.settings.retention,
                      self.settings.clock_skew_s)

    def _error(self, exc: IngestError, fmt: _decode.Format) -> Answer:
        throttled = isinstance(exc, ServiceError)
        self._count("throttled" if throttled else "rejected", exc.reason)
        log.info("export.refused", status=exc.status, reason=exc.reason)
        headers = [("content-type", _decode.CONTENT_TYPES[fmt])]
        if isinstance(exc, ServiceError):
            headers.append(("retry-after", str(exc.retry_after)))
        return exc.status, headers, _decode.encode(_decode.status(exc.grpc_code, str(exc)), fmt)

    def _count(self, outcome: str, reason: str) -> None:
        if self.writer is not None:
            self.writer.count(outcome, reason)

    def _writer(self) -> Writer | RemoteWriter:
        if self.writer is None:
            raise StoreUnavailable("the service is not started")
        return self.writer

    # DELETE /v1/installations/{id}, health ------------------------------------------------

    async def erase(self, request: Request, installation_id: str,
                    credential: str | None) -> Response:
        try:
            self._check_address(request.client.host if request.client else "")
            credential_hash = self._credential_hash(credential or "")
            if not self.catalog.resource[INSTALLATION_KEY].allows(installation_id):
                raise MalformedBody("not an installation id")
            weeks = await self._writer().submit(EraseJob(installation_id, credential_hash))
        except IngestError as exc:
            return self._error_json(exc)
        log.info("erasure.done", weeks=weeks)
        return Response(status_code=204)

    def _error_json(self, exc: IngestError) -> Response:
        headers = {"Retry-After": str(exc.retry_after)} if isinstance(exc, ServiceError) else None
        return JSONResponse({"code": exc.grpc_code, "message": str(exc)},
                            status_code=exc.status, headers=headers)

    async def ready(self) -> Response:
        try:
            if isinstance(self.writer, RemoteWriter):
                await asyncio.wait_for(self.writer.ping(), _READY_TIMEOUT_S)
            elif self.store is None or self.writer is None or not self.writer.alive:
                raise StoreUnavailable("not started")
            else:
                await asyncio.wait_for(asyncio.to_thread(self.store.ping), _READY_TIMEOUT_S)
        except (IngestError, TimeoutError):
            return JSONResponse({"status": "unavailable"}, status_code=503,
                                headers={"Retry-After": str(self.settings.retry_after_s)})
        return JSONResponse({"status": "ready"})


def create_app(settings: Settings | None = None) -> FastAPI:
    """The ingest app for `settings` (defaults from the catalog; SQLite file beside the cwd)."""
    service = Service(settings or Settings())
    _check_catalog(service)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        await asyncio.to_thread(service.open)
        try:
            yield
        finally:
            if isinstance(service.writer, RemoteWriter):
                await service.writer.close()
            await asyncio.to_thread(service.close)

    app = FastAPI(title="otel-usage ingest", version=str(service.catalog.version),
                  lifespan=lifespan)
    app.state.service = service
    _routes(app, service)
    # The export is the hot path: served as plain ASGI in front of the routing (the route above
    # documents it in the OpenAPI schema and answers the same way).
    app.add_middleware(ExportShortcut, path=service.protocol.metrics_path, handler=service.export)
    return app


def outermost(app: FastAPI) -> ExportShortcut:
    """What `serve` runs: the export shortcut in front of FastAPI's whole middleware stack
    (which costs about a tenth of an export); everything else passes through to `app`."""
    service: Service = app.state.service
    return ExportShortcut(app, path=service.protocol.metrics_path, handler=service.export)


SETTINGS_ENV = "OTEL_USAGE_INGEST_SETTINGS"


def create_app_from_environment() -> ExportShortcut:
    """The app of one worker process of `serve --workers N` (settings passed as JSON)."""
    from . import _log

    options = json.loads(os.environ[SETTINGS_ENV])
    _log.configure(options.pop("log_level", "info"))
    return outermost(create_app(Settings(**options)))


def _check_catalog(service: Service) -> None:
    attribute = service.catalog.resource.get(INSTALLATION_KEY)
    if attribute is None or not attribute.required:
        raise ValueError(f"the catalog must require the resource attribute {INSTALLATION_KEY}")


def _routes(app: FastAPI, service: Service) -> None:
    header = service.protocol.credential_header

    async def erase(request: Request, installation_id: str,
                    credential: str | None = Header(None, alias=header)) -> Response:
        return await service.erase(request, installation_id, credential)

    async def export(request: Request) -> Response:
        peer = request.client.host if request.client else ""
        status, headers, body = await service.export(
            request.headers, peer, lambda limit: read_body(request.stream(), limit))
        return Response(body, status_code=status, headers=dict(headers))

    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    app.add_api_route(service.protocol.metrics_path, export, methods=["POST"],
                      summary="OTLP/HTTP metrics export", openapi_extra=_export_openapi(header),
                      responses=_responses(200, 400, 403, 413, 415, 429, 503))
    app.add_api_route(service.protocol.installation_path, erase, methods=["DELETE"],
                      status_code=204, summary="Erase an installation",
                      responses=_responses(204, 400, 403, 429, 503))
    app.add_api_route("/healthz", healthz, methods=["GET"], summary="The process is up")
    app.add_api_route("/readyz", service.ready, methods=["GET"], summary="The database answers",
                      responses=_responses(200, 503))


def _responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    return {code: {"description": f"HTTP {code}"} for code in codes}


def _export_openapi(header: str) -> dict[str, Any]:
    return {
        "parameters": [{"name": header, "in": "header", "required": True,
                        "schema": {"type": "string"}}],
        "requestBody": {"required": True, "content": {
            "application/json": {"schema": {"type": "object"}},
            "application/x-protobuf": {"schema": {"type": "string", "format": "binary"}},
        }},
    }
