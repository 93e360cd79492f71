"""The store on SQLite and on a real PostgreSQL: replace, erase, prune, counts, k-anonymity."""

from __future__ import annotations

import threading
from datetime import date, datetime

import pytest
from ingest_reports import CATALOG, NOW, new_installation, request
from ingest_support import database_url, query  # noqa: F401  (fixture)

from ingest import _rollup
from ingest._errors import CredentialRejected, StoreUnavailable
from ingest._store import ReportJob, Store, create_engine
from ingest._validate import Limits, validate

LIMITS = Limits(CATALOG, NOW, 24, 3600)
HASH = "a" * 64


def _job(installation: str, week: date = date(2025, 6, 9), credential: str = HASH, seed: int = 0,
         data: dict[str, list[tuple[dict[str, str], int]]] | None = None) -> ReportJob:
    accepted = validate(request(installation, week, seed=seed, data=data), LIMITS)
    return ReportJob(installation, credential,
                     tuple((r, _rollup.contributions(r, CATALOG)) for r in accepted.reports))


@pytest.fixture
def store(database_url: str) -> Store:  # noqa: F811
    store = Store(create_engine(database_url), CATALOG)
    store.migrate(1)
    yield store  # type: ignore[misc]
    store.dispose()


def _active(url: str) -> list[tuple[object, ...]]:
    return [(str(w)[:10], n) for w, n in query(url, "SELECT week_start, installations FROM "
                                                    "usage_active_installations ORDER BY week_start")]


def _uptime(url: str) -> list[tuple[object, ...]]:
    return query(url, "SELECT installations, total FROM usage_metrics WHERE "
                      "metric = 'printernizer.uptime' AND attribute = ''")


def test_a_second_report_for_a_week_replaces_the_first(store: Store, database_url: str) -> None:  # noqa: F811
    """Idempotent replace: one row per installation-week, rollups count it once."""
    installation = new_installation()
    uptime = {"printernizer.uptime": [({}, 3)]}
    assert store.write_reports([_job(installation, data=uptime)]) == [True]
    assert store.write_reports([_job(installation, data={"printernizer.uptime": [({}, 5)]})]) == [True]
    assert query(database_url, "SELECT COUNT(*) FROM weekly_reports") == [(1,)]
    assert _active(database_url) == [("2025-06-09", 1)]
    assert _uptime(database_url) == [(1, 5)]


def test_one_batch_with_the_same_week_twice_keeps_the_later(store: Store, database_url: str) -> None:  # noqa: F811
    installation = new_installation()
    jobs = [_job(installation, data={"printernizer.uptime": [({}, d)]}) for d in (2, 6)]
    assert store.write_reports(jobs) == [True, True]
    assert _uptime(database_url) == [(1, 6)]
    assert query(database_url, "SELECT COUNT(*) FROM weekly_reports") == [(1,)]


def test_a_wrong_credential_stores_nothing(store: Store, database_url: str) -> None:  # noqa: F811
    installation = new_installation()
    store.write_reports([_job(installation, data={"printernizer.uptime": [({}, 3)]})])
    assert store.write_reports([_job(installation, credential="b" * 64, seed=1)]) == [False]
    assert _uptime(database_url) == [(1, 3)]


def test_erasure_removes_every_row_and_every_count(store: Store, database_url: str) -> None:  # noqa: F811
    installation, other = new_installation(), new_installation()
    store.write_reports([_job(installation, date(2025, 6, 2)), _job(installation), _job(other)])
    assert store.erase(installation, HASH) == 2
    assert query(database_url, "SELECT installation_id FROM weekly_reports") == [(other,)]
    assert query(database_url, "SELECT installation_id FROM installations") == [(other,)]
    assert _active(database_url) == [("2025-06-09", 1)]
    assert query(database_url, "SELECT COUNT(*) FROM events_summary WHERE week_start < '2025-06-09'"
                               " AND installations <> 0") == [(0,)]


def test_erasure_needs_the_registered_credential(store: Store) -> None:
    installation = new_installation()
    store.write_reports([_job(installation)])
    with pytest.raises(CredentialRejected):
        store.erase(installation, "b" * 64)
    assert store.erase(new_installation(), HASH) == 0


def test_views_hide_groups_under_k(database_url: str) -> None:  # noqa: F811
    """With k = 3, a value reported by two installations never shows."""
    store = Store(create_engine(database_url), CATALOG)
    store.migrate(3)
    jobs = [_job(new_installation(), data={"printernizer.jobs": [(
        {"job.status": "completed", "printer.type": "octoprint" if i < 3 else "prusa_core"}, 1)]})
        for i in range(5)]
    store.write_reports(jobs)
    store.dispose()
    rows = query(database_url, "SELECT attribute, value, installations, total FROM usage_metrics "
                               "WHERE metric = 'printernizer.jobs' ORDER BY attribute, value")
    assert rows == [("", "", 5, 5), ("job.status", "completed", 5, 5),
                    ("printer.type", "octoprint", 3, 3)]


def test_prune_deletes_old_weeks_and_installations_left_without_any(store: Store, database_url: str) -> None:  # noqa: F811
    old, both = new_installation(), new_installation()
    store.write_reports([_job(old, date(2025, 1, 6)), _job(both, date(2025, 1, 6)), _job(both)])
    store.add_counts({(datetime(2025, 1, 7), "accepted", ""): 2})
    assert store.prune(datetime(2025, 6, 2)) == 2
    assert query(database_url, "SELECT installation_id FROM installations") == [(both,)]
    assert _active(database_url) == [("2025-06-09", 1)]
    assert query(database_url, "SELECT COUNT(*) FROM daily_stats") == [(0,)]


def test_request_counts_add_up_per_day_outcome_and_reason(store: Store, database_url: str) -> None:  # noqa: F811
    day = datetime(2025, 6, 18)
    store.add_counts({(day, "accepted", ""): 3, (day, "rejected", "unknown_metric"): 1})
    store.add_counts({(day, "accepted", ""): 2})
    rows = query(database_url, "SELECT outcome, reason, requests FROM usage_submissions ORDER BY outcome")
    assert rows == [("accepted", "", 5), ("rejected", "unknown_metric", 1)]


def test_two_writers_on_one_installation_neither_duplicate_nor_fail(database_url: str) -> None:  # noqa: F811
    """Two stores (as two ingest processes) race on the same installation-weeks."""
    stores = [Store(create_engine(database_url), CATALOG) for _ in range(2)]
    stores[0].migrate(1)
    installation = new_installation()
    results: list[list[bool]] = []
    errors: list[BaseException] = []

    def write(store: Store, seed: int) -> None:
        try:
            for week in (date(2025, 5, 26), date(2025, 6, 2), date(2025, 6, 9)):
                results.append(store.write_reports([_job(installation, week, seed=seed)]))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(s, i)) for i, s in enumerate(stores)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for store in stores:
        store.dispose()
    assert errors == []
    assert results == [[True]] * 6
    assert query(database_url, "SELECT COUNT(*) FROM weekly_reports") == [(3,)]
    assert query(database_url, "SELECT COUNT(*) FROM installations") == [(1,)]
    assert query(database_url, "SELECT SUM(installations) FROM events_summary WHERE kind = 'active'") == [(3,)]


def test_an_unreachable_database_is_store_unavailable(tmp_path: object) -> None:
    store = Store(create_engine("postgresql+psycopg://nobody@127.0.0.1:9/none?connect_timeout=1"), CATALOG)
    with pytest.raises(StoreUnavailable):
        store.ping()
    store.dispose()
