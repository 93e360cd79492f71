"""Real parts for the tests that drive Chromium against more than one origin: an ASGI app served
by uvicorn on loopback, a small HTTP proxy that does what Home Assistant's ingress does, a
static site for pages of another origin, a recorder of what reached the app, and Debian's
Chromium with names under ``.test`` resolved to loopback (such names are not "potentially
trustworthy", so Chromium sends them no ``Sec-Fetch-*`` headers, as on a home network)."""

from __future__ import annotations

import http.client
import os
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run",
                 "--disable-quic"]
# Every name under .test is this machine (homeassistant.test, evil.test, ...).
RESOLVE_TEST_NAMES = "--host-resolver-rules=MAP *.test 127.0.0.1"
INGRESS_PATH = "/api/hassio_ingress/abc123"
# Hop-by-hop headers a proxy does not pass on (RFC 9110 7.6.1), and those it sets itself.
_NOT_FORWARDED = {"connection", "keep-alive", "proxy-connection", "te", "trailer",
                  "transfer-encoding", "upgrade", "host", "content-length"}


@contextmanager
def chromium(*extra_args: str) -> Iterator[Any]:
    """Headless Chromium; a missing Chromium fails the test, with why."""
    if not CHROMIUM.exists():
        pytest.fail(f"Chromium is missing at {CHROMIUM}: install Debian's chromium package "
                    "(the browser tests never download a browser)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM),
                                             args=[*CHROMIUM_ARGS, *extra_args])
        try:
            yield browser
        finally:
            browser.close()


def _listening() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    return sock


@contextmanager
def served(app: Any, *, lifespan: str = "off") -> Iterator[int]:
    """`app` served by uvicorn on a loopback port (yielded), in a thread. (uvicorn is the
    server's: imported here, so the client's own tests import this module without it.)"""
    import uvicorn

    sock = _listening()
    config = uvicorn.Config(app, log_level="warning", lifespan=lifespan, ws="none")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    while not server.started:
        thread.join(0.01)
        assert thread.is_alive(), "uvicorn did not start"
    try:
        yield sock.getsockname()[1]
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()


@dataclass(frozen=True)
class Arrival:
    method: str
    path: str
    headers: dict[str, str]
    status: int


@dataclass
class Recorder:
    """An ASGI wrapper that records each HTTP request the app answered, with its status."""

    app: Any
    arrivals: list[Arrival] = field(default_factory=list)

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        status: list[int] = []

        async def sending(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                status.append(message["status"])
            await send(message)

        await self.app(scope, receive, sending)
        self.arrivals.append(Arrival(scope["method"], scope["path"], headers, status[0]))

    def changes(self) -> list[tuple[str, str, int]]:
        """(method, path, status) of every request that was not a GET."""
        return [(a.method, a.path, a.status) for a in self.arrivals if a.method != "GET"]


@contextmanager
def ingress_proxy(backend_port: int, prefix: str = INGRESS_PATH) -> Iterator[int]:
    """A loopback HTTP proxy (its port yielded) in the manner of Home Assistant's ingress:
    requests under `prefix` go to the add-on at `backend_port` with the prefix stripped,
    ``Host`` rewritten to the add-on's address, the browser's host in ``X-Forwarded-Host``
    and the prefix in ``X-Ingress-Path``; every other header and the body pass unchanged."""

    class Proxy(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _forward(self) -> None:
            if not self.path.startswith(prefix + "/"):
                self.send_error(404)
                return
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else None
            headers = {k: v for k, v in self.headers.items()
                       if k.lower() not in _NOT_FORWARDED}
            headers.update({"Host": f"127.0.0.1:{backend_port}",
                            "X-Forwarded-Host": self.headers.get("Host", ""),
                            "X-Forwarded-Proto": "http",
                            "X-Forwarded-For": self.client_address[0],
                            "X-Ingress-Path": prefix})
            if body is not None:
                headers["Content-Length"] = str(len(body))
            upstream = http.client.HTTPConnection("127.0.0.1", backend_port, timeout=30)
            try:
                upstream.request(self.command, self.path[len(prefix):], body, headers)
                answer = upstream.getresponse()
                content = answer.read()
            finally:
                upstream.close()
            self.send_response(answer.status, answer.reason)
            for key, value in answer.getheaders():
                if key.lower() not in _NOT_FORWARDED:
                    self.send_header(key, value)
            self.send_header("Content-Length", str(len(content)))
            self.end_headers()
            self.wfile.write(content)

        do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_OPTIONS = do_HEAD = _forward

        def log_message(self, format: str, *args: Any) -> None:
            """Quiet: the tests read the recorder behind the proxy."""

    with _http_server(Proxy) as port:
        yield port


@contextmanager
def static_site(pages: dict[str, str]) -> Iterator[int]:
    """A loopback site (its port yielded) answering each path of `pages` with that HTML."""

    class Site(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            page = pages.get(self.path.split("?")[0])
            if page is None:
                self.send_error(404)
                return
            content = page.encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(content)))
            self.end_headers()
            self.wfile.write(content)

        def log_message(self, format: str, *args: Any) -> None:
            """Quiet."""

    with _http_server(Site) as port:
        yield port


@contextmanager
def _http_server(handler: type[BaseHTTPRequestHandler]) -> Iterator[int]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)


