"""The writer in its own process, so validation and database work do not share one interpreter.

`serve` starts a writer process that owns the store and the group-commit `Writer`, listening on
a Unix socket in a private directory (mode 0700); each HTTP process talks to it through a
`RemoteWriter`, which has the same interface as `Writer`. Messages are length-prefixed pickles
(both ends are this package, run by the same user): requests `(id, kind, payload)`, answers
`(id, ok, value)`. The writer process computes the rollup contributions, taking that work off
the HTTP processes too. It stops, after draining, on SIGTERM or when its parent is gone.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import pickle
import selectors
import signal
import socket
import struct
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import fields
from datetime import timedelta
from typing import Any

import structlog

from otel_usage.clock import SystemClock, unix_seconds

from . import _errors, _rollup
from ._errors import IngestError, Overloaded, StoreUnavailable
from ._settings import Settings
from ._store import ReportJob, Store, create_engine
from ._validate import Point, Report
from ._writer import _PRUNE_S, EraseJob, commit, prune

log = structlog.get_logger("ingest.remote")
_HEADER = struct.Struct("!I")
_PARENT_POLL_S = 0.5
_CLOCK_OFFSET = "clock_offset_s"
_COUNT_FLUSH_S = 1.0


def frame(message: object) -> bytes:
    payload = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    return _HEADER.pack(len(payload)) + payload


async def read_frame(reader: asyncio.StreamReader) -> Any:
    (size,) = _HEADER.unpack(await reader.readexactly(_HEADER.size))
    return pickle.loads(await reader.readexactly(size))


def pack(reports: Sequence[Report]) -> tuple[tuple[Any, ...], ...]:
    """Reports as plain tuples for the writer process (`unpack` rebuilds them)."""
    return tuple((r.week_start, r.resource, tuple(map(tuple, r.points))) for r in reports)


def unpack(installation_id: str, packed: tuple[tuple[Any, ...], ...]) -> list[Report]:
    make = Point._make
    return [Report(installation_id, week, resource, tuple(map(make, points)))
            for week, resource, points in packed]


def _error(exc: IngestError) -> tuple[str, str, int]:
    return type(exc).__name__, str(exc), getattr(exc, "retry_after", 0)


def _rebuild(name: str, message: str, retry_after: int) -> IngestError:
    cls = getattr(_errors, name, StoreUnavailable)
    if issubclass(cls, _errors.ServiceError):
        return cls(message, retry_after=retry_after)
    return cls(message)  # type: ignore[no-any-return]


class RemoteWriter:
    """`Writer`'s interface, answered by the writer process over its socket."""

    def __init__(self, settings: Settings, path: str) -> None:
        self._settings = settings
        self._path = path
        self._ids = itertools.count()
        self._waiting: dict[int, asyncio.Future[Any]] = {}
        self._unanswered = 0  # sent and not answered yet, including requests already given 503
        self._stream: asyncio.StreamWriter | None = None
        self._reader_task: asyncio.Task[None] | None = None
        self._connecting = asyncio.Lock()
        self._counts: Counter[tuple[Any, str, str]] = Counter()
        self._flush: asyncio.TimerHandle | None = None

    @property
    def alive(self) -> bool:
        return True

    def start(self) -> None:
        """Connections are made on first use, on the event loop."""

    async def close(self) -> None:
        self._send_counts()
        if self._stream is not None:
            with contextlib.suppress(ConnectionError):
                await self._stream.drain()
            self._stream.close()
        if self._reader_task is not None:
            self._reader_task.cancel()

    def stop(self, timeout: float = 30.0) -> None:
        """Nothing to join here: `close` ends the connection."""

    async def submit(self, job: ReportJob | EraseJob) -> Any:
        if isinstance(job, ReportJob):
            reports = [report for report, _ in job.reports]
            return await self.submit_reports(job.installation_id, job.credential_hash, reports)
        return await self._call("erase", (job.installation_id, job.credential_hash))

    async def submit_reports(self, installation_id: str, credential_hash: str,
                             reports: Sequence[Report]) -> Any:
        """Whether the reports were stored; sent as plain tuples (a third of the pickling
        cost of the dataclasses), the writer process computes their rollups."""
        return await self._call("report", (installation_id, credential_hash, pack(reports)))

    async def ping(self) -> None:
        await self._call("ping", None)

    def count(self, outcome: str, reason: str = "") -> None:
        from otel_usage.weeks import day_start

        day = day_start(self._settings.now()).replace(tzinfo=None)
        self._counts[(day, outcome, reason)] += 1
        if self._flush is None:
            self._flush = asyncio.get_running_loop().call_later(_COUNT_FLUSH_S, self._send_counts)

    def _send_counts(self) -> None:
        self._flush = None
        if self._counts and self._stream is not None and not self._stream.is_closing():
            counts, self._counts = dict(self._counts), Counter()
            self._stream.write(frame((-1, "count", counts)))

    async def _call(self, kind: str, payload: object) -> Any:
        retry = self._settings.retry_after_s
        if self._unanswered >= self._settings.max_pending:
            raise Overloaded("the write queue is full", retry_after=retry)
        stream = await self._connect()
        key = next(self._ids)
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._waiting[key] = future
        stream.write(frame((key, kind, payload)))
        self._unanswered += 1
        try:
            async with asyncio.timeout(self._settings.write_timeout_s):
                return await future
        except TimeoutError:
            raise Overloaded("the database is slow to commit", retry_after=retry) from None
        finally:
            self._waiting.pop(key, None)

    async def _connect(self) -> asyncio.StreamWriter:
        async with self._connecting:
            if self._stream is None or self._stream.is_closing():
                try:
                    reader, self._stream = await asyncio.open_unix_connection(self._path)
                except OSError as exc:
                    raise StoreUnavailable("the writer process is not reachable",
                                           retry_after=self._settings.retry_after_s) from exc
                self._reader_task = asyncio.ensure_future(self._read(reader))
            return self._stream

    async def _read(self, reader: asyncio.StreamReader) -> None:
        try:
            while True:
                key, ok, value = await read_frame(reader)
                self._unanswered -= 1
                future = self._waiting.get(key)
                if future is None or future.done():
                    continue
                if ok:
                    future.set_result(value)
                else:
                    future.set_exception(_rebuild(*value))
        except (asyncio.IncompleteReadError, ConnectionError):
            lost = StoreUnavailable("the writer process went away", retry_after=1)
            for future in self._waiting.values():
                if not future.done():
                    future.set_exception(lost)
            self._stream = None
            self._unanswered = 0


