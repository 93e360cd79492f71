"""The ingest's HTTP face: OTLP/HTTP metrics in, erasure, health, the public statistics
(FastAPI).

`create_app(settings)` builds the app; the lifespan opens the store, creates (or migrates) its
schema, starts the writer and the scheduled publication, and on shutdown (after uvicorn has
finished the requests in flight) drains the writer and closes the store.

The public statistics (`ingest/site.py`) are served read-only at the catalog's `[public]
path`: the same files `otel-usage-ingest site` writes, without cookies, with a policy that
lets a page load nothing from another origin, and cacheable.

The export, the one route under load, is answered as plain ASGI before FastAPI's middleware
and routing: they cost more CPU per report than decompressing and parsing it together
(ingest/README.md, "Throughput"). Everything else is an ordinary FastAPI route.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Header, Request, Response
from starlette.responses import RedirectResponse
from starlette.routing import Route

from ._errors import IngestError
from ._publication import Maintenance
from ._service import Service
from ._settings import Settings
from ._validate import INSTALLATION_KEY
from .site import Served

__all__ = ["create_app"]


def create_app(settings: Settings | None = None) -> FastAPI:
    """The ingest app for `settings` (defaults from the catalog; SQLite file beside the cwd)."""
    service = Service(settings or Settings())
    _check_catalog(service)
    config = service.settings
    served = Served(config.database_url, config.catalog, config.now)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        store = await asyncio.to_thread(service.open)
        maintenance = Maintenance(store, service.settings)
        maintenance.start()
        try:
            yield
        finally:
            await asyncio.to_thread(maintenance.stop)
            await asyncio.to_thread(service.close)
            await asyncio.to_thread(served.close)

    app = IngestApp(title="otel-usage ingest", version=str(service.catalog.version),
                    lifespan=lifespan, **_no_telemetry())
    app.state.service = service
    _routes(app, service)
    _public_routes(app, served, config.catalog.public.path)
    return app


Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
Asgi = Callable[[Scope, Receive, Send], Awaitable[None]]


class IngestApp(FastAPI):
    """FastAPI, with `POST {metrics_path}` handed to `export` directly, and documented in the
    schema FastAPI makes of its own routes (no route of FastAPI's describes it)."""

    export: Asgi | None = None
    export_path = ""
    export_header = ""  # the credential's header

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (self.export is not None and scope["type"] == "http"
                and scope["path"] == self.export_path and scope["method"] == "POST"):
            await self.export(scope, receive, send)
        else:
            await super().__call__(scope, receive, send)

    def openapi(self) -> dict[str, Any]:
        schema = super().openapi()
        if self.export is not None:
            schema["paths"].setdefault(self.export_path, {})["post"] = _export_operation(
                self.export_header)
        return schema


class _Disconnected(Exception):
    """The client went away before its body arrived: nobody to answer."""


async def _chunks(receive: Receive) -> AsyncIterator[bytes]:
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise _Disconnected
        yield message.get("body", b"")
        if not message.get("more_body", False):
            return


class _Export:
    """`POST {metrics_path}` as plain ASGI (an instance, so Starlette routes to it as is)."""

    def __init__(self, service: Service) -> None:
        self.service = service

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        # Header names arrive lower-cased (ASGI); one dict instead of a scan per lookup.
        received = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        client = scope.get("client")
        try:
            status, headers, body = await self.service.export(
                received, client[0] if client else "", _chunks(receive))
        except _Disconnected:
            return
        raw = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()]
        raw.append((b"content-length", b"%d" % len(body)))
        await send({"type": "http.response.start", "status": status, "headers": raw})
        await send({"type": "http.response.body", "body": body})


def _no_telemetry() -> dict[str, Any]:
    """FastAPI releases with native OpenTelemetry instrument every request once a provider
    is set in the process (spans with client addresses): the ingest records nothing about
    its clients, and saves the check per request."""
    if "telemetry" not in inspect.signature(FastAPI.__init__).parameters:
        return {}
    return {"telemetry": {"tracing": False, "metrics": False, "logs": False}}


def _check_catalog(service: Service) -> None:
    attribute = service.catalog.resource.get(INSTALLATION_KEY)
    if attribute is None or not attribute.required:
        raise ValueError(f"the catalog must require the resource attribute {INSTALLATION_KEY}")


