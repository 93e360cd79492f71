"""What a request to change something must show, for the privacy page's API and for
Printernizer's old ``/api/v1/usage-stats`` alike: a body that is JSON (or, for the old API's
bodiless calls, none), and for an agreement the catalog version the user was shown.

Refusals are :class:`ApiError`, answered as JSON ``{"error": <code>, "detail": <sentence>}``
with a 4xx status by the routers themselves (a router cannot install exception handlers on the
host's app).
"""

from __future__ import annotations

import json
from typing import Any

from fastapi import Request
from fastapi.responses import JSONResponse

from ..telemetry import UsageTelemetry

__all__ = ["NO_STORE", "ApiError", "agreed_version", "error_response", "json_object"]

NO_STORE = {"Cache-Control": "no-store"}


class ApiError(Exception):
    """A request the API refuses: an HTTP status, a short code and a sentence for people."""

    def __init__(self, status: int, code: str, detail: str,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(detail)
        self.status, self.code, self.detail, self.headers = status, code, detail, headers


def error_response(exc: ApiError) -> JSONResponse:
    return JSONResponse({"error": exc.code, "detail": exc.detail}, status_code=exc.status,
                        headers={**NO_STORE, **(exc.headers or {})})


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
