"""The schema: DDL a DBA can review per dialect, migrations the service applies itself, views."""

from __future__ import annotations

import re

import sqlalchemy as sa
import sqlglot
from ingest_reports import CATALOG
from ingest_support import database_url, query  # noqa: F401  (fixture)

from ingest import _schema
from ingest._store import Store, create_engine
from ingest.views import VIEWS


def test_sql_server_ddl_uses_datetime2_and_keys_with_lengths() -> None:
    ddl = _schema.ddl("mssql", 5)
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


def test_sql_server_ddl_is_batches_separated_by_go_that_parse_as_tsql() -> None:
    """CREATE VIEW must start its own batch on SQL Server."""
    batches = [b.strip() for b in _schema.ddl("mssql", 5).split("\nGO\n") if b.strip()]
    assert len(batches) == 5 + 2 + len(VIEWS) + 1
    assert all(sqlglot.parse_one(b, read="tsql") is not None for b in batches)
    views = [b for b in batches if b.startswith("CREATE VIEW")]
    assert [b.split()[2] for b in views] == list(VIEWS)


def test_views_suppress_groups_under_k_in_the_printed_ddl() -> None:
    ddl = _schema.ddl("postgresql", 7)
    assert ddl.count("installations >= 7") == len(VIEWS) - 1
    assert "VALUES ('schema_version', '1'), ('views_k', '7');" in ddl


def test_each_view_select_has_the_columns_views_declares() -> None:
    selects = _schema.view_selects(5)
    assert {name: tuple(s.selected_columns.keys()) for name, s in selects.items()} == dict(VIEWS)


def test_migrate_creates_the_schema_once_and_is_idempotent(database_url: str) -> None:  # noqa: F811
    store = Store(create_engine(database_url), CATALOG)
    assert store.migrate(5) == _schema.SCHEMA_VERSION
    assert store.migrate(5) == _schema.SCHEMA_VERSION
    store.dispose()
    engine = sa.create_engine(database_url)
    names = set(sa.inspect(engine).get_table_names())
    engine.dispose()
    assert names == {"installations", "weekly_reports", "events_summary", "daily_stats",
                     "schema_info"}
    assert query(database_url, "SELECT name, value FROM schema_info ORDER BY name") == [
        ("schema_version", "1"), ("views_k", "5")]
    for view in VIEWS:
        assert query(database_url, f"SELECT * FROM {view}") == []


def test_changing_k_recreates_the_views(database_url: str) -> None:  # noqa: F811
    store = Store(create_engine(database_url), CATALOG)
    store.migrate(5)
    store.migrate(2)
    store.dispose()
    assert query(database_url, "SELECT value FROM schema_info WHERE name = 'views_k'") == [("2",)]
    engine = sa.create_engine(database_url)
    view_names = set(sa.inspect(engine).get_view_names())
    engine.dispose()
    assert view_names == set(VIEWS)
