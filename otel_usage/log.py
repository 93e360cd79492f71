"""Logging for the library: structlog, and problems reported once until they go away."""

from __future__ import annotations

import threading
from typing import Any

__all__ = ["ProblemLog", "logger"]


class _Logger:
    """structlog's logger, imported on the first log line: a quiet start imports nothing.

    structlog (with asyncio beneath it) is most of the client's start-up cost on a bare
    interpreter; Printernizer has it loaded anyway, but a healthy start should not need it.
    """

    def __getattr__(self, name: str) -> Any:
        import structlog

        return getattr(structlog.get_logger("otel_usage"), name)


logger: Any = _Logger()


class ProblemLog:
    """Logs each kind of problem once, and once more when it has gone away.

    Telemetry must not flood the host's log: a read-only disk fails every minute, but the user
    needs to read about it once.
    """

    def __init__(self) -> None:
        self._open: set[str] = set()
        self._lock = threading.Lock()

    def problem(self, kind: str, event: str, **fields: Any) -> None:
        with self._lock:
            first = kind not in self._open
            self._open.add(kind)
        if first:
            logger.warning(event, problem=kind, **fields)

    def resolved(self, kind: str, event: str) -> None:
        with self._lock:
            if kind not in self._open:
                return
            self._open.discard(kind)
        logger.info(event, problem=kind)

    def resolved_all(self, prefix: str, event: str) -> None:
        """Every open problem whose kind starts with `prefix` has gone away."""
        for kind in self.open_problems:
            if kind.startswith(prefix):
                self.resolved(kind, event)

    @property
    def open_problems(self) -> frozenset[str]:
        with self._lock:
            return frozenset(self._open)
