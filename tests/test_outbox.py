"""The outbox's rules: what an answer means for the next attempt, credentials, opt-out."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from otel_usage import _outbox
from otel_usage._store import Store, connect
from otel_usage._upload import Answer

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
    attempt = _outbox.schedule_after(answer, 1, NOW)
    assert (attempt.state, attempt.next_attempt_at) == expected


def test_backoff_doubles_up_to_a_day() -> None:
    waits = [_outbox.backoff(n) for n in range(1, 9)]
    assert waits == [timedelta(minutes=30), timedelta(hours=1), timedelta(hours=2),
                     timedelta(hours=4), timedelta(hours=8), timedelta(hours=16),
                     timedelta(days=1), timedelta(days=1)]
    assert _outbox.backoff(10_000) == timedelta(days=1)


def test_the_credential_is_made_once_and_random(conn: sqlite3.Connection,
                                                tmp_path: Path) -> None:
    secret = _outbox.credential(conn)
    assert _outbox.credential(conn) == secret and len(secret) == 43
    other = connect(tmp_path / "other.sqlite3")
    assert _outbox.credential(other) != secret
    other.close()


def test_opting_out_before_anything_was_sent_queues_no_erasure(
    conn: sqlite3.Connection,
) -> None:
    Store.installation_id(conn, NOW)
    _outbox.credential(conn)
    _outbox.put_report(conn, week="2026-W48", installation_id="x", now=NOW, body=b"x",
                       rendering={}, due=NOW)
    assert _outbox.opt_out(conn, "https://stats.example", NOW) is False
    assert conn.execute("SELECT count(*) FROM outbox").fetchone() == (0,)
    assert _outbox.due_erasures(conn, NOW) == []


def test_opting_out_after_an_attempt_keeps_id_and_credential_until_acknowledged(
    conn: sqlite3.Connection,
) -> None:
    installation_id = Store.installation_id(conn, NOW)
    secret = _outbox.credential(conn)
    _outbox.put_report(conn, week="2026-W48", installation_id=installation_id, now=NOW,
                       body=b"x", rendering={}, due=NOW)
    _outbox.record_report(conn, "2026-W48", _outbox.schedule_after(Answer(None, "timeout"), 1,
                                                                   NOW), NOW, "https://s", 1)
    assert _outbox.opt_out(conn, "https://stats.example", NOW) is True
    (erasure,) = _outbox.due_erasures(conn, NOW)
    assert erasure == _outbox.Erasure(installation_id, secret, "https://stats.example", 0)
    assert _outbox.record_erasure(conn, erasure, Answer(502, "bad gateway"), NOW) is False
    assert _outbox.due_erasures(conn, NOW + timedelta(minutes=29)) == []
    (again,) = _outbox.due_erasures(conn, NOW + timedelta(minutes=30))
    assert _outbox.record_erasure(conn, again, Answer(404, "unknown"), NOW) is True
    assert conn.execute("SELECT count(*) FROM erasures").fetchone() == (0,)


def test_rotation_gives_a_new_id_and_credential_and_rebuilds_pending_reports(
    conn: sqlite3.Connection,
) -> None:
    old_id = Store.installation_id(conn, NOW)
    old_secret = _outbox.credential(conn)
    for week, body in (("2026-W47", b"sent"), ("2026-W48", b"pending")):
        _outbox.put_report(conn, week=week, installation_id=old_id, now=NOW, body=body,
                           rendering={}, due=NOW)
    _outbox.record_report(conn, "2026-W47", _outbox.schedule_after(Answer(200, "OK"), 1, NOW),
                          NOW, "https://s", 4)
    new_id = _outbox.rotate_identity(conn, NOW)
    assert new_id != old_id and Store.installation_id(conn, NOW) == new_id
    assert _outbox.credential(conn) not in (old_secret, "")
    assert conn.execute("SELECT week, state FROM outbox").fetchall() == [("2026-W47", "sent")]
    assert _outbox.identity_age(conn, NOW + timedelta(days=400)) == timedelta(days=400)
