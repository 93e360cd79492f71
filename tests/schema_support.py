"""A synthetic version 2 of the ingest's schema, for tests of the upgrade (no version 2
exists: nothing has been released); what a store's schema looks like, to compare two; and
printed DDL run as a DBA runs it."""

from __future__ import annotations

import sqlite3
import subprocess
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from ingest import _schema

SUBMISSIONS_V1 = ("day", "outcome", "reason", "requests")


def version_2(view_columns: tuple[str, ...] = (*SUBMISSIONS_V1, "bytes"),
              then: tuple[_schema.Statement, ...] = ()) -> _schema.Schema:
    """Version 1 plus a step: `daily_stats` gains a nullable column `bytes` (and the step
    goes on with `then`), and the view `usage_submissions` shows `view_columns` of it (by
    default `bytes` appended)."""
    metadata = sa.MetaData()
    tables = tuple(table.to_metadata(metadata) for table in _schema.TABLES)
    stats = metadata.tables["daily_stats"]
    stats.append_column(sa.Column("bytes", sa.BigInteger))

    def views() -> dict[str, sa.Select[tuple[object, ...]]]:
        selects = _schema.view_selects()
        selects["usage_submissions"] = sa.select(*(stats.c[name] for name in view_columns))
        return selects

    indexes = tuple(index for table in tables for index in sorted(table.indexes, key=str))
    return _schema.Schema(version=2, tables=tables, indexes=indexes,
                          steps={2: [sa.DDL("ALTER TABLE daily_stats ADD bytes BIGINT"), *then]},
                          views=views)


def add_stats_row(url: str) -> None:
    """A day of request counts (`daily_stats`, which `usage_submissions` shows), kept through
    an upgrade."""
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    with engine.begin() as conn:
        conn.execute(sa.insert(_schema.daily_stats).values(
            day=datetime(2026, 1, 5), outcome="accepted", reason="", requests=3))
    engine.dispose()


def snapshot(url: str) -> dict[str, Any]:
    """A store's schema as the database reports it: each table's columns (name, type,
    nullable) and primary key, the indexes, each view's columns and definition, and
    `schema_info`'s rows."""
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as conn:
            inspector = sa.inspect(conn)
            tables = {
                name: ([(c["name"], str(c["type"]), c["nullable"])
                        for c in inspector.get_columns(name)],
                       inspector.get_pk_constraint(name)["constrained_columns"],
                       sorted(str(i["name"]) for i in inspector.get_indexes(name)))
                for name in sorted(inspector.get_table_names())}
            views = {name: ([c["name"] for c in inspector.get_columns(name)],
                            inspector.get_view_definition(name))
                     for name in sorted(inspector.get_view_names())}
            info = sorted(tuple(row) for row in conn.exec_driver_sql(
                "SELECT name, value FROM schema_info"))
            return {"tables": tables, "views": views, "schema_info": info}
    finally:
        engine.dispose()


def empty(url: str) -> None:
    """Drop every view and table of a store, so that another can be made in its place."""
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    try:
        with engine.begin() as conn:
            for name in sa.inspect(conn).get_view_names():
                conn.execute(sa.schema.DropView(sa.Table(name, sa.MetaData())))
            tables = sa.MetaData()
            tables.reflect(conn)
            tables.drop_all(conn)
    finally:
        engine.dispose()


def apply_by_hand(url: str, ddl: str) -> None:
    """Run printed DDL as a DBA would: with `psql` on PostgreSQL (stopping at the first
    error), with SQLite's own script runner on SQLite."""
    target = sa.make_url(url)
    if target.get_backend_name() == "sqlite":
        connection = sqlite3.connect(str(target.database), isolation_level=None)
        try:
            connection.executescript(ddl)
        finally:
            connection.close()
        return
    libpq = target.set(drivername="postgresql").render_as_string(hide_password=False)
    subprocess.run(["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", libpq],
                   input=ddl, text=True, check=True, capture_output=True)
