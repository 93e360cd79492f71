"""Printernizer's stand-in (examples/printernizer/) as the tests run it: a copy, before or
after the README's switch-over, imported as Printernizer runs (its ``src`` package, its
database at ``DATABASE_PATH``), and an installed Printernizer's database of today."""

from __future__ import annotations

import json
import os
import runpy
import sqlite3
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from pathlib import Path
from types import ModuleType

from examples.switch_over import STANDIN

OLD_ID = str(uuid.UUID(int=0xC0FFEE, version=4))
# The stand-in's tables before the switch-over, the old usage-statistics feature's included.
TABLES: list[str] = runpy.run_path(str(STANDIN / "src" / "database" / "database.py"))["TABLES"]


def printernizer_of_today(path: Path, midweek: datetime, opt_in: str | None) -> Path:
    """Its database as an installed Printernizer has it: an opted-in (or not) user's events."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with sqlite3.connect(path) as conn:
        for table in TABLES:
            conn.execute(table)
        opted = (midweek - timedelta(days=20)).replace(tzinfo=None)
        settings = [("installation_id", OLD_ID, opted.isoformat(sep=" "))]
        if opt_in is not None:
            settings.append(("opt_in_status", opt_in, opted.isoformat(sep=" ")))
        conn.executemany("INSERT INTO usage_settings VALUES (?, ?, ?)", settings)
        last_week = (midweek - timedelta(days=7)).replace(tzinfo=None).isoformat(sep=" ")
        conn.executemany(
            "INSERT INTO usage_events (id, event_type, timestamp, metadata) VALUES (?, ?, ?, ?)",
            [(str(uuid.uuid4()), kind, last_week, json.dumps(meta)) for kind, meta in [
                ("job_completed", {"printer_type": "bambu_lab", "file_name": "old-secret.3mf"}),
                ("job_completed", {"printer_type": "bambu_lab"}),
                ("file_downloaded", {"printer_type": "prusa_core"})]])
    return path


def _forget_src() -> None:
    for name in [n for n in sys.modules if n == "src" or n.startswith("src.")]:
        del sys.modules[name]


@contextmanager
def printernizer_main(root: Path, database: Path) -> Iterator[ModuleType]:
    """``src.main`` of the tree at `root` (its ``app`` made at import), run on `database`."""
    saved = os.environ.get("DATABASE_PATH")
    os.environ["DATABASE_PATH"] = str(database)
    _forget_src()
    sys.path.insert(0, str(root))
    try:
        import src.main

        yield src.main
    finally:
        sys.path.remove(str(root))
        _forget_src()
        if saved is None:
            del os.environ["DATABASE_PATH"]
        else:
            os.environ["DATABASE_PATH"] = saved
