"""The store on SQLite and on a real PostgreSQL: replace, erase, forget, counts, conflicts; and
every statement it runs compiles for SQL Server, PostgreSQL and SQLite.

SQL Server cannot run here: its statements are compiled with SQLAlchemy's mssql dialect (the one
`mssql+pyodbc` uses) and parsed back as T-SQL by sqlglot.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from datetime import date, datetime

import pytest
import sqlalchemy as sa
import sqlglot
from ingest_reports import CATALOG, NOW, new_installation, parsed, request
from ingest_support import database_url, query  # noqa: F401  (fixture)
from sqlalchemy.dialects import mssql, postgresql, sqlite
from sqlalchemy.dialects.mssql import pyodbc  # noqa: F401  (registers mssql.pyodbc)
from sqlalchemy.dialects.postgresql import psycopg  # noqa: F401
from sqlalchemy.dialects.sqlite import pysqlite  # noqa: F401

from ingest import _store
from ingest._errors import CredentialRejected, Erased, StoreUnavailable
from ingest._publication import publish_week
from ingest._store import Forgotten, ReportJob, Store, create_engine, id_hash
from ingest._validate import Limits, validate

# The reports are written into the store directly: validated with a reporting window long
# enough for every week these tests use.
LIMITS = Limits(CATALOG, NOW, 200, 3600)
HASH = "a" * 64
RECEIVED = datetime(2025, 6, 16)


def _job(installation: str, week: date = date(2025, 6, 9), credential: str = HASH, seed: int = 0,
         data: dict[str, list[tuple[dict[str, str], int]]] | None = None,
         received: datetime = RECEIVED) -> ReportJob:
    accepted = validate(parsed(request(installation, week, seed=seed, data=data)), LIMITS)
    return ReportJob(installation, credential, tuple(accepted.reports), received)


@pytest.fixture
def store(database_url: str) -> Iterator[Store]:  # noqa: F811
    store = Store(create_engine(database_url))
    store.migrate()
    yield store
    store.dispose()


def _points(url: str) -> list[object]:
    return [json.loads(p) for (p,) in query(url, "SELECT points FROM weekly_reports")]


def test_a_second_report_for_a_week_replaces_the_first(store: Store, database_url: str) -> None:  # noqa: F811
    """Idempotent replace: one row per installation-week, the later report's content and
    arrival week; the installation stays registered once, with its credential."""
    installation = new_installation()
    assert store.write_reports([_job(installation, data={"printernizer.uptime": [({}, 3)]})]) == [None]
    later = _job(installation, data={"printernizer.uptime": [({}, 5)]}, received=datetime(2025, 6, 23))
    assert store.write_reports([later]) == [None]
    assert _points(database_url) == [[["printernizer.uptime", {}, 5]]]
    assert [str(r)[:10] for (r,) in query(database_url, "SELECT received FROM weekly_reports")] == [
        "2025-06-23"]
    assert query(database_url, "SELECT installation_id, credential_hash FROM installations") == [
        (installation, HASH)]
    assert [str(s)[:10] for (s,) in query(database_url, "SELECT last_seen FROM installations")] == [
        "2025-06-23"]


def test_one_batch_with_the_same_week_twice_keeps_the_later(store: Store, database_url: str) -> None:  # noqa: F811
    installation = new_installation()
    jobs = [_job(installation, data={"printernizer.uptime": [({}, d)]}) for d in (2, 6)]
    assert store.write_reports(jobs) == [None, None]
    assert _points(database_url) == [[["printernizer.uptime", {}, 6]]]


def test_a_wrong_credential_stores_nothing(store: Store, database_url: str) -> None:  # noqa: F811
    installation = new_installation()
    store.write_reports([_job(installation, data={"printernizer.uptime": [({}, 3)]})])
    [outcome] = store.write_reports([_job(installation, credential="b" * 64, seed=1)])
    assert isinstance(outcome, CredentialRejected)
    assert _points(database_url) == [[["printernizer.uptime", {}, 3]]]


def test_erasure_removes_every_row_and_remembers_the_installation(store: Store, database_url: str) -> None:  # noqa: F811
    installation, other = new_installation(), new_installation()
    store.write_reports([_job(installation, date(2025, 6, 2)), _job(installation), _job(other)])
    assert store.erase(installation, HASH, datetime(2025, 6, 18)) == 2
    assert query(database_url, "SELECT installation_id FROM weekly_reports") == [(other,)]
    assert query(database_url, "SELECT installation_id FROM installations") == [(other,)]
    assert [(h, str(d)[:10]) for h, d in query(database_url, "SELECT id_hash, erased_on FROM erasures")] == [
        (id_hash(installation), "2025-06-18")]


def test_a_report_of_an_erased_installation_is_refused_even_with_its_credential(store: Store, database_url: str) -> None:  # noqa: F811
    installation = new_installation()
    store.write_reports([_job(installation)])
    store.erase(installation, HASH, datetime(2025, 6, 18))
    [outcome] = store.write_reports([_job(installation, seed=2)])
    assert isinstance(outcome, Erased)
    assert query(database_url, "SELECT COUNT(*) FROM weekly_reports") == [(0,)]
    assert query(database_url, "SELECT COUNT(*) FROM installations") == [(0,)]


def test_erasing_an_unknown_installation_remembers_it_once(store: Store, database_url: str) -> None:  # noqa: F811
    installation = new_installation()
    assert store.erase(installation, HASH, datetime(2025, 6, 18)) == 0
    assert store.erase(installation, HASH, datetime(2025, 6, 19)) == 0
    assert query(database_url, "SELECT COUNT(*) FROM erasures") == [(1,)]
    [outcome] = store.write_reports([_job(installation)])
    assert isinstance(outcome, Erased)


def test_erasure_needs_the_registered_credential(store: Store, database_url: str) -> None:  # noqa: F811
    installation = new_installation()
    store.write_reports([_job(installation)])
    with pytest.raises(CredentialRejected):
        store.erase(installation, "b" * 64, datetime(2025, 6, 18))
    assert query(database_url, "SELECT COUNT(*) FROM weekly_reports") == [(1,)]
    assert query(database_url, "SELECT COUNT(*) FROM erasures") == [(0,)]


def test_forget_deletes_published_raw_weeks_old_erasures_and_silent_installations(store: Store, database_url: str) -> None:  # noqa: F811
    """Up to the cutoffs: the raw weeks of published weeks (an unpublished week's stay), the
    erasures remembered since before a day, the installations last seen before a week that
    have no raw week left. Published cells and request counts stay."""
    january, later = date(2025, 1, 6), date(2025, 1, 13)
    silent, waiting, active = new_installation(), new_installation(), new_installation()
    store.write_reports([_job(silent, january, received=datetime(2025, 1, 13)),
                         _job(waiting, later, received=datetime(2025, 1, 20)),
                         _job(active, january, received=datetime(2025, 1, 13)), _job(active)])
    publication = publish_week(datetime(2025, 1, 6), store.week_reports(datetime(2025, 1, 6)), CATALOG)
    assert store.save_publication(publication, datetime(2025, 1, 27))
    store.add_counts({(datetime(2025, 1, 7), "accepted", ""): 2})
    old_erasure, new_erasure = new_installation(), new_installation()
    store.erase(old_erasure, HASH, datetime(2025, 1, 8))
    store.erase(new_erasure, HASH, datetime(2025, 6, 1))
    forgotten = store.forget(datetime(2025, 6, 2), datetime(2025, 5, 1), datetime(2025, 3, 3))
    assert forgotten == Forgotten(reports=2, erasures=1, installations=1)
    assert sorted(query(database_url, "SELECT installation_id FROM installations")) == sorted(
        [(waiting,), (active,)])
    assert sorted((i, str(w)[:10]) for i, w in query(database_url, "SELECT installation_id, week_start FROM weekly_reports")) == sorted(
        [(waiting, "2025-01-13"), (active, "2025-06-09")])
    assert query(database_url, "SELECT id_hash FROM erasures") == [(id_hash(new_erasure),)]
    assert query(database_url, "SELECT requests FROM daily_stats") == [(2,)]
    assert query(database_url, "SELECT COUNT(*) FROM published_weeks") == [(1,)]
    assert query(database_url, "SELECT COUNT(*) FROM published_cells") == [(len(publication.cells),)]


def test_request_counts_add_up_per_day_outcome_and_reason(store: Store, database_url: str) -> None:  # noqa: F811
    day = datetime(2025, 6, 18)
    store.add_counts({(day, "accepted", ""): 3, (day, "rejected", "unknown_metric"): 1})
    store.add_counts({(day, "accepted", ""): 2})
    rows = query(database_url, "SELECT outcome, reason, requests FROM usage_submissions ORDER BY outcome")
    assert rows == [("accepted", "", 5), ("rejected", "unknown_metric", 1)]


def test_two_writers_on_one_installation_neither_duplicate_nor_fail(database_url: str) -> None:  # noqa: F811
    """Two stores (as two ingest processes) race on the same installation-weeks."""
    stores = [Store(create_engine(database_url)) for _ in range(2)]
    stores[0].migrate()
    installation = new_installation()
    results: list[list[object]] = []
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
    assert results == [[None]] * 6
    assert query(database_url, "SELECT COUNT(*) FROM weekly_reports") == [(3,)]
    assert query(database_url, "SELECT COUNT(*) FROM installations") == [(1,)]


def test_an_unreachable_database_is_store_unavailable() -> None:
    store = Store(create_engine("postgresql+psycopg://nobody@127.0.0.1:9/none?connect_timeout=1"))
    with pytest.raises(StoreUnavailable):
        store.ping()
    store.dispose()


# Every statement, for every dialect ------------------------------------------------------

STATEMENTS = {name: value if isinstance(value, tuple) else (value,)
              for name, value in vars(_store).items()
              if isinstance(value, sa.sql.Executable)
              or (isinstance(value, tuple) and all(isinstance(v, sa.sql.Executable) for v in value))}
# Lists for the expanding IN parameters, so that they render.
LISTS = {"ids": ["12345678-1234-4234-8234-123456789abc"] * 2, "id_hashes": ["a" * 64]}
# The drivers' dialects, so parameters render as each driver sends them.
DIALECTS = {"mssql": mssql.pyodbc.dialect(paramstyle="qmark"),
            "postgresql": postgresql.psycopg.dialect(paramstyle="pyformat"),
            "sqlite": sqlite.pysqlite.dialect(paramstyle="qmark")}
SQLGLOT = {"mssql": "tsql", "postgresql": "postgres", "sqlite": "sqlite"}


def test_the_statements_are_the_ones_the_store_runs() -> None:
    """Every statement of the store's module, and nothing else, is compiled below."""
    assert sorted(STATEMENTS) == [
        "ADD_TO_DAILY_STATS", "CREDENTIALS", "DELETE_REPORT", "ERASED",
        "ERASE_INSTALLATION", "ERASE_REPORTS",
        "FORGET_ERASURES", "FORGET_INSTALLATIONS", "FORGET_REPORTS",
        "INSERT_DAILY_STATS", "INSERT_PUBLISHED_CELLS", "INSERT_PUBLISHED_WEEK",
        "INSERT_REPORT", "PING", "REGISTER", "REMEMBER_ERASURE", "SEEN",
        "UNPUBLISHED_WEEKS", "WEEK_REPORTS"]


CASES = [(name, dialect) for name in sorted(STATEMENTS) for dialect in sorted(DIALECTS)]


def _compiled(statement: sa.sql.Executable, dialect: str) -> str:
    if isinstance(statement, sa.Select):  # only the reads take lists
        statement = statement.params(LISTS)
    return str(statement.compile(dialect=DIALECTS[dialect],
                                  compile_kwargs={"render_postcompile": True}))


@pytest.mark.parametrize(("name", "dialect"), CASES)
def test_statement_compiles_and_parses(name: str, dialect: str) -> None:
    statements = STATEMENTS[name]
    assert statements
    for statement in statements:
        compiled = _compiled(statement, dialect)
        parsed = sqlglot.parse_one(compiled.replace("%(", "(").replace(")s", ")"),
                                   read=SQLGLOT[dialect])
        assert parsed is not None
        assert compiled.split()[0] in {"SELECT", "INSERT", "UPDATE", "DELETE"}


def test_sql_server_gets_no_limit_or_returning_syntax() -> None:
    """Nothing T-SQL lacks (LIMIT, RETURNING, ON CONFLICT) slips into the mssql statements."""
    text = " ".join(_compiled(s, "mssql") for group in STATEMENTS.values() for s in group)
    for word in ("LIMIT", "RETURNING", "ON CONFLICT"):
        assert word not in text


def test_a_report_is_replaced_by_deleting_its_row_then_inserting_it() -> None:
    """One way for every dialect: no upsert syntax to keep apart."""
    compiled = str(_store.DELETE_REPORT.compile(dialect=DIALECTS["mssql"]))
    assert compiled == ("DELETE FROM weekly_reports WHERE weekly_reports.installation_id = ? "
                        "AND weekly_reports.week_start = ?")
