"""The local SQLite database: every SQL statement of it, and the one way to reach it.

One file, ``usage.sqlite3`` in the data directory, in WAL mode so that a reader in another
process (the ``otel-usage`` command beside a running host) never waits for a writer's commit,
nor a writer for it. Its schema (:data:`MIGRATIONS`), and every read and write (the exporter's
daily rows, the weekly report's rows, the outbox, the upload history, erasure requests, the
public statistics as fetched, the viewer's sums, the export, delete-all and ``meta``) are here
and nowhere else. Each table is small by construction: one row per (UTC day, series), never
one row per event.

One driver, Python's ``sqlite3``: :meth:`Store.transaction` (a write transaction) and
:meth:`Store.read` (a consistent snapshot) yield a :class:`Tx` whose methods are the statements.
Sync hosts call them directly; async hosts run them in a thread (``asyncio.to_thread``). A
:class:`Store` holds one connection under a lock, so the threads of one process take turns on
it: a read waits while the exporter's transaction runs (an export takes a few milliseconds).
Every ``sqlite3`` or OS error is mapped here, once, into :class:`StoreUnavailableError` with a
short ``kind`` (``corrupt``, ``disk_full``, ``read_only``, ...): no caller ever sees ``sqlite3``.
Deleted rows are overwritten (``secure_delete``), so a deleted value does not linger in the file.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from .errors import StoreUnavailableError
from .weeks import from_epoch_day

__all__ = ["DB_FILENAME", "DueReport", "ModeChange", "PendingErasure", "PublicDocument",
           "Store", "StoredReport", "Tx", "classify", "connect"]

DB_FILENAME = "usage.sqlite3"
STATEMENT_CACHE = 16

# Each entry moves the schema one version up (PRAGMA user_version); its statements are split at
# every semicolon, so none may stand in a comment. Until the first release
# a schema change edits version 1 in place (no store was ever made by an unreleased version);
# from then on a change is a new entry, and a released entry is never edited.
MIGRATIONS: tuple[str, ...] = (
    """
    CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;
    CREATE TABLE mode_changes (
        id INTEGER PRIMARY KEY,
        changed_at TEXT NOT NULL,
        mode TEXT NOT NULL CHECK (mode IN ('off', 'local', 'on')),
        catalog_version INTEGER NOT NULL,
        source TEXT NOT NULL
    );
    -- A series is its name, attributes and kind (a histogram named like a catalog counter is
    -- another series).
    CREATE TABLE series (
        id INTEGER PRIMARY KEY,
        metric TEXT NOT NULL,
        attributes TEXT NOT NULL,
        kind TEXT NOT NULL,
        unit TEXT NOT NULL,
        local_only INTEGER NOT NULL,
        UNIQUE (metric, attributes, kind)
    );
    -- NUMERIC affinity keeps whole numbers as compact integers.
    CREATE TABLE daily (
        day INTEGER NOT NULL,
        series_id INTEGER NOT NULL,
        total NUMERIC,
        last NUMERIC,
        peak NUMERIC,
        PRIMARY KEY (day, series_id)
    ) WITHOUT ROWID;
    -- The weekly reports: the exact bytes that leave, and each one's state.
    CREATE TABLE outbox (
        week TEXT PRIMARY KEY,
        installation_id TEXT NOT NULL,
        built_at TEXT NOT NULL,
        body BLOB,
        rendering TEXT NOT NULL,
        state TEXT NOT NULL CHECK (state IN ('pending', 'sent', 'failed', 'expired', 'empty')),
        attempts INTEGER NOT NULL DEFAULT 0,
        next_attempt_at TEXT,
        last_status INTEGER,
        last_answer TEXT
    );
    -- Every attempt to send a report or an erasure request, for the user's history.
    CREATE TABLE uploads (
        id INTEGER PRIMARY KEY,
        kind TEXT NOT NULL CHECK (kind IN ('report', 'erasure')),
        week TEXT,
        attempted_at TEXT NOT NULL,
        endpoint TEXT NOT NULL,
        bytes INTEGER NOT NULL,
        status INTEGER,
        answer TEXT NOT NULL
    );
    -- Every installation and endpoint a report's sending began to, with the credential it
    -- carried, until an opt-out or delete turns them into erasure requests.
    CREATE TABLE destinations (
        installation_id TEXT NOT NULL,
        endpoint TEXT NOT NULL,
        credential TEXT NOT NULL,
        first_at TEXT NOT NULL,
        PRIMARY KEY (installation_id, endpoint)
    );
    -- Erasure requests, one per endpoint a report went to: each keeps the old id and
    -- credential until the server acknowledges it.
    CREATE TABLE erasures (
        installation_id TEXT NOT NULL,
        credential TEXT NOT NULL,
        endpoint TEXT NOT NULL,
        requested_at TEXT NOT NULL,
        attempts INTEGER NOT NULL DEFAULT 0,
        next_attempt_at TEXT NOT NULL,
        last_status INTEGER,
        last_answer TEXT,
        PRIMARY KEY (installation_id, endpoint)
    );
    -- The public statistics as last fetched (at most once per published week): the index
    -- (`kind` 'index', `week` its newest week) and the week compared with (`kind` 'week'),
    -- each the JSON that arrived, from `url`.
    CREATE TABLE public_documents (
        kind TEXT PRIMARY KEY CHECK (kind IN ('index', 'week')),
        week TEXT,
        url TEXT NOT NULL,
        fetched_at TEXT NOT NULL,
        body TEXT NOT NULL
    ) WITHOUT ROWID;
    """,
)

# Never shown, exported or logged: the installation's credential for the server.
SECRET_META_KEYS = frozenset({"credential"})
_SECRET_COLUMNS = frozenset({"credential", "secret"})
# Tables the export renders with their own shape; any other table is exported row by row.
_SHAPED_TABLES = frozenset({"meta", "mode_changes", "series", "daily"})

_UPSERT_DAILY = """
INSERT INTO daily (day, series_id, total, last, peak) VALUES (?, ?, ?, ?, ?)
ON CONFLICT (day, series_id) DO UPDATE SET
    total = CASE WHEN excluded.total IS NULL THEN total
                 ELSE coalesce(total, 0) + excluded.total END,
    last = coalesce(excluded.last, last),
    peak = CASE WHEN excluded.peak IS NULL THEN peak
                WHEN peak IS NULL OR excluded.peak > peak THEN excluded.peak
                ELSE peak END
