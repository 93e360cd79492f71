"""The sender's statements of the local database: the weekly report's rows, the outbox of
reports, the history of attempts, the delivery of erasure requests and the installation's
identity on the server (its credential, its age, its report slot).

Imported by the report builder, the sender and the preview only: a host in mode local does not
hold this code. The schema and the statements a start needs stay in :mod:`otel_usage.store`.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime, timedelta
from typing import Any, NamedTuple

from . import Tx, _ts

__all__ = ["DueReport", "OutboxTx", "PendingErasure", "StoredReport"]

_WEEK_ROWS = """
SELECT s.metric, s.attributes, d.day, d.total, d.peak
FROM daily d JOIN series s ON s.id = d.series_id
WHERE d.day >= ? AND d.day < ? AND s.local_only = 0
"""


class DueReport(NamedTuple):
    """A pending report whose time has come."""

    week: str
    body: bytes
    attempts: int
    installation_id: str = ""


class StoredReport(NamedTuple):
    """A built report as the outbox keeps it (for the preview)."""

    week: str
    rendering: dict[str, Any]
    body: bytes
    state: str
    due: str | None


class PendingErasure(NamedTuple):
    installation_id: str
    credential: str
    endpoint: str
    attempts: int


class OutboxTx(Tx):
    """A transaction with the sender's statements too (``store.transaction(OutboxTx)``)."""

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
        """A new installation id and credential. Pending reports never tried are dropped, to
        be rebuilt under them; those whose sending began fail for good: sent again under the
        new id, they would link it to the old one."""
        new_id = str(uuid.uuid4())
        self.set_meta("installation_id", new_id)
        self.set_meta("credential", _new_secret())
        self.set_meta("identity_created", _ts(now))
        self.fail_begun_reports()
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

    def week_rows(self, first_day: int,
                  end_day: int) -> list[tuple[str, str, int, float | None, float | None]]:
        """(metric, attributes, day, total, peak) of sendable series in [first_day, end_day)."""
        return list(self._conn.execute(_WEEK_ROWS, (first_day, end_day)))

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

    def begin_sending(self, installation_id: str, endpoint: str, credential: str,
                      now: datetime) -> None:
        """A report's sending begins: from now on it counts as possibly received there."""
        self._conn.execute(
            "INSERT OR IGNORE INTO destinations (installation_id, endpoint, credential, "
            "first_at) VALUES (?, ?, ?, ?)", (installation_id, endpoint, credential, _ts(now)))

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


def _new_secret() -> str:
    """A random credential (imported here: a start in mode local never needs one)."""
    import secrets

    return secrets.token_urlsafe(32)
