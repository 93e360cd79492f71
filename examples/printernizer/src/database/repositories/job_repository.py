"""Its jobs' table."""

from __future__ import annotations

from .base_repository import BaseRepository


class JobRepository(BaseRepository):
    async def add(self, job_id: str, printer_id: str, file_name: str | None) -> None:
        await self.database.execute(
            "INSERT INTO jobs (id, printer_id, file_name) VALUES (?, ?, ?)",
            job_id, printer_id, file_name)

    async def printer_type(self, job_id: str) -> str | None:
        rows = await self.database.execute(
            "SELECT p.type FROM jobs j JOIN printers p ON p.id = j.printer_id WHERE j.id = ?",
            job_id)
        return str(rows[0][0]) if rows else None

    async def set_status(self, job_id: str, status: str) -> None:
        await self.database.execute("UPDATE jobs SET status = ? WHERE id = ?", status, job_id)
