"""`otel-usage-ingest`: serve, migrate, schema, prune."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import sys
import time
from collections.abc import Iterator, Sequence

from otel_usage.clock import default_clock

from ._settings import DEFAULT_DATABASE, Settings

__all__ = ["main"]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="otel-usage-ingest", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="run the OTLP/HTTP ingest service")
    _database(serve)
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=4318)
    serve.add_argument("--k", type=int, default=None, help="smallest group the views show")
    serve.add_argument("--retention-months", type=int, default=None)
    serve.add_argument("--no-address-limit", action="store_true",
                       help="no per-address rate limit (only behind a gateway that limits)")
    serve.add_argument("--max-pending", type=int, default=Settings.max_pending,
                       help="reports waiting for the database before new ones get 503")
    serve.add_argument("--write-timeout", type=float, default=Settings.write_timeout_s,
                       help="seconds a report waits for its commit before it gets 503")
    serve.add_argument("--workers", type=int, default=1,
                       help="worker processes (each validates and writes; see ingest/README.md)")
    serve.add_argument("--log-level", default="info")
    migrate = commands.add_parser("migrate", help="apply schema migrations and (re)create views")
    _database(migrate)
    migrate.add_argument("--k", type=int, default=None)
    schema = commands.add_parser("schema", help="print the DDL for a DBA to review")
    schema.add_argument("--dialect", choices=("mssql", "postgresql", "sqlite"), required=True)
    schema.add_argument("--k", type=int, default=None)
    prune = commands.add_parser("prune", help="delete weeks older than the retention")
    _database(prune)
    prune.add_argument("--retention-months", type=int, default=None)
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
    handler = {"serve": _serve, "migrate": _migrate, "schema": _schema, "prune": _prune}
    return handler[args.command](args)


def _serve(args: argparse.Namespace) -> int:
    import uvicorn

    from . import _log
    from .app import SETTINGS_ENV, create_app, outermost

    _log.configure(args.log_level)
    options = {
        "database_url": args.database, "k_anonymity": args.k,
        "retention_months": args.retention_months, "max_pending": args.max_pending,
        "write_timeout_s": args.write_timeout,
    }
    if args.no_address_limit:
        options["address_burst"] = 0
    # No Date header: it would be the machine's time, not the one clock hook's.
    config: dict[str, object] = {"host": args.host, "port": args.port, "access_log": False,
                                 "log_config": None, "timeout_graceful_shutdown": 20,
                                 "server_header": False, "date_header": False}
    # uvicorn re-raises the SIGTERM it shut down for once it is done; with a handler of our own
    # in place that re-raise returns here, so the writer process is drained before we exit.
    signal.signal(signal.SIGTERM, lambda _signum, _frame: None)
    with _writer_process(Settings(**options), args.log_level) as socket_path:  # type: ignore[arg-type]
        options["writer_socket"] = socket_path
        if args.workers <= 1:
            app = outermost(create_app(Settings(**options)))  # type: ignore[arg-type]
            uvicorn.Server(uvicorn.Config(app, **config)).run()  # type: ignore[arg-type]
            return 0
        os.environ[SETTINGS_ENV] = json.dumps(options | {"log_level": args.log_level})
        uvicorn.run("ingest.app:create_app_from_environment", factory=True, workers=args.workers,
                    **config)  # type: ignore[arg-type]
    return 0


@contextlib.contextmanager
def _writer_process(settings: Settings, log_level: str) -> Iterator[str]:
    """Start the writer process (it migrates, then listens) and wait until it accepts."""
    import multiprocessing
    import socket
    import tempfile

    from ._remote import settings_options, writer_process

    directory = tempfile.mkdtemp(prefix="otel-usage-ingest.")
    path = os.path.join(directory, "writer.sock")
    process = multiprocessing.get_context("spawn").Process(
        target=writer_process, args=(settings_options(settings), path, log_level),
        name="ingest-writer")
    process.start()
    deadline = time.monotonic() + 60
    while process.is_alive() and time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.socket(socket.AF_UNIX) as probe:
            probe.connect(path)
            break
        time.sleep(0.05)
    else:
        process.kill()
        raise SystemExit("the writer process did not start (see its log above)")
    try:
        yield path
    finally:
        process.terminate()
        process.join(60)
        shutil.rmtree(directory, ignore_errors=True)


def _migrate_once(settings: Settings) -> None:
    """Workers must not race to migrate: the supervisor does it before they start."""
    from ._store import Store, create_engine

    store = Store(create_engine(settings.database_url), settings.catalog)
    store.migrate(settings.k)
    store.dispose()


def _migrate(args: argparse.Namespace) -> int:
    from ._store import Store, create_engine

    settings = Settings(database_url=args.database, k_anonymity=args.k)
    store = Store(create_engine(settings.database_url), settings.catalog)
    version = store.migrate(settings.k)
    store.dispose()
    sys.stdout.write(f"schema version {version}, views with k = {settings.k}\n")
    return 0


def _schema(args: argparse.Namespace) -> int:
    from ._schema import ddl

    sys.stdout.write(ddl(args.dialect, Settings(k_anonymity=args.k).k))
    return 0


def _prune(args: argparse.Namespace) -> int:
    from otel_usage.weeks import retention_cutoff

    from ._store import Store, create_engine

    settings = Settings(database_url=args.database, retention_months=args.retention_months)
    store = Store(create_engine(settings.database_url), settings.catalog)
    cutoff = retention_cutoff(settings.now(), settings.retention)
    deleted = store.prune(cutoff.naive_start)
    store.dispose()
    sys.stdout.write(f"deleted {deleted} installation-weeks before {cutoff.monday}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