# What a static host answers for each kind of file of a site.
_CONTENT_TYPES = {".html": "text/html; charset=utf-8", ".css": "text/css; charset=utf-8",
                  ".json": "application/json", ".toml": "text/plain; charset=utf-8",
                  ".svg": "image/svg+xml"}


@contextmanager
def static_files(files: dict[str, bytes], prefix: str, headers: dict[str, str],
                 arrivals: list[str]) -> Iterator[int]:
    """A loopback static host (its port yielded) serving each relative path of `files` under
    `prefix` (``/stats/`` + path, and ``/stats/`` itself as its index.html) with its content
    type and `headers`; every path asked for is appended to `arrivals`."""

    class Site(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            path = self.path.split("?")[0]
            arrivals.append(path)
            relative = path[len(prefix):] if path.startswith(prefix) else None
            content = files.get("index.html" if relative == "" else relative or "")
            if content is None:
                self.send_error(404)
                return
            self.send_response(200)
            self.send_header("Content-Type", _CONTENT_TYPES[Path(path or "x.html").suffix
                                                           or ".html"])
            for key, value in headers.items():
                self.send_header(key, value)
            self.send_header("Content-Length", str(len(content)))
            self.end_headers()
            self.wfile.write(content)

        def log_message(self, format: str, *args: Any) -> None:
            """Quiet: the tests read `arrivals`."""

    with _http_server(Site) as port:
        yield port


def vendored(name: str, file: str) -> Path:
    """A file of front-end code the tests vendor (scripts/front-end.txt), from the cache
    ``scripts/setup test`` fills; missing, the test fails and says how to get it."""
    root = Path(__file__).resolve().parent.parent
    pins = [line.split() for line in (root / "scripts" / "front-end.txt").read_text().splitlines()
            if line.strip() and not line.startswith("#")]
    version = next(pin[1] for pin in pins if pin[0] == name)
    caches = [Path(os.environ["OTEL_USAGE_CACHE_DIR"])] if os.environ.get(
        "OTEL_USAGE_CACHE_DIR") else [Path("/var/cache/otel-usage"),
                                      Path(os.environ.get("XDG_CACHE_HOME",
                                                          Path.home() / ".cache")) / "otel-usage"]
    for cache in caches:
        path = cache / "npm" / f"{name}-{version}" / file
        if path.exists():
            return path
    pytest.fail(f"{name} {version} is missing from the cache ({', '.join(map(str, caches))}): "
                "run scripts/setup test, which fetches it from the npm registry and checks it "
                "against the integrity pinned in scripts/front-end.txt")
