"""Its printers' table."""

from __future__ import annotations

from .base_repository import BaseRepository


class PrinterRepository(BaseRepository):
    async def list(self) -> list[dict[str, str]]:
        rows = await self.database.execute("SELECT id, name, type FROM printers ORDER BY id")
        return [{"id": i, "name": n, "type": t} for i, n, t in rows]

    async def add(self, printer_id: str, name: str, kind: str) -> None:
        await self.database.execute("INSERT INTO printers (id, name, type) VALUES (?, ?, ?)",
                                    printer_id, name, kind)
