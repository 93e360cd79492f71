"""The user's choice and consent: one state machine, changed here and nowhere else.

States (the user's *stored choice*, kept in ``mode_changes``):

- ``off``: nothing is recorded, nothing is sent.
- ``local`` (the default, also when nothing was ever chosen): recorded here, never sent.
- ``on``: recorded, and each closed week the user's consent covers is sent, scrubbed.

Consent is part of ``on``: every ``on`` row is a consent to one catalog version at one instant.
The run of ``on`` rows since the user last chose something else is the consent in force: it
began at the first row's instant (weeks that began before it are never sent) and each later row
agrees to a newer catalog version (a week is scrubbed with the newest version agreed to before
the week began, :meth:`Consent.version_for`; what a newer catalog adds waits until then).

Transitions (:func:`change_mode`, :func:`on_start`, :func:`delete_kept_choice`,
:func:`adopt_choice`):

- The user's action (CLI, page, API) is the only thing that changes the stored choice.
  Choosing the stored choice again changes nothing stored, except that ``on`` while ``on``
  under a newer catalog records the consent to that version (``consent`` on the CLI, one
  button on the page) without leaving ``on``, and that ``local`` or ``off`` again ends a
  consent the environment began and opts out of what it sent, as a change to them does.
- Leaving ``on`` (for ``local`` or ``off``) is an opt-out: the outbox is emptied and every
  report whose sending began gets an erasure request, to the endpoint and with the credential
  that report used, retried until acknowledged (:func:`opt_out`).
- A choice made with Printernizer's old switch is the user's too: its migration adopts it once,
  when no choice is stored, consenting to what the old feature described (catalog version 1).
- Delete-all wipes everything but keeps the user's choice: it is recorded again at the delete's
  instant (so a consent then covers only what is recorded after it), and the user is told.
- The environment overrides for this process only and is never stored: ``DO_NOT_TRACK=1``
  forces ``off``, ``OTEL_USAGE_MODE=off|local|on`` forces that mode. A process forced ``on``
  while the stored choice is not ``on`` sends under a consent of the environment's: from the
  first such start (``environment_on_since``, the process's catalog version), and a later start
  that is not forced ``on`` while the stored choice is not ``on`` opts out like the user.

Invariants (tests/test_consent_cases.py, tests/test_consent_model.py):

- Nothing is stored while the mode in force is ``off``; counts held in memory across a change
  of mode or a delete are dropped unless every mode they may have been counted under allows
  recording (:mod:`.record.exporter`).
- Only what was recorded after the consent's instant, and under a mode in force that sends,
  is ever sent: while a process runs under any mode but ``on`` although the stored choice is
  ``on``, the consent's start moves past it (``consent_cut``).
- Every report whose sending began is erased (and the erasure acknowledged) after an opt-out
  or delete-all.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any, Literal, NamedTuple

from .catalog import Catalog
from .errors import InvalidModeError
from .log import logger
from .store import ModeChange, Store, Tx

__all__ = [
    "DEFAULT_MODE",
    "MODES",
    "Consent",
    "Mode",
    "ModeState",
    "adopt_choice",
    "catalog_additions",
    "change_mode",
    "consent_version",
    "current_consent",
    "delete_kept_choice",
    "do_not_track",
    "effective_mode",
    "environment_mode",
    "leaves_no_trace",
    "mark_not_sending",
    "on_start",
    "opt_out",
    "parse_mode",
    "read_mode",
    "sender_has_work",
    "sending_consent",
    "stored_choice",
]

Mode = Literal["off", "local", "on"]
MODES: tuple[Mode, ...] = ("off", "local", "on")
DEFAULT_MODE: Mode = "local"
_TRUTHY = {"1", "true", "yes", "on"}
_ENV_SINCE = "environment_on_since"
_ENV_VERSION = "environment_on_version"
_CUT = "consent_cut"


def parse_mode(value: str) -> Mode:
    """`value` as a mode, or InvalidModeError that names the modes there are."""
    mode = value.strip().lower() if isinstance(value, str) else ""
    if mode not in MODES:
        raise InvalidModeError(f"unknown mode {value!r}: choose one of off, local, on")
    return mode


def do_not_track(environ: Mapping[str, str]) -> bool:
    """Whether the environment sets DO_NOT_TRACK (which forces ``off``)."""
    return environ.get("DO_NOT_TRACK", "").strip().lower() in _TRUTHY


def environment_mode(environ: Mapping[str, str]) -> Mode | None:
    """The mode the environment forces, if any (DO_NOT_TRACK wins over OTEL_USAGE_MODE)."""
    if do_not_track(environ):
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


class ModeState(NamedTuple):
    """The mode in force, the user's stored choice (None: never chosen) and what the
    environment forces for this process (None: nothing)."""

    mode: Mode
    stored: Mode | None
    forced: Mode | None

    @property
    def forced_by_environment(self) -> bool:
        return self.forced is not None


def stored_choice(tx: Tx) -> ModeChange | None:
    """The user's latest choice (None: never chosen)."""
    return tx.latest_mode()


