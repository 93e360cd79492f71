"""The schema: DDL a DBA can review per dialect, version 1 on a fresh database, the views, and
the upgrade mechanism, exercised with a synthetic version 2."""

from __future__ import annotations

import re
import uuid

import pytest
import sqlalchemy as sa
import sqlglot
from ingest_support import database_url, query  # noqa: F401  (fixture)
from schema_support import (
    SUBMISSIONS_V1,
    add_stats_row,
    apply_by_hand,
    empty,
    snapshot,
    version_2,
)

from ingest import _schema
from ingest._errors import SchemaChangeRefused, SchemaTooNew, StoreUnavailable
from ingest._store import Store, create_engine
from ingest.views import VIEWS


def test_sql_server_ddl_uses_datetime2_and_keys_with_lengths() -> None:
    ddl = _schema.ddl("mssql")
    assert "DATETIME2(0)" in ddl
    assert "DATETIME " not in ddl and "TIMESTAMP" not in ddl and " TEXT" not in ddl
    assert "installation_id VARCHAR(36) NOT NULL" in ddl
    assert "resource VARCHAR(max) NOT NULL" in ddl
    for key in re.findall(r"PRIMARY KEY \(([^)]*)\)", ddl):
        for column in key.split(", "):
            declared = re.search(rf"\t{column} (\w+(\(\w+\))?)", ddl)
            assert declared is not None
            assert declared.group(1) in {"DATETIME2(0)", "VARCHAR(16)", "VARCHAR(36)", "VARCHAR(64)",
                                         "VARCHAR(100)"}


def _batches(ddl: str) -> list[str]:
    """SQL Server DDL as its batches, each checked to parse as T-SQL."""
    batches = [b.strip() for b in ddl.split("\nGO\n") if b.strip()]
    assert all(sqlglot.parse(b, read="tsql") for b in batches)
    return batches


def test_sql_server_ddl_is_batches_separated_by_go_that_parse_as_tsql() -> None:
    """CREATE VIEW must start its own batch on SQL Server; the whole runs in one transaction
    that the first error rolls back."""
    batches = _batches(_schema.ddl("mssql"))
    assert len(batches) == len(_schema.TABLES) + len(_schema.INDEXES) + len(VIEWS) + 3
    assert batches[0] == ("-- otel-usage ingest schema version 1: a new store\n"
                          "SET XACT_ABORT ON;\nBEGIN TRANSACTION")
    views = [b for b in batches if b.startswith("CREATE VIEW")]
    assert [b.split()[2] for b in views] == list(VIEWS)
    assert batches[-2:] == ["INSERT INTO schema_info (name, value) VALUES ('schema_version', '1')",
                            "COMMIT TRANSACTION"]


def test_each_view_select_has_the_columns_views_declares() -> None:
    selects = _schema.view_selects()
    assert {name: tuple(s.selected_columns.keys()) for name, s in selects.items()} == dict(VIEWS)


# Version 1, as a first install creates it: every table with its columns in order, the index,
# and the views (stated here apart from the schema module it checks).
VERSION_1 = {
    "daily_stats": ["day", "outcome", "reason", "requests"],
    "erasures": ["id_hash", "erased_on"],
    "installations": ["installation_id", "credential_hash", "last_seen"],
    "published_cells": ["week_start", "kind", "metric", "attribute", "value", "installations",
                        "installations_scale", "installations_margin", "total", "total_scale",
                        "total_margin"],
    "published_weeks": ["week_start", "published_on", "rho", "epsilon", "delta",
                        "yearly_epsilon"],
    "schema_info": ["name", "value"],
    "weekly_reports": ["installation_id", "week_start", "resource", "points", "received"],
}
VERSION_1_VIEWS = {"usage_active_installations", "usage_distributions", "usage_metrics",
                   "usage_published_weeks", "usage_resource_attributes", "usage_submissions"}


def _layout(url: str) -> tuple[dict[str, list[str]], set[str], list[str]]:
    """The tables with their columns, the views, and the indexes of a store."""
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    try:
        inspector = sa.inspect(engine)
        tables = {t: [c["name"] for c in inspector.get_columns(t)]
                  for t in inspector.get_table_names()}
        indexes = sorted(str(i["name"]) for t in tables for i in inspector.get_indexes(t))
        return tables, set(inspector.get_view_names()), indexes
    finally:
        engine.dispose()


