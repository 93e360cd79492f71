"""The publication step: closed weeks only, once, frozen; groups under k left out."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta

import pytest
from ingest_reports import CATALOG, NOW, new_installation, request
from ingest_support import database_url, query, settings  # noqa: F401  (fixture)

from ingest._maintenance import publish_due
from ingest._publish import bucket, cells, due_range
from ingest._store import ReportJob, Store, create_engine
from ingest._validate import Limits, validate

WEEK = date(2025, 6, 2)
LIMITS = Limits(CATALOG, NOW, 24, 3600)
Data = dict[str, list[tuple[dict[str, str], int]]]


def _job(installation: str, data: Data, week: date = WEEK, os: str = "linux") -> ReportJob:
    message = request(installation, week, data=data)
    for kv in message.resource_metrics[0].resource.attributes:
        if kv.key == "os.type":
            kv.value.string_value = os
    accepted = validate(message, LIMITS)
    return ReportJob(installation, "a" * 64, tuple(accepted.reports), datetime(2025, 6, 9))


@pytest.fixture
def store(database_url: str) -> Iterator[Store]:  # noqa: F811
    store = Store(create_engine(database_url))
    store.migrate()
    yield store
    store.dispose()


def _at(day: date, hour: int = 12) -> float:
    return datetime(day.year, day.month, day.day, hour, tzinfo=UTC).timestamp()


def _jobs(k: int = 5) -> list[ReportJob]:
    """k installations on linux with 2 jobs each, 2 on darwin with 7 uptime days."""
    linux = [_job(new_installation(), {"printernizer.jobs": [(
        {"job.status": "completed", "printer.type": "prusa_core"}, 2)]}) for _ in range(k)]
    darwin = [_job(new_installation(), {"printernizer.uptime": [({}, 7)]}, os="darwin")
              for _ in range(2)]
    return linux + darwin


def _published(url: str, kind: str) -> list[tuple[object, ...]]:
    return [(str(row[0])[:10], *row[1:]) for row in query(
        url, "SELECT week_start, metric, attribute, value, installations, total FROM "
             f"published_cells WHERE kind = '{kind}' ORDER BY metric, attribute, value")]


def test_a_week_is_published_once_its_reporting_window_has_ended(store: Store, database_url: str) -> None:  # noqa: F811
    """The week of 2 June ends 9 June; with 14 days of window it is due on 23 June."""
    store.write_reports(_jobs())
    assert publish_due(store, settings(database_url, clock=lambda: _at(date(2025, 6, 22), 23))) == []
    [published] = publish_due(store, settings(database_url, clock=lambda: _at(date(2025, 6, 23), 0)))
    assert (published.week, published.counted) == (datetime(2025, 6, 2), 7)
    assert query(database_url, "SELECT installations FROM usage_active_installations") == [(7,)]


def test_groups_under_k_are_left_out(store: Store, database_url: str) -> None:  # noqa: F811
    store.write_reports(_jobs())
    publish_due(store, settings(database_url, clock=lambda: _at(date(2025, 7, 1))))
    resource = [row for row in _published(database_url, "resource") if row[2] == "os.type"]
    assert resource == [("2025-06-02", "", "os.type", "linux", 5, 0)]
    metrics = [row for row in _published(database_url, "metric") if row[1] in (
        "printernizer.jobs", "printernizer.uptime")]
    assert metrics == [
        ("2025-06-02", "printernizer.jobs", "", "", 5, 10),
        ("2025-06-02", "printernizer.jobs", "job.status", "completed", 5, 10),
        ("2025-06-02", "printernizer.jobs", "printer.type", "prusa_core", 5, 10),
    ]
    uptime = [row for row in _published(database_url, "distribution") if row[1] == "printernizer.uptime"]
    assert uptime == [("2025-06-02", "printernizer.uptime", "", "0", 5, 0)]


def test_a_week_of_fewer_than_k_installations_shows_nothing(store: Store, database_url: str) -> None:  # noqa: F811
    store.write_reports(_jobs(k=2))
    [published] = publish_due(store, settings(database_url, clock=lambda: _at(date(2025, 7, 1))))
    assert (published.counted, published.cells) == (4, {})
    assert query(database_url, "SELECT COUNT(*) FROM published_cells") == [(0,)]
    assert [(str(w)[:10], n) for w, n in query(database_url, "SELECT week_start, installations FROM published_weeks")] == [
        ("2025-06-02", 4)]


def test_a_published_week_never_changes(store: Store, database_url: str) -> None:  # noqa: F811
    """Neither a late report nor an erasure nor another run changes what was published."""
    jobs = _jobs()
    store.write_reports(jobs)
    config = settings(database_url, clock=lambda: _at(date(2025, 7, 1)))
    publish_due(store, config)
    before = query(database_url, "SELECT * FROM published_cells ORDER BY kind, metric, attribute, value")
    store.write_reports([_job(new_installation(), {"printernizer.uptime": [({}, 3)]})])
    store.erase(jobs[0].installation_id, "a" * 64, datetime(2025, 7, 1))
    assert publish_due(store, config) == []
    assert query(database_url, "SELECT * FROM published_cells ORDER BY kind, metric, attribute, value") == before


def test_weeks_past_the_retention_are_not_published(store: Store, database_url: str) -> None:  # noqa: F811
    store.write_reports(_jobs())
    assert publish_due(store, settings(database_url, clock=lambda: _at(date(2027, 7, 1)))) == []


def test_due_range_is_the_retention_to_the_last_week_whose_window_has_ended() -> None:
    now = datetime(2025, 6, 23, 0, 0, tzinfo=UTC)  # a Monday: 2 June's window ends now
    assert due_range(now, 14, 24) == (datetime(2023, 6, 19), datetime(2025, 6, 2))
    assert due_range(now - timedelta(seconds=1), 14, 24)[1] == datetime(2025, 5, 26)
    assert due_range(now, 0, 24)[1] == datetime(2025, 6, 16)  # every week that has ended


def test_cells_count_installations_and_sum_values_per_group() -> None:
    reports = [
        ({"os.type": "linux", "service.instance.id": "x"},
         [("printernizer.jobs", {"job.status": "completed", "printer.type": "octoprint"}, 3),
          ("printernizer.jobs", {"job.status": "failed", "printer.type": "octoprint"}, 1),
          ("printernizer.jobs", {"job.status": "failed"}, 2)]),
        ({"os.type": "darwin"}, [("printernizer.jobs", {"job.status": "failed"}, 0)]),
    ]
    found = cells(reports, CATALOG)
    jobs = {key[2:]: (c.count, c.total, c.bits()) for key, c in found.items()
            if key[1] == "printernizer.jobs"}
    assert jobs == {
        ("", ""): (1, 6, 0b01),
        ("job.status", "completed"): (1, 3, 0b01),
        ("job.status", "failed"): (1, 3, 0b01),
        ("printer.type", "octoprint"): (1, 4, 0b01),
        ("printer.type", ""): (1, 2, 0b01),  # the points without a printer type (never shown)
        ("", "0"): (1, 0, 0b10),
        ("", "6"): (1, 6, 0b01),
    }
    assert {key: (c.count, c.bits()) for key, c in found.items() if key[0] in ("active", "resource")} == {
        ("active", "", "", ""): (2, 0b11),
        ("resource", "", "os.type", "linux"): (1, 0b01),
        ("resource", "", "os.type", "darwin"): (1, 0b10),
    }


def test_buckets_start_where_the_views_say() -> None:
    assert [bucket(v) for v in (0, 1, 2, 3, 5, 6, 10, 11, 20, 21, 50, 51, 100, 101, 500, 501, 1000, 1001, 10_000, 10_001, 10**6)] == [
        0, 1, 2, 3, 3, 6, 6, 11, 11, 21, 21, 51, 51, 101, 101, 501, 501, 1001, 1001, 10001, 10001]
