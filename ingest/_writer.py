"""The writer: one thread that owns every database write, committing requests in groups.

Requests put a job on a bounded queue and await its future; the thread takes whatever is
waiting (up to `batch_max`) and commits it in one transaction, so the commit cost is shared by
every request that arrived meanwhile (group commit). A full queue or a slow commit is answered
503 with Retry-After instead of letting requests pile up; an erasure is its own transaction.
Stopping drains the queue first, so requests in flight are finished.
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

from otel_usage.weeks import day_start, retention_cutoff

from ._errors import IngestError, Overloaded, StoreUnavailable, WriteFailed
from ._settings import Settings
from ._store import ReportJob, Store

log = structlog.get_logger("ingest.writer")
_STOP = object()
_FLUSH_S = 1.0
_PRUNE_S = 86_400.0


@dataclass(frozen=True)
class EraseJob:
    installation_id: str
    credential_hash: str


@dataclass
class _Pending:
    job: ReportJob | EraseJob
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future[Any] = field(repr=False)


class Writer:
    """Owns the store's writes; `submit` is called from the event loop."""

    def __init__(self, store: Store, settings: Settings) -> None:
        self._store = store
        self._settings = settings
        self._queue: queue.Queue[Any] = queue.Queue()
        self._counts: Counter[tuple[datetime, str, str]] = Counter()
        self._counts_lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, name="ingest-writer", daemon=True)
        self._last_prune = float("-inf")

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 30.0) -> None:
        """Finish every queued job, flush the counts, and end the thread."""
        if self._thread.is_alive():
            self._queue.put(_STOP)
            self._thread.join(timeout)

    async def submit(self, job: ReportJob | EraseJob) -> Any:
        """The job's result once committed; Overloaded when the queue is full or slow."""
        retry = self._settings.retry_after_s
        if self._queue.qsize() >= self._settings.max_pending or not self.alive:
            raise Overloaded("the write queue is full", retry_after=retry)
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        self._queue.put(_Pending(job, loop, future))
        try:
            async with asyncio.timeout(self._settings.write_timeout_s):
                return await future
        except TimeoutError:
            raise Overloaded("the database is slow to commit", retry_after=retry) from None

    def count(self, outcome: str, reason: str = "") -> None:
        """Count one request for today's `daily_stats`, without any identifier."""
        day = day_start(self._settings.now()).replace(tzinfo=None)
        with self._counts_lock:
            self._counts[(day, outcome, reason)] += 1

    def add_counts(self, counts: dict[tuple[datetime, str, str], int]) -> None:
        """Counts gathered elsewhere (an HTTP process), stored with the next flush."""
        with self._counts_lock:
            self._counts.update(counts)

    # The thread -----------------------------------------------------------------------------

    def _run(self) -> None:
        self._maybe_prune()
        last_flush = time.monotonic()
        while True:
            try:
                first = self._queue.get(timeout=_FLUSH_S)
            except queue.Empty:
                first = None
            batch = [] if first is None else self._gather(first)
            stopping = bool(batch) and batch[-1] is _STOP
            self._process([p for p in batch if p is not _STOP])
            if stopping or time.monotonic() - last_flush >= _FLUSH_S:
                self._flush_counts()
                self._maybe_prune()
                last_flush = time.monotonic()
            if stopping:
                return

    def _gather(self, first: Any) -> list[Any]:
        """The first job and whatever arrives within the linger time, up to `batch_max`."""
        batch = [first]
        deadline = time.monotonic() + self._settings.batch_linger_s
        while batch[-1] is not _STOP and len(batch) < self._settings.batch_max:
            remaining = deadline - time.monotonic()
            try:
                batch.append(self._queue.get(timeout=remaining) if remaining > 0
                             else self._queue.get_nowait())
            except queue.Empty:
                break
        return batch

    def _process(self, batch: list[_Pending]) -> None:
        live = [p for p in batch if not p.future.done()]  # skip jobs already answered 503
        for pending, outcome in zip(live, commit(self._store, [p.job for p in live]), strict=True):
            _resolve(pending, outcome)

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

    def _maybe_prune(self) -> None:
        now = self._settings.clock()
        if now - self._last_prune < _PRUNE_S:
            return
        self._last_prune = now
        prune(self._store, self._settings)


def prune(store: Store, settings: Settings) -> None:
    """Delete the weeks older than the retention; a failure waits for the next day."""
    cutoff = retention_cutoff(settings.now(), settings.retention).naive_start
    try:
        deleted = store.prune(cutoff)
    except StoreUnavailable as exc:
        log.warning("writer.prune_failed", error=str(exc))
        return
    log.info("writer.pruned", before=cutoff.date().isoformat(), weeks=deleted)


Job = ReportJob | EraseJob


def commit(store: Store, jobs: list[Job]) -> list[Any]:
    """Write jobs in order: runs of reports in one transaction each, an erasure alone.
    Each job's outcome is its result or the IngestError it met."""
    outcomes: list[Any] = []
    run: list[ReportJob] = []
    for job in jobs:
        if isinstance(job, EraseJob):
            outcomes += _commit_reports(store, run)
            run = []
            outcomes.append(_commit_erase(store, job))
        else:
            run.append(job)
    return outcomes + _commit_reports(store, run)


def _commit_reports(store: Store, run: list[ReportJob]) -> list[Any]:
    if not run:
        return []
    try:
        return list(store.write_reports(run))
    except WriteFailed as exc:
        if len(run) > 1:  # one bad job must not fail the others: one by one
            return [outcome for job in run for outcome in _commit_reports(store, [job])]
        log.warning("writer.write_failed", error=str(exc))
        return [exc]
    except StoreUnavailable as exc:
        log.warning("writer.store_unavailable", error=str(exc), jobs=len(run))
        return [exc] * len(run)


def _commit_erase(store: Store, job: EraseJob) -> Any:
    try:
        return store.erase(job.installation_id, job.credential_hash)
    except IngestError as exc:
        return exc


def _resolve(pending: _Pending, outcome: Any) -> None:
    # A closed loop raises RuntimeError: nobody waits for this answer any more.
    with contextlib.suppress(RuntimeError):
        pending.loop.call_soon_threadsafe(_settle, pending.future, outcome)


def _settle(future: asyncio.Future[Any], outcome: Any) -> None:
    if future.done():
        return
    if isinstance(outcome, BaseException):
        future.set_exception(outcome)
    else:
        future.set_result(outcome)


