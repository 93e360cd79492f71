"""The local SQLite database: schema, migrations, and the few writes outside the exporter.

One file, ``usage.sqlite3`` in the data directory, in WAL mode so that the host's reads (over
aiosqlite) never wait for the exporter's writes. Each table is small by construction: the
exporter keeps one row per (UTC day, series), never one row per event.
"""

from __future__ import annotations

import sqlite3
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from ._modes import Mode

__all__ = ["DB_FILENAME", "ModeChange", "Store", "migrate"]

DB_FILENAME = "usage.sqlite3"

# Each entry moves the schema one version up (PRAGMA user_version); never edit a released one.
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
    CREATE TABLE series (
        id INTEGER PRIMARY KEY,
        metric TEXT NOT NULL,
        attributes TEXT NOT NULL,
        kind TEXT NOT NULL,
        unit TEXT NOT NULL,
        local_only INTEGER NOT NULL,
        UNIQUE (metric, attributes)
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
    """,
    # Issue 3: the outbox of weekly reports (the exact bytes that leave), the history of every
    # attempt, and pending erasure requests (which keep the old id and credential until done).
    """
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
    CREATE TABLE erasures (
        installation_id TEXT PRIMARY KEY,
        credential TEXT NOT NULL,
        endpoint TEXT NOT NULL,
        requested_at TEXT NOT NULL,
        attempts INTEGER NOT NULL DEFAULT 0,
        next_attempt_at TEXT NOT NULL,
        last_status INTEGER,
        last_answer TEXT
    );
    """,
)


@dataclass(frozen=True)
class ModeChange:
    changed_at: datetime
    mode: Mode
    catalog_version: int
    source: str


def connect(path: Path, *, timeout_s: float = 5.0) -> sqlite3.Connection:
    """Open the database in autocommit mode (transactions are explicit) and bring it up to date."""
    conn = sqlite3.connect(path, timeout=timeout_s, isolation_level=None, check_same_thread=False)
    try:
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        migrate(conn)
    except BaseException:
        conn.close()
        raise
    return conn


def migrate(conn: sqlite3.Connection) -> None:
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


class Store:
    """A lazily opened connection to the local database, safe to share between threads."""

    def __init__(self, data_dir: Path) -> None:
        self.path = data_dir / DB_FILENAME
        self._conn: sqlite3.Connection | None = None
        self._lock = threading.RLock()

    @property
    def exists(self) -> bool:
        return self.path.exists()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """One write transaction (BEGIN IMMEDIATE), committed on success, rolled back otherwise."""
        with self._lock:
            if self._conn is None:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                self._conn = connect(self.path)
            conn = self._conn
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")

    @contextmanager
    def read(self) -> Iterator[sqlite3.Connection]:
        """A read transaction: a consistent snapshot that never waits for writers (WAL)."""
        with self._lock:
            if self._conn is None:
                self._conn = connect(self.path)
            conn = self._conn
            conn.execute("BEGIN")
            try:
                yield conn
            finally:
                if conn.in_transaction:
                    conn.execute("COMMIT")

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    # Facts kept in `meta`.

    @staticmethod
    def installation_id(conn: sqlite3.Connection, now: datetime) -> str:
        """The installation id, created (a random uuid4) with the first-use date if missing."""
        row = conn.execute("SELECT value FROM meta WHERE key = 'installation_id'").fetchone()
        if row is not None:
            return str(row[0])
        new_id = str(uuid.uuid4())
        conn.executemany(
            "INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)",
            [("installation_id", new_id), ("first_used", now.date().isoformat())],
        )
        return new_id

    @staticmethod
    def latest_mode(conn: sqlite3.Connection) -> ModeChange | None:
        row = conn.execute(
            "SELECT changed_at, mode, catalog_version, source FROM mode_changes "
            "ORDER BY id DESC LIMIT 1"
        ).fetchone()
        if row is None:
            return None
        return ModeChange(datetime.fromisoformat(row[0]), row[1], int(row[2]), row[3])

    @staticmethod
    def record_mode(
        conn: sqlite3.Connection, mode: Mode, now: datetime, catalog_version: int, source: str
    ) -> None:
        conn.execute(
            "INSERT INTO mode_changes (changed_at, mode, catalog_version, source) "
            "VALUES (?, ?, ?, ?)",
            (now.isoformat(timespec="seconds"), mode, catalog_version, source),
        )