def _stored_mode(tx: Tx) -> Mode | None:
    latest = stored_choice(tx)
    return parse_mode(latest.mode) if latest is not None else None


def read_mode(store: Store, environ: Mapping[str, str]) -> ModeState:
    """The mode in force. Raises StoreUnavailableError when the stored choice cannot be read."""
    forced = environment_mode(environ)
    stored: Mode | None = None
    if store.exists:
        with store.read() as tx:
            stored = _stored_mode(tx)
    return ModeState(effective_mode(forced, stored), stored, forced)


def leaves_no_trace(store: Store, forced: Mode | None) -> bool:
    """A process forced ``off`` on a machine whose store was never made reads and makes
    nothing at start, not even the file."""
    return forced == "off" and not store.exists


def sender_has_work(store: Store, environ: Mapping[str, str]) -> bool:
    """Whether the sender has anything to do: the mode in force sends, or an erasure request
    waits to be delivered (in any mode: an opt-out is honoured while ``local`` or ``off``).
    Raises StoreUnavailableError when the store cannot be read."""
    forced = environment_mode(environ)
    if not store.exists:
        return forced == "on"
    with store.read() as tx:
        return effective_mode(forced, _stored_mode(tx)) == "on" or tx.erasure_pending()


class Consent(NamedTuple):
    """The opt-in in force: since when (weeks that began before are never sent), the catalog
    version agreed to last, and each agreement as (instant, version), oldest first."""

    since: datetime
    catalog_version: int
    agreements: tuple[tuple[datetime, int], ...] = ()

    def version_for(self, week_start: datetime) -> int:
        """The catalog version a week is scrubbed with: the newest agreed to before it began
        (what a later agreement adds is not sent for a week recorded partly before it)."""
        versions = [v for at, v in self.agreements if at <= week_start]
        return max(versions) if versions else min(
            (v for _, v in self.agreements), default=self.catalog_version)


def consent_version(catalog: Catalog, asked: int | None) -> int:
    """The catalog version a choice consents to: `asked` (an opt-in through Printernizer's old
    switch agrees to what it described, version 1), by default the catalog's own. Raises
    InvalidModeError for a version the catalog does not have."""
    if asked is None:
        return catalog.version
    if isinstance(asked, bool) or not isinstance(asked, int) \
            or not 1 <= asked <= catalog.version:
        raise InvalidModeError(f"unknown catalog version {asked!r} to consent to: choose one "
                               f"of 1 to {catalog.version}")
    return asked


def catalog_additions(store: Store, catalog: Catalog) -> dict[str, Any]:
    """The consent in force and what `catalog` adds to it: ``consented_version`` (None when
    the stored choice is not ``on``), ``catalog_version`` and ``additions`` (each with a line
    in English); choosing ``on`` again agrees to them. Raises StoreUnavailableError."""
    history: list[ModeChange] = []
    if store.exists:
        with store.read() as tx:
            history = tx.mode_history()
    opt_in = current_consent(history)
    additions = catalog.additions(opt_in.catalog_version) if opt_in is not None else ()
    return {"consented_version": opt_in.catalog_version if opt_in else None,
            "catalog_version": catalog.version,
            "additions": [a.as_json() for a in additions]}


def current_consent(history: list[ModeChange]) -> Consent | None:
    """The user's opt-in in force, or None when the stored choice is not ``on``."""
    run: list[ModeChange] = []
    for change in reversed(history):
        if change.mode != "on":
            break
        run.append(change)
    if not run:
        return None
    run.reverse()
    agreements = tuple((c.changed_at, c.catalog_version) for c in run)
    return Consent(run[0].changed_at, max(v for _, v in agreements), agreements)


