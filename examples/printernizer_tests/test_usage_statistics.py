"""Printernizer's usage statistics as its users rely on them, over otel-usage.

Add this module as ``tests/services/test_usage_statistics.py`` when switching over: it replaces
the tests of the old submission and scheduler (which import the deleted modules). It holds the
same promises: nothing is sent when opted out; statistics are sent when opted in, at most once a
week; nothing is sent twice and a failed send is retried; a failing send never breaks the app.

``usage_stats_service`` is otel-usage's drop-in ``UsageStatisticsService``, the one
``app.state.usage_statistics_service`` holds; what it sends reaches a loopback endpoint of
otel-usage's testing API, which records it (no mock, no network). Time is a ``ManualClock``
started on a Wednesday of the week otel-usage's clock hook is in (the machine's clock, or
``OTEL_USAGE_NOW``), so the tests hold on any date.
"""

from __future__ import annotations

import math
from collections.abc import AsyncIterator, Iterator
from datetime import timedelta
from pathlib import Path

import pytest
import pytest_asyncio

from otel_usage import UsageTelemetry
from otel_usage.clock import default_clock
from otel_usage.printernizer import UsageStatisticsService
from otel_usage.testing import (
    LoopbackEndpoint,
    ManualClock,
    loopback_endpoint,
    report_when_week_closes,
)
from otel_usage.weeks import Week

pytestmark = pytest.mark.asyncio
JOBS = ("printernizer.jobs", (("job.status", "completed"), ("printer.type", "bambu_lab")))
REFUSED = "http://127.0.0.1:9"  # the discard port: nothing listens, the connection is refused


@pytest.fixture
def endpoint() -> Iterator[LoopbackEndpoint]:
    with loopback_endpoint() as running:
        yield running


@pytest.fixture
def clock() -> ManualClock:
    """Wednesday noon of this week: the user's choice is made then."""
    return ManualClock(Week.of(default_clock().now()).start + timedelta(days=2, hours=12))


def make_service(data_dir: Path, clock: ManualClock, url: str) -> UsageStatisticsService:
    usage = UsageTelemetry(data_dir, clock=clock, endpoint=url, service_version="2.42.0",
                           export_interval_s=math.inf, background_uploads=False)
    return UsageStatisticsService(usage)


@pytest_asyncio.fixture
async def usage_stats_service(tmp_path: Path, clock: ManualClock,
                              endpoint: LoopbackEndpoint) -> AsyncIterator[UsageStatisticsService]:
    service = make_service(tmp_path / "data", clock, endpoint.url)
    await service.initialize()
    report_when_week_closes(service.usage)
    yield service
    await service.usage.ashutdown()


async def print_a_week(service: UsageStatisticsService, clock: ManualClock, jobs: int) -> Week:
    """The week after the choice: `jobs` jobs completed, then the week closes."""
    week = Week.of(clock.now()).next()
    clock.set(week.start + timedelta(hours=10))
    for _ in range(jobs):
        await service.record_event("job_completed", {"printer_type": "bambu_lab",
                                                     "file_name": "benchy.3mf"})
    service.usage.flush()
    clock.set(week.end + timedelta(hours=1))
    return week


class TestNothingSentWhenOptedOut:
    async def test_no_submission_when_never_asked(self, usage_stats_service, clock, endpoint):
        await print_a_week(usage_stats_service, clock, jobs=3)
        assert await usage_stats_service.submit_stats() is True
        assert endpoint.received == []

    async def test_no_submission_after_opting_out(self, usage_stats_service, clock, endpoint):
        await usage_stats_service.opt_in()
        await usage_stats_service.opt_out()
        await print_a_week(usage_stats_service, clock, jobs=3)
        assert await usage_stats_service.submit_stats() is True
        assert endpoint.reports == []
        assert await usage_stats_service.is_opted_in() is False


