"""What the user can see of the local store, read over aiosqlite for the async host.

The "Local Statistics Viewer" of the plan, the full JSON export, and delete-all. Reads open the
file read-only and never create it; delete-all leaves no row behind and overwrites freed pages.
"""

from __future__ import annotations

import functools
import json
import sqlite3
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any, ParamSpec, TypeVar

import aiosqlite

from ._errors import StoreUnavailableError
from ._modes import Mode, effective_mode
from .catalog import Catalog
from .clock import Clock
from .weeks import Week, epoch_day, from_epoch_day

__all__ = ["EXPORT_FORMAT", "delete_all", "export_all", "statistics"]

EXPORT_FORMAT = "otel-usage-export/1"
# Never shown, exported or logged: the installation's credential for the server.
SECRET_META_KEYS = frozenset({"credential"})
HISTORY_WEEKS = 8

_WEEK_TOTALS = """
SELECT
  coalesce(sum(CASE WHEN s.metric = 'printernizer.jobs'
           AND json_extract(s.attributes, '$."job.status"') = 'completed' THEN d.total END), 0),
  coalesce(sum(CASE WHEN s.metric = 'printernizer.file.downloads' THEN d.total END), 0),
  coalesce(sum(CASE WHEN s.metric = 'printernizer.errors' THEN d.total END), 0)
FROM daily d JOIN series s ON s.id = d.series_id
WHERE d.day >= ? AND d.day < ?
"""
_WEEK_PRINTERS = """
SELECT coalesce(max(n), 0) FROM (
  SELECT sum(d.peak) AS n FROM daily d JOIN series s ON s.id = d.series_id
  WHERE s.metric = 'printernizer.printers' AND d.day >= ? AND d.day < ? GROUP BY d.day)
"""
_FEATURES = """
SELECT json_extract(s.attributes, '$."feature.name"'), d.last
FROM daily d JOIN series s ON s.id = d.series_id
WHERE s.metric = 'printernizer.features.enabled'
  AND d.day = (SELECT max(d2.day) FROM daily d2 WHERE d2.series_id = d.series_id)
"""


P = ParamSpec("P")
R = TypeVar("R")


def _store_errors(fn: Callable[P, Awaitable[R]]) -> Callable[P, Awaitable[R]]:
    """SQLite failures reach the caller as StoreUnavailableError, with the cause attached."""

    @functools.wraps(fn)
    async def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return await fn(*args, **kwargs)
        except sqlite3.Error as exc:
            raise StoreUnavailableError(f"the local usage database cannot be used: {exc}") from exc

    return wrapper


@asynccontextmanager
async def _open_read_only(path: Path) -> AsyncIterator[aiosqlite.Connection | None]:
    if not path.exists():
        yield None
        return
    async with aiosqlite.connect(f"file:{path}?mode=ro", uri=True) as db:
        yield db


@_store_errors
async def statistics(path: Path, clock: Clock, catalog: Catalog,
                     forced: Mode | None) -> dict[str, Any]:
    """The local statistics viewer: who, since when, this week and the last weeks, features."""
    today = clock.now().astimezone(UTC).date()
    monday = Week.of(today).monday
    features: dict[str, bool | None] = {
        name: None for name in catalog.metrics["printernizer.features.enabled"]
        .attributes["feature.name"].values or ()
    }
    result: dict[str, Any] = {
        "mode": effective_mode(forced, None), "installation_id": None, "first_used": None,
        "days_active": 0,
        "week_start": monday.isoformat(), "this_week": _week_values(0, 0, 0, 0),
        "weeks": [], "features": features, "last_submitted": None,
    }
    async with _open_read_only(path) as db:
        if db is None:
            return result
        meta = await _meta(db)
        result["mode"] = effective_mode(forced, await _stored_mode(db))
        result["installation_id"] = meta.get("installation_id")
        result["first_used"] = meta.get("first_used")
        result["last_submitted"] = await _last_submitted(db)
        row = await _one(db, "SELECT count(DISTINCT day) FROM daily")
        result["days_active"] = int(row[0])
        weeks = []
        for back in range(HISTORY_WEEKS - 1, -1, -1):
            start = monday - timedelta(weeks=back)
            weeks.append({"week_start": start.isoformat(), **await _week(db, start)})
        result["weeks"] = weeks
        result["this_week"] = {k: v for k, v in weeks[-1].items() if k != "week_start"}
        async with db.execute(_FEATURES) as cursor:
            async for name, value in cursor:
                if name in features:
                    features[name] = bool(value)
    return result


async def _last_submitted(db: aiosqlite.Connection) -> str | None:
    """When the server last accepted a report (the viewer's "Last submitted" line)."""
    tables = {r[0] for r in await db.execute_fetchall(
        "SELECT name FROM sqlite_master WHERE type = 'table'")}
    if "uploads" not in tables:
        return None
    row = await _one(db, "SELECT max(attempted_at) FROM uploads "
                         "WHERE kind = 'report' AND status BETWEEN 200 AND 299")
    return None if row[0] is None else str(row[0])


