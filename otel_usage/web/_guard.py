"""What a request to change something must show, for the privacy page's API and for
Printernizer's old ``/api/v1/usage-stats`` alike: that it comes from the page's own origin, a
body that is JSON (or, for the old API's bodiless calls, none), and for an agreement the catalog
version the user was shown.

Printernizer runs on a home network without a login, so any web page its user opens could
otherwise switch the mode (a form, a ``no-cors`` fetch). Every state-changing request (any
method but GET, HEAD, OPTIONS) is refused with 403 ``cross_site`` unless the browser says it
comes from the same origin: ``Sec-Fetch-Site`` is ``same-origin`` or ``none`` (typed by the
user); where a browser sends no ``Sec-Fetch-Site`` (it sends it only to HTTPS and loopback
addresses), ``Origin``, when present, must be the request's host: ``Host``, or the
``X-Forwarded-Host`` Home Assistant's ingress sets. Same-site is not enough: two ports of one
host are one site but two origins. A request with neither header (a script, curl) is no
browser's and passes.

Refusals are :class:`ApiError`, answered as JSON ``{"error": <code>, "detail": <sentence>}``
with a 4xx status by the routers themselves (a router cannot install exception handlers on the
host's app).
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlsplit

from fastapi import Request
from fastapi.responses import JSONResponse

from ..telemetry import UsageTelemetry

__all__ = ["NO_STORE", "ApiError", "agreed_version", "empty_or_json", "error_response",
           "json_object", "same_origin_only"]

NO_STORE = {"Cache-Control": "no-store"}
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
_SAME_ORIGIN_SITES = frozenset({"same-origin", "none"})
_DEFAULT_PORTS = {"http": 80, "https": 443}


class ApiError(Exception):
    """A request the API refuses: an HTTP status, a short code and a sentence for people."""

    def __init__(self, status: int, code: str, detail: str,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(detail)
        self.status, self.code, self.detail, self.headers = status, code, detail, headers


def error_response(exc: ApiError) -> JSONResponse:
    return JSONResponse({"error": exc.code, "detail": exc.detail}, status_code=exc.status,
                        headers={**NO_STORE, **(exc.headers or {})})


def same_origin_only(request: Request) -> None:
    """Refuse (403) a state-changing request that a page of another origin made."""
    if request.method in SAFE_METHODS:
        return
    site = request.headers.get("sec-fetch-site")
    if site is not None:
        if site.strip().lower() not in _SAME_ORIGIN_SITES:
            raise _cross_site(f"Sec-Fetch-Site: {site}")
        return
    origin = request.headers.get("origin")
    if origin is None:
        return
    endpoint = _endpoint(origin)
    if endpoint is None or endpoint not in _hosts(request, origin):
        raise _cross_site(f"Origin: {origin}")


def _cross_site(evidence: str) -> ApiError:
    return ApiError(403, "cross_site",
                    "refused: a page of another site cannot change usage statistics "
                    f"({evidence}); change them on Printernizer's own pages")


def _endpoint(origin: str) -> tuple[str, int] | None:
    """An origin's (host, port); None for an opaque or malformed one (``null``)."""
    try:
        parts = urlsplit(origin.strip())
        port = parts.port or _DEFAULT_PORTS.get(parts.scheme)
    except ValueError:
        return None
    if parts.scheme not in _DEFAULT_PORTS or not parts.hostname or port is None:
        return None
    return parts.hostname.lower(), port


def _hosts(request: Request, origin: str) -> set[tuple[str, int]]:
    """The (host, port) pairs the request was addressed to: ``Host`` and each
    ``X-Forwarded-Host``; a host without a port has the origin's scheme's default port."""
    scheme = urlsplit(origin.strip()).scheme
    named = [request.headers.get("host", ""),
             *request.headers.get("x-forwarded-host", "").split(",")]
    found = (_endpoint(f"{scheme}://{host.strip()}") for host in named if host.strip())
    return {host for host in found if host is not None}


async def empty_or_json(request: Request) -> None:
    """No body (Printernizer's front end sends none), or a JSON one; 415 otherwise (a form,
    text or multipart, which any page can make a browser send)."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type == "application/json" or (not content_type
                                              and not (await request.body()).strip()):
        return
    raise ApiError(415, "json_required",
                   "send no body, or the request body as application/json")


async def json_object(request: Request) -> dict[str, Any]:
    """The request's JSON object body; 415 unless it is JSON, 400 unless it is an object."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type != "application/json":
        raise ApiError(415, "json_required", "send the request body as application/json")
    raw = await request.body()
    try:
        body = json.loads(raw) if raw.strip() else {}
    except (ValueError, UnicodeDecodeError) as exc:
        raise ApiError(400, "invalid_json", f"the body is not valid JSON: {exc}") from exc
    if not isinstance(body, dict):
        raise ApiError(400, "invalid_json", "the body must be a JSON object")
    return body


def agreed_version(usage: UsageTelemetry, body: dict[str, Any], shape: str) -> int:
    """The catalog version an agreement names (`shape` shows how to send it): it must be the
    one in force. A page opened before an upgrade must not agree to what it never listed: it
    is refused, and reloads what is new."""
    version = body.get("catalog_version")
    if not isinstance(version, int) or isinstance(version, bool):
        raise ApiError(422, "catalog_version_required",
                       f"agreeing names the catalog version you were shown: send {shape}")
    if version != usage.catalog.version:
        raise ApiError(409, "catalog_changed",
                       f"what may be sent has changed since version {version} was shown: it "
                       f"is version {usage.catalog.version} now; look at it again")
    return version
