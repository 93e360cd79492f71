"""The outbox: built reports waiting to leave, the history of attempts, pending erasures.

Every built report is kept with the exact bytes that leave (gzipped protobuf) and a readable
rendering, so the user can review what is sent (issue 3, item 4). Its state moves
``pending`` → ``sent`` | ``failed`` (a permanent 4xx) | ``expired`` (undelivered for the catalog's
``outbox_max_age_weeks``); a week with no data is kept as ``empty`` and never sent. Retry times
are stored, so backoff survives restarts (item 6). Erasure requests are retried until the server
acknowledges them (item 8).

The installation's credential lives in ``meta`` under ``credential``: never shown, exported or
logged (the export skips that key and any column named ``credential``).
"""

from __future__ import annotations

import json
import secrets
import sqlite3
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

from ._upload import Answer

__all__ = [
    "Attempt",
    "Due",
    "Erasure",
    "clear_reports",
    "credential",
    "due_erasures",
    "due_reports",
    "expire",
    "history",
    "identity_age",
    "known_weeks",
    "opt_out",
    "put_report",
    "queue_erasure",
    "record_erasure",
    "record_report",
    "rotate_identity",
    "schedule_after",
]

State = Literal["pending", "sent", "failed", "expired", "empty"]

BACKOFF_BASE = timedelta(minutes=30)
BACKOFF_MAX = timedelta(days=1)
RETRY_AFTER_MIN = timedelta(minutes=1)
RETRY_AFTER_MAX = timedelta(days=7)
_ACKNOWLEDGED_ERASURE = frozenset({404, 410})


def _ts(when: datetime) -> str:
    return when.isoformat(timespec="seconds")


def credential(conn: sqlite3.Connection) -> str:
    """The installation's secret, created on first need (``secrets.token_urlsafe(32)``)."""
    row = conn.execute("SELECT value FROM meta WHERE key = 'credential'").fetchone()
    if row is not None:
        return str(row[0])
    secret = secrets.token_urlsafe(32)
    conn.execute("INSERT INTO meta (key, value) VALUES ('credential', ?)", (secret,))
    return secret


# Reports.


def known_weeks(conn: sqlite3.Connection) -> set[str]:
    return {r[0] for r in conn.execute("SELECT week FROM outbox")}


def put_report(conn: sqlite3.Connection, *, week: str, installation_id: str, now: datetime,
               body: bytes | None, rendering: dict[str, Any], due: datetime) -> None:
    """Keep a built report until it is sent (or `empty` when there is nothing to send)."""
    state: State = "pending" if body is not None else "empty"
    conn.execute(
        "INSERT OR IGNORE INTO outbox (week, installation_id, built_at, body, rendering, state, "
        "next_attempt_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
        (week, installation_id, _ts(now), body, json.dumps(rendering, sort_keys=True), state,
         _ts(due) if body is not None else None),
    )


@dataclass(frozen=True)
class Due:
    """A pending report whose time has come."""

    week: str
    body: bytes
    attempts: int


def due_reports(conn: sqlite3.Connection, now: datetime) -> list[Due]:
    rows = conn.execute(
        "SELECT week, body, attempts FROM outbox WHERE state = 'pending' AND next_attempt_at <= ? "
        "ORDER BY week", (_ts(now),))
    return [Due(w, bytes(b), int(a)) for w, b, a in rows]


def next_due(conn: sqlite3.Connection) -> datetime | None:
    row = conn.execute(
        "SELECT min(t) FROM (SELECT next_attempt_at AS t FROM outbox WHERE state = 'pending' "
        "UNION ALL SELECT next_attempt_at FROM erasures)").fetchone()
    return datetime.fromisoformat(row[0]) if row and row[0] else None


@dataclass(frozen=True)
class Attempt:
    """The outcome of one attempt and what it means for the next."""

    answer: Answer
    state: State
    next_attempt_at: datetime | None


def schedule_after(answer: Answer, attempts: int, now: datetime) -> Attempt:
    """2xx: sent; 429/503: when Retry-After says; other 4xx: failed for good; else backoff."""
    if answer.ok:
        return Attempt(answer, "sent", None)
    status = answer.status
    if status in (429, 503) and answer.retry_after_s is not None:
        wait = min(max(timedelta(seconds=answer.retry_after_s), RETRY_AFTER_MIN), RETRY_AFTER_MAX)
        return Attempt(answer, "pending", now + wait)
    if status is not None and 400 <= status < 500 and status not in (408, 429):
        return Attempt(answer, "failed", None)
    return Attempt(answer, "pending", now + backoff(attempts))


def backoff(attempts: int) -> timedelta:
    """30 minutes after the first failure, doubling, at most a day."""
    return min(BACKOFF_BASE * (1 << min(max(attempts - 1, 0), 16)), BACKOFF_MAX)


def record_report(conn: sqlite3.Connection, week: str, attempt: Attempt, now: datetime,
                  endpoint: str, size: int) -> None:
    answer = attempt.answer
    conn.execute(
        "UPDATE outbox SET state = ?, attempts = attempts + 1, next_attempt_at = ?, "
        "last_status = ?, last_answer = ? WHERE week = ? AND state = 'pending'",
        (attempt.state, _ts(attempt.next_attempt_at) if attempt.next_attempt_at else None,
         answer.status, answer.text, week),
    )
    _log_upload(conn, "report", week, now, endpoint, size, answer)


