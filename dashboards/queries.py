"""The panels' SQL, for code that wants what the dashboards would show without Grafana.

    from dashboards import queries
    for panel in queries.panels():
        result = queries.run_panel("sqlite:///otel-usage-ingest.db", panel, start, end)

`run_panel` expands Grafana's macros as the panel's data source would (see `_macros`) and runs
the SQL on the store with SQLAlchemy (the ingest's dependency).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from ._dialects import dialect
from ._macros import MacroError, expand
from ._panels import PANELS, Panel

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

__all__ = ["MacroError", "Panel", "Result", "panels", "run_panel"]


@dataclass(frozen=True)
class Result:
    """What a panel's query returned: column names and rows."""

    columns: tuple[str, ...]
    rows: tuple[tuple[Any, ...], ...]


def panels() -> tuple[Panel, ...]:
    """Every panel, in dashboard order."""
    return PANELS


def run_panel(engine_or_url: Engine | str, panel: Panel, time_from: datetime,
              time_to: datetime) -> Result:
    """Run `panel`'s query for the time range on a store, as Grafana would; MacroError when
    its SQL holds a macro Grafana would refuse."""
    import sqlalchemy as sa

    engine = sa.create_engine(engine_or_url) if isinstance(engine_or_url, str) else engine_or_url
    try:
        name = dialect(engine.dialect.name).name  # the store's, if a panel has SQL for it
        sql = expand(panel.sql(name), name, time_from, time_to)
        if engine.dialect.paramstyle in ("format", "pyformat"):  # psycopg: "%" starts a placeholder
            sql = sql.replace("%", "%%")
        with engine.connect() as conn:
            cursor = conn.exec_driver_sql(sql)
            return Result(tuple(cursor.keys()), tuple(tuple(row) for row in cursor))
    finally:
        if isinstance(engine_or_url, str):
            engine.dispose()
