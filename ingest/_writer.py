"""The writer: one thread that owns the store's report writes, committing them in groups.

Requests hand a job over and await its future (at most `max_pending` wait); the thread takes
whatever is waiting (up to about `batch_max`) and commits it in one transaction, so a commit's
cost is shared by every request that arrived meanwhile (group commit). Each job is checked in
the transaction that writes it (credential, erased ids, the limits of new installations and of
reports per installation: `_store`), so a request goes to the store and back once, and its
answer comes back with its batch's, in one call per event loop. A full queue or a slow
commit is answered 503 with Retry-After instead of letting requests pile up; an erasure is its
own transaction. Stopping drains the queue first, so requests in flight are finished. Request
counts are kept in memory and added to `daily_stats` once a second.
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import structlog

from otel_usage.weeks import day_start

from ._errors import IngestError, Overloaded, StoreUnavailable, WriteFailed
from ._ratelimit import Admission
from ._settings import Settings
from ._store import Outcome, ReportJob, Store

log = structlog.get_logger("ingest.writer")
_STOP = object()
_FLUSH_S = 1.0


@dataclass(frozen=True)
class EraseJob:
    """An erasure, and the key of the client's address it came from (an erasure of an id
    never stored counts as a new installation of that address; never stored) and whether it
    came through a trusted proxy."""

    installation_id: str
    credential_hash: str
    address: str = ""
    proxied: bool = False


Job = ReportJob | EraseJob


@dataclass
class _Pending:
    job: Job
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future[Any] = field(repr=False)


class Writer:
    """Owns the store's writes; `submit` and `count` are called from the event loop.

    The event loop hands jobs over once per turn of the loop (every request that arrived in
    that turn together), the thread commits whatever has been handed over, and the answers go
    back in one call per batch: two wake-ups per batch, not per request."""

    def __init__(self, store: Store, settings: Settings,
                 admission: Admission | None = None) -> None:
        self._store = store
        self._settings = settings
        self._admission = admission
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()  # C: no Condition per put
        self._next: list[_Pending] = []
        self._waiting = 0
        self._day: tuple[float, datetime] = (-1.0, datetime.min)
        self._counts: Counter[tuple[datetime, str, str]] = Counter()
        self._counts_lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, name="ingest-writer", daemon=True)

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 30.0) -> None:
        """Finish every queued job, store the counts, and end the thread."""
        if self._thread.is_alive():
            self._queue.put([_STOP])
            self._thread.join(timeout)

    async def submit(self, job: Job) -> Any:
        """The job's result once committed; Overloaded when too many wait or it is slow."""
        retry = self._settings.retry_after_s
        if self._waiting >= self._settings.max_pending or not self.alive:
            raise Overloaded("the write queue is full", retry_after=retry)
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        self._waiting += 1
        # A timer on the future, not a timeout on the task: a third of the cost per request.
        expiry = loop.call_later(self._settings.write_timeout_s, _expire, future, retry)
        future.add_done_callback(lambda _future: self._done(expiry))
        if not self._next:
            loop.call_soon(self._hand_over)
        self._next.append(_Pending(job, loop, future))
        return await future

    def _hand_over(self) -> None:
        batch, self._next = self._next, []
        self._queue.put(batch)

    def _done(self, expiry: asyncio.TimerHandle) -> None:
        expiry.cancel()
        self._waiting -= 1

    def count(self, outcome: str, reason: str = "") -> None:
        """Count one request for today's `daily_stats`, without any identifier."""
        minute = self._settings.clock() // 60  # days begin on a minute: look once a minute
        if minute != self._day[0]:
            self._day = (minute, day_start(self._settings.now()).replace(tzinfo=None))
        with self._counts_lock:
            self._counts[(self._day[1], outcome, reason)] += 1

    # The thread -----------------------------------------------------------------------------

    def _run(self) -> None:
        last_flush = time.monotonic()
        while True:
            try:
                batch = self._gather(self._queue.get(timeout=_FLUSH_S))
            except queue.Empty:
                batch = []
            stopping = bool(batch) and batch[-1] is _STOP
            self._process([p for p in batch if p is not _STOP])
            if stopping or time.monotonic() - last_flush >= _FLUSH_S:
                self._flush_counts()
                last_flush = time.monotonic()
            if stopping:
                log.info("writer.stopped")
                return

    def _gather(self, first: list[Any]) -> list[Any]:
        """What was handed over first and within `batch_linger_s`, up to about `batch_max`."""
        batch = list(first)
        deadline = time.monotonic() + self._settings.batch_linger_s
        while batch[-1] is not _STOP and len(batch) < self._settings.batch_max:
            remaining = deadline - time.monotonic()
            try:
                batch += (self._queue.get(timeout=remaining) if remaining > 0
                          else self._queue.get_nowait())
            except queue.Empty:
                break
        return batch

    def _process(self, batch: list[_Pending]) -> None:
        live = [p for p in batch if not p.future.done()]  # skip jobs already answered 503
        if not live:
            return
        outcomes = commit(self._store, [p.job for p in live], self._settings, self._admission)
        by_loop: dict[asyncio.AbstractEventLoop, list[tuple[asyncio.Future[Any], Any]]] = {}
        for pending, outcome in zip(live, outcomes, strict=True):
            by_loop.setdefault(pending.loop, []).append((pending.future, outcome))
        for loop, settled in by_loop.items():  # one wake-up per event loop, not per job
            with contextlib.suppress(RuntimeError):  # a closed loop: nobody waits any more
                loop.call_soon_threadsafe(_settle_all, settled)

    def _flush_counts(self) -> None:
        with self._counts_lock:
            counts, self._counts = self._counts, Counter()
        if not counts:
            return
        try:
            self._store.add_counts(counts)
        except StoreUnavailable as exc:
            log.warning("writer.counts_not_stored", error=str(exc))
            with self._counts_lock:
                self._counts.update(counts)


