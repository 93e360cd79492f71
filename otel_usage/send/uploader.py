"""When reports are built and sent: the phases of one run, and the background thread.

One run (:meth:`Uploader.run_once`), like Go telemetry's upload phases:

1. erasures: pending erasure requests go out in every mode (the user asked for them);
2. expire: unsent reports of weeks that closed more than ``outbox_max_age_weeks`` ago are dropped;
3. build (mode ``on`` only): every closed week since the opt-in that has no outbox row yet is
   built, scrubbed and stored, due at this installation's slot after the week closed;
4. send (mode ``on`` only): every pending report whose time has come is sent once; an answer
   that the installation was erased starts it over under a new identity, at most once a week.

A run holds no database lock while it talks to the server, and never raises into the host. It
runs at start-up (catching up on weeks the app was not running for), when the mode changes, at
``send_now``, and on a background thread that wakes when the next thing is due.
"""

from __future__ import annotations

import secrets
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from ..catalog import Catalog
from ..consent import Mode, environment_mode, sending_consent
from ..errors import StoreUnavailableError, TransportError
from ..log import ProblemLog, logger
from ..report.environment import Environment
from ..store import Store
from ..store.outbox import OutboxTx, PendingErasure
from ..weeks import Week, closed_weeks
from . import retry
from .transport import Answer

if TYPE_CHECKING:
    from ..clock import Clock
    from ..report.build import Report

__all__ = ["ReportSlot", "RunSummary", "UploadSettings", "Uploader", "report_slot"]

# The background thread checks at least this often (and never more than once a minute).
_WAKE_MAX_S = 3600.0
_WAKE_MIN_S = 60.0
# An installation the server says it erased starts over at most this often.
_START_OVER_EVERY = timedelta(weeks=1)
_STARTED_OVER = "started_over_at"


@dataclass(frozen=True)
class ReportSlot:
    """The weekday (0 = Monday) and UTC hour at which this installation sends: drawn at random
    once and kept, so that a fleet does not submit at the same moment."""

    weekday: int
    hour: int

    def due(self, week: Week) -> datetime:
        """When `week`'s report is sent: the first slot after the week has closed."""
        return week.end + timedelta(days=self.weekday, hours=self.hour)


def report_slot(tx: OutboxTx) -> ReportSlot:
    """This installation's slot, drawn at random on first use and kept."""
    return ReportSlot(*tx.report_slot(lambda: (secrets.randbelow(7), secrets.randbelow(24))))


@dataclass(frozen=True)
class UploadSettings:
    """Where and as whom reports go (the resource facts besides the environment's)."""

    endpoint: str
    service_name: str
    service_version: str
    environ: Mapping[str, str]
    # One deadline for each request's whole exchange (connect, send, read the answer).
    deadline_s: float = 10.0
    rotate_yearly: bool = False
    environment: Environment | None = None


@dataclass
class RunSummary:
    """What one run did (returned by ``send_now``)."""

    built: list[str] = field(default_factory=list)
    sent: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    retry: list[str] = field(default_factory=list)
    expired: int = 0
    erasures_acknowledged: int = 0
    erasures_pending: int = 0
    refused: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


