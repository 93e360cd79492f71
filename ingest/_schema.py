"""The store's tables, its migrations and the reporting views, for every supported dialect.

Seed names where they fit: `installations` (one row per installation: its credential's hash),
`events_summary` (the weekly rollups the views read), `daily_stats` (request counts per day).
`weekly_reports` keeps each installation-week as received, so it can be replaced or erased.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import sqlalchemy as sa
from sqlalchemy.dialects import mssql, postgresql, sqlite
from sqlalchemy.engine import Connection, Dialect
from sqlalchemy.schema import CreateIndex, CreateTable, CreateView, DropView, ExecutableDDLElement

from .views import VIEWS

metadata = sa.MetaData()
Timestamp = sa.DateTime().with_variant(mssql.DATETIME2(0), "mssql")
Document = sa.Text().with_variant(mssql.VARCHAR(None), "mssql")  # VARCHAR(max): TEXT is deprecated

installations = sa.Table(
    "installations", metadata,
    sa.Column("installation_id", sa.String(36), primary_key=True),
    sa.Column("credential_hash", sa.String(64), nullable=False),
    sa.Column("first_week", Timestamp, nullable=False),
)
weekly_reports = sa.Table(
    "weekly_reports", metadata,
    sa.Column("installation_id", sa.String(36), primary_key=True),
    sa.Column("week_start", Timestamp, primary_key=True),
    sa.Column("resource", Document, nullable=False),
    sa.Column("points", Document, nullable=False),
)
events_summary = sa.Table(
    "events_summary", metadata,
    sa.Column("week_start", Timestamp, primary_key=True),
    sa.Column("kind", sa.String(16), primary_key=True),
    sa.Column("metric", sa.String(100), primary_key=True),
    sa.Column("attribute", sa.String(100), primary_key=True),
    sa.Column("value", sa.String(64), primary_key=True),
    sa.Column("installations", sa.Integer, nullable=False),
    sa.Column("total", sa.BigInteger, nullable=False),
)
daily_stats = sa.Table(
    "daily_stats", metadata,
    sa.Column("day", Timestamp, primary_key=True),
    sa.Column("outcome", sa.String(16), primary_key=True),
    sa.Column("reason", sa.String(64), primary_key=True),
    sa.Column("requests", sa.BigInteger, nullable=False),
)
weekly_reports_by_week = sa.Index("ix_weekly_reports_week_start", weekly_reports.c.week_start)
events_summary_by_group = sa.Index(
    "ix_events_summary_group", events_summary.c.kind, events_summary.c.metric,
    events_summary.c.attribute, events_summary.c.week_start,
)
schema_info = sa.Table(
    "schema_info", metadata,
    sa.Column("name", sa.String(64), primary_key=True),
    sa.Column("value", sa.String(64), nullable=False),
)


def _migration_1() -> list[ExecutableDDLElement]:
    tables = [installations, weekly_reports, events_summary, daily_stats, schema_info]
    indexes = [weekly_reports_by_week, events_summary_by_group]
    return [*(CreateTable(t) for t in tables), *(CreateIndex(i) for i in indexes)]


# Append only: a released migration never changes.
MIGRATIONS: Sequence[Callable[[], list[ExecutableDDLElement]]] = (_migration_1,)
SCHEMA_VERSION = len(MIGRATIONS)
DIALECTS: dict[str, Dialect] = {
    "mssql": mssql.dialect(), "postgresql": postgresql.dialect(), "sqlite": sqlite.dialect(),
}


def _kind(kind: str, k: int) -> sa.Select[tuple[object, ...]]:
    es = events_summary.c
    return sa.select().select_from(events_summary).where(
        es.kind == sa.literal_column(f"'{kind}'"), es.installations >= sa.literal_column(str(k))
    )


def view_selects(k: int) -> dict[str, sa.Select[tuple[object, ...]]]:
    """The SELECT behind each view in `views.VIEWS`, suppressing groups under k."""
    es = events_summary.c
    ds = daily_stats.c
    selects = {
        "usage_active_installations": _kind("active", k).add_columns(
            es.week_start, es.installations),
        "usage_distributions": _kind("distribution", k).add_columns(
            es.week_start, es.metric, sa.cast(es.value, sa.Integer).label("bucket_min"),
            es.installations, es.total),
        "usage_metrics": _kind("metric", k).add_columns(
            es.week_start, es.metric, es.attribute, es.value, es.installations, es.total),
        "usage_resource_attributes": _kind("resource", k).add_columns(
            es.week_start, es.attribute, es.value, es.installations),
        "usage_submissions": sa.select(ds.day, ds.outcome, ds.reason, ds.requests),
    }
    assert list(selects) == list(VIEWS), "views.VIEWS and the view selects must agree"
    return selects


def view_ddl(k: int) -> list[ExecutableDDLElement]:
    return [CreateView(select, name) for name, select in view_selects(k).items()]


def drop_views_ddl() -> list[ExecutableDDLElement]:
    return [DropView(sa.table(name), if_exists=True) for name in VIEWS]  # type: ignore[arg-type]


def ddl(dialect_name: str, k: int) -> str:
    """The whole schema as SQL a DBA can review and run (SQL Server batches end with GO)."""
    dialect = DIALECTS[dialect_name]
    statements = [str(d.compile(dialect=dialect)).strip() for m in MIGRATIONS for d in m()]
    statements += [str(d.compile(dialect=dialect)).strip() for d in view_ddl(k)]
    info = sa.insert(schema_info).values([
        {"name": "schema_version", "value": str(SCHEMA_VERSION)},
        {"name": "views_k", "value": str(k)},
    ])
    statements.append(str(info.compile(dialect=dialect, compile_kwargs={"literal_binds": True})))
    separator = "\nGO\n\n" if dialect_name == "mssql" else ";\n\n"
    return separator.join(statements) + separator.rstrip("\n") + "\n"


def migrate(conn: Connection, k: int) -> int:
    """Apply the migrations this store lacks and (re)create the views for k; the new version."""
    current = _version(conn)
    for number in range(current + 1, SCHEMA_VERSION + 1):
        for statement in MIGRATIONS[number - 1]():
            conn.execute(statement)
    _set(conn, "schema_version", str(SCHEMA_VERSION), exists=current > 0)
    views_k = _get(conn, "views_k")
    if views_k != str(k) or current < SCHEMA_VERSION:
        for statement in [*drop_views_ddl(), *view_ddl(k)]:
            conn.execute(statement)
        _set(conn, "views_k", str(k), exists=views_k is not None)
    return SCHEMA_VERSION


def _version(conn: Connection) -> int:
    if not sa.inspect(conn).has_table(schema_info.name):
        return 0
    value = _get(conn, "schema_version")
    return int(value) if value is not None else 0


def _get(conn: Connection, name: str) -> str | None:
    query = sa.select(schema_info.c.value).where(schema_info.c.name == name)
    return conn.execute(query).scalar_one_or_none()


def _set(conn: Connection, name: str, value: str, *, exists: bool) -> None:
    if exists:
        conn.execute(sa.update(schema_info).where(schema_info.c.name == name).values(value=value))
    else:
        conn.execute(sa.insert(schema_info).values(name=name, value=value))
