"""otel-usage: privacy-first usage statistics for Printernizer, on OpenTelemetry.

Printernizer starts one :class:`UsageTelemetry` at start-up, counts with ordinary OTel meters,
and shuts it down at exit. Everything is kept locally in SQLite; only in mode ``on`` does a
scrubbed weekly aggregate leave the machine.

The public API is what ``__all__`` lists, the privacy page (:mod:`otel_usage.web`),
Printernizer's switch-over (:mod:`otel_usage.printernizer`), the testing API
(:mod:`otel_usage.testing`) and the shared modules :mod:`otel_usage.catalog`,
:mod:`otel_usage.clock` and :mod:`otel_usage.weeks`; the ``otel-usage`` command is
:mod:`otel_usage.cli`. The rest follows the data path and is internal: ``store`` (the local
database), ``consent`` (the user's choice), ``record`` (meters into the local store),
``report`` (a week, scrubbed), ``send`` (outbox and transport), ``user`` (what the user sees
and does), all wired by ``telemetry`` (the facade, :class:`UsageTelemetry`).
"""

from .clock import Clock, ManualClock, SystemClock
from .consent import MODES, Mode
from .errors import InvalidModeError, StoreUnavailableError, TransportError, UsageError
from .report.environment import Environment, detect_deployment_mode, detect_environment
from .telemetry import UsageTelemetry, default_data_dir

__all__ = [
    "MODES",
    "Clock",
    "Environment",
    "InvalidModeError",
    "ManualClock",
    "Mode",
    "StoreUnavailableError",
    "SystemClock",
    "TransportError",
    "UsageError",
    "UsageTelemetry",
    "default_data_dir",
    "detect_deployment_mode",
    "detect_environment",
]

__version__ = "0.1.0"
