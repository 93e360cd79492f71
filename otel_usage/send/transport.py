"""Hand one request to the server: a weekly report or an erasure request (both OTLP exports),
or fetch one document of the public statistics.

The only module that imports the OTLP exporter, and only inside :func:`post_report` and
:func:`get_document`, so that an installation that never sends never loads it (its memory would
be the host's: README.md, "Budgets, measured"). One call is one HTTP request: retries are the
outbox's business, persisted across restarts. A public document is fetched trusting the
server as reports do (the exporter's CA, from ``OTEL_EXPORTER_OTLP_CERTIFICATE``), and with
nothing about the installation: no client certificate, no credential, no cookie, no header but
:data:`PUBLIC_HEADERS`.

Endpoints must be HTTPS with certificate verification; plain ``http://`` is accepted only for a
loopback host (tests and the demo).

One request has one deadline (``deadline_s``) for the whole exchange: connecting, sending and
reading the answer. A socket timeout bounds each read alone, so a server that drips its answer
a byte at a time would hold the sender (and the run lock, so erasures and the page's send-now)
for as long as it liked: when the deadline passes, every socket the request opened is shut down.
"""

from __future__ import annotations

import ipaddress
import math
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import datetime
from email.utils import parsedate_to_datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from ..errors import TransportError

if TYPE_CHECKING:
    import requests

__all__ = ["PUBLIC_HEADERS", "Answer", "check_endpoint", "get_document", "post_report",
           "retry_after_seconds", "status_message"]

DEFAULT_DEADLINE_S = 10.0
# Longest server answer kept in the outbox and the history.
_ANSWER_CHARS = 200
# Longest refusal body decoded as an OTLP status (the gateway's are a few dozen bytes).
_STATUS_BYTES = 4096
# Most of an answer's body ever read: the rest is left unread, so an endpoint that answers
# without end (or a huge declared length) costs the client this much and no more.
_BODY_BYTES = 65536
# The only headers a public document's request carries, besides Host: what any HTTP client
# sends, naming no version, installation or machine.
PUBLIC_HEADERS = {"User-Agent": "otel-usage", "Accept": "application/json",
                  "Accept-Encoding": "gzip", "Connection": "close"}


@dataclass(frozen=True)
class Answer:
    """What came back: an HTTP status (None when no answer arrived), Retry-After, a short text,
    and the message of a refusal's body when it is an OTLP status (a protobuf google.rpc.Status,
    as the public gateway answers)."""

    status: int | None
    text: str
    retry_after_s: float | None = None
    status_message: str | None = None

    @property
    def ok(self) -> bool:
        return self.status is not None and 200 <= self.status < 300


def check_endpoint(endpoint: str) -> str:
    """`endpoint` without a trailing slash; TransportError unless HTTPS or loopback HTTP.

    Judged as the HTTP client connects: the host and port are those urllib3 (under requests)
    parses, and they must be the ones Python's own parser sees; user-info, backslashes,
    whitespace, control or non-ASCII characters, a query or a fragment are refused outright,
    so no two parsers can read the URL differently."""
    from urllib3.util import parse_url

    text = endpoint if isinstance(endpoint, str) else ""
    if not text or any(c in text for c in "\\@?#") or not text.isascii() or any(
            c.isspace() or ord(c) < 32 or ord(c) == 127 for c in text):
        raise TransportError(
            f"refusing to send to {text!r}: an endpoint must be a plain https:// URL "
            "(no user-info, backslashes, spaces, control or non-ASCII characters, query or "
            "fragment)")
    parts = urlsplit(text)
    try:
        connected = parse_url(text)
        python_view = (parts.scheme, parts.hostname, parts.port)
    except ValueError as exc:
        raise TransportError(f"refusing to send to {text!r}: {exc}") from exc
    host = (connected.host or "").lower().strip("[]")
    client_view = (connected.scheme, host or None, connected.port)
    if client_view != python_view:
        raise TransportError(f"refusing to send to {text!r}: the URL is ambiguous")
    if connected.scheme == "https" and host:
        return text.rstrip("/")
    if connected.scheme == "http" and host and _is_loopback(host):
        return text.rstrip("/")
    raise TransportError(
        f"refusing to send to {parts.scheme}://{parts.hostname or ''}: "
        "usage reports travel over HTTPS only (plain HTTP only to this machine)"
    )


