"""The old usage-statistics scheduler: tries to submit once a week, from a task of its own."""

from __future__ import annotations

import asyncio
import contextlib

from .usage_statistics_service import UsageStatisticsService

WEEK_S = 7 * 24 * 3600


class UsageStatisticsScheduler:
    def __init__(self, service: UsageStatisticsService) -> None:
        self.service = service
        self.task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self.task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        if self.task is not None:
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.task

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(WEEK_S)
            await self.service.submit_stats()