def _peer(request: Request) -> str:
    return request.client.host if request.client else ""


def _routes(app: IngestApp, service: Service) -> None:
    header = service.protocol.credential_header

    async def erase(request: Request, installation_id: str,
                    credential: str | None = Header(None, alias=header)) -> Response:
        # The credential is read from the headers by the service; declared here for the
        # OpenAPI schema.
        status, headers, body = await service.erase(request.headers, _peer(request),
                                                    installation_id)
        return Response(body or None, status_code=status, headers=headers)

    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    async def readyz() -> Response:
        if await service.ready():
            return Response(b'{"status":"ready"}', media_type="application/json")
        return Response(b'{"status":"unavailable"}', status_code=503,
                        media_type="application/json",
                        headers={"retry-after": str(service.settings.retry_after_s)})

    # The export: answered by `IngestApp` before routing (the route is there for the other
    # methods' 405 and for apps mounted in a larger one); documented in the schema by hand.
    app.export, app.export_path = _Export(service), service.protocol.metrics_path
    app.export_header = header
    app.router.routes.append(Route(app.export_path, app.export, methods=["POST"],
                                   include_in_schema=False))
    app.add_api_route(service.protocol.installation_path, erase, methods=["DELETE"],
                      status_code=204, summary="Erase an installation",
                      responses=_responses(204, 400, 403, 429, 503))
    app.add_api_route("/healthz", healthz, methods=["GET"], summary="The process is up")
    app.add_api_route("/readyz", readyz, methods=["GET"], summary="The database answers",
                      responses=_responses(200, 503))


# Every answer under the public path: nothing from another origin, not framed, no sniffing,
# no referrer sent on. Pages and data change at most once a week (a publication), so a cache
# may keep them ten minutes, about as long as the service waits to publish what is due.
PUBLIC_HEADERS = {
    "content-security-policy": "default-src 'self'; frame-ancestors 'none'",
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
}
PUBLIC_MAX_AGE_S = 600


def _public_routes(app: FastAPI, served: Served, path: str) -> None:
    """GET and HEAD of the site's files under `path` (a folder's `index.html` for the
    folder); the path without its slash redirects to it."""

    async def public(request: Request) -> Response:
        try:
            files = await asyncio.to_thread(served.files)
        except IngestError:  # the views cannot be read, or made a site (logged once)
            return Response(b"the statistics are unavailable for now\n", status_code=503,
                            media_type="text/plain", headers=PUBLIC_HEADERS | {
                                "retry-after": "60", "cache-control": "no-store"})
        name = request.path_params["file"]
        found = files.get(name + "index.html" if name == "" or name.endswith("/") else name)
        if found is None:
            return Response(b"not found\n", status_code=404, media_type="text/plain",
                            headers=PUBLIC_HEADERS | {"cache-control": "no-store"})
        headers = PUBLIC_HEADERS | {"etag": found.etag,
                                    "cache-control": f"public, max-age={PUBLIC_MAX_AGE_S}"}
        if found.etag in request.headers.get("if-none-match", ""):
            return Response(status_code=304, headers=headers)
        return Response(found.content, media_type=found.media_type, headers=headers)

    async def folder(_request: Request) -> Response:
        return RedirectResponse(path, status_code=308, headers=PUBLIC_HEADERS)

    app.router.routes.append(Route(path + "{file:path}", public, methods=["GET", "HEAD"],
                                   include_in_schema=False))
    app.router.routes.append(Route(path.rstrip("/"), folder, methods=["GET", "HEAD"],
                                   include_in_schema=False))


def _responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    return {code: {"description": f"HTTP {code}"} for code in codes}


def _export_operation(header: str) -> dict[str, Any]:
    """The export as an OpenAPI operation."""
    return {
        "summary": "OTLP/HTTP metrics export", "operationId": "export",
        "parameters": [{"name": header, "in": "header", "required": True,
                        "schema": {"type": "string"}}],
        "requestBody": {"required": True, "content": {
            "application/x-protobuf": {"schema": {"type": "string", "format": "binary"}},
        }},
        "responses": {str(code): {"description": f"HTTP {code}"}
                      for code in (200, 400, 403, 410, 413, 415, 429, 503)},
    }
