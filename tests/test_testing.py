"""The testing API's loopback endpoint: it records each report (installation, week, points) and
each erasure as the sender sent them, and answers as it is told."""

from __future__ import annotations

import math
from datetime import datetime, timedelta
from pathlib import Path

from otel_usage import UsageTelemetry
from otel_usage.testing import ManualClock, loopback_endpoint, report_when_week_closes
from otel_usage.weeks import Week

JOBS = ("printernizer.jobs", (("job.status", "completed"), ("printer.type", "octoprint")))


def test_the_loopback_endpoint_records_reports_and_erasures_and_fails_when_told(
    data_dir: Path, midweek: datetime,
) -> None:
    clock = ManualClock(midweek)
    with loopback_endpoint() as endpoint:
        usage = UsageTelemetry(data_dir, clock=clock, endpoint=endpoint.url,
                               export_interval_s=math.inf, background_uploads=False)
        usage.start()
        report_when_week_closes(usage)
        usage.set_mode("on")
        week = Week.of(midweek).next()
        clock.set(week.start + timedelta(hours=1))
        usage.meter().create_counter("printernizer.jobs").add(2, dict(JOBS[1]))
        usage.flush()
        clock.set(week.end)  # the week closes: its report is due
        endpoint.fail_next(1, status=503)
        assert usage.send_now()["retry"] == [week.label]
        clock.set(week.end + timedelta(hours=1))
        assert usage.send_now()["sent"] == [week.label]
        usage.set_mode("local")
        usage.send_now()
        usage.shutdown()
    refused, sent = endpoint.reports
    assert refused == sent
    assert (sent.path, sent.week_start, sent.points[JOBS]) == ("/v1/metrics", week.start, 2)
    (erasure,) = endpoint.erasures
    assert (erasure.installation_id, erasure.week_start, erasure.points) == (
        sent.installation_id, None, {})
    assert endpoint.received == [refused, sent, erasure]