def sending_consent(tx: Tx, forced: Mode | None, catalog_version: int) -> Consent | None:
    """The consent reports are built under in this process, or None when nothing may be sent:
    the user's (stored ``on``, not overridden), else the environment's (forced ``on``). Its
    start is moved past the last time a process ran without sending (``consent_cut``)."""
    history = tx.mode_history()
    stored = current_consent(history)
    cut = tx.meta(_CUT)
    if forced not in (None, "on"):
        return None
    if stored is not None:
        consent = stored
    elif forced == "on":
        since = tx.meta(_ENV_SINCE)
        if since is None:
            return None
        version = int(tx.meta(_ENV_VERSION) or catalog_version)
        consent = Consent(datetime.fromisoformat(since), version,
                          ((datetime.fromisoformat(since), version),))
    else:
        return None
    if cut is not None and datetime.fromisoformat(cut) > consent.since:
        consent = Consent(datetime.fromisoformat(cut), consent.catalog_version,
                          consent.agreements)
    return consent


Transition = Literal["unchanged", "changed", "consented_again"]


def change_mode(tx: Tx, chosen: Mode, now: datetime, catalog_version: int,
                source: str) -> Transition:
    """The user's choice: store `chosen` (``on`` while ``on`` under a newer catalog records the
    consent to it); leaving ``on`` opts out (:func:`opt_out`)."""
    latest = stored_choice(tx)
    previous = parse_mode(latest.mode) if latest is not None else None
    if previous == chosen and chosen != "on":
        # The stored choice stays; but the user has said "do not send" again: a consent the
        # environment began in a process forced on ends, and what it sent is erased, exactly
        # as when the choice changes.
        _forget_environment_consent(tx)
        if tx.reports_to_erase():
            opt_out(tx, now)
        return "unchanged"
    if previous == chosen:
        consent = current_consent(tx.mode_history())
        if consent is None or catalog_version <= consent.catalog_version:
            return "unchanged"
        tx.record_mode(chosen, now, catalog_version, source)
        return "consented_again"
    tx.record_mode(chosen, now, catalog_version, source)
    if chosen != "off":
        tx.installation_id(now)
    if chosen != "on":
        _forget_environment_consent(tx)
    if previous == "on" or (chosen != "on" and tx.reports_to_erase()):
        opt_out(tx, now)
    return "changed"


def opt_out(tx: Tx, now: datetime) -> int:
    """Leaving ``on`` (or deleting): empty the outbox and queue an erasure for every report
    whose sending began, to the endpoint and with the credential it used. The number queued."""
    tx.clear_reports()
    queued = 0
    for installation_id, endpoint, credential in tx.reports_to_erase():
        tx.queue_erasure(installation_id, credential, endpoint, now)
        queued += 1
    tx.forget_destinations()
    return queued


def on_start(tx: Tx, forced: Mode | None, now: datetime, catalog_version: int) -> Mode:
    """At start-up: the mode in force. Nothing the environment forces is stored as a choice;
    a process forced ``on`` starts (or continues) the environment's consent; a process that
    does not send while the stored choice is ``on`` moves the consent's start past itself; a
    process not forced ``on`` while the stored choice is not ``on`` opts out of what an
    earlier forced process sent."""
    latest = stored_choice(tx)
    stored = parse_mode(latest.mode) if latest is not None else None
    effective = effective_mode(forced, stored)
    if effective != "off":
        tx.installation_id(now)
    if stored == "on" and effective != "on":
        mark_not_sending(tx, now)
    elif stored != "on" and effective == "on":
        if tx.meta(_ENV_SINCE) is None:
            tx.set_meta(_ENV_SINCE, now.isoformat())
            tx.set_meta(_ENV_VERSION, str(catalog_version))
    elif stored != "on" and (tx.meta(_ENV_SINCE) is not None or tx.reports_to_erase()):
        _forget_environment_consent(tx)
        opt_out(tx, now)
    return effective


def mark_not_sending(tx: Tx, now: datetime) -> None:
    """This process records without sending although the choice is ``on``: what it records
    must never be sent, so the consent's start moves past `now`."""
    tx.set_meta(_CUT, now.isoformat())


def _forget_environment_consent(tx: Tx) -> None:
    tx.delete_meta(_ENV_SINCE)
    tx.delete_meta(_ENV_VERSION)


def adopt_choice(tx: Tx, mode: Mode, when: datetime, catalog_version: int,
                 source: str) -> bool:
    """A choice the user made before this library (Printernizer's old switch), stored as theirs
    at `when` unless a choice is stored already. True when it was adopted."""
    if stored_choice(tx) is not None:
        return False
    tx.record_mode(mode, when, catalog_version, source)
    return True


def delete_kept_choice(tx: Tx, kept: ModeChange | None, now: datetime) -> None:
    """After delete-all: the user's choice recorded again at `now` (a consent then covers only
    what is recorded after the delete)."""
    if kept is not None:
        tx.record_mode(kept.mode, now, kept.catalog_version, "kept after delete")
