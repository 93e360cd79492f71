"""Its printer service: it lists printers with an async call and counts its connections."""

from __future__ import annotations

import uuid
from typing import Any

from ..database.database import Database
from ..database.repositories import PrinterRepository
from ..utils.errors import PrinterNotFoundError


class PrinterService:
    def __init__(self, database: Database, usage_stats_service: Any) -> None:
        self.printers = PrinterRepository(database)
        self.usage_stats_service = usage_stats_service

    async def list_printers(self) -> list[dict[str, str]]:
        return await self.printers.list()

    async def add_printer(self, name: str, kind: str) -> str:
        printer_id = str(uuid.uuid4())
        await self.printers.add(printer_id, name, kind)
        await self.usage_stats_service.record_event("printer_connected", {"printer_type": kind})
        return printer_id

    async def printer_type(self, printer_id: str) -> str:
        for printer in await self.list_printers():
            if printer["id"] == printer_id:
                return printer["type"]
        raise PrinterNotFoundError(printer_id)
