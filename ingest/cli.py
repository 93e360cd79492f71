"""`otel-usage-ingest`: serve, migrate, schema, publish, forget, site."""

from __future__ import annotations

import argparse
import gc
import signal
import sys
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from otel_usage.catalog import load_catalog
from otel_usage.clock import default_clock

from ._settings import DEFAULT_DATABASE, Settings

if TYPE_CHECKING:
    from ._store import Forgotten, Store

__all__ = ["main"]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="otel-usage-ingest", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="run the OTLP/HTTP ingest service")
    _database(serve)
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=4318)
    serve.add_argument("--no-address-limit", action="store_true",
                       help="no limit of requests per address (only where something in "
                            "front limits them; new installations stay limited)")
    serve.add_argument("--trusted-proxy", action="append", default=[], metavar="ADDRESS",
                       help="a proxy (address or network, such as the gateway) whose "
                            "client pseudonym header or X-Forwarded-For names the client "
                            "(its refused registrations get 403, not 429); repeat for more")
    serve.add_argument("--unlimited-address", action="append", default=[], metavar="ADDRESS",
                       help="a client address exempt from the per-address limits (loopback "
                            "for the demo and benchmarks); repeat for more")
    serve.add_argument("--registrations-per-day", type=int,
                       default=Settings.registrations_per_day,
                       help="new installations per client address per day (0: no limit)")
    serve.add_argument("--max-pending", type=int, default=Settings.max_pending,
                       help="reports waiting for the database before new ones get 503")
    serve.add_argument("--write-timeout", type=float, default=Settings.write_timeout_s,
                       help="seconds a report waits for its commit before it gets 503")
    serve.add_argument("--max-connections", type=int, default=None,
                       help="connections open at once before new ones get 503 (default 4096, "
                            "and always below the limit of open files)")
    serve.add_argument("--log-level", default="info")
    migrate = commands.add_parser("migrate", help="create the schema (or migrate it to this "
                                                  "version) and the views")
    _database(migrate)
    schema = commands.add_parser("schema", help="print the DDL for a DBA to review")
    schema.add_argument("--dialect", choices=("mssql", "postgresql", "sqlite"), required=True)
    publish = commands.add_parser("publish", help="publish the weeks whose reporting window "
                                                  "has ended, then forget what publication no "
                                                  "longer needs (the service does it on its "
                                                  "own)")
    _database(publish)
    publish.add_argument("--after-days", type=int, default=None,
                         help="publish weeks this many days after they end (default: the "
                              "catalog's reporting window; 0 publishes every week that ended)")
    forget = commands.add_parser("forget", help="delete what publication no longer needs, "
                                                "by the catalog's windows: published weeks' "
                                                "raw reports, old erasures, silent "
                                                "installations (publish does it too)")
    _database(forget)
    site = commands.add_parser("site", help="write the public statistics (index.json, a JSON "
                                            "file per published week, the catalog, the pages) "
                                            "into a directory any static host can serve; reads "
                                            "only the published views")
    _database(site)
    site.add_argument("--out", required=True, type=Path,
                      help="the site's directory: new, empty, or a site written before")
    return parser


def _database(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--database", default=DEFAULT_DATABASE,
                        help="SQLAlchemy URL (sqlite:///..., postgresql+psycopg://..., "
                             "mssql+pyodbc://...)")


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        default_clock()  # a malformed OTEL_USAGE_NOW is refused here, with its reason
    except ValueError as exc:
        sys.stderr.write(f"otel-usage-ingest: {exc}\n")
        return 2
    if args.command != "serve":  # the command's own lines on stdout; problems on stderr
        from . import _log

        _log.configure("warning")
    handler = {"serve": _serve, "migrate": _migrate, "schema": _schema, "publish": _publish,
               "forget": _forget, "site": _site}
    return handler[args.command](args)


