"""The three modes, and how the environment overrides the stored choice.

- ``off``: nothing is recorded, nothing is sent.
- ``local`` (the default): recorded on this machine, never sent.
- ``on``: recorded, and the weekly scrubbed report is sent.

``DO_NOT_TRACK=1`` (the console-do-not-track convention) forces ``off``;
``OTEL_USAGE_MODE=off|local|on`` sets the mode for this process.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal

from ._errors import InvalidModeError
from ._log import logger

__all__ = ["DEFAULT_MODE", "MODES", "Mode", "effective_mode", "environment_mode", "parse_mode"]

Mode = Literal["off", "local", "on"]
MODES: tuple[Mode, ...] = ("off", "local", "on")
DEFAULT_MODE: Mode = "local"
_TRUTHY = {"1", "true", "yes", "on"}


def parse_mode(value: str) -> Mode:
    """`value` as a mode, or InvalidModeError that names the modes there are."""
    mode = value.strip().lower()
    if mode not in MODES:
        raise InvalidModeError(f"unknown mode {value!r}: choose one of off, local, on")
    return mode


def environment_mode(environ: Mapping[str, str]) -> Mode | None:
    """The mode the environment forces, if any (DO_NOT_TRACK wins over OTEL_USAGE_MODE)."""
    if environ.get("DO_NOT_TRACK", "").strip().lower() in _TRUTHY:
        return "off"
    raw = environ.get("OTEL_USAGE_MODE")
    if not raw:
        return None
    try:
        return parse_mode(raw)
    except InvalidModeError as exc:
        logger.warning("ignoring OTEL_USAGE_MODE", reason=str(exc))
        return None


def effective_mode(forced: Mode | None, stored: str | None) -> Mode:
    """The environment's mode if it forces one, else the stored choice, else the default."""
    if forced is not None:
        return forced
    return parse_mode(stored) if stored else DEFAULT_MODE
