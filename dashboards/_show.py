"""What the dashboards would show, as text: every panel's own query, run on a store.

Used by ``otel-usage-dashboards show`` (and so by ``otel-usage-demo``): the same SQL, with
Grafana's macros expanded the same way, as the provisioned dashboards run in Grafana.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, date, datetime
from typing import Any

from .queries import Panel, Result, panels, run_panel

__all__ = ["EMPTY", "render_panel", "show"]

MAX_ROWS = 12
EMPTY = "(nothing to show: no rows)"
MAX_SERIES = 7


def show(database: str, time_from: datetime, time_to: datetime) -> str:
    """Every panel of the dashboards, rendered as a titled table."""
    import sqlalchemy as sa

    engine = sa.create_engine(database)
    try:
        blocks = [render_panel(p, run_panel(engine, p, time_from, time_to))
                  for p in panels() if not p.key.startswith("catalog:")]
    finally:
        engine.dispose()
    return "\n\n".join(blocks)


def render_panel(panel: Panel, result: Result) -> str:
    """One panel: its title, then its rows (time series pivoted to one row per week)."""
    title = f"{panel.title}\n{'=' * len(panel.title)}"
    if not any(value is not None for row in result.rows for value in row):
        return f"{title}\n{EMPTY}"
    if panel.format == "time_series" and "time" in result.columns:
        header, rows = _pivot(result, panel.unit)
    else:
        header = list(result.columns)
        rows = [[_cell(v, panel.unit) for v in row] for row in result.rows[:MAX_ROWS]]
    return f"{title}\n{_table(header, rows)}"


def _pivot(result: Result, unit: str) -> tuple[list[str], list[list[str]]]:
    """Weeks down, series across (the 'metric' column, the value column in the cells; or,
    without one, each value column, such as a number and its 95 % interval)."""
    time_index = result.columns.index("time")
    value_index = len(result.columns) - 1
    series_index = result.columns.index("metric") if "metric" in result.columns else None
    table: dict[str, dict[str, Any]] = {}
    names: list[str] = []
    for row in result.rows:
        if series_index is not None:
            found = {str(row[series_index]): row[value_index]}
        else:
            found = {c: v for c, v in zip(result.columns, row, strict=True) if c != "time"}
        for name in found:
            if name not in names:
                names.append(name)
        table.setdefault(_day(row[time_index]), {}).update(found)
    names = names[:MAX_SERIES]
    times = sorted(table)[-MAX_ROWS:]
    rows = [[time] + [_cell(table[time].get(n), unit) for n in names] for time in times]
    mondays = all(date.fromisoformat(time).weekday() == 0 for time in times)
    return ["week" if mondays else "day", *names], rows


def _day(value: Any) -> str:
    if isinstance(value, int | float):
        return datetime.fromtimestamp(value, UTC).date().isoformat()
    return str(value)[:10]


def _cell(value: Any, unit: str) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        text = f"{value:.1f}" if abs(value) < 1000 else f"{value:,.0f}"
        return text + (" %" if unit == "percent" else "")
    return str(value)


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    widths = [max(len(str(c)) for c in column) for column in zip(header, *rows, strict=False)]
    numeric = [all(_numeric(r[i]) for r in rows if i < len(r)) for i in range(len(header))]

    def line(cells: Sequence[str]) -> str:
        return "  ".join(str(c).rjust(w) if num else str(c).ljust(w)
                         for c, w, num in zip(cells, widths, numeric, strict=False)).rstrip()

    return "\n".join([line(header), line(["-" * w for w in widths]), *map(line, rows)])


def _numeric(text: str) -> bool:
    bare = text.replace(",", "").replace(".", "").replace(" %", "").replace("-", "")
    return text == "-" or bare.isdigit()
