"""otel-usage: privacy-first usage statistics for Printernizer, on OpenTelemetry.

Printernizer starts one :class:`UsageTelemetry` at start-up, counts with ordinary OTel meters,
and shuts it down at exit. Everything is kept locally in SQLite; only in mode ``on`` does a
scrubbed weekly aggregate leave the machine.
"""

from ._environment import Environment, detect_deployment_mode, detect_environment
from ._errors import InvalidModeError, StoreUnavailableError, TransportError, UsageError
from ._facade import UsageTelemetry, default_data_dir
from ._modes import MODES, Mode
from .clock import Clock, ManualClock, SystemClock

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
