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

from typing import TYPE_CHECKING, Any

from .clock import Clock, ManualClock, SystemClock
from .consent import MODES, Mode
from .errors import InvalidModeError, StoreUnavailableError, TransportError, UsageError
from .telemetry import UsageTelemetry, default_data_dir

if TYPE_CHECKING:
    from .report.environment import Environment, detect_deployment_mode, detect_environment

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

# The machine's facts are imported on first use: a host that records and never sends (mode
# local, the default) does not keep their module in memory.
_ENVIRONMENT = frozenset({"Environment", "detect_deployment_mode", "detect_environment"})


def __getattr__(name: str) -> Any:
    if name in _ENVIRONMENT:
        from .report import environment

        return getattr(environment, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