async def _week(db: aiosqlite.Connection, start: date) -> dict[str, int]:
    first = epoch_day(datetime(start.year, start.month, start.day, tzinfo=UTC))
    jobs, downloads, errors = await _one(db, _WEEK_TOTALS, (first, first + 7))
    printers = (await _one(db, _WEEK_PRINTERS, (first, first + 7)))[0]
    return _week_values(jobs, downloads, printers, errors)


def _week_values(jobs: float, downloads: float, printers: float, errors: float) -> dict[str, int]:
    return {"jobs_completed": int(jobs), "files_downloaded": int(downloads),
            "active_printers": int(printers), "errors": int(errors)}


@_store_errors
async def export_all(path: Path, forced: Mode | None) -> dict[str, Any]:
    """Everything stored locally, as JSON-ready data (the credential excepted)."""
    result: dict[str, Any] = {
        "format": EXPORT_FORMAT, "mode": effective_mode(forced, None), "installation": {},
        "mode_changes": [],
        "series": [],
    }
    async with _open_read_only(path) as db:
        if db is None:
            return result
        meta = await _meta(db)
        result["mode"] = effective_mode(forced, await _stored_mode(db))
        result["installation"] = {k: v for k, v in sorted(meta.items())
                                  if k not in SECRET_META_KEYS}
        async with db.execute(
            "SELECT changed_at, mode, catalog_version, source FROM mode_changes ORDER BY id"
        ) as cursor:
            result["mode_changes"] = [
                {"changed_at": r[0], "mode": r[1], "catalog_version": r[2], "source": r[3]}
                async for r in cursor
            ]
        result["series"] = await _series(db)
        for table, rows in (await _other_tables(db)).items():
            result[table] = rows
    return result


async def _series(db: aiosqlite.Connection) -> list[dict[str, Any]]:
    series: dict[int, dict[str, Any]] = {}
    async with db.execute(
        "SELECT id, metric, attributes, kind, unit, local_only FROM series ORDER BY metric, id"
    ) as cursor:
        async for sid, metric, attributes, kind, unit, local_only in cursor:
            series[sid] = {"metric": metric, "attributes": json.loads(attributes), "kind": kind,
                           "unit": unit, "local_only": bool(local_only), "days": []}
    async with db.execute(
        "SELECT series_id, day, total, last, peak FROM daily ORDER BY series_id, day"
    ) as cursor:
        async for sid, day, total, last, peak in cursor:
            entry = {"day": from_epoch_day(day).isoformat()}
            entry.update({k: v for k, v in (("total", total), ("last", last), ("peak", peak))
                          if v is not None})
            if sid in series:
                series[sid]["days"].append(entry)
    return list(series.values())


# Tables the export renders generically (later parts add them: the outbox, the upload history).
_CORE_TABLES = frozenset({"meta", "mode_changes", "series", "daily"})
_SECRET_COLUMNS = frozenset({"credential", "secret"})


async def _other_tables(db: aiosqlite.Connection) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {}
    for (table,) in await db.execute_fetchall(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' "
        "ORDER BY name"
    ):
        if table in _CORE_TABLES:
            continue
        async with db.execute(f'SELECT * FROM "{table}"') as cursor:
            names = [c[0] for c in cursor.description]
            out[table] = [
                {n: _jsonable(v) for n, v in zip(names, row, strict=True)
                 if n not in _SECRET_COLUMNS}
                async for row in cursor
            ]
    return out


def _jsonable(value: Any) -> Any:
    return value.hex() if isinstance(value, bytes) else value


@_store_errors
async def delete_all(path: Path, keep: tuple[str, ...] = ()) -> None:
    """Delete every row of every table but `keep` at once; freed pages are overwritten and the
    WAL emptied, so deleted values do not linger in the file."""
    if not path.exists():
        return
    async with aiosqlite.connect(path, isolation_level=None) as db:
        await db.execute("PRAGMA busy_timeout = 5000")
        await db.execute("PRAGMA secure_delete = ON")
        tables = [r[0] for r in await db.execute_fetchall(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'")
            if r[0] not in keep]
        await db.execute("BEGIN IMMEDIATE")
        try:
            for table in tables:
                await db.execute(f'DELETE FROM "{table}"')
            await db.execute("COMMIT")
        except BaseException:
            await db.execute("ROLLBACK")
            raise
        await db.execute("VACUUM")
        await db.execute("PRAGMA wal_checkpoint(TRUNCATE)")


async def _stored_mode(db: aiosqlite.Connection) -> str | None:
    row = await _one(db, "SELECT mode FROM mode_changes ORDER BY id DESC LIMIT 1")
    return None if row is None else str(row[0])


async def _meta(db: aiosqlite.Connection) -> dict[str, str]:
    return {k: v for k, v in await db.execute_fetchall("SELECT key, value FROM meta")}


async def _one(db: aiosqlite.Connection, sql: str, params: tuple[Any, ...] = ()) -> Any:
    async with db.execute(sql, params) as cursor:
        return await cursor.fetchone()
