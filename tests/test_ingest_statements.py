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
    "erased": [sql.erased(["a" * 64])],
    "register": [sql.register()],
    "delete_report": [sql.delete_report()],
    "insert_report": [sql.insert_report()],
    "erase_reports": [sql.erase_reports(ID)],
    "erase_installation": [sql.erase_installation(ID)],
    "remember_erasure": [sql.remember_erasure()],
    "add_to_daily_stats": [sql.add_to_daily_stats()],
    "insert_daily_stats": [sql.insert_daily_stats()],
    "unpublished_weeks": [sql.unpublished_weeks(WEEK, WEEK)],
    "week_reports": [sql.week_reports(WEEK)],
    "insert_published_week": [sql.insert_published_week()],
    "insert_published_cells": [sql.insert_published_cells()],
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


CASES = [(name, dialect) for name in sorted(STATEMENTS) for dialect in sorted(DIALECTS)]


@pytest.mark.parametrize(("name", "dialect"), CASES)
def test_statement_compiles_and_parses(name: str, dialect: str) -> None:
    statements = STATEMENTS[name]
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
                    for group in STATEMENTS.values() for s in group)
    for word in ("LIMIT", "RETURNING", "ON CONFLICT"):
        assert word not in text


def test_a_report_is_replaced_by_deleting_its_row_then_inserting_it() -> None:
    """One way for every dialect: no upsert syntax to keep apart."""
    compiled = str(sql.delete_report().compile(dialect=DIALECTS["mssql"]))
    assert compiled == ("DELETE FROM weekly_reports WHERE weekly_reports.installation_id = ? "
                        "AND weekly_reports.week_start = ?")