def test_a_fresh_database_gets_exactly_version_1(database_url: str) -> None:  # noqa: F811
    """A first install creates version 1's tables, columns, index and views, empty, stamped
    version 1; migrating again changes nothing."""
    store = Store(create_engine(database_url))
    assert store.migrate() == _schema.CURRENT.version == 1
    assert store.migrate() == 1
    store.dispose()
    assert _layout(database_url) == (VERSION_1, VERSION_1_VIEWS, ["ix_weekly_reports_week_start"])
    assert query(database_url, "SELECT name, value FROM schema_info ORDER BY name") == [
        ("schema_version", "1")]
    for view in VERSION_1_VIEWS:
        assert query(database_url, f"SELECT * FROM {view}") == []


def test_until_the_first_release_there_is_no_migration() -> None:
    assert (_schema.CURRENT.version, _schema.CURRENT.steps) == (1, {})


def test_a_store_of_a_later_version_is_refused_and_left_as_it_is(database_url: str) -> None:  # noqa: F811
    """A store a later ingest made: this one neither reads nor changes it."""
    store = Store(create_engine(database_url))
    store.migrate()
    engine = sa.create_engine(database_url, poolclass=sa.pool.NullPool)
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE schema_info SET value = '2' WHERE name = 'schema_version'"))
    engine.dispose()
    with pytest.raises(SchemaTooNew, match="the store's schema is version 2; this ingest knows "
                                           "versions up to 1: run a newer ingest"):
        store.migrate()
    store.dispose()
    assert _layout(database_url)[:2] == (VERSION_1, VERSION_1_VIEWS)
    assert query(database_url, "SELECT name, value FROM schema_info") == [("schema_version", "2")]


def test_a_version_needs_one_step_per_version_after_the_first() -> None:
    with pytest.raises(ValueError, match=r"schema version 3 needs one step per version from 2 "
                                         r"on, not \[3\]"):
        _schema.Schema(version=3, tables=_schema.TABLES, indexes=_schema.INDEXES,
                       steps={3: []}, views=_schema.view_selects)


