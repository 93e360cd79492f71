"""`otel-usage-dashboards`: build the dashboards JSON and provisioning files, check them, or
show what the dashboards would show for a store, as text."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from otel_usage.clock import default_clock

__all__ = ["main"]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="otel-usage-dashboards", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    build = commands.add_parser("build", help="write the provisioning trees (data source, "
                                              "dashboard provider and JSON, alerting), one "
                                              "per database")
    build.add_argument("--out", type=Path, default=None,
                       help="directory to write to (default: dashboards/provisioning; each "
                            "database's tree in its own folder, mssql/ and postgresql/)")
    build.add_argument("--only", choices=("mssql", "postgresql"), default=None,
                       help="write only this database's tree, as --out itself (mount it as "
                            "Grafana's provisioning directory)")
    commands.add_parser("check", help="exit 1 if the committed files are stale")
    show = commands.add_parser("show", help="every panel's query run on a store, as tables")
    show.add_argument("--database", required=True, help="SQLAlchemy URL of the ingest's store")
    show.add_argument("--from", dest="time_from", type=date.fromisoformat, default=None,
                      help="first day (YYYY-MM-DD; default: 12 weeks before --to)")
    show.add_argument("--to", dest="time_to", type=date.fromisoformat, default=None,
                      help="day after the last (YYYY-MM-DD; default: today, by the clock hook "
                           "OTEL_USAGE_NOW if set)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    from . import _provisioning

    args = _parser().parse_args(argv)
    if args.command == "show":
        return _show(args)
    if args.command == "build":
        if args.only is not None and args.out is None:
            sys.stderr.write("otel-usage-dashboards: --only needs --out (the committed "
                             f"tree is {_provisioning.PROVISIONING_DIR / args.only})\n")
            return 2
        for path in _provisioning.write(args.out or _provisioning.PROVISIONING_DIR, args.only):
            sys.stdout.write(f"wrote {path}\n")
        return 0
    stale = stale_files(_provisioning.PROVISIONING_DIR)
    for relative in stale:
        sys.stdout.write(f"stale: {relative}\n")
    return 1 if stale else 0


def _show(args: argparse.Namespace) -> int:
    from ._show import show

    try:
        today = default_clock().now().date()  # the one clock hook (OTEL_USAGE_NOW)
    except ValueError as exc:
        sys.stderr.write(f"otel-usage-dashboards: {exc}\n")
        return 2
    end: date = args.time_to or today
    start: date = args.time_from or end - timedelta(weeks=12)
    sys.stdout.write(show(args.database, _midnight(start), _midnight(end)) + "\n")
    return 0


def _midnight(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


def stale_files(directory: Path) -> list[str]:
    """Generated files that differ from, or are missing in, `directory`."""
    from . import _provisioning

    expected = _provisioning.files()
    present = {str(p.relative_to(directory)) for p in directory.rglob("*") if p.is_file()}
    stale = [r for r, text in expected.items()
             if not (directory / r).is_file() or (directory / r).read_text("utf-8") != text]
    return sorted(stale + sorted(present - set(expected)))


if __name__ == "__main__":
    sys.exit(main())
