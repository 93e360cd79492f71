"""The publication step: closed weeks only, once, frozen; groups under k left out."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta

import pytest
from ingest_reports import CATALOG, NOW, new_installation, parsed, request
from ingest_support import database_url, query, settings  # noqa: F401  (fixture)

from ingest._cells import bucket, cells
from ingest._maintenance import publish_due
from ingest._publish import newest_due
from ingest._store import ReportJob, Store, create_engine
from ingest._validate import Limits, validate
from ingest.testing import Data

WEEK = date(2025, 6, 2)
# The reports are written into the store directly: validated with a reporting window long
# enough for every week these tests use (the week of 26 May too).
LIMITS = Limits(CATALOG, NOW, 28, 3600)


def _job(installation: str, data: Data, week: date = WEEK, os: str = "linux") -> ReportJob:
    message = request(installation, week, data=data)
    for kv in message.resource_metrics[0].resource.attributes:
        if kv.key == "os.type":
            kv.value.string_value = os
    accepted = validate(parsed(message), LIMITS)
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
    assert publish_due(store, settings(database_url, established_weeks=0, clock=lambda: _at(date(2025, 6, 22), 23))) == []
    [published] = publish_due(store, settings(database_url, established_weeks=0, clock=lambda: _at(date(2025, 6, 23), 0)))
    assert (published.week, published.counted) == (datetime(2025, 6, 2), 7)
    assert query(database_url, "SELECT installations FROM usage_active_installations") == [(7,)]


def test_groups_under_k_are_left_out_and_so_is_what_would_give_them_away(store: Store, database_url: str) -> None:  # noqa: F811
    """5 on linux with jobs, 2 on darwin without: darwin (2) is under k, and linux too, since
    the week's 7 minus linux's 5 would give darwin's 2; likewise every group of the 5 with jobs
    (7 - 5 = 2 had none)."""
    store.write_reports(_jobs())
    publish_due(store, settings(database_url, established_weeks=0, clock=lambda: _at(date(2025, 7, 1))))
    resource = [row for row in _published(database_url, "resource") if row[2] == "os.type"]
    assert resource == []
    metrics = [row for row in _published(database_url, "metric") if row[1] in (
        "printernizer.jobs", "printernizer.uptime")]
    assert metrics == []
    assert query(database_url, "SELECT installations FROM usage_active_installations") == [(7,)]


def test_a_total_minus_the_visible_groups_does_not_give_one_installations_value(store: Store, database_url: str) -> None:  # noqa: F811
    """The case that once leaked: 21 installations with 53 jobs, 20 of them with 40 on prusa_core; the
    one with 13 on octoprint is under k, so prusa_core is hidden too (53 - 40 = 13)."""
    prusa = [_job(new_installation(), {"printernizer.jobs": [({"printer.type": "prusa_core"}, 2)]})
             for _ in range(20)]
    octoprint = [_job(new_installation(), {"printernizer.jobs": [({"printer.type": "octoprint"}, 13)]})]
    store.write_reports(prusa + octoprint)
    publish_due(store, settings(database_url, established_weeks=0, clock=lambda: _at(date(2025, 7, 1))))
    jobs = [row[2:] for row in _published(database_url, "metric") if row[1] == "printernizer.jobs"]
    assert jobs == [("", "", 21, 53)]


def test_points_without_an_attribute_count_in_what_is_left_of_the_total(store: Store, database_url: str) -> None:  # noqa: F811
    """20 installations with 2 completed jobs, one with 9 jobs and no status: the whole (53)
    minus completed (40) would give that one's 9, so completed is hidden."""
    jobs = [_job(new_installation(), {"printernizer.jobs": [({"job.status": "completed"}, 2)]})
            for _ in range(20)]
    jobs.append(_job(new_installation(), {"printernizer.jobs": [({}, 9)]}))
    store.write_reports(jobs)
    publish_due(store, settings(database_url, established_weeks=0, clock=lambda: _at(date(2025, 7, 1))))
    shown = [row[2:] for row in _published(database_url, "metric") if row[1] == "printernizer.jobs"]
    assert shown == [("", "", 21, 49)]


def test_two_groups_where_one_holds_the_other_and_few_more_are_not_both_shown(store: Store, database_url: str) -> None:  # noqa: F811
    """Library enabled on 9 installations, used on 7 of them: 9 - 7 = 2 enabled but unused.
    The smaller group (used) is hidden."""
    fleet = []
    for index in range(9):
        data: Data = {"printernizer.features.enabled": [({"feature.name": "library"}, 1)]}
        if index < 7:
            data["printernizer.feature.uses"] = [({"feature.name": "library"}, 3)]
        fleet.append(_job(new_installation(), data))
    store.write_reports(fleet)
    publish_due(store, settings(database_url, established_weeks=0, clock=lambda: _at(date(2025, 7, 1))))
    shown = {(row[1], row[2], row[3]) for row in _published(database_url, "metric")}
    assert ("printernizer.features.enabled", "feature.name", "library") in shown
    assert ("printernizer.feature.uses", "feature.name", "library") not in shown