def test_an_upgrade_runs_its_step_and_replaces_the_views_keeping_the_rows(
        database_url: str, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: F811
    """A store made at version 1 and upgraded to a (synthetic) version 2 has the new column
    and the view showing it, its rows kept, stamped 2, exactly as a new store of version 2;
    migrating again changes nothing."""
    store = Store(create_engine(database_url))
    store.migrate()
    add_stats_row(database_url)
    monkeypatch.setattr(_schema, "CURRENT", version_2())
    assert [store.migrate(), store.migrate()] == [2, 2]
    store.dispose()
    assert query(database_url, "SELECT outcome, reason, requests, bytes FROM usage_submissions"
                 ) == [("accepted", "", 3, None)]
    upgraded = snapshot(database_url)
    assert (upgraded["tables"]["daily_stats"][0][-1][0], upgraded["views"]["usage_submissions"][0],
            upgraded["schema_info"]) == (
        "bytes", [*SUBMISSIONS_V1, "bytes"], [("schema_version", "2")])
    empty(database_url)
    fresh = Store(create_engine(database_url))
    assert fresh.migrate() == 2
    fresh.dispose()
    assert snapshot(database_url) == upgraded


@pytest.mark.parametrize("view_columns", [("day", "outcome", "requests", "reason"),
                                          ("day", "outcome", "requests", "bytes")],
                         ids=["reordered", "dropped"])
def test_an_upgrade_that_changes_a_views_columns_but_by_appending_is_refused(
        database_url: str, monkeypatch: pytest.MonkeyPatch,  # noqa: F811
        view_columns: tuple[str, ...]) -> None:
    """PostgreSQL cannot replace a view in place (keeping its grants) whose columns move or
    go, and a dashboard would not find them: the upgrade is refused before anything changes,
    on every database alike."""
    store = Store(create_engine(database_url))
    store.migrate()
    add_stats_row(database_url)
    before = snapshot(database_url)
    monkeypatch.setattr(_schema, "CURRENT", version_2(view_columns))
    with pytest.raises(SchemaChangeRefused) as refused:
        store.migrate()
    store.dispose()
    assert str(refused.value) == (
        "version 2 changes the columns of views other than by appending to them: "
        f"usage_submissions (day, outcome, reason, requests -> {', '.join(view_columns)}); "
        "a changed view needs a new name")
    assert snapshot(database_url) == before
    assert query(database_url, "SELECT outcome, reason, requests FROM usage_submissions") == [
        ("accepted", "", 3)]


def test_an_upgrade_whose_step_fails_half_way_leaves_the_store_as_it_was(
        database_url: str, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: F811
    """The step, the views and the version's stamp run in one transaction: a statement that
    fails after the new column was added takes the column back with it."""
    store = Store(create_engine(database_url))
    store.migrate()
    add_stats_row(database_url)
    before = snapshot(database_url)
    monkeypatch.setattr(_schema, "CURRENT", version_2(
        then=(sa.DDL("ALTER TABLE no_such_table ADD bytes BIGINT"),)))
    with pytest.raises(StoreUnavailable, match=r"database error: (OperationalError|ProgrammingError)"):
        store.migrate()
    store.dispose()
    assert snapshot(database_url) == before
    assert query(database_url, "SELECT outcome, reason, requests FROM usage_submissions") == [
        ("accepted", "", 3)]


def test_upgrade_ddl_replaces_the_views_in_place_on_the_servers_and_drops_none() -> None:
    """What a DBA runs: the step, every view replaced (OR REPLACE on PostgreSQL, OR ALTER on
    SQL Server, each a batch that parses as T-SQL), the version stamped, in one transaction."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(_schema, "CURRENT", version_2())
        postgresql, mssql = _schema.ddl("postgresql", 1), _schema.ddl("mssql", 1)
    step = "ALTER TABLE daily_stats ADD bytes BIGINT"
    stamp = "UPDATE schema_info SET value='2' WHERE schema_info.name = 'schema_version'"
    assert [s.split(" AS ")[0] for s in postgresql.split(";\n\n")] == [
        "-- otel-usage ingest schema version 2: upgrade from version 1\nBEGIN", step,
        *(f"CREATE OR REPLACE VIEW {name}" for name in VIEWS), stamp, "COMMIT;\n"]
    assert [b.split(" AS ")[0] for b in _batches(mssql)] == [
        "-- otel-usage ingest schema version 2: upgrade from version 1\n"
        "SET XACT_ABORT ON;\nBEGIN TRANSACTION", step,
        *(f"CREATE OR ALTER VIEW {name}" for name in VIEWS), stamp, "COMMIT TRANSACTION"]
    assert "DROP" not in postgresql + mssql


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
@pytest.mark.parametrize("how", ["migrate", "by hand"])
def test_a_role_granted_the_views_reads_them_after_an_upgrade(
        database_url: str, monkeypatch: pytest.MonkeyPatch, how: str) -> None:  # noqa: F811
    """The dashboards' login, granted SELECT on the views and nothing else, reads them after
    an upgrade (by the service, or by the DBA's printed DDL) as before, the new column too,
    and still no raw table."""
    store = Store(create_engine(database_url))
    store.migrate()
    add_stats_row(database_url)
    role = f"reader_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(database_url, poolclass=sa.pool.NullPool)
    with admin.begin() as conn:
        conn.exec_driver_sql(f"CREATE ROLE {role}")
        schema = conn.exec_driver_sql("SELECT current_schema()").scalar_one()
        conn.exec_driver_sql(f"GRANT USAGE ON SCHEMA {schema} TO {role}")
        conn.exec_driver_sql(f"GRANT SELECT ON {', '.join(VIEWS)} TO {role}")
    try:
        monkeypatch.setattr(_schema, "CURRENT", version_2())
        if how == "migrate":
            store.migrate()
        else:
            apply_by_hand(database_url, _schema.ddl("postgresql", upgrade_from=1))
        with admin.connect() as conn:
            grants = conn.exec_driver_sql(
                "SELECT table_name, privilege_type FROM information_schema.role_table_grants "
                f"WHERE grantee = '{role}' ORDER BY table_name").all()
            conn.exec_driver_sql(f"SET ROLE {role}")
            rows = {view: len(conn.exec_driver_sql(f"SELECT * FROM {view}").all())
                    for view in VIEWS}
            submissions = conn.exec_driver_sql(
                "SELECT outcome, reason, requests, bytes FROM usage_submissions").all()
            with pytest.raises(sa.exc.ProgrammingError, match="permission denied"):
                conn.exec_driver_sql("SELECT * FROM daily_stats")
        assert [tuple(g) for g in grants] == [(view, "SELECT") for view in sorted(VIEWS)]
        assert rows == {view: int(view == "usage_submissions") for view in VIEWS}
        assert [tuple(r) for r in submissions] == [("accepted", "", 3, None)]
        assert query(database_url, "SELECT value FROM schema_info") == [("2",)]
    finally:
        store.dispose()
        with admin.begin() as conn:
            conn.exec_driver_sql(f"DROP OWNED BY {role}")
            conn.exec_driver_sql(f"DROP ROLE {role}")
        admin.dispose()
