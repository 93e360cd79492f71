"""The one object Printernizer holds: started once at start-up, shut down once at exit.

A thin facade that wires the rooms of the data path: the recorder (:mod:`.record`), the user's
choice (:mod:`.consent`), the local store (:mod:`.store`), the sender (:mod:`.send`, made on
first use) and what the user sees (:mod:`.user`, with the public statistics it compares with,
fetched through the sender's transport). Printernizer's code counts with the ordinary
OTel API::

    usage = UsageTelemetry(data_dir, service_version="2.7.0", set_global=True)
    await usage.astart()
    metrics.get_meter("printernizer").create_counter("printernizer.jobs").add(
        1, {"job.status": "completed", "printer.type": "bambu_lab"})
    await usage.ashutdown()

Recording never raises into the host: a broken disk or database is logged once and the meters
keep working (their numbers are then simply not saved). The other calls raise only this
library's errors (:mod:`.errors`).
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar

from opentelemetry.metrics import Meter
from opentelemetry.sdk.metrics import MeterProvider

from . import consent
from .catalog import Catalog, load_catalog
from .clock import Clock, SystemClock, default_clock
from .consent import Mode, ModeState
from .errors import StoreUnavailableError
from .log import ProblemLog, logger
from .record import provider as recording
from .record.exporter import SQLiteMetricExporter
from .record.rebind import unbind_global
from .store import Store, Tx

if TYPE_CHECKING:
    from .report.environment import Environment
    from .send.uploader import Uploader

__all__ = ["DEFAULT_ENDPOINT", "UsageTelemetry", "default_data_dir"]

DEFAULT_ENDPOINT = "https://stats.printernizer.com"
P = ParamSpec("P")
R = TypeVar("R")


def default_data_dir(environ: Mapping[str, str] | None = None) -> Path:
    """$OTEL_USAGE_DATA_DIR, else ~/.local/share/otel-usage (XDG)."""
    env = os.environ if environ is None else environ
    if env.get("OTEL_USAGE_DATA_DIR"):
        return Path(env["OTEL_USAGE_DATA_DIR"])
    base = env.get("XDG_DATA_HOME") or os.path.join(os.path.expanduser("~"), ".local", "share")
    return Path(base) / "otel-usage"


async def _on_own_thread(fn: Callable[[], R]) -> R:
    """`fn` on a thread of its own (in the caller's context), awaited without blocking the
    event loop. The thread has ended when this returns: the threads the process starts later
    reuse its stack and its allocator arena, where a pool's worker (``asyncio.to_thread``)
    would keep both, with the memory allocated in them, for the host's life. If the awaiting
    start is cancelled, `fn` still runs to its end and what it raises is logged."""
    import asyncio
    import contextvars

    loop = asyncio.get_running_loop()
    done: asyncio.Future[R] = loop.create_future()
    context = contextvars.copy_context()

    def hand_over(result: R | None, error: BaseException | None) -> None:
        if done.done():  # the awaiting start was cancelled
            if error is not None:
                logger.warning("usage statistics start failed", error=repr(error))
        elif error is not None:
            done.set_exception(error)
        else:
            done.set_result(result)  # type: ignore[arg-type]

    def run() -> None:
        result: R | None = None
        error: BaseException | None = None
        try:
            result = context.run(fn)
        except BaseException as exc:  # raised in the awaiting start
            error = exc
        with contextlib.suppress(RuntimeError):  # the loop has closed: nobody waits
            loop.call_soon_threadsafe(hand_over, result, error)

    thread = threading.Thread(target=run, name="otel-usage-start", daemon=True)
    thread.start()
    result = await done
    thread.join()  # at most a moment: it ends right after handing its result over
    return result


async def _in_thread(fn: Callable[P, R], *args: P.args, **kwargs: P.kwargs) -> R:
    """`fn` off the host's event loop: the one way async hosts reach the store. (asyncio is
    imported here: a sync host never needs it.)"""
    import asyncio

    return await asyncio.to_thread(fn, *args, **kwargs)


class UsageTelemetry:
    """Usage statistics for one installation, kept in ``data_dir``."""

    def __init__(
        self,
        data_dir: str | os.PathLike[str] | None = None,
        *,
        service_name: str = "printernizer",
        service_version: str | None = None,
        set_global: bool = False,
        export_interval_s: float = 60.0,
        clock: Clock | None = None,
        environ: Mapping[str, str] | None = None,
        catalog: Catalog | None = None,
        endpoint: str | None = None,
        background_uploads: bool = True,
        rotate_identity_yearly: bool = False,
        environment: Environment | None = None,
    ) -> None:
        self.environ: Mapping[str, str] = os.environ if environ is None else environ
        self.data_dir = Path(data_dir) if data_dir is not None else default_data_dir(self.environ)
        self.service_name = service_name
        # The host's version is kept at start, so that tools without it (the CLI's preview
        # and send-now) build reports that name the right version.
        self._version_given = service_version is not None
        self.service_version = service_version or "0.0.0"
        self.clock: Clock = clock or self._default_clock()
        self.catalog = catalog or load_catalog()
        self.problems = ProblemLog()
        self.store = Store(self.data_dir, self.clock.now, self._store_set_aside)
        # Where weekly reports go ($OTEL_USAGE_ENDPOINT), and who sends them.
        self.endpoint = endpoint or self.environ.get("OTEL_USAGE_ENDPOINT") or DEFAULT_ENDPOINT
        # The facts reports carry; detected (once per report) unless the host knows better.
        self.environment = environment
        self._set_global = set_global
        self._interval_s = export_interval_s
        self._background_uploads = background_uploads
        self._rotate_yearly = rotate_identity_yearly
        self._provider: MeterProvider | None = None
        self._uploader: Uploader | None = None
        self._exporter: SQLiteMetricExporter | None = None
        self._lock = threading.Lock()
        self._public_lock = threading.Lock()  # one fetch of the public statistics at a time
        self._stopped = False

    def _default_clock(self) -> Clock:
        """The one clock hook (OTEL_USAGE_NOW moves it); a malformed value is logged, not
        raised into the host."""
        try:
            return default_clock(self.environ)
        except ValueError as exc:
            logger.warning("ignoring OTEL_USAGE_NOW", reason=str(exc))
            return SystemClock()

    # Start-up and shutdown.

    def start(self) -> MeterProvider:
        """Build the MeterProvider (once per lifespan) and return it; never raises. A start
        after a shutdown begins a new lifespan with a new provider (a host that runs its app's
        lifespan twice in one process: every ``with TestClient(app)`` test)."""
        with self._lock:
            if self._provider is None or self._stopped:
                self._stopped, self._uploader = False, None
                exporter = SQLiteMetricExporter(
                    self.store, self.catalog, self.clock,
                    lambda: consent.environment_mode(self.environ), self.problems)
                self._exporter = exporter
                self._provider = recording.build_provider(
                    exporter, self.catalog, interval_s=self._interval_s,
                    resource={"service.name": self.service_name,
                              "service.version": self.service_version},
                    set_global=self._set_global)
                provider = self._provider
                for step in (self._on_start, lambda: recording.count_start(provider, self.catalog),
                             self._wake_uploads):  # (the last catches up on closed weeks)
                    try:
                        step()
                    except Exception as exc:  # never raise into the host: the meters work on
                        self.problems.problem("start", "usage statistics could not finish "
                                              "their start", error=repr(exc))
            return self._provider

    def _current(self) -> MeterProvider:
        """This lifespan's provider (started on first use); after a shutdown, the stopped one
        until the host starts again (a late count goes nowhere rather than starting anew)."""
        provider = self._provider
        return provider if provider is not None else self.start()

    async def astart(self) -> MeterProvider:
        """`start` for an async host: off the event loop, on a thread of its own that has
        ended when this returns (:func:`_on_own_thread`)."""
        return await _on_own_thread(self.start)

    def shutdown(self) -> None:
        """Flush what was counted since the last export, and close the database."""
        with self._lock:
            if self._provider is None or self._stopped:
                return
            self._stopped = True
            if self._uploader is not None:
                self._uploader.stop()
            if self._set_global:  # the app's meters count nowhere until the next start
                unbind_global(self._provider)
            try:
                # The reader's own final collection runs only on its thread: flush explicitly.
                self._provider.force_flush()
                self._provider.shutdown()
            except Exception as exc:  # never raise into the host
                logger.warning("usage statistics shutdown failed", error=repr(exc))
            self.store.close()

    async def ashutdown(self) -> None:
        await _in_thread(self.shutdown)

    @property
    def meter_provider(self) -> MeterProvider:
        return self._current()

    def meter(self, name: str = "printernizer", version: str | None = None) -> Meter:
        return self._current().get_meter(name, version)

    def flush(self) -> bool:
        """Export now what was counted since the last export (tests, shutdown hooks)."""
        try:
            return self._current().force_flush()
        except Exception as exc:  # never raise into the host
            logger.warning("usage statistics flush failed", error=repr(exc))
            return False

    # Observable facts Printernizer knows at any time.

    def observe_printers(self, counts: Callable[[], Mapping[str, int]]) -> None:
        """Report the number of configured printers per type (the catalog's printers role)."""
        recording.observe(self._current(), self.catalog.role("printers"),
                          lambda: counts().items(), self.problems)

    def observe_features(self, enabled: Callable[[], Mapping[str, bool]]) -> None:
        """Report which features are switched on (the catalog's features role)."""
        recording.observe(self._current(), self.catalog.role("features"),
                          lambda: ((f, int(bool(on))) for f, on in enabled().items()),
                          self.problems)

    # Modes.

    def mode_state(self) -> ModeState:
        """The mode in force, the stored choice and the environment's override. Raises
        StoreUnavailableError when the stored choice cannot be read."""
        return consent.read_mode(self.store, self.environ)

    @property
    def mode(self) -> Mode:
        """The mode in force; the default (logged once) when the store cannot be read."""
        try:
            return self.mode_state().mode
        except StoreUnavailableError as exc:
            self._store_problem(exc)
            return consent.DEFAULT_MODE

    async def amode(self) -> Mode:
        """`mode` for an async host: the database read runs off the event loop."""
        return await _in_thread(lambda: self.mode)

    def set_mode(self, mode: str, *, source: str = "user",
                 catalog_version: int | None = None) -> Mode:
        """Store the user's choice with the instant, consenting (for ``on``) to
        `catalog_version`, by default this catalog's. ``on`` while ``on`` agrees to a newer
        catalog version, if there is one (see :meth:`catalog_additions`). Raises
        InvalidModeError for bad input, StoreUnavailableError when it cannot be stored."""
        chosen = consent.parse_mode(mode)
        version = consent.consent_version(self.catalog, catalog_version)
        # What was counted before the change is recorded under the mode it was counted in.
        self._flush_before_change()
        with self.store.transaction() as tx:
            consent.change_mode(tx, chosen, self.clock.now(), version, source)
            self._exporter_seen(tx)
        self._wake_uploads()
        return chosen

    def catalog_additions(self) -> dict[str, Any]:
        """The consent in force and what this catalog adds to it (see
        :func:`.consent.catalog_additions`); choosing ``on`` again agrees to them."""
        return consent.catalog_additions(self.store, self.catalog)

    async def aset_mode(self, mode: str, *, source: str = "user",
                        catalog_version: int | None = None) -> Mode:
        return await _in_thread(self.set_mode, mode, source=source,
                                catalog_version=catalog_version)

    # What the user sees and does (async hosts: these run off the event loop).

    async def statistics(self) -> dict[str, Any]:
        """The local statistics viewer."""
        from .user.viewer import statistics

        return await _in_thread(lambda: statistics(self.store, self.clock, self.catalog,
                                                   self.mode_state().mode))

    async def export_json(self) -> dict[str, Any]:
        """Everything stored locally, as JSON-ready data (the credential excepted)."""
        from .user.data import export_all

        return await _in_thread(lambda: export_all(self.store, self.mode_state().mode))

    async def delete_all(self) -> None:
        """Delete every statistic kept here. If a report reached the server, an erasure request
        for it is kept (and sent) until the server acknowledges: deleting here erases there."""
        await _in_thread(self.delete_all_now)

    def delete_all_now(self) -> str | None:
        """`delete_all` for a sync caller; the mode choice kept (None: none was made)."""
        from .user.data import delete_all

        self._flush_before_change()
        kept = delete_all(self.store, self.clock.now(), self._exporter_seen)
        self._wake_uploads()
        return kept

    # The weekly report: review and send.

    @property
    def uploads(self) -> Uploader:
        """The report builder and sender (made on first use: recording never needs it)."""
        if self._uploader is None:
            from .send.uploader import Uploader, UploadSettings

            settings = UploadSettings(self.endpoint, self.service_name, self._report_version(),
                                      self.environ, rotate_yearly=self._rotate_yearly,
                                      environment=self.environment)
            self._uploader = Uploader(self.store, self.catalog, self.clock, settings,
                                      lambda: self.mode, self.problems)
        return self._uploader

    def send_now(self) -> dict[str, Any]:
        """Build and send what is due now (erasures in any mode, reports only in mode on)."""
        return self.uploads.run_once().as_dict()

    def preview(self) -> dict[str, Any]:
        """The next report, readable and as OTLP JSON, and its difference from the last sent."""
        from .user.review import preview

        return preview(self.store, self.catalog, self.clock, self.uploads.resource)

    def history(self) -> list[dict[str, Any]]:
        """Every report and erasure attempt: when, where, how many bytes, the server's answer."""
        from .user.review import history

        return history(self.store)

    # The public statistics, and the user's place in them (nothing about the user is sent).

    def fetch_public_statistics(self, *, asked: bool = False) -> dict[str, Any]:
        """Fetch the public statistics when the rule allows it and they are due (see
        :mod:`.user.public`): by itself (`asked` False) only in mode on; when the user asks in
        mode local too; never in off or under DO_NOT_TRACK. Answers ``fetched``, ``refused``
        (the rule said no), ``failed`` (no answer, or one that cannot be read: nothing new is
        kept, and it is logged once), a ``detail`` for people, ``askable`` (asking would be
        allowed), ``due`` (False: after an attempt none is due), the newest ``week`` fetched
        and the ``url`` that is (or would be) contacted. An endpoint reports could not go to
        (not HTTPS) fails the same way."""
        from .user import public

        return public.fetch_for(self.store, self.catalog, self.endpoint, self.mode_state(),
                                do_not_track=consent.do_not_track(self.environ),
                                now=self.clock.now(), problems=self.problems,
                                lock=self._public_lock, transport=self._public_getter,
                                asked=asked)

    def public_statistics_status(self) -> dict[str, Any]:
        """What :meth:`fetch_public_statistics` would do by itself now, without contacting
        anything: the same keys, nothing ``fetched``, and ``due`` True when the automatic rule
        would fetch (mode on, and the newest published week neither kept nor looked for
        within a day). The page's GET answers this: any web page can make a browser send a
        GET, so only a POST, which a browser marks with where it comes from, may make the
        installation contact the public server."""
        from .user import public

        return public.status_for(self.store, self.catalog, self.endpoint, self.mode_state(),
                                 do_not_track=consent.do_not_track(self.environ),
                                 now=self.clock.now())

    def compare(self) -> dict[str, Any]:
        """This installation's numbers beside the public statistics kept (no request is made):
        see :mod:`.user.compare`."""
        from .user.compare import compare_for

        return compare_for(self.store, self.catalog, self.endpoint, self._resource_now)

    def _public_getter(self) -> Callable[[str, int], bytes]:
        """Gets one public document; TransportError first if reports could not go to the
        endpoint (HTTPS, or HTTP to this machine): the same rules."""
        from .send.transport import check_endpoint, get_document
        from .user.public import DEADLINE_S

        check_endpoint(self.endpoint)
        return lambda url, most: get_document(url, max_bytes=most, deadline_s=DEADLINE_S)

    def _resource_now(self) -> dict[str, str]:
        """The resource attributes a report would carry now (without the installation id)."""
        from .report.build import resource_attributes
        from .report.environment import detect_environment

        return resource_attributes(self.catalog, self.environment or detect_environment(
            self.environ), service_name=self.service_name,
            service_version=self._report_version(), installation_id="")

    # Internals.

    def _report_version(self) -> str:
        """The host's version: given, else the one kept at the host's last start."""
        if self._version_given or not self.store.exists:
            return self.service_version
        try:
            with self.store.read() as tx:
                return tx.meta("service_version") or self.service_version
        except StoreUnavailableError as exc:  # logged once, where the store's problems arise
            logger.debug("could not read the stored service version", error=str(exc))
            return self.service_version

    def _on_start(self) -> None:
        """Settle the mode in force (:func:`.consent.on_start`), keep the host's version."""
        forced = consent.environment_mode(self.environ)
        if consent.leaves_no_trace(self.store, forced):
            return
        try:
            with self.store.transaction() as tx:
                effective = consent.on_start(tx, forced, self.clock.now(), self.catalog.version)
                if effective != "off" and self._version_given:
                    tx.set_meta("service_version", self.service_version)
                self._exporter_seen(tx)
        except StoreUnavailableError as exc:  # the host starts regardless
            self._store_problem(exc)

    def _store_set_aside(self, moved_to: Path, reason: str) -> None:
        self.problems.problem("store:set_aside", "the usage database was damaged: it was moved "
                              "aside and a fresh one started", moved_to=str(moved_to),
                              reason=reason)

    def _flush_before_change(self) -> None:
        """Export what was counted so far under the mode in force, before it changes."""
        with self._lock:
            provider = None if self._stopped else self._provider
        if provider is not None:
            try:
                provider.force_flush()
            except Exception as exc:  # never raise into the host
                logger.warning("usage statistics flush failed", error=repr(exc))

    def _exporter_seen(self, tx: Tx) -> None:
        if self._exporter is not None:
            self._exporter.seen(tx)

    def _store_problem(self, exc: StoreUnavailableError) -> None:
        self.problems.problem(f"store:{exc.kind}", "usage statistics cannot be saved",
                              path=str(self.store.path), error=str(exc.__cause__ or exc))

    def _wake_uploads(self) -> None:
        """Start the sender when it has work (:func:`.consent.sender_has_work`). (In mode
        local with nothing pending, the sender is not even imported.)"""
        if not self._background_uploads or self._provider is None or self._stopped:
            return
        try:
            has_work = consent.sender_has_work(self.store, self.environ)
        except StoreUnavailableError as exc:
            self._store_problem(exc)
            return
        if has_work:
            self.uploads.wake()
