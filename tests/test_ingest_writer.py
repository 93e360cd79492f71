"""The writer thread: group commit, a bounded queue, 503 instead of stalling, a clean stop."""

from __future__ import annotations

import asyncio
import threading
from dataclasses import replace
from datetime import datetime
from typing import Any

import pytest
from ingest_reports import NOW

from ingest._errors import CredentialRejected, Overloaded, StoreUnavailable, WriteFailed
from ingest._settings import Settings
from ingest._store import Outcome, ReportJob
from ingest._writer import EraseJob, Writer

SETTINGS = Settings(database_url="sqlite://", clock=lambda: NOW)


class FakeStore:
    """Records batches; `gate` blocks commits until set."""

    def __init__(self) -> None:
        self.batches: list[list[str]] = []
        self.counts: list[dict[Any, int]] = []
        self.gate = threading.Event()
        self.gate.set()
        self.fail = False

    def write_reports(self, jobs: list[ReportJob], admission: object = None) -> list[Outcome]:
        self.gate.wait()
        if self.fail and len(jobs) == 1 and jobs[0].installation_id == "bad":
            raise WriteFailed("no")
        if self.fail and len(jobs) > 1:
            raise WriteFailed("batch")
        self.batches.append([j.installation_id for j in jobs])
        return [None if j.credential_hash == "ok" else CredentialRejected("no") for j in jobs]

    def erase(self, installation_id: str, credential_hash: str, today: datetime,
              register: object = None) -> int:
        self.batches.append([f"erase {installation_id} {today.date()}"])
        return 2

    def add_counts(self, counts: dict[Any, int]) -> None:
        self.counts.append(dict(counts))



def _job(name: str, credential: str = "ok") -> ReportJob:
    return ReportJob(name, credential, (), datetime(2025, 6, 16))


@pytest.fixture
def store() -> FakeStore:
    return FakeStore()


async def test_jobs_waiting_together_commit_in_one_batch(store: FakeStore) -> None:
    """Group commit: what queues up while a commit runs goes in the next transaction."""
    writer = Writer(store, SETTINGS)  # type: ignore[arg-type]
    store.gate.clear()
    writer.start()
    first = asyncio.ensure_future(writer.submit(_job("a")))
    await asyncio.sleep(0.05)
    rest = [asyncio.ensure_future(writer.submit(_job(n, "ok" if n != "c" else "no")))
            for n in "bcd"]
    await asyncio.sleep(0.05)
    store.gate.set()
    results = await asyncio.gather(first, *rest, return_exceptions=True)
    writer.stop()
    assert results[:2] == [None, None] and results[3] is None
    assert isinstance(results[2], CredentialRejected)
    assert store.batches == [["a"], ["b", "c", "d"]]


async def test_an_erasure_is_its_own_transaction_in_order(store: FakeStore) -> None:
    writer = Writer(store, SETTINGS)  # type: ignore[arg-type]
    store.gate.clear()
    writer.start()
    blocker = asyncio.ensure_future(writer.submit(_job("a")))
    await asyncio.sleep(0.05)
    jobs = [writer.submit(_job("b")), writer.submit(EraseJob("b", "h")), writer.submit(_job("c"))]
    futures = [asyncio.ensure_future(j) for j in jobs]
    await asyncio.sleep(0.05)
    store.gate.set()
    assert await asyncio.gather(blocker, *futures) == [None, None, 2, None]
    writer.stop()
    assert store.batches == [["a"], ["b"], ["erase b 2025-06-18"], ["c"]]


async def test_a_full_queue_is_answered_503_at_once(store: FakeStore) -> None:
    writer = Writer(store, replace(SETTINGS, max_pending=3, write_timeout_s=5))  # type: ignore[arg-type]
    store.gate.clear()
    writer.start()
    waiting = [asyncio.ensure_future(writer.submit(_job("a")))]
    await asyncio.sleep(0.05)  # the writer holds "a" in a blocked commit
    waiting += [asyncio.ensure_future(writer.submit(_job(n))) for n in "bc"]
    await asyncio.sleep(0.05)
    with pytest.raises(Overloaded) as caught:
        await writer.submit(_job("d"))
    assert caught.value.retry_after == SETTINGS.retry_after_s
    store.gate.set()
    assert await asyncio.gather(*waiting) == [None, None, None]
    writer.stop()


async def test_a_commit_slower_than_the_timeout_is_answered_503(store: FakeStore) -> None:
    writer = Writer(store, replace(SETTINGS, write_timeout_s=0.1))  # type: ignore[arg-type]
    store.gate.clear()
    writer.start()
    with pytest.raises(Overloaded):
        await writer.submit(_job("a"))
    store.gate.set()
    writer.stop()
    assert store.batches == [["a"]]  # still stored: the client's retry replaces it


async def test_a_failing_batch_is_retried_job_by_job(store: FakeStore) -> None:
    """One job the database refuses fails alone; the others of its batch are stored."""
    writer = Writer(store, SETTINGS)  # type: ignore[arg-type]
    store.gate.clear()
    store.fail = True
    writer.start()
    blocker = asyncio.ensure_future(writer.submit(_job("a")))
    await asyncio.sleep(0.05)
    futures = [asyncio.ensure_future(writer.submit(_job(n))) for n in ("b", "bad", "c")]
    await asyncio.sleep(0.05)
    store.gate.set()
    results = await asyncio.gather(blocker, *futures, return_exceptions=True)
    writer.stop()
    assert results[:2] == [None, None]
    assert isinstance(results[2], StoreUnavailable)
    assert results[3] is None
    assert store.batches == [["a"], ["b"], ["c"]]


async def test_stop_finishes_queued_jobs_and_flushes_counts(store: FakeStore) -> None:
    writer = Writer(store, SETTINGS)  # type: ignore[arg-type]
    writer.start()
    writer.count("accepted")
    writer.count("accepted")
    writer.count("rejected", "unknown_metric")
    result = await writer.submit(_job("a"))
    await asyncio.to_thread(writer.stop)
    assert result is None
    assert not writer.alive
    day = datetime(2025, 6, 18)
    merged: dict[Any, int] = {}
    for counts in store.counts:
        for key, value in counts.items():
            merged[key] = merged.get(key, 0) + value
    assert merged == {(day, "accepted", ""): 2, (day, "rejected", "unknown_metric"): 1}
    with pytest.raises(Overloaded):
        await writer.submit(_job("b"))
