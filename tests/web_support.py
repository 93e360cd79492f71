"""Helpers for the privacy page's tests: a telemetry instance with known data, an app mounted
behind a Home Assistant-like ingress prefix, and a loopback server that acknowledges reports."""

from __future__ import annotations

import asyncio
import math
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
from fastapi import FastAPI

from otel_usage import ManualClock, UsageTelemetry
from otel_usage.catalog import Catalog
from otel_usage.web import privacy_router

MONDAY = datetime(2026, 11, 23, 9, 30, tzinfo=UTC)  # 2026-W48
W50_SUNDAY = datetime(2026, 12, 13, 23, 30, tzinfo=UTC)  # after W49's report slot, W50 still open
INGRESS = "/api/hassio_ingress/abc123"
PREFIX = "/usage"
PAGE = f"{INGRESS}{PREFIX}/"

Scope = dict[str, Any]


def make_usage(data_dir: Path, clock: ManualClock, endpoint: str = "http://127.0.0.1:9",
               environ: dict[str, str] | None = None,
               catalog: Catalog | None = None) -> UsageTelemetry:
    return UsageTelemetry(data_dir, service_version="2.7.0", export_interval_s=math.inf,
                          clock=clock, endpoint=endpoint, background_uploads=False,
                          environ={} if environ is None else environ, catalog=catalog)


def record(usage: UsageTelemetry, jobs: int, downloads: int = 0) -> None:
    """A few of Printernizer's counts, written to the store now."""
    meter = usage.meter()
    meter.create_counter("printernizer.jobs").add(
        jobs, {"job.status": "completed", "printer.type": "bambu_lab"})
    if downloads:
        meter.create_counter("printernizer.file.downloads").add(
            downloads, {"printer.type": "prusa_core"})
    usage.flush()


def sent_once(usage: UsageTelemetry, clock: ManualClock) -> None:
    """Opt in during W48, count in W49, send W49's report, then count more in W50."""
    clock.set(MONDAY)
    usage.set_mode("on")
    clock.set(datetime(2026, 12, 1, 10, 0, tzinfo=UTC))
    record(usage, 3)
    clock.set(W50_SUNDAY)
    summary = usage.send_now()
    assert (summary["sent"], summary["failed"]) == (["2026-W49"], [])
    record(usage, 5, downloads=2)


def build_app(usage: UsageTelemetry) -> FastAPI:
    app = FastAPI()
    app.include_router(privacy_router(usage, prefix=PREFIX))
    return app


class IngressProxy:
    """What Home Assistant's Supervisor does: strip the ingress prefix, say it in a header."""

    def __init__(self, app: Any, prefix: str = INGRESS) -> None:
        self.app = app
        self.prefix = prefix

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope["path"].startswith(self.prefix + "/"):
            path = scope["path"][len(self.prefix):]
            headers = [*scope["headers"], (b"x-ingress-path", self.prefix.encode())]
            scope = {**scope, "path": path, "raw_path": path.encode(), "headers": headers}
        elif scope["type"] == "http":
            scope = {**scope, "path": "/__outside_ingress__" + scope["path"]}
        await self.app(scope, receive, send)


class _Acknowledge(BaseHTTPRequestHandler):
    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        self.server.received.append((self.command, self.path, self.rfile.read(length)))  # type: ignore[attr-defined]
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"{}")

    do_POST = _answer
    do_DELETE = _answer

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: the tests read `received` instead."""


@contextmanager
def collector() -> Iterator[tuple[str, list[tuple[str, str, bytes]]]]:
    """A loopback HTTP server answering 200 to every report and erasure request."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Acknowledge)
    server.received = []  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", server.received  # type: ignore[attr-defined]
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


class Client:
    """A synchronous client that calls the ASGI app in-process (httpx's ASGITransport)."""

    def __init__(self, app: Any, base_url: str = "http://printernizer.local") -> None:
        self.app = app
        self.base_url = base_url

    def request(self, method: str, url: str, *, follow_redirects: bool = True,
                **kwargs: Any) -> httpx.Response:
        async def send() -> httpx.Response:
            transport = httpx.ASGITransport(app=self.app)
            async with httpx.AsyncClient(transport=transport, base_url=self.base_url,
                                         follow_redirects=follow_redirects) as client:
                return await client.request(method, url, **kwargs)

        return asyncio.run(send())

    def get(self, url: str, **kwargs: Any) -> httpx.Response:
        return self.request("GET", url, **kwargs)

    def put(self, url: str, **kwargs: Any) -> httpx.Response:
        return self.request("PUT", url, **kwargs)

    def post(self, url: str, **kwargs: Any) -> httpx.Response:
        return self.request("POST", url, **kwargs)

    def patch(self, url: str, **kwargs: Any) -> httpx.Response:
        return self.request("PATCH", url, **kwargs)
