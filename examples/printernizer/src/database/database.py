"""Its database (aiosqlite there; sqlite3 in a thread here), made by its migrations, the
usage-statistics feature's tables included."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path
from typing import Any

TABLES = [
    "CREATE TABLE IF NOT EXISTS printers (id TEXT PRIMARY KEY, name TEXT NOT NULL, "
    "type TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS jobs (id TEXT PRIMARY KEY, printer_id TEXT NOT NULL, "
    "file_name TEXT, status TEXT NOT NULL DEFAULT 'pending')",
    "CREATE TABLE IF NOT EXISTS usage_events (id TEXT PRIMARY KEY, event_type TEXT NOT NULL, "
    "timestamp DATETIME NOT NULL, metadata TEXT, submitted BOOLEAN DEFAULT 0, "
    "created_at DATETIME DEFAULT CURRENT_TIMESTAMP)",
    "CREATE TABLE IF NOT EXISTS usage_settings (key TEXT PRIMARY KEY, value TEXT NOT NULL, "
    "updated_at DATETIME DEFAULT CURRENT_TIMESTAMP)",
]


class Database:
    def __init__(self, path: str) -> None:
        self.path = path

    async def execute(self, sql: str, *params: Any) -> list[tuple[Any, ...]]:
        return await asyncio.to_thread(self._execute, sql, params)

    def _execute(self, sql: str, params: tuple[Any, ...]) -> list[tuple[Any, ...]]:
        with sqlite3.connect(self.path) as conn:
            return conn.execute(sql, params).fetchall()

    async def initialize(self) -> None:
        await asyncio.to_thread(self._create)

    def _create(self) -> None:
        Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        with sqlite3.connect(self.path) as conn:
            conn.execute("PRAGMA journal_mode=WAL")
            for table in TABLES:
                conn.execute(table)
