"""Structured JSON logs (structlog) for the service and the uvicorn server under it."""

from __future__ import annotations

import logging
import sys

import structlog
from structlog.typing import EventDict, WrappedLogger

from otel_usage.clock import Clock, default_clock


class _Timestamp:
    """Each line's time from the one clock hook (structlog's TimeStamper reads the machine's)."""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock

    def __call__(self, _logger: WrappedLogger, _name: str, event: EventDict) -> EventDict:
        event["timestamp"] = self.clock.now().isoformat().replace("+00:00", "Z")
        return event


def configure(level: str = "info", clock: Clock | None = None) -> None:
    """One JSON object per line on stderr, for our events and for uvicorn's."""
    shared: list[structlog.types.Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        _Timestamp(clock or default_clock()),
    ]
    structlog.configure(
        processors=[*shared, structlog.stdlib.add_logger_name,
                    structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(structlog.stdlib.ProcessorFormatter(
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                    structlog.processors.JSONRenderer()],
        foreign_pre_chain=[*shared, structlog.stdlib.add_logger_name],
    ))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