def _is_loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def post_report(
    endpoint: str, metrics_path: str, headers: dict[str, str], body: bytes, now: datetime,
    deadline_s: float = DEFAULT_DEADLINE_S,
) -> Answer:
    """POST the gzipped protobuf `body`, exactly as stored in the outbox, once, within
    `deadline_s` seconds from connecting to the last byte read.

    The exporter configures the session it sends with (certificate verification on, its
    endpoint and headers). We then send through that same ``requests`` session ourselves: the
    exporter's public ``export`` takes SDK ``MetricsData`` rather than pre-built bytes, gzips
    again, retries with sleeps inside the call and hides the status and ``Retry-After`` that the
    outbox needs to schedule the next attempt.
    """
    url = check_endpoint(endpoint) + metrics_path
    session, exporter = _configured_session(url, headers, deadline_s)
    try:
        request_headers = {"Content-Type": "application/x-protobuf",
                           "Content-Encoding": "gzip", **headers}
        with _deadline(deadline_s) as deadline:
            return _request(session, "POST", url, request_headers, body, now, deadline)
    finally:
        exporter.shutdown()


def _configured_session(url: str, headers: dict[str, str],
                        deadline_s: float) -> tuple[requests.Session, Any]:
    """A ``requests`` session as the OTLP exporter configures it for `url` (certificate
    verification and client certificate from its settings), whose connections are under the
    current deadline; and the exporter, to shut down after use."""
    import requests
    from opentelemetry.exporter.otlp.proto.http import Compression
    from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter

    session = requests.Session()
    exporter = OTLPMetricExporter(endpoint=url, headers=headers, timeout=deadline_s,
                                  compression=Compression.Gzip, session=session)
    adapter = _watched_adapter()
    for scheme in ("http://", "https://"):
        session.mount(scheme, adapter)
    return session, exporter


def get_document(url: str, *, max_bytes: int, deadline_s: float = DEFAULT_DEADLINE_S) -> bytes:
    """GET `url` (HTTPS, or HTTP to this machine) once, within `deadline_s` seconds, verifying
    the server as reports do but presenting no client certificate, with :data:`PUBLIC_HEADERS`
    only; its body, decompressed. Raises
    TransportError for no answer, an answer other than 200 (redirects are not followed) or a
    body larger than `max_bytes`."""
    checked = check_endpoint(url)
    session, exporter = _configured_session(checked, {}, deadline_s)
    session.headers.clear()
    session.headers.update(PUBLIC_HEADERS)
    # The reports' trust (verify), but no client certificate: it could only name the
    # installation, and a public document needs no authentication.
    session.cert = None
    try:
        with _deadline(deadline_s) as deadline:
            return _get(session, checked, max_bytes, deadline)
    finally:
        exporter.shutdown()


def _get(session: requests.Session, url: str, max_bytes: int, deadline: _Deadline) -> bytes:
    try:
        response = session.get(url, timeout=deadline.seconds, allow_redirects=False,
                               verify=session.verify, cert=session.cert, stream=True)
        with response:
            if response.status_code != 200 and not deadline.passed:
                raise TransportError(f"{url} answered {response.status_code} "
                                     f"{response.reason or ''}".rstrip())
            content = bytes(response.raw.read(max_bytes + 1, decode_content=True) or b"")
    except TransportError:
        raise
    except Exception as exc:  # no answer, or one that broke off or does not decode
        raise _no_document(url, deadline, f"no answer: {type(exc).__name__}") from exc
    if deadline.passed:
        raise _no_document(url, deadline, "")
    if len(content) > max_bytes:
        raise TransportError(f"{url}: the answer is larger than {max_bytes} bytes")
    return content


def _no_document(url: str, deadline: _Deadline, why: str) -> TransportError:
    return TransportError(f"{url}: {_too_late(deadline).text if deadline.passed else why}")


