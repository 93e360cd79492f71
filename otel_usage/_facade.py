"""The one object Printernizer holds: started once at start-up, shut down once at exit.

It builds an OTel ``MeterProvider`` whose only reader is the SQLite exporter, so Printernizer's
code counts with the ordinary OTel API::

    usage = UsageTelemetry(data_dir, service_version="2.7.0", set_global=True)
    await usage.astart()
    metrics.get_meter("printernizer").create_counter("printernizer.jobs").add(
        1, {"job.status": "completed", "printer.type": "bambu_lab"})
    await usage.ashutdown()

Nothing here raises into the host: a broken disk or database is logged once and the meters keep
working (their numbers are then simply not saved).
"""

from __future__ import annotations

import math
import os
import threading
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from opentelemetry import metrics
from opentelemetry.metrics import CallbackOptions, Meter, Observation
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics._internal.exemplar import AlwaysOffExemplarFilter
from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
from opentelemetry.sdk.metrics.view import View
from opentelemetry.sdk.resources import Resource

from ._log import ProblemLog, classify_sqlite_error, logger
from ._modes import DEFAULT_MODE, Mode, environment_mode, parse_mode
from ._store import Store
from .catalog import Catalog, load_catalog
from .clock import Clock, SystemClock, default_clock

if TYPE_CHECKING:
    from ._environment import Environment
    from ._schedule import Uploader

__all__ = ["UsageTelemetry", "default_data_dir"]

LIBRARY_METER = "otel_usage"
DEFAULT_ENDPOINT = "https://stats.printernizer.com"


