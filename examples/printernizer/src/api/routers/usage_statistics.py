"""The old usage-statistics API, the six calls of its front end's privacy tab."""

from __future__ import annotations

import json
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

router = APIRouter()


def _service(request: Request) -> Any:
    return request.app.state.usage_statistics_service


@router.get("/status")
async def status(request: Request) -> dict[str, Any]:
    service = _service(request)
    total = (await service.get_local_stats())["total_events"]
    return {"service_available": True, "opted_in": await service.is_opted_in(),
            "total_events": total, "collection_active": True}


@router.get("/local")
async def local(request: Request) -> dict[str, Any]:
    stats: dict[str, Any] = await _service(request).get_local_stats()
    return stats


@router.post("/opt-in")
async def opt_in(request: Request) -> dict[str, Any]:
    answer: dict[str, Any] = await _service(request).opt_in()
    return answer


@router.post("/opt-out")
async def opt_out(request: Request) -> dict[str, Any]:
    answer: dict[str, Any] = await _service(request).opt_out()
    return answer


@router.get("/export")
async def export(request: Request) -> Response:
    body = await _service(request).export_stats()
    json.loads(body)  # a broken export is an error, not a download
    return Response(body, media_type="application/json", headers={
        "Content-Disposition": 'attachment; filename="usage-statistics-export.json"'})


@router.delete("")
async def delete_all(request: Request) -> dict[str, Any]:
    deleted = await _service(request).delete_all_stats()
    return {"success": True, "deleted_events": deleted,
            "message": f"Deleted {deleted} usage statistics events."}
