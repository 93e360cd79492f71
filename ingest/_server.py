"""How uvicorn serves the ingest: one process, with the limits a public server needs.

uvicorn has a keep-alive timeout and a concurrency limit, but nothing bounds how long a
client may take to send a request, nor how long an answer may wait for a client that never
reads, and a connection that never sends anything is not timed at all
(https://github.com/Kludex/uvicorn/issues/160).
`GuardedHttp`, the HTTP protocol class `config` gives uvicorn (its `http` setting, which takes
a class), adds what holds:

- idle: a connection with no request under way is closed after `idle_s` (also a new one);
- slow header: a request's head must arrive within `header_s` of its first byte;
- slow body: its body within `body_s` of the end of the head;
- never reading: an answer that cannot be written for `send_s` closes the connection;
- pipelining: at most `pipelined` requests wait behind the one being answered, so a client
  that pipelines and never reads holds a few requests, not a socket's worth;
- connections: beyond `connections` open at once, a new one gets `503` with Retry-After and is
  closed at once (a flood of idle connections cannot exhaust file descriptors; `serve` raises
  the soft limit of open files to the hard one and keeps the cap below it);
- malformed HTTP closes the connection without an answer (no answer larger than the request).

uvicorn's proxy-headers handling is off: it would take `X-Forwarded-For` from any peer on
loopback as the client's address (the service decides whom it trusts, `_ratelimit`).

The event loop is asyncio's, not uvloop's: libuv accepts one connection per turn of its loop
(https://github.com/libuv/libuv/pull/3696), so while pipelining clients keep every turn busy,
a new connection (a health check, a client's report) waits behind every connection queued
before it: with 300 pipelining connections, a `/healthz` once waited 12 s. asyncio accepts
every waiting connection each turn. `python -m benchmarks.ingest`, the two alternately in one
run, twice: 0.32 against 0.29 ms of CPU per report, then 0.295 against 0.315 (noise, not a
difference).
"""

from __future__ import annotations

import asyncio
import resource
from dataclasses import dataclass
from typing import Any

import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

GRACEFUL_SHUTDOWN_S = 20
# Descriptors kept for the database, logs and the listening socket.
_RESERVED_FDS = 256


@dataclass(frozen=True)
class Limits:
    """The documented numbers (ingest/README.md)."""

    idle_s: float = 5.0
    header_s: float = 10.0
    body_s: float = 10.0
    send_s: float = 10.0
    pipelined: int = 4
    connections: int = 4096
    retry_after_s: int = 5


class GuardedHttp(HttpToolsProtocol):
    """uvicorn's httptools protocol with timeouts on every phase of a request and caps."""

    limits = Limits()

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._deadline: asyncio.TimerHandle | None = None
        self._send_deadline: asyncio.TimerHandle | None = None

    # The connection ---------------------------------------------------------------------

    # uvicorn's protocol narrows asyncio.Protocol's BaseTransport to the Transport it gets (and
    # ignores the override itself); this is its method, with its signature.
    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        if len(self.connections) > self.limits.connections:
            transport.write(b"HTTP/1.1 503 Service Unavailable\r\nretry-after: %d\r\n"
                            b"content-length: 0\r\nconnection: close\r\n\r\n"
                            % self.limits.retry_after_s)
            transport.close()
            return
        # Nothing arrives: the same as idle between requests (uvicorn's keep-alive timer).
        self.timeout_keep_alive_task = self.loop.call_later(self.limits.idle_s,
                                                            self.timeout_keep_alive_handler)

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel()
        self._cancel_send()
        super().connection_lost(exc)

    def send_400_response(self, msg: str) -> None:
        """Malformed HTTP: close, answering nothing."""
        self._cancel()
        self.transport.close()

    # A request arriving -----------------------------------------------------------------

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._arm(self.limits.header_s)

    def on_headers_complete(self) -> None:
        super().on_headers_complete()
        if len(self.pipeline) > self.limits.pipelined:
            raise OverflowError("too many pipelined requests")  # httptools: a parser error
        self._arm(self.limits.body_s)

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self._cancel()

    # An answer that cannot be written ---------------------------------------------------

    def pause_writing(self) -> None:
        super().pause_writing()
        if self._send_deadline is None:
            self._send_deadline = self.loop.call_later(self.limits.send_s, self._close)

    def resume_writing(self) -> None:
        super().resume_writing()
        self._cancel_send()

    # Timers -----------------------------------------------------------------------------

    def _arm(self, seconds: float) -> None:
        self._cancel()
        self._deadline = self.loop.call_later(seconds, self._close)

    def _cancel(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _cancel_send(self) -> None:
        if self._send_deadline is not None:
            self._send_deadline.cancel()
            self._send_deadline = None

    def _close(self) -> None:
        if not self.transport.is_closing():
            self.transport.close()


def raise_open_files_limit() -> int:
    """Raise the soft limit of open files to the hard one; the connections that leaves."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return max(1, resource.getrlimit(resource.RLIMIT_NOFILE)[0] - _RESERVED_FDS)


def config(app: Any, host: str, port: int, limits: Limits | None = None,
           **overrides: Any) -> uvicorn.Config:
    """The uvicorn configuration of an ingest server for `app`."""
    limits = limits or Limits()
    protocol = type("IngestHttp", (GuardedHttp,), {"limits": limits})
    options: dict[str, Any] = {
        "host": host, "port": port, "http": protocol, "loop": "asyncio",
        "access_log": False, "log_config": None,
        "proxy_headers": False, "server_header": False, "timeout_keep_alive": limits.idle_s,
        # No Date header: it would be the machine's time, not the one clock hook's.
        "date_header": False, "timeout_graceful_shutdown": GRACEFUL_SHUTDOWN_S,
    }
    return uvicorn.Config(app, **(options | overrides))