def default_data_dir(environ: Mapping[str, str] | None = None) -> Path:
    """$OTEL_USAGE_DATA_DIR, else ~/.local/share/otel-usage (XDG)."""
    env = os.environ if environ is None else environ
    if env.get("OTEL_USAGE_DATA_DIR"):
        return Path(env["OTEL_USAGE_DATA_DIR"])
    base = env.get("XDG_DATA_HOME") or os.path.join(os.path.expanduser("~"), ".local", "share")
    return Path(base) / "otel-usage"


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
        self.store = Store(self.data_dir)
        self.problems = ProblemLog()
        self._set_global = set_global
        finite = math.isfinite(export_interval_s)
        self._interval_ms = export_interval_s * 1000 if finite else math.inf
        self._provider: MeterProvider | None = None
        self._lock = threading.Lock()
        self._stopped = False
        # Issue 3: where weekly reports go ($OTEL_USAGE_ENDPOINT), and who sends them.
        self.endpoint = endpoint or self.environ.get("OTEL_USAGE_ENDPOINT") or DEFAULT_ENDPOINT
        self._background_uploads = background_uploads
        self._rotate_yearly = rotate_identity_yearly
        self._uploader: Uploader | None = None
        # The facts reports carry; detected (once per report) unless the host knows better.
        self.environment = environment

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
        """Build the MeterProvider (once) and return it; never raises."""
        with self._lock:
            if self._provider is None:
                self._provider = self._build_provider()
                self._on_start()
            return self._provider

    async def astart(self) -> MeterProvider:
        """`start` for an async host: the first disk access runs off the event loop."""
        import asyncio

        return await asyncio.to_thread(self.start)

    def shutdown(self) -> None:
        """Flush what was counted since the last export, and close the database."""
        with self._lock:
            if self._provider is None or self._stopped:
                return
            self._stopped = True
            if self._uploader is not None:
                self._uploader.stop()
            try:
                # The reader's own final collection runs only on its thread: flush explicitly.
                self._provider.force_flush()
                self._provider.shutdown()
            except Exception as exc:  # never raise into the host
                logger.warning("usage statistics shutdown failed", error=repr(exc))
            self.store.close()

    async def ashutdown(self) -> None:
        import asyncio

        await asyncio.to_thread(self.shutdown)

    @property
    def meter_provider(self) -> MeterProvider:
        return self.start()

    def meter(self, name: str = "printernizer", version: str | None = None) -> Meter:
        return self.start().get_meter(name, version)

    def flush(self) -> bool:
        """Export now what was counted since the last export (tests, shutdown hooks)."""
        try:
            return self.start().force_flush()
        except Exception as exc:  # never raise into the host
            logger.warning("usage statistics flush failed", error=repr(exc))
            return False

    # Observable facts Printernizer knows at any time.

    def observe_printers(self, counts: Callable[[], Mapping[str, int]]) -> None:
        """Report the number of configured printers per type (``printernizer.printers``)."""
        self._observe("printernizer.printers", "printer.type",
                      lambda: ((t, n) for t, n in counts().items()))

    def observe_features(self, enabled: Callable[[], Mapping[str, bool]]) -> None:
        """Report which features are switched on (``printernizer.features.enabled``)."""
        self._observe("printernizer.features.enabled", "feature.name",
                      lambda: ((f, int(bool(on))) for f, on in enabled().items()))

    def _observe(self, name: str, key: str,
                 values: Callable[[], Iterable[tuple[str, int]]]) -> None:
        def callback(options: CallbackOptions) -> Iterable[Observation]:
            try:
                return [Observation(v, {key: k}) for k, v in values()]
            except Exception as exc:  # a failing host callback is logged once
                self.problems.problem(f"callback:{name}", "usage callback failed",
                                      instrument=name, error=repr(exc))
                return []

        self.meter(LIBRARY_METER).create_observable_gauge(
            name, [callback], unit=self.catalog.metrics[name].unit)

    # Modes.

    @property
    def mode(self) -> Mode:
        """The effective mode: the environment's if it forces one, else the stored choice."""
        forced = environment_mode(self.environ)
        if forced is not None:
            return forced
        if not self.store.exists:
            return DEFAULT_MODE
        try:
            with self.store.read() as conn:
                latest = Store.latest_mode(conn)
        except Exception as exc:  # logged once with the store's other problems
            self.problems.problem(f"store:{classify_sqlite_error(exc)}",
                                  "usage statistics cannot be saved",
                                  path=str(self.store.path), error=str(exc))
            return DEFAULT_MODE
        return latest.mode if latest is not None else DEFAULT_MODE

    async def amode(self) -> Mode:
        """`mode` for an async host: the database read runs off the event loop."""
        import asyncio

        return await asyncio.to_thread(lambda: self.mode)

    def set_mode(self, mode: str, *, source: str = "user") -> Mode:
        """Store the user's choice with today's date. Raises InvalidModeError for bad input."""
        chosen = parse_mode(mode)
        with self.store.transaction() as conn:
            latest = Store.latest_mode(conn)
            if latest is None or latest.mode != chosen:
                Store.record_mode(conn, chosen, self.clock.now(), self.catalog.version, source)
            if chosen != "off":
                Store.installation_id(conn, self.clock.now())
            if latest is not None and latest.mode == "on" and chosen != "on":
                self._opt_out(conn)
        self._wake_uploads()
        return chosen

    async def aset_mode(self, mode: str, *, source: str = "user") -> Mode:
        import asyncio

        return await asyncio.to_thread(self.set_mode, mode, source=source)

    # Local reads for the async host (aiosqlite).

    # (aiosqlite is imported on the first read: recording never needs it.)

    async def statistics(self) -> dict[str, Any]:
        from . import _reads

        return await _reads.statistics(self.store.path, self.clock, self.catalog,
                                       environment_mode(self.environ))

    async def export_json(self) -> dict[str, Any]:
        from . import _reads

        return await _reads.export_all(self.store.path, environment_mode(self.environ))

    async def delete_all(self) -> None:
        """Delete every statistic kept here. If a report reached the server, an erasure request
        for it is kept (and sent) until the server acknowledges: deleting here erases there."""
        import asyncio

        from . import _reads

        if self.store.exists:
            await asyncio.to_thread(self._queue_erasure_before_delete)
        await _reads.delete_all(self.store.path, keep=("erasures",))
        self._wake_uploads()

    def _queue_erasure_before_delete(self) -> None:
        from ._outbox import opt_out

        with self.store.transaction() as conn:
            opt_out(conn, self.endpoint, self.clock.now())

    # The weekly report (issue 3): review, send, rotate.

    @property
    def uploads(self) -> Uploader:
        """The report builder and sender (made on first use: recording never needs it)."""
        if self._uploader is None:
            from ._schedule import Uploader, UploadSettings

            settings = UploadSettings(self.endpoint, self.service_name, self._report_version(),
                                      self.environ, rotate_yearly=self._rotate_yearly,
                                      environment=self.environment)
            self._uploader = Uploader(self.store, self.catalog, self.clock, settings,
                                      lambda: self.mode, self.problems)
        return self._uploader

    def _report_version(self) -> str:
        if self._version_given or not self.store.exists:
            return self.service_version
        try:
            with self.store.read() as conn:
                row = conn.execute(
                    "SELECT value FROM meta WHERE key = 'service_version'").fetchone()
        except Exception as exc:  # the store's problems are logged once, where they arise
            logger.debug("could not read the stored service version", error=repr(exc))
            return self.service_version
        return str(row[0]) if row else self.service_version

    def send_now(self) -> dict[str, Any]:
        """Build and send what is due now (erasures in any mode, reports only in mode on)."""
        return self.uploads.run_once().as_dict()

    def preview(self) -> dict[str, Any]:
        """The next report, readable and as OTLP JSON, and its difference from the last sent."""
        from ._review import preview

        return preview(self.store, self.catalog, self.clock, self.uploads)

    def history(self) -> list[dict[str, Any]]:
        """Every report and erasure attempt: when, where, how many bytes, the server's answer."""
        from ._review import history

        return history(self.store)

    def rotate_identity(self) -> str:
        """A new installation id and credential; unsent reports are rebuilt under them."""
        from ._outbox import rotate_identity

        with self.store.transaction() as conn:
            return rotate_identity(conn, self.clock.now())

    def _opt_out(self, conn: Any) -> None:
        """Leaving mode on: clear the outbox and queue the server-side erasure."""
        from ._outbox import opt_out

        opt_out(conn, self.endpoint, self.clock.now())

    def _wake_uploads(self) -> None:
        """Start the sender when there is work: mode on, or an erasure still to deliver.
        (In mode local with nothing pending, the sender is not even imported.)"""
        running = self._provider is not None and not self._stopped
        if self._background_uploads and running and (self.mode == "on"
                                                     or self._erasure_pending()):
            self.uploads.wake()

    def _erasure_pending(self) -> bool:
        if not self.store.exists:
            return False
        try:
            with self.store.read() as conn:
                return conn.execute("SELECT 1 FROM erasures LIMIT 1").fetchone() is not None
        except Exception as exc:  # the store's problems are logged once, where they arise
            logger.debug("could not look for pending erasures", error=repr(exc))
            return False

    # Internals.

    def _build_provider(self) -> MeterProvider:
        resource = Resource.create(
            {"service.name": self.service_name, "service.version": self.service_version}
        )
        # Views keep only the catalog's attribute keys on catalog instruments; any other
        # instrument keeps its attributes but is marked local-only by the exporter.
        views = [View(instrument_name=m.name, attribute_keys=set(m.attributes))
                 for m in self.catalog.metrics.values()]
        from ._exporter import SQLiteMetricExporter

        exporter = SQLiteMetricExporter(self.store, self.catalog, self.clock,
                                        lambda: self.mode, self.problems)
        reader = PeriodicExportingMetricReader(exporter, export_interval_millis=self._interval_ms)
        provider = MeterProvider(
            metric_readers=[reader], resource=resource, views=views,
            exemplar_filter=AlwaysOffExemplarFilter(), shutdown_on_exit=True,
        )
        if self._set_global:
            metrics.set_meter_provider(provider)
            if metrics.get_meter_provider() is not provider:
                logger.warning("a global MeterProvider was already set; usage statistics "
                               "record only instruments made from UsageTelemetry.meter()")
        return provider

    def _on_start(self) -> None:
        """Record a mode the environment forces, make the installation id, count the start."""
        forced = environment_mode(self.environ)
        try:
            if forced != "off" or self.store.exists:
                with self.store.transaction() as conn:
                    latest = Store.latest_mode(conn)
                    if forced is not None and (latest is None or latest.mode != forced):
                        Store.record_mode(conn, forced, self.clock.now(), self.catalog.version,
                                          "environment")
                    effective = forced or (latest.mode if latest else DEFAULT_MODE)
                    if effective != "off":
                        Store.installation_id(conn, self.clock.now())
                        if self._version_given:
                            conn.execute("INSERT OR REPLACE INTO meta (key, value) "
                                         "VALUES ('service_version', ?)", (self.service_version,))
                    if latest is not None and latest.mode == "on" and forced not in (None, "on"):
                        self._opt_out(conn)
        except Exception as exc:  # the host starts regardless
            kind = classify_sqlite_error(exc)
            self.problems.problem(f"store:{kind}", "usage statistics cannot be saved",
                                  path=str(self.store.path), error=str(exc))
        assert self._provider is not None
        meter = self._provider.get_meter(LIBRARY_METER)
        starts, uptime = "printernizer.app.starts", "printernizer.uptime"
        meter.create_counter(starts, unit=self.catalog.metrics[starts].unit).add(1)
        meter.create_observable_gauge(uptime, [lambda options: [Observation(1)]],
                                      unit=self.catalog.metrics[uptime].unit)
        self._wake_uploads()  # issue 3: catch up on weeks closed while the app was not running

