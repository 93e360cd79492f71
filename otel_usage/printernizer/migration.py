"""Moving what the old usage-statistics feature left on the user's disk into the local store.

Printernizer kept ``usage_events`` (one row per event, kept whether or not the user opted in)
and ``usage_settings`` (``opt_in_status``, ``installation_id``, ``first_run_date``) in its own
SQLite database. At the first start with otel-usage, once:

- ``opt_in_status`` ``enabled``: mode ``on`` with consent to catalog version 1 only (what the
  old feature sent), from the moment of the migration: a consent never starts before it is
  recorded in this store (a first start whose migration failed recorded weeks under
  ``local``, which an older date would let out). When the user opted in (the setting's
  ``updated_at``) is kept as ``printernizer_opted_in_at``, to be shown, never as a cut.
  Anything newer waits for the user's word on the privacy page. ``disabled``: mode
  ``local``, as the user's choice. Absent (never asked): nothing is chosen, the default
  (``local``) holds;
- the installation id carries over (a valid UUID4 only), with the first-run date;
- ``usage_events`` are summed into the local per-day history, as local-only series (attribute
  ``migrated``: they are never sent: they predate this consent's reports), then deleted with
  ``usage_settings``, with ``secure_delete`` on, so no raw event stays on disk.

Under ``DO_NOT_TRACK`` (the mode forced ``off``) nothing is copied and no local store is made:
the old rows are only deleted, since removing data is not recording it.

Two databases cannot commit together, so the move is made of steps that each commit and can be
redone: (1) the copy into the local store, with a marker, in one transaction; (2) the old rows
deleted, leaving ``usage_settings.migrated_to``, in one transaction; (3) the marker set to
done. A crash in a step rolls it back; a crash between steps resumes after the last one done,
so nothing is counted twice. A row that cannot be read (a damaged timestamp, metadata that is
not JSON, an unknown event type, text that is not UTF-8, in either table) is counted as skipped
and deleted with the others: the old database's text is read as bytes and decoded here, so one
such row never stops the move.
"""

from __future__ import annotations

import json
import re
import sqlite3
from collections.abc import Iterable, Mapping
from contextlib import closing, suppress
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .. import consent
from ..catalog import Catalog
from ..log import logger
from ..store import Tx
from ..weeks import epoch_day
from .events import event_point, known_event

if TYPE_CHECKING:
    from ..telemetry import UsageTelemetry

__all__ = ["LEGACY_CATALOG_VERSION", "MARKER", "MIGRATED_ATTRIBUTE", "MigrationResult",
           "migrate_printernizer_database"]

MARKER = "printernizer_migration"
MIGRATED_ATTRIBUTE = "migrated"
MIGRATED_FROM = "printernizer_usage_events"
DONE_SETTING = "migrated_to"
# When the user opted in through the old switch: shown in the export, never a consent's cut.
OPTED_IN_AT = "printernizer_opted_in_at"
# What the old feature already sent is catalog version 1: an opt-in through the old switch (or
# migrated from it) consents to that; newer items wait for the user's word on the privacy page.
LEGACY_CATALOG_VERSION = 1
# The metadata keys an event's point is made of (:func:`.events.event_point`).
_METADATA_KEYS = ("printer_type", "job_status", "error_code", "error_type")
# The old events grouped by SQLite: type, UTC day (NULL for a timestamp it cannot read),
# whether the metadata is a JSON object (or empty), the keys above, and how many rows.
# (CASE, unlike AND, evaluates lazily: json_type() never sees malformed JSON.)
_OBJECT = ("CASE WHEN json_valid(metadata) THEN json_type(metadata) = 'object' "
           "ELSE 0 END")
_GROUPED_EVENTS = f"""
SELECT event_type, date(timestamp),
       CASE WHEN metadata IS NULL OR metadata = '' THEN 1 ELSE {_OBJECT} END,
""" + ",\n".join(
    f"       CASE WHEN {_OBJECT} THEN json_extract(metadata, '$.{key}') END"
    for key in _METADATA_KEYS) + """,
       count(*)
FROM usage_events GROUP BY 1, 2, 3, 4, 5, 6, 7
"""
_UUID4 = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")


@dataclass(frozen=True)
class MigrationResult:
    """What a migration did: ``status`` is ``absent`` (no old tables), ``done`` (migrated now),
    ``resumed`` (a copy made before a crash, finished now) or ``already``; ``events`` the old
    events counted, ``skipped`` the rows of either table that could not be read."""

    status: str
    opt_in_status: str | None = None
    events: int = 0
    skipped: int = 0


