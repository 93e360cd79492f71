"""The outbox's rules: what the server's answer means for a report or an erasure request.

A built report moves ``pending`` → ``sent`` | ``failed`` (a permanent 4xx) | ``expired``
(undelivered for the catalog's ``outbox_max_age_weeks``); a week with no data is kept as
``empty`` and never sent. 429 and 503 wait as ``Retry-After`` says (within bounds), anything
else that may pass backs off exponentially; retry times are stored, so backoff survives restarts.
An erasure request is retried until the server acknowledges it (2xx, or 404/410: nothing left;
or the gateway's erased answer).

An answer is "erased" (:func:`is_erased`) when the ingest answers ``[protocol] erased_status``
(410) or the public gateway answers 403 with an OTLP status whose message is exactly
``[protocol] erased_message``: the installation was erased on the server, and the client starts
over with a new id and credential, at most once a week, never sending again under the new one
what went out under the erased one (:meth:`.uploader.Uploader`). Any other 403 is a refusal like
any other 4xx.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from ..catalog import Protocol
from ..store.outbox import OutboxTx, PendingErasure
from .transport import Answer

__all__ = ["Attempt", "backoff", "is_erased", "record_erasure", "record_report",
           "schedule_after"]

State = Literal["pending", "sent", "failed", "expired", "empty"]

BACKOFF_BASE = timedelta(minutes=30)
BACKOFF_MAX = timedelta(days=1)
RETRY_AFTER_MIN = timedelta(minutes=1)
RETRY_AFTER_MAX = timedelta(days=7)
_ACKNOWLEDGED_ERASURE = frozenset({404, 410})


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


def record_report(tx: OutboxTx, week: str, attempt: Attempt, now: datetime, endpoint: str,
                  size: int) -> None:
    """Keep the attempt's outcome in the outbox and the history."""
    answer = attempt.answer
    tx.record_report(week, attempt.state, attempt.next_attempt_at, answer.status, answer.text)
    tx.log_upload("report", week, now, endpoint, size, answer.status, answer.text)


def is_erased(answer: Answer, protocol: Protocol) -> bool:
    """The server says this installation was erased (by the ingest, or by the gateway)."""
    if answer.status == protocol.erased_status:
        return True
    return answer.status == 403 and answer.status_message == protocol.erased_message


def record_erasure(tx: OutboxTx, erasure: PendingErasure, answer: Answer, now: datetime,
                   erased: bool = False) -> bool:
    """Log the attempt; forget the request (and its credential) once acknowledged (`erased`:
    the answer says the installation is already erased)."""
    tx.log_upload("erasure", None, now, erasure.endpoint, 0, answer.status, answer.text)
    if answer.ok or answer.status in _ACKNOWLEDGED_ERASURE or erased:
        tx.forget_erasure(erasure.installation_id, erasure.endpoint)
        return True
    attempt = schedule_after(answer, erasure.attempts + 1, now)
    retry_at = attempt.next_attempt_at or now + backoff(erasure.attempts + 1)
    tx.reschedule_erasure(erasure.installation_id, erasure.endpoint, retry_at, answer.status,
                          answer.text)
    return False
