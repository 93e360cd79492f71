"""Every statement the store runs compiles for SQL Server, PostgreSQL and SQLite.

SQL Server cannot run here: its statements are compiled with SQLAlchemy's mssql dialect (the one
`mssql+pyodbc` uses) and parsed back as T-SQL by sqlglot.
"""

from __future__ import annotations

import pytest
import sqlalchemy as sa
import sqlglot
from sqlalchemy.dialects import mssql, postgresql, sqlite
from sqlalchemy.dialects.mssql import pyodbc  # noqa: F401  (registers mssql.pyodbc)
from sqlalchemy.dialects.postgresql import psycopg  # noqa: F401
from sqlalchemy.dialects.sqlite import pysqlite  # noqa: F401

from ingest import _statements as sql

STATEMENTS = {name: value if isinstance(value, tuple) else (value,)
              for name, value in vars(sql).items()
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
    """Every statement of the module, and nothing else, is compiled below."""
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
    compiled = str(sql.DELETE_REPORT.compile(dialect=DIALECTS["mssql"]))
    assert compiled == ("DELETE FROM weekly_reports WHERE weekly_reports.installation_id = ? "
                        "AND weekly_reports.week_start = ?")