class _Deadline:
    """One deadline for a whole exchange: when it passes, every socket the exchange opened is
    shut down, so a blocked connect, send or read ends at once (a duplicate of each socket is
    kept: TLS takes the original over, and shutting down either ends the connection)."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.passed = False
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()
        self._timer = threading.Timer(seconds, self._expire)
        self._timer.daemon = True

    def watch(self, sock: socket.socket) -> None:
        with self._lock:
            self._sockets.append(sock.dup())
            if self.passed:
                _shut(self._sockets[-1])

    def _expire(self) -> None:
        with self._lock:
            self.passed = True
            for sock in self._sockets:
                _shut(sock)

    def start(self) -> None:
        self._timer.start()

    def close(self) -> None:
        self._timer.cancel()
        with self._lock:
            for sock in self._sockets:
                sock.close()
            self._sockets.clear()


def _shut(sock: socket.socket) -> None:
    with suppress(OSError):  # already closed by its side
        sock.shutdown(socket.SHUT_RDWR)


# The deadline of the exchange this thread is in, for the connections it opens.
_CURRENT: ContextVar[_Deadline | None] = ContextVar("otel_usage_deadline", default=None)


@contextmanager
def _deadline(seconds: float) -> Iterator[_Deadline]:
    deadline = _Deadline(seconds)
    token = _CURRENT.set(deadline)
    deadline.start()
    try:
        yield deadline
    finally:
        _CURRENT.reset(token)
        deadline.close()


def _watched_adapter() -> requests.adapters.HTTPAdapter:
    """A requests adapter whose connections put their sockets under the current deadline
    (urllib3 makes every socket in its connection's ``_new_conn``); no retries."""
    from requests.adapters import HTTPAdapter
    from urllib3.connection import HTTPConnection, HTTPSConnection
    from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

    def watched(sock: socket.socket) -> socket.socket:
        deadline = _CURRENT.get()
        if deadline is not None:
            deadline.watch(sock)
        return sock

    class Connection(HTTPConnection):
        def _new_conn(self) -> socket.socket:
            return watched(super()._new_conn())

    class SecureConnection(HTTPSConnection):
        def _new_conn(self) -> socket.socket:
            return watched(super()._new_conn())

    class Pool(HTTPConnectionPool):
        ConnectionCls = Connection

    class SecurePool(HTTPSConnectionPool):
        ConnectionCls = SecureConnection

    adapter = HTTPAdapter(max_retries=0)
    adapter.poolmanager.pool_classes_by_scheme = {"http": Pool, "https": SecurePool}
    return adapter


def _request(session: requests.Session, method: str, url: str, headers: dict[str, str],
             body: bytes | None, now: datetime, deadline: _Deadline) -> Answer:
    try:
        # verify and cert are passed explicitly: requests would otherwise let REQUESTS_CA_BUNDLE
        # from the environment override the CA the exporter configured (its certificate_file or
        # OTEL_EXPORTER_OTLP_CERTIFICATE).
        response = session.request(method, url, headers=headers, data=body,
                                   timeout=deadline.seconds, allow_redirects=False,
                                   verify=session.verify, cert=session.cert, stream=True)
    except Exception as exc:  # any failure is an unanswered attempt
        if deadline.passed:
            return _too_late(deadline)
        return Answer(None, f"no answer: {type(exc).__name__}")
    if deadline.passed:  # cut off in the status line or the headers: nothing to believe
        response.close()
        return _too_late(deadline)
    with response:
        retry_after = retry_after_seconds(response.headers.get("Retry-After"), now)
        content = _body_start(response)
        message = None
        if response.status_code >= 400:
            message = status_message(response.headers.get("Content-Type"), content)
        if message is not None:
            text = message[:_ANSWER_CHARS]
        else:
            text = _text(content[:4 * _ANSWER_CHARS], response.encoding)[:_ANSWER_CHARS]
        return Answer(response.status_code, text.strip() or (response.reason or ""), retry_after,
                      message)


def _too_late(deadline: _Deadline) -> Answer:
    return Answer(None, f"no answer within {deadline.seconds:g} s")


def _text(content: bytes, encoding: str | None) -> str:
    try:
        return content.decode(encoding or "utf-8", "replace")
    except LookupError:  # a charset Python does not know
        return content.decode("utf-8", "replace")


def _body_start(response: requests.Response) -> bytes:
    """At most `_BODY_BYTES` of the answer's body, decoded; what arrived if it breaks off."""
    try:
        return bytes(response.raw.read(_BODY_BYTES, decode_content=True) or b"")
    except Exception:  # a body that breaks off or does not decode is no text, not a failure
        return b""


def status_message(content_type: str | None, body: bytes) -> str | None:
    """The message of an OTLP refusal's body (a protobuf google.rpc.Status, as the OTLP
    receiver writes it for a protobuf request); None for any other or undecodable body."""
    media_type = (content_type or "").split(";", 1)[0].strip().lower()
    if media_type != "application/x-protobuf" or len(body) > _STATUS_BYTES:
        return None
    try:
        # The OTLP exporter's own dependency (googleapis-common-protos), untyped.
        from google.rpc.status_pb2 import Status  # type: ignore[import-untyped]

        status = Status()
        status.ParseFromString(body)
        return str(status.message)
    except Exception:  # a bad body is just not a status; it never raises into the host
        return None


def retry_after_seconds(value: str | None, now: datetime) -> float | None:
    """Retry-After in seconds (RFC 9110: delay-seconds, or an HTTP-date measured from `now`,
    the injected clock's time)."""
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        if when.tzinfo is None:  # RFC 9110 dates are GMT
            return None
        return max((when - now).total_seconds(), 0.0)
    return max(seconds, 0.0) if math.isfinite(seconds) else None
