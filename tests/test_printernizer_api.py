"""Printernizer's /api/v1/usage-stats, unchanged in paths and JSON shapes, beside the privacy
page, with one switch behind both."""

from __future__ import annotations

import json
import math
from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from otel_usage import ManualClock, UsageTelemetry
from otel_usage.catalog import load_catalog
from otel_usage.printernizer import UsageStatisticsService
from otel_usage.printernizer.api import usage_stats_router
from otel_usage.web import privacy_router

VERSION = load_catalog().version


@pytest.fixture
async def service(data_dir: Path, midweek: datetime) -> AsyncIterator[UsageStatisticsService]:
    usage = UsageTelemetry(data_dir, service_version="2.42.0", export_interval_s=math.inf,
                           clock=ManualClock(midweek))
    service = UsageStatisticsService(usage)
    await service.initialize()
    yield service
    await usage.ashutdown()


@pytest.fixture
async def client(service: UsageStatisticsService) -> AsyncIterator[httpx.AsyncClient]:
    app = FastAPI()
    app.include_router(usage_stats_router(service))
    app.include_router(privacy_router(service.usage, prefix="/usage"))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://printernizer") as c:
        yield c


async def test_the_old_endpoints_answer_the_old_shapes(
    client: httpx.AsyncClient, midweek: datetime,
) -> None:
    status = await client.get("/api/v1/usage-stats/status")
    assert (status.status_code, status.json()) == (200, {
        "service_available": True, "opted_in": False, "total_events": 0,
        "collection_active": True})
    local = (await client.get("/api/v1/usage-stats/local")).json()
    installation_id = local["installation_id"]
    assert local == {"installation_id": installation_id,
                     "first_seen": midweek.date().isoformat(), "opt_in_status": "disabled",
                     "total_events": 0,
                     "this_week": {"job_count": 0, "file_count": 0, "error_count": 0},
                     "last_submission": None}
    opted = await client.post("/api/v1/usage-stats/opt-in")
    assert (opted.status_code, opted.json()) == (200, {
        "success": True, "installation_id": installation_id,
        "message": "Usage statistics enabled. Thank you for helping improve Printernizer!"})
    export = await client.get("/api/v1/usage-stats/export")
    assert export.headers["content-disposition"] == (
        f'attachment; filename="usage-statistics-{midweek.date().isoformat()}.json"')
    exported = json.loads(export.text)
    assert (sorted(exported), exported["settings"]["opt_in_status"]) == (
        ["events", "export_version", "exported_at", "settings", "usage"], "enabled")
    out = await client.post("/api/v1/usage-stats/opt-out")
    assert out.json() == {"success": True, "installation_id": None,
                          "message": "Usage statistics disabled. Your data will remain local."}
    deleted = await client.delete("/api/v1/usage-stats")
    # The app's start, exported when the mode changed (counts are stored under the mode they
    # were counted in, before it changes).
    assert (deleted.status_code, deleted.json()) == (200, {
        "success": True, "deleted_events": 1, "message": "Deleted 1 usage statistics events."})


async def test_one_switch_behind_the_old_api_and_the_privacy_page(
    client: httpx.AsyncClient,
) -> None:
    await client.post("/api/v1/usage-stats/opt-in")
    assert (await client.get("/usage/api/mode")).json()["mode"] == "on"
    changed = await client.put("/usage/api/mode", json={"mode": "local"})
    assert changed.json()["mode"] == "local"
    status = (await client.get("/api/v1/usage-stats/status")).json()
    assert (status["opted_in"], status["collection_active"]) == (False, True)
    await client.put("/usage/api/mode", json={"mode": "off"})
    status = (await client.get("/api/v1/usage-stats/status")).json()
    assert (status["opted_in"], status["collection_active"]) == (False, False)
    local = (await client.get("/api/v1/usage-stats/local")).json()
    assert local["opt_in_status"] == "disabled"


async def test_delete_counts_what_it_deleted(
    client: httpx.AsyncClient, service: UsageStatisticsService,
) -> None:
    for _ in range(3):
        await service.record_event("job_completed", {"printer_type": "bambu_lab"})
    service.usage.flush()
    before = (await client.get("/api/v1/usage-stats/status")).json()["total_events"]
    deleted = (await client.delete("/api/v1/usage-stats")).json()
    assert (before, deleted) == (4, {"success": True, "deleted_events": 4,
                                     "message": "Deleted 4 usage statistics events."})
    assert (await client.get("/api/v1/usage-stats/status")).json()["total_events"] == 0


async def test_the_old_privacy_tab_is_offered_what_is_new_and_agrees_naming_its_version(
    client: httpx.AsyncClient,
) -> None:
    """Opted in through the old switch (version 1): what the catalog added since is offered,
    and an agreement names the version it was shown; another version is refused, as is an
    agreement with no version."""
    await client.post("/api/v1/usage-stats/opt-in")
    offer = (await client.get("/api/v1/usage-stats/consent")).json()
    additions = [a.as_json() for a in load_catalog().additions(1)]
    assert offer == {"opted_in": True, "consented_version": 1, "catalog_version": VERSION,
                     "additions": additions}
    german = (await client.get("/api/v1/usage-stats/consent?lang=de")).json()
    assert german["additions"][0]["text"] == load_catalog().additions(1)[0].describe("de")
    for body, status, error in [({}, 422, "catalog_version_required"),
                                ({"catalog_version": VERSION - 1}, 409, "catalog_changed")]:
        refused = await client.post("/api/v1/usage-stats/consent", json=body)
        assert (refused.status_code, refused.json()["error"]) == (status, error)
    assert (await client.get("/api/v1/usage-stats/consent")).json() == offer
    agreed = await client.post("/api/v1/usage-stats/consent",
                               json={"catalog_version": VERSION})
    assert (agreed.status_code, agreed.json()) == (200, {
        "opted_in": True, "consented_version": VERSION, "catalog_version": VERSION,
        "additions": []})
    assert (await client.get("/usage/api/mode")).json()["consented_version"] == VERSION
