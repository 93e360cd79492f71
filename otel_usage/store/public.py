"""The public statistics as this installation fetched them, and the local history's days they
are compared with.

Imported by the comparison only (the page's and the command's, when asked): a host that records
does not hold this code. It builds on the sender's statements, since the comparison renders the
compared week as a report would (:func:`otel_usage.report.build.build_report`).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import NamedTuple

from . import _ts
from .outbox import OutboxTx

__all__ = ["PublicDocument", "PublicTx"]


class PublicDocument(NamedTuple):
    """A document of the public statistics as the store keeps it: the index (`kind` 'index',
    `week` its newest week) or the week compared with (`kind` 'week'), the JSON that arrived
    from `url`."""

    kind: str
    week: str | None
    url: str
    fetched_at: datetime
    body: str


class PublicTx(OutboxTx):
    """A transaction with the public statistics' statements too
    (``store.read(PublicTx)``, ``store.transaction(PublicTx)``)."""

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
