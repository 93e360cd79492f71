"""The user's data as a whole: everything stored here as JSON, and deleting all of it.

The export holds every table (the credential excepted). Delete-all removes every row at once,
keeping only an erasure request for what reached the server; freed pages are overwritten and the
WAL emptied, so deleted values do not linger in the file.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from ..consent import Mode
from ..store import Store

__all__ = ["EXPORT_FORMAT", "delete_all", "export_all"]

EXPORT_FORMAT = "otel-usage-export/1"


def export_all(store: Store, mode: Mode) -> dict[str, Any]:
    """Everything stored locally, as JSON-ready data; `mode` is the mode in force."""
    result: dict[str, Any] = {"format": EXPORT_FORMAT, "mode": mode, "installation": {},
                              "mode_changes": [], "series": []}
    if not store.exists:
        return result
    with store.read() as tx:
        result["installation"] = tx.public_meta()
        result["mode_changes"] = [
            {"changed_at": c.changed_at.isoformat(timespec="seconds"), "mode": c.mode,
             "catalog_version": c.catalog_version, "source": c.source}
            for c in tx.mode_history()]
        result["series"] = tx.series_with_days()
        result.update(tx.other_tables())
    return result


def delete_all(store: Store, endpoint: str, now: datetime) -> None:
    """Delete every statistic kept here. If a report reached the server, an erasure request
    for it is kept (and sent) until the server acknowledges: deleting here erases there."""
    from ..consent import opt_out

    if not store.exists:
        return
    with store.transaction() as tx:
        opt_out(tx, endpoint, now)
        tx.delete_rows(keep=("erasures",))
    store.compact()
