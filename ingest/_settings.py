"""How one ingest process runs: its settings, and its logs.

Settings: what the catalog's policy and protocol say (body limit, reporting window; how long
what is kept is the catalog's alone) defaults to the catalog; the service's own limits have
their defaults here. Logs: one JSON object per line on stderr (structlog), for the service's
events and for uvicorn's, each stamped by the one clock hook. Light to import: `ingest.Settings`
and the tests' log stamps load neither FastAPI nor SQLAlchemy.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

import structlog
from structlog.typing import EventDict, WrappedLogger

from otel_usage.catalog import Catalog, load_catalog
from otel_usage.clock import Clock, default_clock, unix_seconds

DEFAULT_DATABASE = "sqlite:///otel-usage-ingest.db"


def _catalog() -> Catalog:
    return load_catalog()


def _clock() -> Callable[[], float]:
    """The one clock hook (otel_usage.clock; OTEL_USAGE_NOW moves it), in Unix seconds."""
    return unix_seconds(default_clock())


@dataclass(frozen=True)
class Settings:
    """How one ingest process runs. `clock` returns Unix seconds: the one clock hook unless a
    test injects another."""

    database_url: str = DEFAULT_DATABASE
    catalog: Catalog = field(default_factory=_catalog)
    max_body_bytes: int | None = None
    # Write path: jobs waiting for the writer, jobs per transaction, how long the writer waits
    # for more jobs to commit together, and how long a request waits for its commit before it
    # gets a 503.
    max_pending: int = 2048
    batch_max: int = 256
    batch_linger_s: float = 0.005
    write_timeout_s: float = 5.0
    retry_after_s: int = 5
    # Rate limits, in memory only: requests per client address (tokens per second, bucket
    # size), new installations per client address per day (0: none), reports per
    # installation. A client's address is its peer, or, when the peer is one of
    # `trusted_proxies` (addresses or networks: the gateway), the pseudonym of the client's
    # address the proxy passes (the catalog's client_pseudonym_header), else the address it
    # passes in X-Forwarded-For; a registration refused through it gets a 403 it does not
    # retry. `unlimited_addresses` skip the per-address limits: nothing by default;
    # the demo and the benchmark name loopback, whose one process stands for many clients.
    address_rate: float = 5.0
    address_burst: int = 60
    registrations_per_day: int = 20
    installation_rate: float = 1 / 60
    installation_burst: int = 30
    trusted_proxies: tuple[str, ...] = ()
    unlimited_addresses: frozenset[str] = frozenset()
    limiter_entries: int = 100_000
    # A week may start at most this long after the server's clock, for clients a little ahead.
    clock_skew_s: int = 3600
    # How long after its end a week is published, and until when its reports are accepted
    # (default: the catalog's reporting window), and how often the service publishes what is
    # due and forgets what publication no longer needs.
    publish_after_days: int | None = None
    publish_interval_s: float = 600.0
    clock: Callable[[], float] = field(default_factory=_clock)

    def now(self) -> datetime:
        return datetime.fromtimestamp(self.clock(), UTC)

    @property
    def publish_after(self) -> int:
        days = self.publish_after_days
        return days if days is not None else self.catalog.policy.publish_after_days

    @property
    def body_limit(self) -> int:
        limit = self.max_body_bytes
        return limit if limit is not None else self.catalog.protocol.max_body_bytes


# Logs --------------------------------------------------------------------------------------


class _Timestamp:
    """Each line's time from the one clock hook (structlog's TimeStamper reads the machine's)."""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock

    def __call__(self, _logger: WrappedLogger, _name: str, event: EventDict) -> EventDict:
        event["timestamp"] = self.clock.now().isoformat().replace("+00:00", "Z")
        return event


def configure_logs(level: str = "info", clock: Clock | None = None) -> None:
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