def _serve(args: argparse.Namespace) -> int:
    import uvicorn

    from . import _log, _server
    from .app import create_app

    _log.configure(args.log_level)
    options: dict[str, Any] = {
        "database_url": args.database, "max_pending": args.max_pending,
        "write_timeout_s": args.write_timeout,
    }
    if args.no_address_limit:
        options["address_burst"] = 0
    options |= {"trusted_proxies": tuple(args.trusted_proxy),
                "unlimited_addresses": frozenset(args.unlimited_address),
                "registrations_per_day": args.registrations_per_day}
    capacity = _server.raise_open_files_limit()
    limits = _server.Limits()
    limits = replace(limits, connections=min(args.max_connections or limits.connections,
                                             capacity))
    config = _server.config(create_app(Settings(**options)), args.host, args.port, limits)
    # uvicorn re-raises the SIGTERM it shut down for once it is done; with a handler of our own
    # in place that re-raise returns here, after the lifespan has stored what was queued.
    signal.signal(signal.SIGTERM, lambda _signum, _frame: None)
    _settle_garbage_collector()
    uvicorn.Server(config).run()
    return 0


def _settle_garbage_collector() -> None:
    """The modules and the app live as long as the process: move them out of the collector's
    sight (`gc.freeze`), and collect young objects less often. A request leaves almost no
    cycles (reference counting frees it), but with the default threshold the collector ran
    every few requests and walked every young object each time."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(_GC_YOUNG_THRESHOLD, *gc.get_threshold()[1:])


_GC_YOUNG_THRESHOLD = 20_000


def _store(url: str) -> Store:
    from ._store import Store, create_engine

    return Store(create_engine(url))


def _migrate(args: argparse.Namespace) -> int:
    store = _store(args.database)
    version = store.migrate()
    store.dispose()
    sys.stdout.write(f"schema version {version}\n")
    return 0


def _schema(args: argparse.Namespace) -> int:
    from ._schema import ddl

    sys.stdout.write(ddl(args.dialect))
    return 0


def _publish(args: argparse.Namespace) -> int:
    from ._maintenance import forget, publish_due

    settings = Settings(database_url=args.database, publish_after_days=args.after_days)
    store = _store(args.database)
    try:
        store.migrate()
        published = publish_due(store, settings)
        forgotten = forget(store, settings)
    finally:
        store.dispose()
    for publication in published:
        loss = publication.loss
        sys.stdout.write(f"published the week of {publication.week.date()}: "
                         f"{len(publication.cells)} cells, epsilon {loss.epsilon:.3g} at delta "
                         f"{loss.delta:.3g} per installation (a year of weeks: epsilon "
                         f"{loss.yearly_epsilon:.3g})\n")
    if not published:
        sys.stdout.write("no week is due\n")
    _write_forgotten(forgotten)
    return 0


def _forget(args: argparse.Namespace) -> int:
    from ._maintenance import forget

    store = _store(args.database)
    try:
        store.migrate()
        forgotten = forget(store, Settings(database_url=args.database))
    finally:
        store.dispose()
    _write_forgotten(forgotten)
    return 0


def _site(args: argparse.Namespace) -> int:
    """Build the site from the views, then write it; a database it cannot read or a
    directory it must not write into is refused with the reason, and nothing is written."""
    from ._errors import IngestError
    from .site import build_site, read_engine, write_site

    catalog = load_catalog()
    today = default_clock().now().date()
    engine = read_engine(args.database)
    try:
        written = write_site(args.out, build_site(engine, catalog, today), catalog)
    except (IngestError, OSError) as exc:
        sys.stderr.write(f"otel-usage-ingest site: {exc}\n")
        return 1
    finally:
        engine.dispose()
    weeks = {0: "no published week yet", 1: f"1 published week ({written.weeks[0]})"}.get(
        len(written.weeks),
        f"{len(written.weeks)} published weeks ({written.weeks[0]} to {written.weeks[-1]})")
    sys.stdout.write(f"wrote the public statistics of {weeks} to {args.out}: "
                     f"{len(written.files)} files, {len(written.changed)} of them changed\n")
    for path in written.changed:
        sys.stdout.write(f"  {path}\n")
    sys.stdout.write(f"open {args.out / 'index.html'}\n")
    return 0


def _write_forgotten(forgotten: Forgotten) -> None:
    sys.stdout.write(f"forgot {forgotten.reports} raw installation-weeks of published weeks, "
                     f"{forgotten.erasures} erasures, {forgotten.installations} silent "
                     "installations\n")


if __name__ == "__main__":
    sys.exit(main())