def commit(store: Store, jobs: list[Job], settings: Settings,
           admission: Admission | None = None) -> list[Any]:
    """Write jobs in order: runs of reports in one transaction each, an erasure alone.
    Each job's outcome is its result or the IngestError it met."""
    outcomes: list[Any] = []
    run: list[ReportJob] = []
    for job in jobs:
        if isinstance(job, EraseJob):
            outcomes += _commit_reports(store, run, admission)
            run = []
            outcomes.append(_commit_erase(store, job, settings, admission))
        else:
            run.append(job)
    return outcomes + _commit_reports(store, run, admission)


def _commit_reports(store: Store, run: list[ReportJob],
                    admission: Admission | None) -> list[Outcome]:
    if not run:
        return []
    try:
        return store.write_reports(run, admission)
    except WriteFailed as exc:
        if len(run) > 1:  # one bad job must not fail the others: one by one
            return [outcome for job in run for outcome in _commit_reports(store, [job],
                                                                          admission)]
        log.warning("writer.write_failed", error=str(exc))
        return [exc]
    except StoreUnavailable as exc:
        log.warning("writer.store_unavailable", error=str(exc), jobs=len(run))
        return [exc] * len(run)


def _commit_erase(store: Store, job: EraseJob, settings: Settings,
                  admission: Admission | None) -> Any:
    today = day_start(settings.now()).replace(tzinfo=None)
    register = None if admission is None else (
        lambda: admission.register(job.address, job.proxied))
    try:
        return store.erase(job.installation_id, job.credential_hash, today, register)
    except IngestError as exc:
        return exc


def _expire(future: asyncio.Future[Any], retry_after: int) -> None:
    """Answer a job the thread has not committed in time; the thread will skip it."""
    if not future.done():
        future.set_exception(Overloaded("the database is slow to commit",
                                        retry_after=retry_after))


def _settle_all(settled: list[tuple[asyncio.Future[Any], Any]]) -> None:
    for future, outcome in settled:
        if future.done():
            continue
        if isinstance(outcome, BaseException):
            future.set_exception(outcome)
        else:
            future.set_result(outcome)
