"""The old usage-statistics feature's tables: one row per event, and its settings."""

from __future__ import annotations

import json
import uuid
from typing import Any

from otel_usage.clock import default_clock  # the project's one clock hook (wall clock there)

from .base_repository import BaseRepository


class UsageStatisticsRepository(BaseRepository):
    async def insert_event(self, event_type: str, metadata: dict[str, Any] | None) -> None:
        await self.database.execute(
            "INSERT INTO usage_events (id, event_type, timestamp, metadata) VALUES (?, ?, ?, ?)",
            str(uuid.uuid4()), event_type, default_clock().now().isoformat(),
            json.dumps(metadata or {}))

    async def events(self) -> list[dict[str, Any]]:
        rows = await self.database.execute(
            "SELECT id, event_type, timestamp, metadata FROM usage_events ORDER BY timestamp")
        return [{"id": i, "event_type": t, "timestamp": s, "metadata": json.loads(m or "{}")}
                for i, t, s, m in rows]

    async def count(self, since: str | None = None, kinds: tuple[str, ...] = ()) -> int:
        sql, params = "SELECT count(*) FROM usage_events WHERE 1 = 1", []
        if since is not None:
            sql, params = sql + " AND timestamp >= ?", [since]
        if kinds:
            sql += f" AND event_type IN ({', '.join('?' * len(kinds))})"
            params += list(kinds)
        return int((await self.database.execute(sql, *params))[0][0])

    async def get_setting(self, key: str) -> str | None:
        rows = await self.database.execute("SELECT value FROM usage_settings WHERE key = ?", key)
        return str(rows[0][0]) if rows else None

    async def set_setting(self, key: str, value: str) -> None:
        await self.database.execute(
            "INSERT OR REPLACE INTO usage_settings (key, value) VALUES (?, ?)", key, value)

    async def settings(self) -> dict[str, str]:
        return dict(await self.database.execute("SELECT key, value FROM usage_settings"))

    async def delete_events(self) -> int:
        count = await self.count()
        await self.database.execute("DELETE FROM usage_events")
        return count
