"""The local store's schema: a first install creates version 1, the final tables and nothing
else; the version stamp lets a later version be added once a release has shipped."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest

from otel_usage import store as store_module
from otel_usage.store import Store

# Version 1, table by table: (column, declared type, NOT NULL, position in the primary key),
# and every set of columns a UNIQUE constraint or the primary key holds unique.
VERSION_1: dict[str, dict[str, Any]] = {
    "meta": {
        "columns": [("key", "TEXT", 1, 1), ("value", "TEXT", 1, 0)],  # WITHOUT ROWID: NOT NULL
        "unique": [("key",)],
    },
    "mode_changes": {
        "columns": [("id", "INTEGER", 0, 1), ("changed_at", "TEXT", 1, 0),
                    ("mode", "TEXT", 1, 0), ("catalog_version", "INTEGER", 1, 0),
                    ("source", "TEXT", 1, 0)],
        "unique": [],
    },
    "series": {
        "columns": [("id", "INTEGER", 0, 1), ("metric", "TEXT", 1, 0),
                    ("attributes", "TEXT", 1, 0), ("kind", "TEXT", 1, 0),
                    ("unit", "TEXT", 1, 0), ("local_only", "INTEGER", 1, 0)],
        "unique": [("metric", "attributes", "kind")],
    },
    "daily": {
        "columns": [("day", "INTEGER", 1, 1), ("series_id", "INTEGER", 1, 2),
                    ("total", "NUMERIC", 0, 0), ("last", "NUMERIC", 0, 0),
                    ("peak", "NUMERIC", 0, 0)],
        "unique": [("day", "series_id")],
    },
    "outbox": {
        "columns": [("week", "TEXT", 0, 1), ("installation_id", "TEXT", 1, 0),
                    ("built_at", "TEXT", 1, 0), ("body", "BLOB", 0, 0),
                    ("rendering", "TEXT", 1, 0), ("state", "TEXT", 1, 0),
                    ("attempts", "INTEGER", 1, 0), ("next_attempt_at", "TEXT", 0, 0),
                    ("last_status", "INTEGER", 0, 0), ("last_answer", "TEXT", 0, 0)],
        "unique": [("week",)],
    },
    "uploads": {
        "columns": [("id", "INTEGER", 0, 1), ("kind", "TEXT", 1, 0), ("week", "TEXT", 0, 0),
                    ("attempted_at", "TEXT", 1, 0), ("endpoint", "TEXT", 1, 0),
                    ("bytes", "INTEGER", 1, 0), ("status", "INTEGER", 0, 0),
                    ("answer", "TEXT", 1, 0)],
        "unique": [],
    },
    "destinations": {
        "columns": [("installation_id", "TEXT", 1, 1), ("endpoint", "TEXT", 1, 2),
                    ("credential", "TEXT", 1, 0), ("first_at", "TEXT", 1, 0)],
        "unique": [("installation_id", "endpoint")],
    },
    "erasures": {
        "columns": [("installation_id", "TEXT", 1, 1), ("credential", "TEXT", 1, 0),
                    ("endpoint", "TEXT", 1, 2), ("requested_at", "TEXT", 1, 0),
                    ("attempts", "INTEGER", 1, 0), ("next_attempt_at", "TEXT", 1, 0),
                    ("last_status", "INTEGER", 0, 0), ("last_answer", "TEXT", 0, 0)],
        "unique": [("installation_id", "endpoint")],
    },
    "public_documents": {
        "columns": [("kind", "TEXT", 1, 1), ("week", "TEXT", 0, 0), ("url", "TEXT", 1, 0),
                    ("fetched_at", "TEXT", 1, 0), ("body", "TEXT", 1, 0)],
        "unique": [("kind",)],
    },
}


def schema(path: Path) -> tuple[int, dict[str, dict[str, Any]]]:
    """The file's PRAGMA user_version and its tables as VERSION_1 describes them."""
    with sqlite3.connect(path) as conn:
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        names = [r[0] for r in conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'")]
        tables = {}
        for name in names:
            columns = [(c[1], c[2], c[3], c[5])
                       for c in conn.execute(f'PRAGMA table_info("{name}")')]
            unique = sorted(
                tuple(c[2] for c in conn.execute(f'PRAGMA index_info("{index[1]}")'))
                for index in conn.execute(f'PRAGMA index_list("{name}")') if index[2])
            tables[name] = {"columns": columns, "unique": unique}
    return version, tables


def open_store(data_dir: Path) -> Store:
    """A store whose file exists (the first read creates it, as the host's first use does)."""
    store = Store(data_dir)
    with store.read() as tx:
        tx.meta("installation_id")
    return store


def test_a_first_install_creates_version_1_with_the_final_tables_only(data_dir: Path) -> None:
    store = open_store(data_dir)
    store.close()
    assert schema(store.path) == (1, VERSION_1)


def test_opening_a_version_1_store_again_keeps_its_rows(data_dir: Path) -> None:
    store = open_store(data_dir)
    with store.transaction() as tx:
        tx.set_meta("installation_id", "kept")
    store.close()
    again = open_store(data_dir)
    with again.read() as tx:
        assert tx.meta("installation_id") == "kept"
    again.close()
    assert schema(again.path) == (1, VERSION_1)


def test_a_later_version_is_applied_once_to_a_version_1_store(
        data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The mechanism a first release keeps: an entry added to MIGRATIONS runs once on a store
    made at version 1, its rows kept, and the file is stamped with the new version."""
    store = open_store(data_dir)
    with store.transaction() as tx:
        tx.set_meta("installation_id", "kept")
    store.close()
    added = "CREATE TABLE later (id INTEGER PRIMARY KEY)"
    monkeypatch.setattr(store_module, "MIGRATIONS", (*store_module.MIGRATIONS, added))
    for _ in range(2):
        again = open_store(data_dir)
        with again.read() as tx:
            assert tx.meta("installation_id") == "kept"
        again.close()
    assert schema(again.path) == (2, {
        **VERSION_1, "later": {"columns": [("id", "INTEGER", 0, 1)], "unique": []}})
