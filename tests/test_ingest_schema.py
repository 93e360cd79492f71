"""The schema: DDL a DBA can review per dialect, migrations the service applies itself, views."""

from __future__ import annotations

import re
from datetime import datetime

import sqlalchemy as sa
import sqlglot
from ingest_support import database_url, query  # noqa: F401  (fixture)

from ingest import _schema
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
    assert batches[-1] == "INSERT INTO schema_info (name, value) VALUES ('schema_version', '3')"


def test_the_migration_from_version_1_compiles_for_sql_server() -> None:
    """ALTER TABLE ... ADD without COLUMN, as T-SQL has it."""
    dialect = _schema.DIALECTS["mssql"]
    compiled = [str(s.compile(dialect=dialect)) for s in _schema.MIGRATIONS[2]()]
    assert "ALTER TABLE installations ADD registered DATETIME2(0) NULL" in compiled
    assert "ALTER TABLE weekly_reports ADD received DATETIME2(0) NULL" in compiled
    assert all(sqlglot.parse_one(c, read="tsql") is not None for c in compiled)


def test_the_migration_to_version_3_compiles_for_every_dialect() -> None:
    """Reports gain the legacy mark, false for every report stored before."""
    compiled = {name: [str(s.compile(dialect=dialect)) for s in _schema.MIGRATIONS[3]()]
                for name, dialect in _schema.DIALECTS.items()}
    assert compiled == {
        "mssql": ["ALTER TABLE weekly_reports ADD legacy BIT NOT NULL DEFAULT 0"],
        "postgresql": ["ALTER TABLE weekly_reports ADD COLUMN legacy BOOLEAN DEFAULT false "
                       "NOT NULL"],
        "sqlite": ["ALTER TABLE weekly_reports ADD COLUMN legacy BOOLEAN DEFAULT 0 NOT NULL"]}
    assert sqlglot.parse_one(compiled["mssql"][0], read="tsql") is not None


def test_each_view_select_has_the_columns_views_declares() -> None:
    selects = _schema.view_selects()
    assert {name: tuple(s.selected_columns.keys()) for name, s in selects.items()} == dict(VIEWS)


TABLES = {"installations", "weekly_reports", "erasures", "published_weeks", "published_cells",
          "daily_stats", "schema_info"}


def test_migrate_creates_the_schema_once_and_is_idempotent(database_url: str) -> None:  # noqa: F811
    store = Store(create_engine(database_url))
    assert store.migrate() == _schema.SCHEMA_VERSION == 3
    assert store.migrate() == 3
    store.dispose()
    engine = sa.create_engine(database_url)
    inspector = sa.inspect(engine)
    names, views = set(inspector.get_table_names()), set(inspector.get_view_names())
    engine.dispose()
    assert (names, views) == (TABLES, set(VIEWS))
    assert query(database_url, "SELECT name, value FROM schema_info ORDER BY name") == [
        ("schema_version", "3")]
    for view in VIEWS:
        assert query(database_url, f"SELECT * FROM {view}") == []


def test_a_version_1_store_is_migrated_keeping_its_reports(database_url: str) -> None:  # noqa: F811
    """The first release's tables, views and rows become version 3: the rollups go, the arrival
    weeks are filled from what the store knows, the reports stay (and came over OTLP)."""
    engine = sa.create_engine(database_url)
    with engine.begin() as conn:
        version_1(conn)
    engine.dispose()
    store = Store(create_engine(database_url))
    assert store.migrate() == 3
    store.dispose()
    engine = sa.create_engine(database_url)
    inspector = sa.inspect(engine)
    names, views = set(inspector.get_table_names()), set(inspector.get_view_names())
    engine.dispose()
    assert (names, views) == (TABLES, set(VIEWS))
    assert [(i, str(f)[:10], str(r)[:10]) for i, f, r in query(
        database_url, "SELECT installation_id, first_week, registered FROM installations")] == [
        (V1_ID, "2025-06-02", "2025-06-02")]
    assert [(str(w)[:10], str(r)[:10], bool(legacy)) for w, r, legacy in query(
        database_url, "SELECT week_start, received, legacy FROM weekly_reports "
                      "ORDER BY week_start")] == [
        ("2025-06-02", "2025-06-02", False), ("2025-06-09", "2025-06-09", False)]
    assert query(database_url, "SELECT name, value FROM schema_info") == [("schema_version", "3")]


V1_ID = "12345678-1234-4234-8234-123456789abc"


def version_1(conn: sa.Connection) -> None:
    """The schema of the first release (migration 1), with one installation of two weeks."""
    meta = sa.MetaData()
    ts, doc = _schema.Timestamp, _schema.Document
    tables = [
        sa.Table("installations", meta, sa.Column("installation_id", sa.String(36), primary_key=True),
                 sa.Column("credential_hash", sa.String(64), nullable=False),
                 sa.Column("first_week", ts, nullable=False)),
        sa.Table("weekly_reports", meta, sa.Column("installation_id", sa.String(36), primary_key=True),
                 sa.Column("week_start", ts, primary_key=True),
                 sa.Column("resource", doc, nullable=False), sa.Column("points", doc, nullable=False)),
        sa.Table("events_summary", meta, *(sa.Column(n, sa.String(100), primary_key=True) for n in (
            "kind", "metric", "attribute", "value")), sa.Column("week_start", ts, primary_key=True),
                 sa.Column("installations", sa.Integer, nullable=False),
                 sa.Column("total", sa.BigInteger, nullable=False)),
        sa.Table("daily_stats", meta, sa.Column("day", ts, primary_key=True),
                 sa.Column("outcome", sa.String(16), primary_key=True),
                 sa.Column("reason", sa.String(64), primary_key=True),
                 sa.Column("requests", sa.BigInteger, nullable=False)),
        sa.Table("schema_info", meta, sa.Column("name", sa.String(64), primary_key=True),
                 sa.Column("value", sa.String(64), nullable=False)),
    ]
    meta.create_all(conn)
    summary = tables[2]
    conn.execute(sa.schema.CreateView(sa.select(summary.c.week_start, summary.c.installations).where(
        summary.c.kind == "active"), "usage_active_installations"))
    conn.execute(tables[0].insert().values(installation_id=V1_ID, credential_hash="a" * 64,
                                           first_week=datetime(2025, 6, 2)))
    for week in (datetime(2025, 6, 2), datetime(2025, 6, 9)):
        conn.execute(tables[1].insert().values(installation_id=V1_ID, week_start=week,
                                               resource="{}", points="[]"))
    conn.execute(tables[4].insert(), [{"name": "schema_version", "value": "1"},
                                      {"name": "views_k", "value": "5"}])
