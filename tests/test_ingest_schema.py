"""The schema: DDL a DBA can review per dialect, version 1 on a fresh database, the views."""

from __future__ import annotations

import re

import pytest
import sqlalchemy as sa
import sqlglot
from ingest_support import database_url, query  # noqa: F401  (fixture)

from ingest import _schema
from ingest._errors import SchemaTooNew
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


def test_sql_server_ddl_is_batches_separated_by_go_that_parse_as_tsql() -> None:
    """CREATE VIEW must start its own batch on SQL Server."""
    batches = [b.strip() for b in _schema.ddl("mssql").split("\nGO\n") if b.strip()]
    assert len(batches) == len(_schema.TABLES) + len(_schema.INDEXES) + len(VIEWS) + 1
    assert all(sqlglot.parse_one(b, read="tsql") is not None for b in batches)
    views = [b for b in batches if b.startswith("CREATE VIEW")]
    assert [b.split()[2] for b in views] == list(VIEWS)
    assert batches[-1] == "INSERT INTO schema_info (name, value) VALUES ('schema_version', '1')"


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
    assert store.migrate() == _schema.SCHEMA_VERSION == 1
    assert store.migrate() == 1
    store.dispose()
    assert _layout(database_url) == (VERSION_1, VERSION_1_VIEWS, ["ix_weekly_reports_week_start"])
    assert query(database_url, "SELECT name, value FROM schema_info ORDER BY name") == [
        ("schema_version", "1")]
    for view in VERSION_1_VIEWS:
        assert query(database_url, f"SELECT * FROM {view}") == []


def test_until_the_first_release_there_is_no_migration() -> None:
    assert (_schema.SCHEMA_VERSION, _schema.MIGRATIONS) == (1, {})


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
