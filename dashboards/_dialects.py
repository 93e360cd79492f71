"""The three SQL dialects a panel's query is written for.

SQL Server (Grafana's `mssql` data source, production), PostgreSQL (Grafana's
`grafana-postgresql-datasource`) and SQLite (the ingest's embedded store: no Grafana data
source, used by tests and the demo). A panel's SQL is one function of a `Dialect`, so the few
differences (TOP vs LIMIT, + vs ||, week arithmetic, identifier quotes) live here only.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

DialectName = Literal["mssql", "postgresql", "sqlite"]
DIALECT_NAMES: tuple[DialectName, ...] = ("mssql", "postgresql", "sqlite")


@dataclass(frozen=True)
class Dialect:
    """Spelling of the constructs whose syntax differs between the supported databases."""

    name: DialectName

    @property
    def is_mssql(self) -> bool:
        return self.name == "mssql"

    def q(self, identifier: str) -> str:
        """A quoted identifier (column aliases with spaces)."""
        return f"[{identifier}]" if self.is_mssql else f'"{identifier}"'

    def top(self, n: int) -> str:
        """Goes right after SELECT: T-SQL has TOP, not LIMIT."""
        return f"TOP {n} " if self.is_mssql else ""

    def limit(self, n: int) -> str:
        """Goes at the end of the statement."""
        return "" if self.is_mssql else f" LIMIT {n}"

    def concat(self, *parts: str) -> str:
        return (" + " if self.is_mssql else " || ").join(parts)

    def text(self, expression: str) -> str:
        return f"CAST({expression} AS VARCHAR(20))"

    def week(self, column: str) -> str:
        """Monday 00:00 of the ISO week holding `column` (a timestamp)."""
        if self.name == "postgresql":
            return f"date_trunc('week', {column})"
        if self.is_mssql:  # 1900-01-01 was a Monday; DATEDIFF(week) would count Sundays
            return (f"DATEADD(day, DATEDIFF(day, '19000101', {column}) / 7 * 7, "
                    f"CAST('19000101' AS DATETIME2(0)))")
        return f"datetime({column}, 'weekday 0', '-6 days')"


def dialect(name: str) -> Dialect:
    if name not in DIALECT_NAMES:
        raise ValueError(f"unknown SQL dialect {name!r}: expected one of {DIALECT_NAMES}")
    return Dialect(name)