@dataclass(frozen=True)
class _Legacy:
    tables: frozenset[str]
    settings: Mapping[str, tuple[str | None, str | None]]
    events: list[tuple[Any, ...]]  # grouped: see _GROUPED_EVENTS, text decoded
    unreadable_settings: int = 0


def migrate_printernizer_database(database_path: str | Path, usage: UsageTelemetry, *,
                                  busy_timeout_s: float = 10.0) -> MigrationResult:
    """Migrate Printernizer's old usage tables at `database_path` into `usage`'s store, once
    (``deleted``: only deleted, under DO_NOT_TRACK). Raises StoreUnavailableError when the
    local store cannot be written (nothing is deleted then); a Printernizer database that
    cannot be read, or stays locked for `busy_timeout_s`, is logged and left as it is."""
    path = Path(database_path)
    if not path.exists():
        return MigrationResult("absent")
    if consent.environment_mode(usage.environ) == "off":
        return _delete_only(path, usage, busy_timeout_s)
    with usage.store.read() as tx:
        marker = tx.meta(MARKER)
    if marker == "done":
        return MigrationResult("already")
    try:
        with closing(_connect(path, busy_timeout_s)) as conn:
            legacy = _read(conn)
            if legacy is None:
                return MigrationResult("absent")
            status = legacy.settings.get("opt_in_status", (None, None))[0]
            if marker is None and DONE_SETTING in legacy.settings:
                return MigrationResult("already", status)
            events, skipped = 0, 0
            if marker is None:
                with usage.store.transaction() as tx:
                    events, skipped = _copy(tx, usage, legacy)
                    tx.set_meta(MARKER, "copied")
            _clear(conn, legacy.tables, usage.clock.now())
    except sqlite3.Error as exc:
        logger.warning("Printernizer's old usage statistics could not be migrated",
                       path=str(path), error=str(exc))
        return MigrationResult("failed")
    with usage.store.transaction() as tx:
        tx.set_meta(MARKER, "done")
    logger.info("Printernizer's old usage statistics migrated", opt_in_status=status,
                events=events, skipped=skipped)
    return MigrationResult("done" if marker is None else "resumed", status, events, skipped)


def _delete_only(path: Path, usage: UsageTelemetry, busy_timeout_s: float) -> MigrationResult:
    """DO_NOT_TRACK: the old rows deleted, nothing copied, no local store made."""
    try:
        with closing(_connect(path, busy_timeout_s)) as conn:
            legacy = _read(conn)
            if legacy is None:
                return MigrationResult("absent")
            status = legacy.settings.get("opt_in_status", (None, None))[0]
            if DONE_SETTING in legacy.settings:
                return MigrationResult("already", status)
            _clear(conn, legacy.tables, usage.clock.now())
    except sqlite3.Error as exc:
        logger.warning("Printernizer's old usage statistics could not be deleted",
                       path=str(path), error=str(exc))
        return MigrationResult("failed")
    skipped = sum(row[-1] for row in legacy.events if not _readable(row))
    logger.info("Printernizer's old usage statistics deleted (DO_NOT_TRACK)")
    return MigrationResult("deleted", status, sum(row[-1] for row in legacy.events) - skipped,
                           skipped + legacy.unreadable_settings)


def _connect(path: Path, busy_timeout_s: float) -> sqlite3.Connection:
    conn = sqlite3.connect(path, timeout=busy_timeout_s, isolation_level=None)
    conn.text_factory = bytes  # decoded here: text that is not UTF-8 is a row to skip
    conn.execute("PRAGMA secure_delete=ON")
    return conn


class _NotUtf8(ValueError):
    """A value of the old tables that is not UTF-8 text."""


def _decoded(value: object) -> Any:
    """A value read as bytes, as text (None and numbers as they are); _NotUtf8 otherwise."""
    if not isinstance(value, bytes):
        return value
    try:
        return value.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise _NotUtf8(str(exc)) from exc


def _read(conn: sqlite3.Connection) -> _Legacy | None:
    tables = {str(_decoded(r[0])) for r in conn.execute(
        "SELECT name FROM sqlite_master WHERE type = 'table'") if _utf8(r[0])}
    if not {"usage_events", "usage_settings"} & tables:
        return None
    settings: dict[str, tuple[str | None, str | None]] = {}
    unreadable = 0
    if "usage_settings" in tables:
        for row in conn.execute("SELECT key, value, updated_at FROM usage_settings"):
            if not all(_utf8(v) for v in row):
                unreadable += 1
                continue
            key, value, updated_at = (_decoded(v) for v in row)
            settings[str(key)] = (None if value is None else str(value),
                                  None if updated_at is None else str(updated_at))
    events: list[tuple[Any, ...]] = []
    if "usage_events" in tables:
        events = [_event_group(row) for row in conn.execute(_GROUPED_EVENTS)]
    return _Legacy(frozenset(tables), settings, events, unreadable)


