"""The old usage-statistics service's tests: events are kept, the switch, no send when off."""

from __future__ import annotations

import pytest
from src.database.database import Database
from src.services.usage_statistics_service import UsageStatisticsService

pytestmark = pytest.mark.asyncio


@pytest.fixture
async def usage_stats_service(tmp_path):
    database = Database(str(tmp_path / "printernizer.db"))
    await database.initialize()
    return UsageStatisticsService(database)


async def test_events_are_kept_whether_or_not_opted_in(usage_stats_service):
    await usage_stats_service.record_event("job_completed", {"printer_type": "bambu_lab"})
    assert (await usage_stats_service.get_local_stats())["total_events"] == 1


async def test_no_submission_when_opted_out(usage_stats_service):
    await usage_stats_service.opt_out()
    assert await usage_stats_service.submit_stats() is False


async def test_opt_in_makes_the_installation_id(usage_stats_service):
    answer = await usage_stats_service.opt_in()
    assert (await usage_stats_service.get_local_stats())["installation_id"] == (
        answer["installation_id"])
