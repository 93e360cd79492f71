"""Every statement the store runs compiles for SQL Server, PostgreSQL and SQLite.

SQL Server cannot run here: its statements are compiled with SQLAlchemy's mssql dialect (the one
`mssql+pyodbc` uses) and parsed back as T-SQL by sqlglot.
"""

from __future__ import annotations

import inspect
from datetime import datetime

import pytest
import sqlglot
from sqlalchemy.dialects import mssql, postgresql, sqlite
from sqlalchemy.dialects.mssql import pyodbc  # noqa: F401  (registers mssql.pyodbc)
from sqlalchemy.dialects.postgresql import psycopg  # noqa: F401
from sqlalchemy.dialects.sqlite import pysqlite  # noqa: F401

from ingest import _statements as sql

WEEK = datetime(2025, 6, 9)
ID = "12345678-1234-4234-8234-123456789abc"
STATEMENTS = {
    "credentials": [sql.credentials([ID, ID])],
    "register": [sql.register()],
    "stored_reports": [sql.stored_reports([ID], [WEEK]), sql.stored_reports([ID], [])],
    "delete_report": [sql.delete_report()],
    "insert_report": [sql.insert_report()],
    "rollup_keys": [sql.rollup_keys(WEEK)],
    "add_to_rollup": [sql.add_to_rollup()],
    "insert_rollup": [sql.insert_rollup()],
    "upsert_rollup": [sql.upsert_rollup(d) for d in sql.UPSERT_DIALECTS],
    "upsert_rollup_arrays": [sql.upsert_rollup_arrays()],
    "erase_reports": [sql.erase_reports(ID)],
    "erase_installation": [sql.erase_installation(ID)],
    "add_to_daily_stats": [sql.add_to_daily_stats()],
    "insert_daily_stats": [sql.insert_daily_stats()],
    "prune": sql.prune(WEEK),
    "ping": [sql.ping()],
}
# The drivers' dialects, so parameters render as each driver sends them.
DIALECTS = {"mssql": mssql.pyodbc.dialect(paramstyle="qmark"),
            "postgresql": postgresql.psycopg.dialect(paramstyle="pyformat"),
            "sqlite": sqlite.pysqlite.dialect(paramstyle="qmark")}
SQLGLOT = {"mssql": "tsql", "postgresql": "postgres", "sqlite": "sqlite"}


def test_the_list_covers_every_statement_the_store_can_run() -> None:
    public = {name for name, fn in inspect.getmembers(sql, inspect.isfunction)
              if fn.__module__ == sql.__name__}
    assert public == set(STATEMENTS)


# Statements that exist for some dialects only: the upsert (SQL Server updates, then inserts)
# and the upsert of arrays (PostgreSQL's unnest).
ONLY = {"upsert_rollup": set(sql.UPSERT_DIALECTS), "upsert_rollup_arrays": {"postgresql"}}
CASES = [(name, dialect) for name in sorted(STATEMENTS) for dialect in sorted(DIALECTS)
         if dialect in ONLY.get(name, DIALECTS)]


def test_only_the_upserts_are_left_out_for_some_dialects() -> None:
    every = {(name, dialect) for name in STATEMENTS for dialect in DIALECTS}
    assert sorted(every - set(CASES)) == [
        ("upsert_rollup", "mssql"), ("upsert_rollup_arrays", "mssql"),
        ("upsert_rollup_arrays", "sqlite")]


@pytest.mark.parametrize(("name", "dialect"), CASES)
def test_statement_compiles_and_parses(name: str, dialect: str) -> None:
    statements = ([sql.upsert_rollup(dialect)] if name == "upsert_rollup"
                  else STATEMENTS[name])
    assert statements
    for statement in statements:
        compiled = str(statement.compile(dialect=DIALECTS[dialect],
                                         compile_kwargs={"render_postcompile": True}))
        parsed = sqlglot.parse_one(compiled.replace("%(", "(").replace(")s", ")"),
                                   read=SQLGLOT[dialect])
        assert parsed is not None
        assert compiled.split()[0] in {"SELECT", "INSERT", "UPDATE", "DELETE"}


def test_sql_server_gets_no_limit_or_returning_syntax() -> None:
    """Nothing T-SQL lacks (LIMIT, RETURNING, ON CONFLICT) slips into the mssql statements."""
    options = {"render_postcompile": True}
    text = " ".join(str(s.compile(dialect=DIALECTS["mssql"], compile_kwargs=options))
                    for name, group in STATEMENTS.items()
                    if name not in ("upsert_rollup", "upsert_rollup_arrays") for s in group)
    for word in ("LIMIT", "RETURNING", "ON CONFLICT"):
        assert word not in text


def test_rollup_update_adds_to_the_stored_counts() -> None:
    compiled = str(sql.add_to_rollup().compile(dialect=DIALECTS["mssql"]))
    assert compiled == (
        "UPDATE events_summary SET installations=(events_summary.installations + ?), "
        "total=(events_summary.total + ?) WHERE events_summary.week_start = ? AND "
        "events_summary.kind = ? AND events_summary.metric = ? AND events_summary.attribute = ? "
        "AND events_summary.value = ?")