"""
_WEEK_ROWS = """
SELECT s.metric, s.attributes, d.day, d.total, d.peak
FROM daily d JOIN series s ON s.id = d.series_id
WHERE d.day >= ? AND d.day < ? AND s.local_only = 0
"""
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


def classify(exc: BaseException) -> str:
    """A short, stable name for a database failure, used to log each kind once."""
    text = str(exc).lower()
    for needle, kind in (
        ("readonly", "read_only"), ("read-only", "read_only"), ("read only", "read_only"),
        ("unable to open", "cannot_open"), ("disk is full", "disk_full"),
        ("not a database", "corrupt"), ("malformed", "corrupt"),
        ("locked", "locked"), ("busy", "locked"), ("disk i/o", "io_error"),
        ("permission denied", "read_only"),
    ):
        if needle in text:
            return kind
    return type(exc).__name__


def _ts(when: datetime) -> str:
    return when.isoformat(timespec="seconds")


def _instant(when: datetime) -> str:
    """An instant kept exactly (to the microsecond): a consent's start or agreement is a cut,
    and one cut to whole seconds at a week's first second would be the week's start."""
    return when.isoformat()


@dataclass(frozen=True)
class ModeChange:
    changed_at: datetime
    mode: str
    catalog_version: int
    source: str


@dataclass(frozen=True)
class DueReport:
    """A pending report whose time has come."""

    week: str
    body: bytes
    attempts: int
    installation_id: str = ""


@dataclass(frozen=True)
class StoredReport:
    """A built report as the outbox keeps it (for the preview)."""

    week: str
    rendering: dict[str, Any]
    body: bytes
    state: str
    due: str | None


@dataclass(frozen=True)
class PublicDocument:
    """A document of the public statistics as the store keeps it."""

    kind: str
    week: str | None
    url: str
    fetched_at: datetime
    body: str


@dataclass(frozen=True)
class PendingErasure:
    installation_id: str
    credential: str
    endpoint: str
    attempts: int


def connect(path: Path, *, timeout_s: float = 5.0) -> sqlite3.Connection:
    """Open the database in autocommit mode (transactions are explicit) and bring it up to date.

    Prepared statements are kept for the 16 used last (sqlite3's default keeps 128, each holding
    SQLite's memory for as long as the host runs): an export cycle uses about ten, and what the
    page or the sender uses now and then is prepared again when it is needed."""
    conn = sqlite3.connect(path, timeout=timeout_s, isolation_level=None, check_same_thread=False,
                           cached_statements=STATEMENT_CACHE)
    try:
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute("PRAGMA secure_delete=ON")
        migrate(conn)
    except BaseException:
        conn.close()
        raise
    return conn


def migrate(conn: sqlite3.Connection) -> None:
    """Bring the file up to the last version of :data:`MIGRATIONS` (a new file: version 1)."""
    version = conn.execute("PRAGMA user_version").fetchone()[0]
    if version >= len(MIGRATIONS):
        return
    conn.execute("BEGIN IMMEDIATE")
    try:
        # Another process may have migrated while we waited for the lock.
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        for number, script in enumerate(MIGRATIONS[version:], start=version + 1):
            for statement in script.split(";"):
                if statement.strip():
                    conn.execute(statement)
            conn.execute(f"PRAGMA user_version={number}")
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise


@contextmanager
def _mapped() -> Iterator[None]:
    """sqlite3 and OS errors leave as StoreUnavailableError, with the cause attached."""
    try:
        yield
    except (sqlite3.Error, OSError) as exc:
        raise StoreUnavailableError(f"the local usage database cannot be used: {exc}",
                                    kind=classify(exc)) from exc


class Store:
    """A lazily opened connection to the local database, safe to share between threads.

    A file that is not a database, or found damaged, is moved aside under a dated name
    (``usage.sqlite3.corrupt-20261202T120000Z``, its WAL beside it) and a fresh store is
    started, so that statistics never stop for good; `set_aside` hears of it (to log it)."""

    def __init__(self, data_dir: Path, now: Callable[[], datetime] | None = None,
                 set_aside: Callable[[Path, str], None] | None = None) -> None:
        self.path = data_dir / DB_FILENAME
        self._conn: sqlite3.Connection | None = None
        self._lock = threading.RLock()
        self._now = now
        self._set_aside_hook = set_aside
        self._suspect = False

    @property
    def exists(self) -> bool:
        return self.path.exists()

    @property
    def size_bytes(self) -> int:
        """The database file's size (0 when there is none)."""
        with _mapped():
            return self.path.stat().st_size if self.exists else 0

    def _connection(self) -> sqlite3.Connection:
        if self._conn is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            try:
                conn = connect(self.path)
                if self._suspect and conn.execute("PRAGMA quick_check").fetchone() != ("ok",):
                    conn.close()
                    raise sqlite3.DatabaseError("database disk image is malformed")
            except sqlite3.DatabaseError as exc:
                if classify(exc) != "corrupt" or self._now is None:
                    raise
                self._move_aside(str(exc))
                conn = connect(self.path)
            self._suspect = False
            self._conn = conn
        return self._conn

    def _move_aside(self, reason: str) -> None:
        assert self._now is not None
        stamp = self._now().astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")
        target = self.path.with_name(f"{DB_FILENAME}.corrupt-{stamp}")
        number = 1
        while target.exists():
            number += 1
            target = self.path.with_name(f"{DB_FILENAME}.corrupt-{stamp}-{number}")
        self.path.rename(target)
        for suffix in ("-wal", "-shm"):
            side = self.path.with_name(DB_FILENAME + suffix)
            if side.exists():
                side.rename(target.with_name(target.name + suffix))
        if self._set_aside_hook is not None:
            self._set_aside_hook(target, reason)

    @contextmanager
    def _guarded(self) -> Iterator[None]:
        """A store found damaged is closed, checked at the next use, and set aside if so."""
        try:
            yield
        except StoreUnavailableError as exc:
            if exc.kind == "corrupt":
                self._suspect = True
                self.close()
            raise

    @contextmanager
    def transaction(self) -> Iterator[Tx]:
        """One write transaction (BEGIN IMMEDIATE), committed on success, rolled back otherwise."""
        with self._lock, self._guarded(), _mapped():
            conn = self._connection()
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield Tx(conn)
            except BaseException:
                _rollback(conn)
                raise
            conn.execute("COMMIT")

    @contextmanager
    def read(self) -> Iterator[Tx]:
        """A read transaction: a consistent snapshot. It waits for this Store's own
        transaction in flight (one connection, one lock), never for another process's (WAL)."""
        with self._lock, self._guarded(), _mapped():
            conn = self._connection()
            conn.execute("BEGIN")
            try:
                yield Tx(conn)
            finally:
                if conn.in_transaction:
                    conn.execute("COMMIT")

    def compact(self) -> None:
        """Rewrite the file and empty the WAL, so that deleted values leave no trace in either."""
        with self._lock, _mapped():
            conn = self._connection()
            conn.execute("VACUUM")
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None


def _rollback(conn: sqlite3.Connection) -> None:
    # The original error is the one worth raising.
    with suppress(sqlite3.Error):
        if conn.in_transaction:
            conn.execute("ROLLBACK")


class Tx:
    """The statements of one transaction (from :meth:`Store.transaction` or :meth:`Store.read`)."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    # Facts kept in `meta`.

    def meta(self, key: str) -> str | None:
        row = self._conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def set_meta(self, key: str, value: str) -> None:
        self._conn.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (key, value))

    def delete_meta(self, key: str) -> None:
        self._conn.execute("DELETE FROM meta WHERE key = ?", (key,))

    def public_meta(self) -> dict[str, str]:
        """Every fact in `meta` but the secrets, sorted by key."""
        rows = self._conn.execute("SELECT key, value FROM meta ORDER BY key")
        return {k: v for k, v in rows if k not in SECRET_META_KEYS}

    def installation_id(self, now: datetime) -> str:
        """The installation id, created (a random uuid4) with the first-use date if missing."""
        found = self.meta("installation_id")
        if found is not None:
            return found
        new_id = str(uuid.uuid4())
        self.set_meta("installation_id", new_id)
        self.set_meta("first_used", now.date().isoformat())
        return new_id

    def credential(self) -> str:
        """The installation's secret, created on first need (``secrets.token_urlsafe(32)``)."""
        found = self.meta("credential")
        if found is not None:
            return found
        secret = _new_secret()
        self.set_meta("credential", secret)
        return secret

    def identity_age(self, now: datetime) -> timedelta:
        """How long the current id and credential have been in use."""
        created = self.meta("identity_created")
        if created is None:
            self.set_meta("identity_created", _ts(now))
            return timedelta(0)
        return now - datetime.fromisoformat(created)

    def rotate_identity(self, now: datetime) -> str:
        """A new installation id and credential; pending reports are dropped to be rebuilt
        under them (the server cannot link the old id to the new one)."""
        new_id = str(uuid.uuid4())
        self.set_meta("installation_id", new_id)
        self.set_meta("credential", _new_secret())
        self.set_meta("identity_created", _ts(now))
        self._conn.execute("DELETE FROM outbox WHERE state = 'pending'")
        return new_id

    def report_slot(self, draw: Callable[[], tuple[int, int]]) -> tuple[int, int]:
        """This installation's (weekday, hour) to send at, drawn once with `draw` and kept."""
        weekday, hour = self.meta("report_weekday"), self.meta("report_hour")
        if weekday is not None and hour is not None:
            return int(weekday), int(hour)
        drawn = draw()
        self.set_meta("report_weekday", str(drawn[0]))
        self.set_meta("report_hour", str(drawn[1]))
        return drawn

    # The user's mode changes.

    def latest_mode(self) -> ModeChange | None:
        row = self._conn.execute(
            "SELECT changed_at, mode, catalog_version, source FROM mode_changes "
            "ORDER BY id DESC LIMIT 1").fetchone()
        return None if row is None else _mode_change(row)

    def mode_history(self) -> list[ModeChange]:
        """Every stored mode change, oldest first."""
        rows = self._conn.execute(
            "SELECT changed_at, mode, catalog_version, source FROM mode_changes ORDER BY id")
        return [_mode_change(r) for r in rows]

    def last_mode_change_id(self) -> int:
        """The id of the latest stored mode change (0: none): changes are numbered in order."""
        return int(self._conn.execute(
            "SELECT coalesce(max(id), 0) FROM mode_changes").fetchone()[0])

    def mode_changes_after(self, change_id: int) -> list[tuple[datetime, str]]:
        """(instant, mode) of the user's changes stored after change `change_id`, in order."""
        return [(datetime.fromisoformat(t), m) for t, m in self._conn.execute(
            "SELECT changed_at, mode FROM mode_changes WHERE id > ? ORDER BY id",
            (change_id,))]

    def new_epoch(self) -> str:
        """A new epoch for the store (at first use and at each delete-all): what was counted
        in memory under another epoch is never stored."""
        epoch = str(uuid.uuid4())
        self.set_meta("store_epoch", epoch)
        return epoch

    def record_mode(self, mode: str, now: datetime, catalog_version: int, source: str) -> None:
        self._conn.execute(
            "INSERT INTO mode_changes (changed_at, mode, catalog_version, source) "
            "VALUES (?, ?, ?, ?)", (_instant(now), mode, catalog_version, source))

    # What the exporter records.

    def series_id(self, metric: str, attributes: str, kind: str, unit: str,
                  local_only: bool) -> int:
        """The id of a series, made on first use."""
        self._conn.execute(
            "INSERT OR IGNORE INTO series (metric, attributes, kind, unit, local_only) "
            "VALUES (?, ?, ?, ?, ?)", (metric, attributes, kind, unit, int(local_only)))
        row = self._conn.execute(
            "SELECT id FROM series WHERE metric = ? AND attributes = ? AND kind = ?",
            (metric, attributes, kind)).fetchone()
        return int(row[0])

    def add_daily(self, rows: Iterable[tuple[int, int, float | None, float | None,
                                             float | None]]) -> None:
        """Add (day, series id, total, last, peak) rows: totals add up, gauges keep their last
        and highest value."""
        self._conn.executemany(_UPSERT_DAILY, rows)

    def week_rows(self, first_day: int,
                  end_day: int) -> list[tuple[str, str, int, float | None, float | None]]:
        """(metric, attributes, day, total, peak) of sendable series in [first_day, end_day)."""
        return list(self._conn.execute(_WEEK_ROWS, (first_day, end_day)))

    # What the viewer sums.

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

    # What the export holds, and delete-all.

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

    # The outbox of weekly reports.

    def known_weeks(self) -> set[str]:
        return {r[0] for r in self._conn.execute("SELECT week FROM outbox")}

    def put_report(self, *, week: str, installation_id: str, now: datetime, body: bytes | None,
                   rendering: Mapping[str, Any], due: datetime) -> None:
        """Keep a built report until it is sent (``empty`` when there is nothing to send)."""
        state = "pending" if body is not None else "empty"
        self._conn.execute(
            "INSERT OR IGNORE INTO outbox (week, installation_id, built_at, body, rendering, "
            "state, next_attempt_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
            (week, installation_id, _ts(now), body, json.dumps(rendering, sort_keys=True), state,
             _ts(due) if body is not None else None))

    def due_reports(self, now: datetime) -> list[DueReport]:
        rows = self._conn.execute(
            "SELECT week, body, attempts, installation_id FROM outbox WHERE state = 'pending' "
            "AND next_attempt_at <= ? ORDER BY week", (_ts(now),))
        return [DueReport(w, bytes(b), int(a), i) for w, b, a, i in rows]

    def fail_begun_reports(self) -> None:
        """Pending reports whose sending began fail for good (they went out under an identity
        the server erased; sent again under a new one, they would link the two)."""
        self._conn.execute("UPDATE outbox SET state = 'failed', next_attempt_at = NULL "
                           "WHERE state = 'pending' AND attempts > 0")

    def next_due(self) -> datetime | None:
        """The earliest time a pending report or erasure is due."""
        row = self._conn.execute(
            "SELECT min(t) FROM (SELECT next_attempt_at AS t FROM outbox WHERE state = 'pending' "
            "UNION ALL SELECT next_attempt_at FROM erasures)").fetchone()
        return datetime.fromisoformat(row[0]) if row and row[0] else None

    def record_report(self, week: str, state: str, next_attempt_at: datetime | None,
                      status: int | None, answer: str) -> None:
        """The outcome of one attempt to send `week`'s report."""
        self._conn.execute(
            "UPDATE outbox SET state = ?, attempts = attempts + 1, next_attempt_at = ?, "
            "last_status = ?, last_answer = ? WHERE week = ? AND state = 'pending'",
            (state, _ts(next_attempt_at) if next_attempt_at else None, status, answer, week))

    def pending_weeks(self) -> list[str]:
        return [r[0] for r in self._conn.execute(
            "SELECT week FROM outbox WHERE state = 'pending'")]

    def expire(self, weeks: Iterable[str]) -> None:
        """Drop the unsent reports of `weeks` (their bytes go too)."""
        self._conn.executemany(
            "UPDATE outbox SET state = 'expired', body = NULL, next_attempt_at = NULL "
            "WHERE week = ? AND state = 'pending'", [(w,) for w in weeks])

    def clear_reports(self) -> None:
        """Empty the outbox (the history of past attempts stays, for the user)."""
        self._conn.execute("DELETE FROM outbox")

    def next_report(self) -> StoredReport | None:
        """The oldest pending report."""
        row = self._conn.execute(
            "SELECT week, rendering, body, state, next_attempt_at FROM outbox "
            "WHERE state = 'pending' ORDER BY week LIMIT 1").fetchone()
        if row is None:
            return None
        week, rendering, body, state, due = row
        return StoredReport(week, json.loads(rendering), bytes(body), state, due)

    def last_sent_rendering(self) -> dict[str, Any] | None:
        row = self._conn.execute(
            "SELECT rendering FROM outbox WHERE state = 'sent' ORDER BY week DESC LIMIT 1"
        ).fetchone()
        return None if row is None else dict(json.loads(row[0]))

    # The history of attempts.

    def log_upload(self, kind: str, week: str | None, now: datetime, endpoint: str, size: int,
                   status: int | None, answer: str) -> None:
        self._conn.execute(
            "INSERT INTO uploads (kind, week, attempted_at, endpoint, bytes, status, answer) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)", (kind, week, _ts(now), endpoint, size, status, answer))

    def history(self) -> list[dict[str, Any]]:
        """Every attempt, oldest first: what, when, where, how many bytes, the server's answer."""
        keys = ("kind", "week", "attempted_at", "endpoint", "bytes", "status", "answer")
        rows = self._conn.execute(
            "SELECT kind, week, attempted_at, endpoint, bytes, status, answer FROM uploads "
            "ORDER BY id")
        return [dict(zip(keys, r, strict=True)) for r in rows]

    # Where reports went, for their erasure.

    def begin_sending(self, installation_id: str, endpoint: str, credential: str,
                      now: datetime) -> None:
        """A report's sending begins: from now on it counts as possibly received there."""
        self._conn.execute(
            "INSERT OR IGNORE INTO destinations (installation_id, endpoint, credential, "
            "first_at) VALUES (?, ?, ?, ?)", (installation_id, endpoint, credential, _ts(now)))

    def reports_to_erase(self) -> list[tuple[str, str, str]]:
        """(installation id, endpoint, credential) of every destination a report's sending
        began to and that no erasure request covers yet."""
        return [(i, e, c) for i, e, c in self._conn.execute(
            "SELECT installation_id, endpoint, credential FROM destinations "
            "ORDER BY first_at, installation_id, endpoint")]

    def forget_destinations(self) -> None:
        self._conn.execute("DELETE FROM destinations")

    # Erasure requests.

    def queue_erasure(self, installation_id: str, credential: str, endpoint: str,
                      now: datetime) -> None:
        """Ask the server to erase `installation_id`, from now on until it acknowledges."""
        self._conn.execute(
            "INSERT OR REPLACE INTO erasures (installation_id, credential, endpoint, "
            "requested_at, next_attempt_at) VALUES (?, ?, ?, ?, ?)",
            (installation_id, credential, endpoint, _ts(now), _ts(now)))

    def due_erasures(self, now: datetime) -> list[PendingErasure]:
        rows = self._conn.execute(
            "SELECT installation_id, credential, endpoint, attempts FROM erasures "
            "WHERE next_attempt_at <= ? ORDER BY requested_at", (_ts(now),))
        return [PendingErasure(i, c, e, int(a)) for i, c, e, a in rows]

    def forget_erasure(self, installation_id: str, endpoint: str) -> None:
        """The server acknowledged: the request, with its id and credential, goes."""
        self._conn.execute("DELETE FROM erasures WHERE installation_id = ? AND endpoint = ?",
                           (installation_id, endpoint))

    def reschedule_erasure(self, installation_id: str, endpoint: str, retry_at: datetime,
                           status: int | None, answer: str) -> None:
        self._conn.execute(
            "UPDATE erasures SET attempts = attempts + 1, next_attempt_at = ?, last_status = ?, "
            "last_answer = ? WHERE installation_id = ? AND endpoint = ?",
            (_ts(retry_at), status, answer, installation_id, endpoint))

    def erasures_of(self, installation_id: str) -> int:
        """How many erasure requests for `installation_id` are still unacknowledged."""
        return int(self._conn.execute("SELECT count(*) FROM erasures WHERE installation_id = ?",
                                      (installation_id,)).fetchone()[0])

    def erasure_pending(self) -> bool:
        return self._conn.execute("SELECT 1 FROM erasures LIMIT 1").fetchone() is not None

    # The public statistics, fetched.

    def public_documents(self) -> dict[str, PublicDocument]:
        """The cached index and week document, by kind."""
        rows = self._conn.execute(
            "SELECT kind, week, url, fetched_at, body FROM public_documents")
        return {k: PublicDocument(k, w, u, datetime.fromisoformat(f), b)
                for k, w, u, f, b in rows}

    def put_public_documents(self, documents: Iterable[PublicDocument]) -> None:
        """Replace the cached documents by `documents` (those of one fetch)."""
        self._conn.execute("DELETE FROM public_documents")
        self._conn.executemany(
            "INSERT INTO public_documents (kind, week, url, fetched_at, body) "
            "VALUES (?, ?, ?, ?, ?)",
            [(d.kind, d.week, d.url, _ts(d.fetched_at), d.body) for d in documents])

    def recorded_days(self) -> list[int]:
        """Every day with a row of a series that could be sent (the local history's days)."""
        return [r[0] for r in self._conn.execute(
            "SELECT DISTINCT d.day FROM daily d JOIN series s ON s.id = d.series_id "
            "WHERE s.local_only = 0 ORDER BY d.day")]


def _new_secret() -> str:
    """A random credential (imported here: a start in mode local never needs one)."""
    import secrets

    return secrets.token_urlsafe(32)


def _mode_change(row: tuple[Any, ...]) -> ModeChange:
    return ModeChange(datetime.fromisoformat(row[0]), str(row[1]), int(row[2]), str(row[3]))


def _json_path(key: str) -> str:
    """The JSON path of an attribute key (keys hold dots, so they are quoted)."""
    return '$."' + key.replace('"', '\\"') + '"'
