"""The user's choice: the three modes, the environment's word on them, and every change of it.

- ``off``: nothing is recorded, nothing is sent.
- ``local`` (the default): recorded on this machine, never sent.
- ``on``: recorded, and the weekly scrubbed report is sent.

``DO_NOT_TRACK=1`` (the console-do-not-track convention) forces ``off``;
``OTEL_USAGE_MODE=off|local|on`` sets the mode for this process.

The mode in force is read here and only here (:func:`read_mode`): the environment's if it forces
one, else the user's stored choice, else the default. Every change of the stored choice goes
through :func:`change_mode`; leaving ``on`` empties the outbox and queues the server-side erasure
(:func:`opt_out`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from .errors import InvalidModeError
from .log import logger
from .store import ModeChange, Store, Tx

__all__ = [
    "DEFAULT_MODE",
    "MODES",
    "Consent",
    "Mode",
    "ModeState",
    "change_mode",
    "current_consent",
    "effective_mode",
    "environment_mode",
    "on_start",
    "opt_out",
    "parse_mode",
    "read_mode",
]

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


@dataclass(frozen=True)
class ModeState:
    """The mode in force, the user's stored choice (None: never chosen) and what the
    environment forces for this process (None: nothing)."""

    mode: Mode
    stored: Mode | None
    forced: Mode | None

    @property
    def forced_by_environment(self) -> bool:
        return self.forced is not None


def read_mode(store: Store, environ: Mapping[str, str]) -> ModeState:
    """The mode in force. Raises StoreUnavailableError when the stored choice cannot be read."""
    forced = environment_mode(environ)
    stored: Mode | None = None
    if store.exists:
        with store.read() as tx:
            latest = tx.latest_mode()
        stored = parse_mode(latest.mode) if latest is not None else None
    return ModeState(effective_mode(forced, stored), stored, forced)


@dataclass(frozen=True)
class Consent:
    """The current opt-in: since when (the first ``on`` of the current run of ``on``s) and the
    catalog version of the latest ``on`` (consenting again covers newer metrics)."""

    since: datetime
    catalog_version: int


def current_consent(history: list[ModeChange]) -> Consent | None:
    """The opt-in in force, or None when the latest mode is not ``on``."""
    run: list[ModeChange] = []
    for change in reversed(history):
        if change.mode != "on":
            break
        run.append(change)
    if not run:
        return None
    return Consent(run[-1].changed_at, run[0].catalog_version)


def change_mode(tx: Tx, chosen: Mode, now: datetime, catalog_version: int, source: str,
                endpoint: str) -> None:
    """Store `chosen`; leaving ``on`` empties the outbox and queues the server's erasure."""
    latest = tx.latest_mode()
    if latest is None or latest.mode != chosen:
        tx.record_mode(chosen, now, catalog_version, source)
    if chosen != "off":
        tx.installation_id(now)
    if latest is not None and latest.mode == "on" and chosen != "on":
        opt_out(tx, endpoint, now)


def opt_out(tx: Tx, endpoint: str, now: datetime) -> bool:
    """Leaving mode ``on``: empty the outbox and, if a report may have reached the server, queue
    an erasure that keeps the installation id and credential until it is acknowledged."""
    tx.clear_reports()
    installation_id, secret = tx.meta("installation_id"), tx.meta("credential")
    if not tx.reports_attempted() or installation_id is None or secret is None:
        return False
    tx.queue_erasure(installation_id, secret, endpoint, now)
    return True


def on_start(tx: Tx, forced: Mode | None, now: datetime, catalog_version: int,
             endpoint: str) -> Mode:
    """At start-up: record a mode the environment forces as a change, and return the mode in
    force (leaving ``on`` this way opts out like the user's own change)."""
    latest = tx.latest_mode()
    if forced is not None and (latest is None or latest.mode != forced):
        tx.record_mode(forced, now, catalog_version, "environment")
    effective = forced or (parse_mode(latest.mode) if latest else DEFAULT_MODE)
    if effective != "off":
        tx.installation_id(now)
    if latest is not None and latest.mode == "on" and forced not in (None, "on"):
        opt_out(tx, endpoint, now)
    return effective