def test_a_week_of_fewer_than_k_installations_shows_nothing(store: Store, database_url: str) -> None:  # noqa: F811
    store.write_reports(_jobs(k=2))
    [published] = publish_due(store, settings(database_url, established_weeks=0, clock=lambda: _at(date(2025, 7, 1))))
    assert (published.counted, published.cells) == (4, {})
    assert query(database_url, "SELECT COUNT(*) FROM published_cells") == [(0,)]
    assert [(str(w)[:10], n) for w, n in query(database_url, "SELECT week_start, installations FROM published_weeks")] == [
        ("2025-06-02", 4)]


def test_a_published_week_never_changes(store: Store, database_url: str) -> None:  # noqa: F811
    """Neither a late report nor an erasure nor another run changes what was published."""
    jobs = _jobs()
    store.write_reports(jobs)
    config = settings(database_url, established_weeks=0, clock=lambda: _at(date(2025, 7, 1)))
    publish_due(store, config)
    before = query(database_url, "SELECT * FROM published_cells ORDER BY kind, metric, attribute, value")
    store.write_reports([_job(new_installation(), {"printernizer.uptime": [({}, 3)]})])
    store.erase(jobs[0].installation_id, "a" * 64, datetime(2025, 7, 1))
    assert publish_due(store, config) == []
    assert query(database_url, "SELECT * FROM published_cells ORDER BY kind, metric, attribute, value") == before


def test_a_due_week_is_published_however_late_publication_runs(store: Store, database_url: str) -> None:  # noqa: F811
    """No week is too old to publish: its reports are there only because they arrived within
    its reporting window, and they go once it is published."""
    store.write_reports(_jobs())
    published = publish_due(store, settings(database_url, established_weeks=0, clock=lambda: _at(date(2027, 7, 1))))
    assert [(p.week, p.counted) for p in published] == [(datetime(2025, 6, 2), 7)]


def test_the_newest_due_week_is_the_last_whose_window_has_ended() -> None:
    now = datetime(2025, 6, 23, 0, 0, tzinfo=UTC)  # a Monday: 2 June's window ends now
    assert newest_due(now, 14) == datetime(2025, 6, 2)
    assert newest_due(now - timedelta(seconds=1), 14) == datetime(2025, 5, 26)
    assert newest_due(now, 0) == datetime(2025, 6, 16)  # every week that has ended


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


def _arrivals(installation: str, weeks: list[tuple[date, datetime]]) -> list[ReportJob]:
    """One report per (data week, arrival week)."""
    jobs = []
    for week, received in weeks:
        job = _job(installation, {"printernizer.uptime": [({}, 5)]}, week)
        jobs.append(ReportJob(job.installation_id, job.credential_hash, job.reports, received))
    return jobs


def test_only_established_installations_count(store: Store, database_url: str) -> None:  # noqa: F811
    """Counted in the week of 2 June: reports arrived in two distinct weeks, the first no later
    than 2 June's week. Not counted: one arrival week only, or first seen after that week (a
    fake made once the week was over, however often it reports)."""
    may, june_2, june_9, june_16 = (datetime(2025, 5, 26), datetime(2025, 6, 2),
                                    datetime(2025, 6, 9), datetime(2025, 6, 16))
    counted = [new_installation() for _ in range(5)]
    for installation in counted:
        store.write_reports(_arrivals(installation, [(date(2025, 5, 26), june_2), (WEEK, june_9)]))
    once = new_installation()
    store.write_reports(_arrivals(once, [(date(2025, 5, 26), june_2), (WEEK, june_2)]))
    late = new_installation()
    store.write_reports(_arrivals(late, [(WEEK, june_9), (date(2025, 6, 9), june_16)]))
    early_and_again = new_installation()
    store.write_reports(_arrivals(early_and_again, [(WEEK, may), (WEEK, june_16)]))
    config = settings(database_url, clock=lambda: _at(date(2025, 7, 1)))
    published = {p.week: p.counted for p in publish_due(store, config)}
    assert published == {datetime(2025, 5, 26): 0, datetime(2025, 6, 2): 6, datetime(2025, 6, 9): 1}
    assert query(database_url, "SELECT installations FROM usage_active_installations") == [(6,)]  # 1 < k
