"""The user's data as a whole: everything stored here as JSON, and deleting all of it.

The export holds every table (the credential excepted). Delete-all removes every row at once,
keeping only the user's mode choice and an erasure request for every report whose sending began;
freed pages are overwritten and the WAL emptied, so deleted values do not linger in the file.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from ..consent import Mode
from ..store import Store, Tx
from ..store.reads import ReadsTx

__all__ = ["EXPORT_FORMAT", "delete_all", "export_all"]

EXPORT_FORMAT = "otel-usage-export/1"


def export_all(store: Store, mode: Mode) -> dict[str, Any]:
    """Everything stored locally, as JSON-ready data; `mode` is the mode in force."""
    result: dict[str, Any] = {"format": EXPORT_FORMAT, "mode": mode, "installation": {},
                              "mode_changes": [], "series": []}
    if not store.exists:
        return result
    with store.read(ReadsTx) as tx:
        result["installation"] = tx.public_meta()
        result["mode_changes"] = [
            {"changed_at": c.changed_at.isoformat(timespec="seconds"), "mode": c.mode,
             "catalog_version": c.catalog_version, "source": c.source}
            for c in tx.mode_history()]
        result["series"] = tx.series_with_days()
        result.update(tx.other_tables())
    return result


def delete_all(store: Store, now: datetime,
               deleted: Callable[[Tx], None] | None = None) -> str | None:
    """Delete every statistic kept here, keeping the user's mode choice (recorded again at
    `now`), which is returned (None: no choice was ever made). Every report whose sending
    began gets an erasure request, kept (and sent) until the server acknowledges: deleting
    here erases there. `deleted` sees the transaction once the rows are gone."""
    from ..consent import delete_kept_choice, opt_out, stored_choice

    if not store.exists:
        return None
    with store.transaction(ReadsTx) as tx:
        kept = stored_choice(tx)
        opt_out(tx, now)
        tx.delete_rows(keep=("erasures",))
        delete_kept_choice(tx, kept, now)
        if deleted is not None:
            deleted(tx)
    store.compact()
    return kept.mode if kept is not None else None
