"""Observing what an async service knows, from the metric reader's thread.

OTel calls observable callbacks synchronously, on the reader's thread, while Printernizer's
printer service answers with ``await printer_service.list_printers()``. :class:`AsyncSource`
bridges the two: each collection asks the host's event loop for a fresh value
(``asyncio.run_coroutine_threadsafe``), waits for it a short while, and otherwise answers the
last value it has (an empty one at first). Called on the loop's own thread (a flush from async
code), it never waits: it schedules the refresh and answers the cached value.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import threading
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

from ..log import logger

__all__ = ["AsyncSource"]

T = TypeVar("T")


class AsyncSource(Generic[T]):
    """A sync callable over `fetch`, an async function run on `loop` (the running loop when
    made inside one)."""

    def __init__(self, fetch: Callable[[], Awaitable[T]], initial: T, *,
                 loop: asyncio.AbstractEventLoop | None = None, timeout_s: float = 2.0) -> None:
        self._fetch = fetch
        self._loop = loop or asyncio.get_running_loop()
        self._timeout_s = timeout_s
        self._value = initial
        self._pending: concurrent.futures.Future[T] | None = None
        self._lock = threading.Lock()
        self._warned = False

    @property
    def value(self) -> T:
        """The last value fetched."""
        return self._value

    def __call__(self) -> T:
        future = self._refresh()
        if future is not None and not self._on_loop_thread():
            with contextlib.suppress(Exception):  # the last value stands; _done logs the error
                self._value = future.result(self._timeout_s)
        return self._value

    def _refresh(self) -> concurrent.futures.Future[T] | None:
        """Start a fetch unless one is under way; None when the loop is gone."""
        with self._lock:
            if self._pending is not None and not self._pending.done():
                return self._pending
            if self._loop.is_closed() or not self._loop.is_running():
                return None
            coroutine = self._as_coroutine()
            try:
                future = asyncio.run_coroutine_threadsafe(coroutine, self._loop)
            except RuntimeError:  # the loop stopped in between
                coroutine.close()
                return None
            future.add_done_callback(self._done)
            self._pending = future
            return future

    async def _as_coroutine(self) -> T:
        return await self._fetch()

    def _done(self, future: concurrent.futures.Future[T]) -> None:
        if future.cancelled():
            return
        error = future.exception()
        if error is not None:
            if not self._warned:  # once: the reader asks every minute
                self._warned = True
                logger.warning("usage statistics could not ask the host", error=repr(error))
            return
        self._warned = False
        self._value = future.result()

    def _on_loop_thread(self) -> bool:
        try:
            return asyncio.get_running_loop() is self._loop
        except RuntimeError:
            return False
