"""Its printers' API."""

from __future__ import annotations

from fastapi import APIRouter, Request

router = APIRouter()


@router.post("")
async def add_printer(request: Request, body: dict[str, str]) -> dict[str, str]:
    printer_id = await request.app.state.printer_service.add_printer(body["name"], body["type"])
    return {"id": printer_id}