class TestSubmissionWhenOptedIn:
    async def test_a_closed_week_is_sent_with_its_counts(self, usage_stats_service, clock,
                                                         endpoint):
        opted = await usage_stats_service.opt_in()
        week = await print_a_week(usage_stats_service, clock, jobs=3)
        assert await usage_stats_service.submit_stats() is True
        (report,) = endpoint.reports
        assert (report.installation_id, report.week_start) == (opted.installation_id, week.start)
        assert report.points[JOBS] == 3
        assert all("benchy" not in str(point) for point in report.points)

    async def test_the_week_in_progress_is_not_sent(self, usage_stats_service, clock, endpoint):
        await usage_stats_service.opt_in()
        await print_a_week(usage_stats_service, clock, jobs=2)
        clock.set(clock.now() - timedelta(hours=2))  # the week's last hour
        assert await usage_stats_service.submit_stats() is True
        assert endpoint.received == []

    async def test_at_most_one_report_a_week(self, usage_stats_service, clock, endpoint):
        await usage_stats_service.opt_in()
        first = await print_a_week(usage_stats_service, clock, jobs=1)
        for _ in range(3):
            assert await usage_stats_service.submit_stats() is True
            clock.set(clock.now() + timedelta(days=1))
        second = await print_a_week(usage_stats_service, clock, jobs=2)
        assert await usage_stats_service.submit_stats() is True
        assert [(r.week_start, r.points[JOBS]) for r in endpoint.reports] == [
            (first.start, 1), (second.start, 2)]


class TestNoDoubleSendAndRetry:
    async def test_a_sent_week_is_not_sent_again_after_a_restart(
            self, usage_stats_service, clock, endpoint, tmp_path):
        await usage_stats_service.opt_in()
        await print_a_week(usage_stats_service, clock, jobs=1)
        assert await usage_stats_service.submit_stats() is True
        await usage_stats_service.usage.ashutdown()
        restarted = make_service(tmp_path / "data", clock, endpoint.url)
        await restarted.initialize()
        assert await restarted.submit_stats() is True
        await restarted.usage.ashutdown()
        assert len(endpoint.reports) == 1

    async def test_a_failed_send_is_retried_later(self, usage_stats_service, clock, endpoint):
        await usage_stats_service.opt_in()
        week = await print_a_week(usage_stats_service, clock, jobs=4)
        endpoint.fail_next(1, status=503)
        assert await usage_stats_service.submit_stats() is False
        assert await usage_stats_service.submit_stats() is True  # too soon to try again
        assert len(endpoint.reports) == 1
        clock.set(clock.now() + timedelta(hours=1))
        assert await usage_stats_service.submit_stats() is True
        refused, accepted = endpoint.reports
        assert refused == accepted
        assert (accepted.week_start, accepted.points[JOBS]) == (week.start, 4)
        clock.set(clock.now() + timedelta(hours=1))
        assert await usage_stats_service.submit_stats() is True
        assert len(endpoint.reports) == 2


class TestFailuresNeverBreakTheApp:
    async def test_an_unreachable_server_is_a_failed_send_not_an_error(self, tmp_path, clock):
        service = make_service(tmp_path / "data", clock, REFUSED)
        await service.initialize()
        report_when_week_closes(service.usage)
        await service.opt_in()
        await print_a_week(service, clock, jobs=2)
        assert await service.submit_stats() is False
        await service.record_event("job_completed", {"printer_type": "prusa_core"})
        assert (await service.get_local_stats()).opt_in_status == "enabled"
        await service.usage.ashutdown()

    async def test_a_server_error_is_a_failed_send_not_an_error(self, usage_stats_service,
                                                                clock, endpoint):
        await usage_stats_service.opt_in()
        await print_a_week(usage_stats_service, clock, jobs=1)
        endpoint.fail_next(1, status=500)
        assert await usage_stats_service.submit_stats() is False
        await usage_stats_service.record_event("job_failed", {"printer_type": "bambu_lab"})
        assert await usage_stats_service.is_opted_in() is True
        assert len(endpoint.reports) == 1
