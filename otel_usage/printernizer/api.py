"""Printernizer's ``/api/v1/usage-stats`` endpoints, unchanged, over the drop-in service.

Its front end keeps calling what it calls today, with the same JSON shapes:

- ``GET /status`` -> ``{service_available, opted_in, total_events, collection_active}``
- ``GET /local`` -> ``{installation_id, first_seen, opt_in_status, total_events,
  this_week: {job_count, file_count, error_count}, last_submission}``
- ``POST /opt-in``, ``POST /opt-out`` -> ``{success, installation_id, message}``
- ``GET /export`` -> a JSON file download (``events``, ``settings``, ``exported_at``,
  ``export_version``, and the whole local store under ``usage``)
- ``DELETE`` on the prefix itself -> ``{success, deleted_events, message}``

What changes something (``opt-in``, ``opt-out``, ``DELETE``, ``POST /consent``) takes no body
or a JSON one, and only from Printernizer's own pages: a request another site's page makes is
refused with 403 ``cross_site`` (:mod:`otel_usage.web._guard`), as by the privacy page's API.

The switch behind ``opt-in`` / ``opt-out`` is the privacy page's mode (``on`` / ``local``);
``opt-in`` consents to catalog version 1, what the old switch described. What a newer catalog
adds is offered as the privacy page offers it, for the old privacy tab to show with one small
change (``?lang=de`` for German):

- ``GET /consent`` -> ``{opted_in, consented_version, catalog_version, additions}``
- ``POST /consent`` with ``{"catalog_version": N}``, the version shown -> the same shape; mode
  ``on`` agreeing to it (409 ``catalog_changed`` when it is no longer the one in force).

Only this module and :mod:`otel_usage.web` import FastAPI (the ``web`` extra).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import asdict
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from ..errors import UsageError
from ..web._guard import (
    ApiError,
    agreed_version,
    empty_or_json,
    error_response,
    json_object,
    same_origin_only,
)
from .service import OptInResponse, UsageStatisticsService

__all__ = ["PREFIX", "usage_stats_router"]

PREFIX = "/api/v1/usage-stats"
NO_STORE = {"Cache-Control": "no-store"}


def usage_stats_router(service: UsageStatisticsService, *, prefix: str = PREFIX) -> APIRouter:
    """The old endpoints for `service`, under `prefix`."""
    router = APIRouter(prefix=prefix.rstrip("/"), tags=["usage statistics"])

    @router.get("/status")
    async def status() -> JSONResponse:
        mode = await service.usage.amode()
        return _json({"service_available": True, "opted_in": mode == "on",
                      "total_events": await service.total_events(),
                      "collection_active": mode != "off"})

    @router.get("/local")
    async def local() -> JSONResponse:
        return _json(asdict(await service.get_local_stats()))

    @router.post("/opt-in")
    async def opt_in(request: Request) -> Response:
        return await _answered(request, lambda: _switched(service.opt_in()))

    @router.post("/opt-out")
    async def opt_out(request: Request) -> Response:
        return await _answered(request, lambda: _switched(service.opt_out()))

    @router.get("/export")
    async def export() -> Response:
        body = await service.export_stats()
        day = service.usage.clock.now().date().isoformat()
        return Response(body, media_type="application/json", headers={
            **NO_STORE,
            "Content-Disposition": f'attachment; filename="usage-statistics-{day}.json"'})

    @router.get("/consent")
    async def consent(lang: str = "en") -> JSONResponse:
        return _json(await _offer(service, lang))

    @router.post("/consent")
    async def agree(request: Request) -> Response:
        return await _answered(request, lambda: _agree(service, request), body="json")

    @router.delete("")
    async def delete_all(request: Request) -> Response:
        return await _answered(request, lambda: _delete_all(service))

    return router


async def _switched(answer: Awaitable[OptInResponse]) -> JSONResponse:
    done = await answer
    return _json(asdict(done), status=200 if done.success else 500)


async def _delete_all(service: UsageStatisticsService) -> JSONResponse:
    deleted = await service.total_events()
    if not await service.delete_all_stats():
        return _json({"success": False, "deleted_events": 0,
                      "message": "Failed to delete usage statistics."}, status=500)
    return _json({"success": True, "deleted_events": deleted,
                  "message": f"Deleted {deleted} usage statistics events."})


def _json(data: dict[str, Any], status: int = 200) -> JSONResponse:
    return JSONResponse(data, status_code=status, headers=NO_STORE)


async def _offer(service: UsageStatisticsService, language: str) -> dict[str, Any]:
    """The consent in force and what this catalog adds to it, in `language` (en or de)."""
    usage = service.usage
    info = await asyncio.to_thread(usage.catalog_additions)
    agreed = info["consented_version"]
    additions = usage.catalog.additions(agreed) if agreed is not None else ()
    return {"opted_in": agreed is not None, "consented_version": agreed,
            "catalog_version": info["catalog_version"],
            "additions": [{**a.as_json(), "text": a.describe(language)} for a in additions]}


async def _agree(service: UsageStatisticsService, request: Request) -> Response:
    """Mode ``on``, agreeing to the catalog version the request names (the one in force)."""
    body = await json_object(request)
    agreed_version(service.usage, body, '{"catalog_version": N}')
    await service.usage.aset_mode("on", source="printernizer")
    return _json(await _offer(service, request.query_params.get("lang", "en")))


async def _answered(request: Request, handler: Callable[[], Awaitable[Response]],
                    body: str = "none or json") -> Response:
    """`handler`'s answer to a change the page's own origin asks for, with no body or a JSON
    one (`body` ``"json"``: a JSON object, read by the handler); a refusal or the library's
    error as JSON ``{"error", "detail"}``, never a bare 500."""
    try:
        same_origin_only(request)
        if body != "json":
            await empty_or_json(request)
        return await handler()
    except ApiError as exc:
        return error_response(exc)
    except UsageError as exc:
        return error_response(ApiError(503, "store_unavailable", str(exc)))
