"""What the user reads of the local database: the viewer's sums, the export of everything
kept, and delete-all.

Imported by what the user sees (the page's and the command's answers, Printernizer's old API)
when it is asked for: a host that records does not hold this code until then.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

from ..weeks import from_epoch_day
from . import Tx

__all__ = ["ReadsTx"]

# Columns the export leaves out; tables it renders with their own shape (any other table is
# exported row by row).
_SECRET_COLUMNS = frozenset({"credential", "secret"})
_SHAPED_TABLES = frozenset({"meta", "mode_changes", "series", "daily"})

_PEAK_SUM = """
SELECT coalesce(max(n), 0) FROM (
  SELECT sum(d.peak) AS n FROM daily d JOIN series s ON s.id = d.series_id
  WHERE s.metric = ? AND d.day >= ? AND d.day < ? GROUP BY d.day)
"""
_LATEST_BY_KEY = """
SELECT json_extract(s.attributes, ?), d.last
FROM daily d JOIN series s ON s.id = d.series_id
WHERE s.metric = ?
  AND d.day = (SELECT max(d2.day) FROM daily d2 WHERE d2.series_id = d.series_id)
"""


class ReadsTx(Tx):
    """A transaction with what the user reads too (``store.read(ReadsTx)``)."""

    def days_active(self) -> int:
        return int(self._conn.execute("SELECT count(DISTINCT day) FROM daily").fetchone()[0])

    def total(self, metric: str, where: Mapping[str, str], first_day: int, end_day: int) -> float:
        """The sum of `metric`'s totals in [first_day, end_day), over series matching `where`."""
        sql = ("SELECT coalesce(sum(d.total), 0) FROM daily d JOIN series s ON s.id = d.series_id "
               "WHERE s.metric = ? AND d.day >= ? AND d.day < ?")
        params: list[Any] = [metric, first_day, end_day]
        for key, value in where.items():
            sql += " AND json_extract(s.attributes, ?) = ?"
            params += [_json_path(key), value]
        return float(self._conn.execute(sql, params).fetchone()[0])

    def peak_sum(self, metric: str, first_day: int, end_day: int) -> float:
        """The highest daily sum of `metric`'s peaks over its series in [first_day, end_day)."""
        return float(self._conn.execute(_PEAK_SUM, (metric, first_day, end_day)).fetchone()[0])

    def latest_by_key(self, metric: str, key: str) -> list[tuple[Any, float | None]]:
        """Each series of `metric`: the value of attribute `key` and its latest day's last."""
        return list(self._conn.execute(_LATEST_BY_KEY, (_json_path(key), metric)))

    def last_submitted(self) -> str | None:
        """When the server last accepted a report."""
        row = self._conn.execute("SELECT max(attempted_at) FROM uploads "
                                 "WHERE kind = 'report' AND status BETWEEN 200 AND 299").fetchone()
        return None if row[0] is None else str(row[0])

    def series_with_days(self) -> list[dict[str, Any]]:
        """Every series with its daily rows, for the export."""
        series: dict[int, dict[str, Any]] = {}
        for sid, metric, attributes, kind, unit, local_only in self._conn.execute(
                "SELECT id, metric, attributes, kind, unit, local_only FROM series "
                "ORDER BY metric, id"):
            series[sid] = {"metric": metric, "attributes": json.loads(attributes), "kind": kind,
                           "unit": unit, "local_only": bool(local_only), "days": []}
        for sid, day, total, last, peak in self._conn.execute(
                "SELECT series_id, day, total, last, peak FROM daily ORDER BY series_id, day"):
            if sid in series:
                series[sid]["days"].append({"day": from_epoch_day(day).isoformat(), **{
                    k: v for k, v in (("total", total), ("last", last), ("peak", peak))
                    if v is not None}})
        return list(series.values())

    def other_tables(self) -> dict[str, list[dict[str, Any]]]:
        """Every other table, row by row (secret columns left out, bytes as hex)."""
        out: dict[str, list[dict[str, Any]]] = {}
        for table in self._tables():
            if table in _SHAPED_TABLES:
                continue
            cursor = self._conn.execute(f'SELECT * FROM "{table}"')
            names = [c[0] for c in cursor.description]
            out[table] = [{n: v.hex() if isinstance(v, bytes) else v
                           for n, v in zip(names, row, strict=True) if n not in _SECRET_COLUMNS}
                          for row in cursor]
        return out

    def delete_rows(self, keep: Iterable[str] = ()) -> None:
        """Delete every row of every table but those in `keep`."""
        kept = set(keep)
        for table in self._tables():
            if table not in kept:
                self._conn.execute(f'DELETE FROM "{table}"')

    def _tables(self) -> list[str]:
        return [r[0] for r in self._conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' "
            "ORDER BY name")]


def _json_path(key: str) -> str:
    """The JSON path of an attribute key (keys hold dots, so they are quoted)."""
    return '$."' + key.replace('"', '\\"') + '"'
