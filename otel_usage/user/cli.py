"""The ``otel-usage`` command: see and control what this installation keeps and sends."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

import structlog

from ..clock import default_clock
from ..consent import MODES
from ..errors import UsageError
from ..telemetry import UsageTelemetry
from .viewer import render_statistics

__all__ = ["main"]

Command = Callable[[UsageTelemetry, argparse.Namespace], int]


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if not hasattr(args, "run"):
        parser.print_help()
        return 2
    # The library logs with structlog; on the command line those lines belong on stderr.
    structlog.configure(logger_factory=structlog.PrintLoggerFactory(sys.stderr))
    try:
        clock = default_clock()  # OTEL_USAGE_NOW, the one clock hook
    except ValueError as exc:
        print(f"otel-usage: {exc}", file=sys.stderr)
        return 2
    usage = UsageTelemetry(args.data_dir, clock=clock)
    try:
        return int(args.run(usage, args))
    except UsageError as exc:
        print(f"otel-usage: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"otel-usage: {exc.strerror or exc}: {exc.filename or ''}".rstrip(": "),
              file=sys.stderr)
        return 1


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="otel-usage",
        description="See and control Printernizer's usage statistics on this machine.",
    )
    parser.add_argument("--data-dir", type=Path, default=None,
                        help="where the statistics are kept (default: $OTEL_USAGE_DATA_DIR "
                             "or ~/.local/share/otel-usage)")
    sub = parser.add_subparsers(metavar="COMMAND")

    status = sub.add_parser("status", help="the mode and what is stored")
    status.add_argument("--json", action="store_true", help="print JSON")
    status.set_defaults(run=_status)

    mode = sub.add_parser("mode", help="choose off, local or on")
    mode.add_argument("mode", choices=MODES)
    mode.set_defaults(run=_mode)

    show = sub.add_parser("show", help="the local statistics viewer")
    show.set_defaults(run=_show)

    export = sub.add_parser("export", help="everything stored locally, as JSON")
    export.add_argument("-o", "--output", type=Path, help="write to FILE instead of stdout")
    export.set_defaults(run=_export)

    delete = sub.add_parser("delete", help="delete every statistic stored on this machine")
    delete.add_argument("--yes", action="store_true", help="confirm the deletion")
    delete.set_defaults(run=_delete)

    from . import cli_report, privacy

    privacy.register_cli(sub)  # privacy-md: regenerate PRIVACY.md from the catalog (issue 7)
    cli_report.register(sub)  # preview, history, send-now: the weekly report (issue 3)
    return parser


def _status(usage: UsageTelemetry, args: argparse.Namespace) -> int:
    stats = asyncio.run(usage.statistics())
    state = usage.mode_state()
    info = {
        "mode": stats["mode"],
        "mode_forced_by_environment": state.forced_by_environment,
        "data_dir": str(usage.data_dir),
        "database_bytes": usage.store.size_bytes,
        "installation_id": stats["installation_id"],
        "first_used": stats["first_used"],
        "days_active": stats["days_active"],
    }
    if args.json:
        print(json.dumps(info, indent=2))
        return 0
    note = " (set by the environment)" if state.forced_by_environment else ""
    print(f"Mode:            {info['mode']}{note}")
    print(f"Data directory:  {info['data_dir']}")
    print(f"Installation ID: {info['installation_id'] or 'none yet'}")
    print(f"First used:      {info['first_used'] or 'never'}")
    print(f"Days active:     {info['days_active']}")
    print(f"Database size:   {info['database_bytes']} bytes")
    return 0


def _mode(usage: UsageTelemetry, args: argparse.Namespace) -> int:
    chosen = usage.set_mode(args.mode)
    state = usage.mode_state()
    print(f"Mode set to {chosen}.")
    if state.forced is not None and state.forced != chosen:
        print(f"Note: the environment forces mode {state.forced} for running processes "
              "(DO_NOT_TRACK or OTEL_USAGE_MODE).")
    return 0


def _show(usage: UsageTelemetry, args: argparse.Namespace) -> int:
    print(render_statistics(asyncio.run(usage.statistics())))
    return 0


def _export(usage: UsageTelemetry, args: argparse.Namespace) -> int:
    text = json.dumps(asyncio.run(usage.export_json()), indent=2, sort_keys=True)
    if args.output is None:
        print(text)
    else:
        args.output.write_text(text + "\n", encoding="utf-8")
        print(f"Exported to {args.output}", file=sys.stderr)
    return 0


def _delete(usage: UsageTelemetry, args: argparse.Namespace) -> int:
    if not args.yes:
        print("otel-usage: this deletes every usage statistic on this machine; "
              "run again with --yes to confirm", file=sys.stderr)
        return 2
    asyncio.run(usage.delete_all())
    print("All usage statistics on this machine were deleted.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