def expire(conn: sqlite3.Connection, oldest_end: datetime, week_end: dict[str, datetime]) -> int:
    """Drop unsent reports of weeks that closed before `oldest_end` (their bytes go too)."""
    expired = [w for w, end in week_end.items() if end <= oldest_end]
    conn.executemany(
        "UPDATE outbox SET state = 'expired', body = NULL, next_attempt_at = NULL "
        "WHERE week = ? AND state = 'pending'", [(w,) for w in expired])
    return len(expired)


def pending_weeks(conn: sqlite3.Connection) -> list[str]:
    return [r[0] for r in conn.execute("SELECT week FROM outbox WHERE state = 'pending'")]


def clear_reports(conn: sqlite3.Connection) -> None:
    """Opt-out: the outbox is emptied (the history of past attempts stays, for the user)."""
    conn.execute("DELETE FROM outbox")


def _log_upload(conn: sqlite3.Connection, kind: str, week: str | None, now: datetime,
                endpoint: str, size: int, answer: Answer) -> None:
    conn.execute(
        "INSERT INTO uploads (kind, week, attempted_at, endpoint, bytes, status, answer) "
        "VALUES (?, ?, ?, ?, ?, ?, ?)",
        (kind, week, _ts(now), endpoint, size, answer.status, answer.text),
    )


def history(conn: sqlite3.Connection) -> list[dict[str, Any]]:
    """Every attempt, oldest first: what, when, where, how many bytes and the server's answer."""
    rows = conn.execute(
        "SELECT kind, week, attempted_at, endpoint, bytes, status, answer FROM uploads ORDER BY id")
    keys = ("kind", "week", "attempted_at", "endpoint", "bytes", "status", "answer")
    return [dict(zip(keys, r, strict=True)) for r in rows]


# Erasure requests (opt-out).


@dataclass(frozen=True)
class Erasure:
    installation_id: str
    credential: str
    endpoint: str
    attempts: int


def queue_erasure(conn: sqlite3.Connection, installation_id: str, secret: str, endpoint: str,
                  now: datetime) -> None:
    """Ask the server to erase `installation_id`, from now on until it acknowledges."""
    conn.execute(
        "INSERT OR REPLACE INTO erasures (installation_id, credential, endpoint, requested_at, "
        "next_attempt_at) VALUES (?, ?, ?, ?, ?)",
        (installation_id, secret, endpoint, _ts(now), _ts(now)),
    )


def due_erasures(conn: sqlite3.Connection, now: datetime) -> list[Erasure]:
    rows = conn.execute(
        "SELECT installation_id, credential, endpoint, attempts FROM erasures "
        "WHERE next_attempt_at <= ? ORDER BY requested_at", (_ts(now),))
    return [Erasure(i, c, e, int(a)) for i, c, e, a in rows]


def record_erasure(conn: sqlite3.Connection, erasure: Erasure, answer: Answer,
                   now: datetime) -> bool:
    """Log the attempt; forget the request (and its credential) once acknowledged."""
    _log_upload(conn, "erasure", None, now, erasure.endpoint, 0, answer)
    if answer.ok or answer.status in _ACKNOWLEDGED_ERASURE:
        conn.execute("DELETE FROM erasures WHERE installation_id = ?",
                     (erasure.installation_id,))
        return True
    attempt = schedule_after(answer, erasure.attempts + 1, now)
    retry_at = attempt.next_attempt_at or now + backoff(erasure.attempts + 1)
    conn.execute(
        "UPDATE erasures SET attempts = attempts + 1, next_attempt_at = ?, last_status = ?, "
        "last_answer = ? WHERE installation_id = ?",
        (_ts(retry_at), answer.status, answer.text, erasure.installation_id),
    )
    return False


def opt_out(conn: sqlite3.Connection, endpoint: str, now: datetime) -> bool:
    """Leaving mode ``on``: empty the outbox and, if a report may have reached the server, queue
    an erasure that keeps the installation id and credential until it is acknowledged."""
    clear_reports(conn)
    attempted = conn.execute(
        "SELECT 1 FROM uploads WHERE kind = 'report' AND NOT (status IS NULL "
        "AND answer LIKE 'refused:%') LIMIT 1").fetchone()
    ids = dict(conn.execute(
        "SELECT key, value FROM meta WHERE key IN ('installation_id', 'credential')").fetchall())
    if attempted is None or len(ids) < 2:
        return False
    queue_erasure(conn, ids["installation_id"], ids["credential"], endpoint, now)
    return True


def rotate_identity(conn: sqlite3.Connection, now: datetime) -> str:
    """A new installation id and credential; pending reports are dropped to be rebuilt under
    them (the server cannot link the old id to the new one)."""
    new_id = str(uuid.uuid4())
    conn.executemany(
        "INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)",
        [("installation_id", new_id), ("credential", secrets.token_urlsafe(32)),
         ("identity_created", now.isoformat(timespec="seconds"))],
    )
    conn.execute("DELETE FROM outbox WHERE state = 'pending'")
    return new_id


def identity_age(conn: sqlite3.Connection, now: datetime) -> timedelta:
    """How long the current id and credential have been in use."""
    row = conn.execute("SELECT value FROM meta WHERE key = 'identity_created'").fetchone()
    if row is None:
        conn.execute("INSERT INTO meta (key, value) VALUES ('identity_created', ?)",
                     (now.isoformat(timespec="seconds"),))
        return timedelta(0)
    return now - datetime.fromisoformat(str(row[0]))
