"""The old scheduler's tests: it starts a task and stops it."""

from __future__ import annotations

import pytest
from src.services.usage_statistics_scheduler import UsageStatisticsScheduler

pytestmark = pytest.mark.asyncio


async def test_start_and_stop():
    scheduler = UsageStatisticsScheduler(service=None)
    await scheduler.start()
    assert scheduler.task is not None and not scheduler.task.done()
    await scheduler.stop()
    assert scheduler.task.cancelled()
