"""Its jobs' API: a job is created on a printer, then its status changes."""

from __future__ import annotations

import uuid

from fastapi import APIRouter, HTTPException, Request

from ...utils.errors import PrinterBusyError

router = APIRouter()


@router.post("")
async def create_job(request: Request, body: dict[str, str]) -> dict[str, str]:
    state = request.app.state
    kind = await state.printer_service.printer_type(body["printer_id"])
    job_id = str(uuid.uuid4())
    await state.job_repository.add(job_id, body["printer_id"], body.get("file_name"))
    await state.usage_statistics_service.record_event(
        "job_created", {"printer_type": kind, "file_name": body.get("file_name")})
    return {"id": job_id, "status": "pending"}


@router.put("/{job_id}/status")
async def set_status(request: Request, job_id: str, body: dict[str, str]) -> dict[str, str]:
    state = request.app.state
    kind = await state.job_repository.printer_type(job_id)
    if kind is None:
        raise HTTPException(status_code=404, detail="Job not found")
    if body["status"] == "printing":
        raise PrinterBusyError(job_id)
    if body["status"] == "crash":  # what an unhandled fault in a service looks like
        raise RuntimeError("the job's printer driver failed")
    await state.job_repository.set_status(job_id, body["status"])
    if body["status"] in ("completed", "failed"):
        await state.usage_statistics_service.record_event(
            f"job_{body['status']}", {"printer_type": kind})
    return {"id": job_id, "status": body["status"]}
