"""The old usage-statistics service: a row per event, kept whether or not the user opted in,
an opt-in switch, and a weekly summary for a fixed address (which it never manages to send)."""

from __future__ import annotations

import json
import uuid
from datetime import timedelta
from typing import Any

from otel_usage.clock import default_clock  # the project's one clock hook (wall clock there)

from ..database.database import Database
from ..database.repositories import UsageStatisticsRepository
from ..models.usage_statistics import OptInStatus


class UsageStatisticsService:
    def __init__(self, database: Database) -> None:
        self.repository = UsageStatisticsRepository(database)
        self.printer_service: Any = None

    async def initialize(self) -> None:
        """Nothing to prepare: the tables come with the database's migrations."""

    def set_printer_service(self, printer_service: Any) -> None:
        self.printer_service = printer_service

    async def record_event(self, event_type: str, metadata: dict[str, Any] | None = None) -> None:
        await self.repository.insert_event(str(event_type), metadata)

    async def is_opted_in(self) -> bool:
        return await self.repository.get_setting("opt_in_status") == OptInStatus.ENABLED

    async def opt_in(self) -> dict[str, Any]:
        installation_id = await self.repository.get_setting("installation_id")
        if installation_id is None:  # made when the user first agrees
            installation_id = str(uuid.uuid4())
            await self.repository.set_setting("installation_id", installation_id)
        await self.repository.set_setting("opt_in_status", OptInStatus.ENABLED)
        return {"success": True, "installation_id": installation_id,
                "message": "Usage statistics enabled."}

    async def opt_out(self) -> dict[str, Any]:
        await self.repository.set_setting("opt_in_status", OptInStatus.DISABLED)
        return {"success": True, "installation_id": None,
                "message": "Usage statistics disabled."}

    async def get_local_stats(self) -> dict[str, Any]:
        settings = await self.repository.settings()
        since = (default_clock().now() - timedelta(days=7)).isoformat()  # the last seven days
        week = {"job_count": await self.repository.count(since, ("job_created",)),
                "file_count": await self.repository.count(since, ("file_downloaded",)),
                "error_count": await self.repository.count(since, ("error_occurred",))}
        return {"installation_id": settings.get("installation_id"),
                "first_seen": settings.get("first_seen"),
                "opt_in_status": settings.get("opt_in_status", OptInStatus.DISABLED),
                "total_events": await self.repository.count(), "this_week": week,
                "last_submission": settings.get("last_submission")}

    async def export_stats(self) -> str:
        return json.dumps({"events": await self.repository.events(),
                           "settings": await self.repository.settings(),
                           "exported_at": default_clock().now().isoformat(),
                           "export_version": "1.0"})

    async def delete_all_stats(self) -> int:
        """Delete the events; the installation id and the switch stay."""
        return await self.repository.delete_events()

    async def submit_stats(self) -> bool:
        """The weekly summary, when opted in: the stand-in has no address to send it to."""
        return False