def _utf8(value: object) -> bool:
    try:
        _decoded(value)
    except _NotUtf8:
        return False
    return True


def _event_group(row: tuple[Any, ...]) -> tuple[Any, ...]:
    """A group of old events with its text decoded; a group holding text that is not UTF-8
    is marked unreadable (its type and values are not used)."""
    if all(_utf8(v) for v in row):
        return tuple(_decoded(v) for v in row)
    return (None, None, 0, *(None for _ in _METADATA_KEYS), row[-1])


def _copy(tx: Tx, usage: UsageTelemetry, legacy: _Legacy) -> tuple[int, int]:
    """The settings and the summed events, into the local store (one transaction)."""
    now = usage.clock.now()
    status, opted_at = legacy.settings.get("opt_in_status", (None, None))
    if status in ("enabled", "disabled"):
        mode: consent.Mode = "on" if status == "enabled" else "local"
        # A consent starts when it is recorded here, never earlier: weeks recorded before (a
        # first migration that failed left them under local) are never sent. The old opt-in's
        # date is kept, to show.
        adopted = consent.adopt_choice(tx, mode, now, LEGACY_CATALOG_VERSION, "printernizer")
        opted = _when(opted_at)
        if adopted and mode == "on" and opted is not None:
            tx.set_meta(OPTED_IN_AT, min(opted, now).isoformat())
    old_id = (legacy.settings.get("installation_id", (None, None))[0] or "").strip().lower()
    if _UUID4.fullmatch(old_id) and tx.meta("installation_id") is None:
        tx.set_meta("installation_id", old_id)
        first = _when(legacy.settings.get("first_run_date", (None, None))[0])
        tx.set_meta("first_used", min(first or now, now).date().isoformat())
    sums, skipped = _sums(usage.catalog, legacy.events)
    tx.add_daily(
        (day, tx.series_id(metric, attributes, "sum", unit, True), total, None, None)
        for (day, metric, attributes, unit), total in sums.items())
    return (sum(row[-1] for row in legacy.events) - skipped,
            skipped + legacy.unreadable_settings)


def _sums(catalog: Catalog, events: Iterable[tuple[Any, ...]]
          ) -> tuple[dict[tuple[int, str, str, str], int], int]:
    """(day, metric, attributes JSON, unit) -> count, and how many rows could not be read,
    from the events grouped by SQLite (:data:`_GROUPED_EVENTS`)."""
    sums: dict[tuple[int, str, str, str], int] = {}
    skipped = 0
    for row in events:
        event_type, day, _, *values, count = row
        name = known_event(event_type)
        if name is None or not _readable(row):
            skipped += count
            continue
        meta = {k: v for k, v in zip(_METADATA_KEYS, values, strict=True) if v is not None}
        point = event_point(catalog, name, meta)
        if point is None:
            continue
        attributes = json.dumps({**point.attributes, MIGRATED_ATTRIBUTE: MIGRATED_FROM},
                                sort_keys=True, separators=(",", ":"))
        when = datetime.fromisoformat(str(day)).replace(tzinfo=UTC)
        key = (epoch_day(when), point.metric, attributes, point.unit)
        sums[key] = sums.get(key, 0) + count
    return sums, skipped


def _readable(group: tuple[Any, ...]) -> bool:
    """A group of old events has a known type, a day and metadata that is an object."""
    event_type, day, readable = group[:3]
    return known_event(event_type) is not None and day is not None and bool(readable)


def _when(value: object) -> datetime | None:
    """A stored DATETIME (ISO, with a space or a T; naive means UTC) or None."""
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def _clear(conn: sqlite3.Connection, tables: frozenset[str], now: datetime) -> None:
    """Delete the old rows (overwritten on disk), leaving the mark that the move was made."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        for table in sorted({"usage_events", "usage_settings"} & tables):
            conn.execute(f"DELETE FROM {table}")
        if "usage_settings" in tables:
            conn.execute("INSERT OR REPLACE INTO usage_settings (key, value, updated_at) "
                         "VALUES (?, ?, ?)", (DONE_SETTING, "otel-usage", now.isoformat()))
        conn.execute("COMMIT")
    except BaseException:
        with suppress(sqlite3.Error):
            conn.execute("ROLLBACK")
        raise
    with suppress(sqlite3.Error):  # the WAL's copies of the deleted pages go too
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