class Uploader:
    """Builds and sends this installation's weekly reports, and its erasure requests."""

    def __init__(self, store: Store, catalog: Catalog, clock: Clock, settings: UploadSettings,
                 mode: Callable[[], Mode], problems: ProblemLog) -> None:
        self._store = store
        self._catalog = catalog
        self._clock = clock
        self.settings = settings
        self._mode = mode
        self._problems = problems
        self._run_lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        # Set while the background thread is between runs (otel_usage.testing.wait_for_uploads).
        self.idle = threading.Event()
        self.idle.set()
        self._thread: threading.Thread | None = None

    # One run.

    def run_once(self) -> RunSummary:
        """Do everything that is due now; never raises (problems are logged once)."""
        summary = RunSummary()
        with self._run_lock:
            if not self._store.exists:
                return summary
            try:
                self._erasures(summary)
                if self._mode() == "on":
                    self._plan(summary)
                    self._send(summary)
                else:
                    self._expire(summary)
            except StoreUnavailableError as exc:  # logged once, as the store's problem
                self._problems.problem(f"store:{exc.kind}", "usage statistics cannot be saved",
                                       path=str(self._store.path), error=str(exc))
            except Exception as exc:  # uploads never break the host
                self._problems.problem("upload", "usage report upload failed", error=repr(exc))
        return summary

    def _erasures(self, summary: RunSummary) -> None:
        with self._store.read(OutboxTx) as tx:
            due = tx.due_erasures(self._clock.now())
        acknowledged = False
        for erasure in due:
            answer = self._delete(erasure)
            with self._store.transaction(OutboxTx) as tx:
                done = retry.record_erasure(tx, erasure, answer, self._clock.now(),
                                            retry.is_erased(answer, self._catalog.protocol))
                if done and not tx.erasures_of(erasure.installation_id) \
                        and tx.meta("installation_id") == erasure.installation_id:
                    # The server forgot this identity: it is never used again.
                    tx.rotate_identity(self._clock.now())
            acknowledged |= done
            summary.erasures_acknowledged += int(done)
            summary.erasures_pending += int(not done)
        if acknowledged:  # the old id and credential must not be readable from the file
            self._store.compact()

    def _delete(self, erasure: PendingErasure) -> Answer:
        """The erasure request, as the contract sends it: an OTLP export of the catalog's
        erasure metric to the endpoint and with the credential the reports used, so it passes
        the public gateway as they do."""
        from ..report.build import erasure_body
        from .transport import post_report

        protocol = self._catalog.protocol
        now = self._clock.now()
        body = erasure_body(self._catalog, erasure.installation_id, now,
                            service_name=self.settings.service_name)
        try:
            return post_report(erasure.endpoint, protocol.metrics_path,
                               {protocol.credential_header: erasure.credential}, body, now,
                               self.settings.deadline_s)
        except TransportError as exc:
            return Answer(None, f"refused: {exc}")

    def _expire(self, summary: RunSummary) -> None:
        oldest_end = self._oldest_end()
        with self._store.transaction(OutboxTx) as tx:
            expired = [w for w in tx.pending_weeks() if Week.parse(w).end <= oldest_end]
            tx.expire(expired)
        summary.expired += len(expired)

    def _oldest_end(self) -> datetime:
        return self._clock.now() - timedelta(weeks=self._catalog.policy.outbox_max_age_weeks)

    def _plan(self, summary: RunSummary) -> None:
        self._expire(summary)
        now = self._clock.now()
        with self._store.transaction(OutboxTx) as tx:
            opt_in = sending_consent(tx, environment_mode(self.settings.environ),
                                     self._catalog.version)
            if opt_in is None:
                return
            slot = report_slot(tx)
            installation_id = tx.installation_id(now)
            tx.credential()
            age = tx.identity_age(now)
            if self.settings.rotate_yearly and age >= timedelta(days=365):
                installation_id = tx.rotate_identity(now)
            known = tx.known_weeks()
            oldest = self._oldest_end() - timedelta(weeks=1)
            for week in closed_weeks(opt_in.since, now, oldest=oldest):
                if week.label in known or week.end <= self._oldest_end():
                    continue
                try:
                    report = self._build(tx, week, opt_in.version_for(week.start),
                                         installation_id)
                except (ValueError, ArithmeticError) as exc:  # one week never blocks the rest
                    self._problems.problem("build", "a usage report could not be built",
                                           week=week.label, error=repr(exc))
                    continue
                if report.rendering.get("adjusted"):
                    self._problems.problem(
                        "value_range", "usage values outside the catalog's range were clamped "
                        "or left out (see the preview)", week=week.label)
                tx.put_report(week=week.label, installation_id=installation_id, now=now,
                              body=report.body if report.points else None,
                              rendering=report.rendering, due=slot.due(week))
                summary.built.append(week.label)

    def _build(self, tx: OutboxTx, week: Week, consent_version: int,
               installation_id: str) -> Report:
        from ..report.build import build_report

        return build_report(tx, self._catalog, week, consent_version,
                            self.resource(installation_id))

    def resource(self, installation_id: str) -> dict[str, str]:
        """The report's resource attributes for this installation."""
        from ..report.build import resource_attributes
        from ..report.environment import detect_environment

        environment = self.settings.environment or detect_environment(self.settings.environ)
        return resource_attributes(
            self._catalog, environment,
            service_name=self.settings.service_name,
            service_version=self.settings.service_version, installation_id=installation_id)

    def _send(self, summary: RunSummary) -> None:
        now = self._clock.now()
        with self._store.read(OutboxTx) as tx:
            due = tx.due_reports(now)
            secret = (tx.meta("credential") or "") if due else ""
        for item in due:
            refused = self._refused(summary)
            if refused is None:
                with self._store.transaction(OutboxTx) as tx:
                    # Counted as possibly received from here on: an opt-out from now erases it.
                    if not self._still_sendable(tx, item.week):
                        continue
                    tx.begin_sending(item.installation_id, self.settings.endpoint, secret,
                                     self._clock.now())
            answer = refused or self._post(item.body, secret)
            attempt = retry.schedule_after(answer, item.attempts + 1, self._clock.now())
            with self._store.transaction(OutboxTx) as tx:
                retry.record_report(tx, item.week, attempt, self._clock.now(),
                                    self.settings.endpoint, len(item.body))
                if retry.is_erased(answer, self._catalog.protocol):
                    self._start_over(tx)
            {"sent": summary.sent, "failed": summary.failed}.get(
                attempt.state, summary.retry).append(item.week)
            self._log_attempt(item.week, attempt)

    def _start_over(self, tx: OutboxTx) -> None:
        """The server says this installation was erased: start over as a new one, at most
        once a week (a server that answers "erased" to everything cannot mint an identity per
        report, nor grow ``destinations`` and the erasures an opt-out owes). What went out
        under the erased identity is never sent again under another, which would link the
        two: its week stays failed, and so does every pending report whose sending began."""
        now = self._clock.now()
        tx.fail_begun_reports()
        last = tx.meta(_STARTED_OVER)
        if last is not None and now - datetime.fromisoformat(last) < _START_OVER_EVERY:
            return
        tx.rotate_identity(now)
        tx.set_meta(_STARTED_OVER, now.isoformat())

    def _still_sendable(self, tx: OutboxTx, week: str) -> bool:
        """The report is still pending and this process may still send it (the mode may have
        changed since the run began)."""
        return week in tx.pending_weeks() and sending_consent(
            tx, environment_mode(self.settings.environ), self._catalog.version) is not None

    def _refused(self, summary: RunSummary) -> Answer | None:
        from .transport import check_endpoint

        try:
            check_endpoint(self.settings.endpoint)
        except TransportError as exc:
            summary.refused = str(exc)
            self._problems.problem("endpoint", "usage reports not sent", reason=str(exc))
            return Answer(None, f"refused: {exc}")
        return None

    def _post(self, body: bytes, secret: str) -> Answer:
        from .transport import post_report

        protocol = self._catalog.protocol
        return post_report(self.settings.endpoint, protocol.metrics_path,
                           {protocol.credential_header: secret}, body, self._clock.now(),
                           self.settings.deadline_s)

    def _log_attempt(self, week: str, attempt: retry.Attempt) -> None:
        # The credential and the body are never logged; the status and state are.
        logger.info("usage report attempt", week=week, status=attempt.answer.status,
                    state=attempt.state)

    # In the background.

    def wake(self) -> None:
        """Run soon on the background thread (starting it if needed)."""
        if self._thread is None or not self._thread.is_alive():
            self._stop.clear()
            self.idle.clear()
            self._thread = threading.Thread(target=self._loop, name="otel-usage-uploads",
                                            daemon=True)
            self._thread.start()
        else:
            self.idle.clear()
            self._wake.set()

    def stop(self, timeout_s: float = 2.0) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout_s)

    def _loop(self) -> None:
        while not self._stop.is_set():
            self._wake.clear()
            self.run_once()
            self.idle.set()
            wait = self._seconds_to_next()
            if wait is None:
                return
            self._wake.wait(wait)

    def _seconds_to_next(self) -> float | None:
        """How long to sleep on the thread: until the next due time, or None to end it."""
        try:
            if not self._store.exists:
                return None
            with self._store.read(OutboxTx) as tx:
                due = tx.next_due()
        except Exception:  # already logged by run_once
            return _WAKE_MAX_S
        if self._mode() != "on":
            if due is None:
                return None
        elif due is None:
            return _WAKE_MAX_S
        else:
            wait = (due - self._clock.now()).total_seconds()
            return min(max(wait, _WAKE_MIN_S), _WAKE_MAX_S)
        return _WAKE_MAX_S
