"""The outbox's rules: what an answer means for the next attempt, credentials, opt-out."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from otel_usage.consent import opt_out
from otel_usage.send import retry
from otel_usage.send.transport import Answer
from otel_usage.store import connect
from otel_usage.store.outbox import OutboxTx, PendingErasure

NOW = datetime(2026, 12, 3, 17, 0, tzinfo=UTC)


@pytest.fixture
def conn(tmp_path: Path) -> Iterator[sqlite3.Connection]:
    db = connect(tmp_path / "usage.sqlite3")
    yield db
    db.close()


@pytest.mark.parametrize(("answer", "expected"), [
    (Answer(200, "OK"), ("sent", None)),
    (Answer(204, ""), ("sent", None)),
    (Answer(503, "busy", 7200.0), ("pending", NOW + timedelta(hours=2))),
    (Answer(429, "slow down", 5.0), ("pending", NOW + timedelta(minutes=1))),
    (Answer(429, "slow down", 30 * 86400.0), ("pending", NOW + timedelta(days=7))),
    (Answer(503, "busy"), ("pending", NOW + timedelta(minutes=30))),
    (Answer(400, "unknown metric"), ("failed", None)),
    (Answer(401, "credential"), ("failed", None)),
    (Answer(413, "too large"), ("failed", None)),
    (Answer(408, "timeout"), ("pending", NOW + timedelta(minutes=30))),
    (Answer(500, "oops"), ("pending", NOW + timedelta(minutes=30))),
    (Answer(None, "no answer: ConnectionError"), ("pending", NOW + timedelta(minutes=30))),
])
def test_each_answer_decides_the_next_attempt(answer: Answer,
                                              expected: tuple[str, datetime | None]) -> None:
    attempt = retry.schedule_after(answer, 1, NOW)
    assert (attempt.state, attempt.next_attempt_at) == expected


def test_backoff_doubles_up_to_a_day() -> None:
    waits = [retry.backoff(n) for n in range(1, 9)]
    assert waits == [timedelta(minutes=30), timedelta(hours=1), timedelta(hours=2),
                     timedelta(hours=4), timedelta(hours=8), timedelta(hours=16),
                     timedelta(days=1), timedelta(days=1)]
    assert retry.backoff(10_000) == timedelta(days=1)


def test_the_credential_is_made_once_and_random(conn: sqlite3.Connection,
                                                tmp_path: Path) -> None:
    secret = OutboxTx(conn).credential()
    assert OutboxTx(conn).credential() == secret and len(secret) == 43
    other = connect(tmp_path / "other.sqlite3")
    assert OutboxTx(other).credential() != secret
    other.close()


def test_opting_out_before_anything_was_sent_queues_no_erasure(
    conn: sqlite3.Connection,
) -> None:
    OutboxTx(conn).installation_id(NOW)
    OutboxTx(conn).credential()
    OutboxTx(conn).put_report(week="2026-W48", installation_id="x", now=NOW, body=b"x",
                       rendering={}, due=NOW)
    assert opt_out(OutboxTx(conn), NOW) == 0
    assert conn.execute("SELECT count(*) FROM outbox").fetchone() == (0,)
    assert OutboxTx(conn).due_erasures(NOW) == []


def test_opting_out_after_sending_began_keeps_id_and_credential_until_acknowledged(
    conn: sqlite3.Connection,
) -> None:
    """Sending began (before any answer): the erasure goes to that endpoint with that
    credential, one per endpoint a report went to, each retried until acknowledged."""
    installation_id = OutboxTx(conn).installation_id(NOW)
    secret = OutboxTx(conn).credential()
    OutboxTx(conn).put_report(week="2026-W48", installation_id=installation_id, now=NOW,
                       body=b"x", rendering={}, due=NOW)
    OutboxTx(conn).begin_sending(installation_id, "https://s", secret, NOW)
    OutboxTx(conn).begin_sending(installation_id, "https://other.example", secret, NOW)
    assert opt_out(OutboxTx(conn), NOW + timedelta(seconds=1)) == 2
    assert OutboxTx(conn).reports_to_erase() == []
    first, second = OutboxTx(conn).due_erasures(NOW + timedelta(seconds=1))
    assert {first, second} == {PendingErasure(installation_id, secret, "https://s", 0),
                               PendingErasure(installation_id, secret,
                                              "https://other.example", 0)}
    assert retry.record_erasure(OutboxTx(conn), first, Answer(502, "bad gateway"), NOW) is False
    assert retry.record_erasure(OutboxTx(conn), second, Answer(200, "erased"), NOW) is True
    assert OutboxTx(conn).due_erasures(NOW + timedelta(minutes=29)) == []
    (again,) = OutboxTx(conn).due_erasures(NOW + timedelta(minutes=30))
    assert retry.record_erasure(OutboxTx(conn), again, Answer(404, "unknown"), NOW) is True
    assert conn.execute("SELECT count(*) FROM erasures").fetchone() == (0,)


def test_rotation_gives_a_new_id_and_credential_and_rebuilds_only_untried_reports(
    conn: sqlite3.Connection,
) -> None:
    """An untried pending report is dropped, to be rebuilt under the new id; one whose sending
    began (a redirect answered it: still pending) fails for good, for sent again under the new
    id it would link the two."""
    old_id = OutboxTx(conn).installation_id(NOW)
    old_secret = OutboxTx(conn).credential()
    for week, body in (("2026-W47", b"sent"), ("2026-W48", b"tried"), ("2026-W49", b"untried")):
        OutboxTx(conn).put_report(week=week, installation_id=old_id, now=NOW, body=body,
                           rendering={}, due=NOW)
    retry.record_report(OutboxTx(conn), "2026-W47", retry.schedule_after(Answer(200, "OK"), 1, NOW),
                          NOW, "https://s", 4)
    retry.record_report(OutboxTx(conn), "2026-W48",
                        retry.schedule_after(Answer(307, "redirect"), 1, NOW), NOW, "https://s", 5)
    new_id = OutboxTx(conn).rotate_identity(NOW)
    assert new_id != old_id and OutboxTx(conn).installation_id(NOW) == new_id
    assert OutboxTx(conn).credential() not in (old_secret, "")
    assert conn.execute("SELECT week, state FROM outbox ORDER BY week").fetchall() == [
        ("2026-W47", "sent"), ("2026-W48", "failed")]
    assert OutboxTx(conn).identity_age(NOW + timedelta(days=400)) == timedelta(days=400)