# The writer process ----------------------------------------------------------------------

def writer_process(options: dict[str, Any], path: str, log_level: str) -> None:
    """Entry point of the writer process (multiprocessing, spawn)."""
    from . import _log

    _log.configure(log_level)
    settings = _settings(dict(options))
    store = Store(create_engine(settings.database_url), settings.catalog)
    store.migrate(settings.k)
    try:
        _WriterServer(store, settings, path).run()
    finally:
        store.dispose()
    log.info("writer.stopped")


class _WriterServer:
    """One thread, no event loop: read every request waiting on every connection, commit them
    as batches (group commit), answer, repeat. Blocking while a batch commits is the point: the
    next batch gathers in the sockets meanwhile."""

    def __init__(self, store: Store, settings: Settings, path: str) -> None:
        self.store = store
        self.settings = settings
        self.listener = socket.socket(socket.AF_UNIX)
        self.listener.bind(path)
        os.chmod(path, 0o600)
        self.listener.listen(128)
        self.selector = selectors.DefaultSelector()
        self.selector.register(self.listener, selectors.EVENT_READ)
        self.buffers: dict[socket.socket, bytearray] = {}
        self.counts: Counter[tuple[Any, str, str]] = Counter()
        self.stopping = False
        self.last_prune = float("-inf")

    def run(self) -> None:
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, self._stop)
        parent = os.getppid()
        last_flush = time.monotonic()
        log.info("writer.listening")
        while not self.stopping and os.getppid() == parent:
            self._handle(self._receive(_PARENT_POLL_S))
            if time.monotonic() - last_flush >= _COUNT_FLUSH_S:
                self._housekeeping()
                last_flush = time.monotonic()
        self._handle(self._receive(0))  # what is already here is answered before we go
        self._housekeeping()
        for conn in list(self.buffers):
            conn.close()
        self.listener.close()

    def _stop(self, _signum: int, _frame: object) -> None:
        self.stopping = True

    def _receive(self, timeout: float) -> list[tuple[socket.socket, Any]]:
        messages = []
        for key, _ in self.selector.select(timeout):
            sock = key.fileobj
            assert isinstance(sock, socket.socket)
            if sock is self.listener:
                conn, _ = self.listener.accept()
                self.buffers[conn] = bytearray()
                self.selector.register(conn, selectors.EVENT_READ)
                continue
            data = sock.recv(1 << 20)
            if not data:
                self._drop(sock)
                continue
            messages += [(sock, m) for m in self._frames(sock, data)]
        return messages

    def _frames(self, sock: socket.socket, data: bytes) -> list[Any]:
        buffer = self.buffers[sock]
        buffer += data
        messages = []
        while len(buffer) >= _HEADER.size:
            (size,) = _HEADER.unpack_from(buffer)
            if len(buffer) < _HEADER.size + size:
                break
            payload = bytes(buffer[_HEADER.size:_HEADER.size + size])
            del buffer[:_HEADER.size + size]
            messages.append(pickle.loads(payload))  # our own socket, mode 0600
        return messages

    def _drop(self, sock: socket.socket) -> None:
        self.selector.unregister(sock)
        self.buffers.pop(sock, None)
        sock.close()

    def _handle(self, messages: list[tuple[socket.socket, Any]]) -> None:
        targets, jobs = [], []
        for sock, (key, kind, payload) in messages:
            if kind == "count":
                self.counts.update(payload)
            elif kind == "ping":
                self._answer(sock, key, self._ping())
            else:
                targets.append((sock, key))
                jobs.append(self._job(kind, payload))
        step = self.settings.batch_max
        for start in range(0, len(jobs), step):
            outcomes = commit(self.store, jobs[start:start + step])
            answers: dict[socket.socket, list[bytes]] = {}
            for (sock, key), outcome in zip(targets[start:start + step], outcomes, strict=True):
                answers.setdefault(sock, []).append(_answer_frame(key, outcome))
            for sock, frames in answers.items():  # one send per connection and batch
                self._send(sock, b"".join(frames))

    def _job(self, kind: str, payload: Any) -> ReportJob | EraseJob:
        if kind == "erase":
            return EraseJob(*payload)
        installation_id, credential_hash, packed = payload
        catalog = self.settings.catalog
        reports = unpack(installation_id, packed)
        deltas = tuple((r, _rollup.contributions(r, catalog)) for r in reports)
        return ReportJob(installation_id, credential_hash, deltas)

    def _ping(self) -> Any:
        try:
            self.store.ping()
        except IngestError as exc:
            return exc
        return None

    def _answer(self, sock: socket.socket, key: int, outcome: Any) -> None:
        self._send(sock, _answer_frame(key, outcome))

    def _send(self, sock: socket.socket, data: bytes) -> None:
        try:
            sock.sendall(data)
        except OSError:
            if sock in self.buffers:
                self._drop(sock)

    def _housekeeping(self) -> None:
        if self.counts:
            counts, self.counts = dict(self.counts), Counter()
            try:
                self.store.add_counts(counts)
            except StoreUnavailable as exc:
                log.warning("writer.counts_not_stored", error=str(exc))
                self.counts.update(counts)
        now = self.settings.clock()
        if now - self.last_prune >= _PRUNE_S:
            self.last_prune = now
            prune(self.store, self.settings)


def _answer_frame(key: int, outcome: Any) -> bytes:
    if isinstance(outcome, IngestError):
        return frame((key, False, _error(outcome)))
    return frame((key, True, outcome))


def settings_options(settings: Settings) -> dict[str, Any]:
    """The picklable part of settings, for the writer process; the clock crosses as its offset
    from the machine's, so the writer process keeps the time it was given."""
    options = {f.name: getattr(settings, f.name) for f in fields(settings)
               if f.name not in ("catalog", "clock")}
    options[_CLOCK_OFFSET] = settings.clock() - SystemClock().now().timestamp()
    return options


def _settings(options: dict[str, Any]) -> Settings:
    offset = timedelta(seconds=options.pop(_CLOCK_OFFSET, 0.0))
    return Settings(**options, clock=unix_seconds(SystemClock(offset)))
