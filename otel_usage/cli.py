"""The ``otel-usage`` command: see and control what this installation keeps and sends.

An entry point above the facade: it makes a :class:`~otel_usage.UsageTelemetry` for the data
directory (its clock from the one clock hook) and calls the facade, and prints what it answers
with the user's own renderings (:mod:`.user`). Every failure is one line on stderr and a
non-zero exit.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import structlog

from .clock import default_clock
from .consent import MODES
from .errors import UsageError
from .telemetry import UsageTelemetry
from .user.compare import render_comparison
from .user.privacy import register_cli as register_privacy
from .user.review import render_preview
from .user.viewer import render_statistics

__all__ = ["main"]


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if not hasattr(args, "run"):
        parser.print_help()
        return 2
    # The library logs with structlog; on the command line those lines belong on stderr.
    # Only errors: a command's failure is told in one line of its own.
    structlog.configure(logger_factory=structlog.PrintLoggerFactory(sys.stderr),
                        wrapper_class=structlog.make_filtering_bound_logger(logging.ERROR))
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

    agree = sub.add_parser("consent", help="see what a newer catalog adds, and agree to it "
                                           "while staying on")
    agree.add_argument("--yes", action="store_true", help="agree to the newer version")
    agree.set_defaults(run=_consent)

    register_privacy(sub)  # privacy-md: regenerate PRIVACY.md from the catalog
    _register_report(sub)  # preview, history, send-now: the weekly report
    _register_compare(sub)  # compare: your numbers beside the public statistics
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
        print(f"Note: the environment forces mode {state.forced} for this process only "
              "(DO_NOT_TRACK or OTEL_USAGE_MODE); your choice is kept.")
    return 0


def _show(usage: UsageTelemetry, args: argparse.Namespace) -> int:
    print(render_statistics(asyncio.run(usage.statistics())))
    return 0


def _export(usage: UsageTelemetry, args: argparse.Namespace) -> int:
    text = json.dumps(asyncio.run(usage.export_json()), indent=2, sort_keys=True)
    if args.output is None:
        print(text)
    else:
        # Readable by the owner only, whatever the umask (and an existing file made so).
        fd = os.open(args.output, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text + "\n")
        print(f"Exported to {args.output}", file=sys.stderr)
    return 0


def _delete(usage: UsageTelemetry, args: argparse.Namespace) -> int:
    if not args.yes:
        print("otel-usage: this deletes every usage statistic on this machine; "
              "run again with --yes to confirm", file=sys.stderr)
        return 2
    kept = usage.delete_all_now()
    print("All usage statistics on this machine were deleted.")
    if kept is not None:
        print(f"Your choice of mode {kept} is kept (change it with `otel-usage mode`).")
    return 0


def _consent(usage: UsageTelemetry, args: argparse.Namespace) -> int:
    info = usage.catalog_additions()
    if info["consented_version"] is None:
        print("Mode is not on: there is nothing to agree to (`otel-usage mode on` opts in to "
              f"catalog version {info['catalog_version']}).", file=sys.stderr)
        return 1
    if not info["additions"]:
        print(f"You agreed to catalog version {info['consented_version']}: nothing is new.")
        return 0
    print(f"You agreed to catalog version {info['consented_version']}; version "
          f"{info['catalog_version']} adds:")
    for addition in info["additions"]:
        print(f"  - {addition['text']}")
    if not args.yes:
        print("Run again with --yes to agree to send these too.")
        return 0
    usage.set_mode("on")
    print(f"You now agree to catalog version {info['catalog_version']}.")
    return 0


# The weekly report.

def _register_report(sub: Any) -> None:
    """The weekly report's commands: ``preview [--json]``, ``history`` and ``send-now``."""
    preview = sub.add_parser("preview", help="exactly what the next report contains, and how it "
                                             "differs from the last one sent")
    preview.add_argument("--json", action="store_true",
                         help="print JSON: the readable report, its OTLP JSON and the difference")
    preview.set_defaults(run=_preview)

    history = sub.add_parser("history", help="what was sent, when, and the server's answer")
    history.add_argument("--json", action="store_true", help="print JSON")
    history.set_defaults(run=_history)

    send = sub.add_parser("send-now", help="build and send what is due now (mode on only; "
                                           "pending erasure requests in any mode)")
    send.set_defaults(run=_send_now)


def _preview(usage: UsageTelemetry, args: argparse.Namespace) -> int:
    result = usage.preview()
    if args.json:
        print(json.dumps(result, indent=2, sort_keys=True))
    else:
        print(render_preview(result))
        if usage.mode != "on":
            print(f"\nMode is {usage.mode}: nothing is sent.")
    return 0


def _history(usage: UsageTelemetry, args: argparse.Namespace) -> int:
    rows = usage.history()
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    if not rows:
        print("Nothing has been sent from this machine.")
        return 0
    print(f"{'when':<26} {'what':<8} {'week':<9} {'bytes':>6} {'status':>6}  answer")
    for row in rows:
        status = "-" if row["status"] is None else str(row["status"])
        print(f"{row['attempted_at']:<26} {row['kind']:<8} {row['week'] or '':<9} "
              f"{row['bytes']:>6} {status:>6}  {row['answer']}")
    return 0


def _send_now(usage: UsageTelemetry, args: argparse.Namespace) -> int:
    summary = usage.send_now()
    if usage.mode != "on":
        print(f"Mode is {usage.mode}: no report is sent.")
    for key, label in (("built", "Built"), ("sent", "Sent"), ("retry", "Will retry"),
                       ("failed", "Refused by the server")):
        if summary[key]:
            print(f"{label}: {', '.join(summary[key])}")
    if summary["erasures_acknowledged"]:
        print("The server confirmed the erasure of this installation's data.")
    if summary["erasures_pending"]:
        print("The erasure request is still pending; it will be retried.")
    if summary["refused"]:
        print(f"otel-usage: {summary['refused']}")
        return 1
    if not any(summary[k] for k in ("built", "sent", "retry", "failed")):
        print("Nothing is due.")
    return 1 if summary["failed"] or summary["retry"] else 0


# The public statistics.

def _register_compare(sub: Any) -> None:
    compare = sub.add_parser(
        "compare", help="your numbers of the newest published week beside the public "
                        "statistics (fetched by itself in mode on only; never in off)")
    compare.add_argument("--fetch", action="store_true",
                         help="fetch the public statistics now, also in mode local")
    compare.add_argument("--json", action="store_true", help="print JSON")
    compare.set_defaults(run=_compare)


def _compare(usage: UsageTelemetry, args: argparse.Namespace) -> int:
    """Fetch when the rule allows and it is due, then compare with what is kept; a fetch
    that fails or is refused although asked for exits 1 (what is kept is still shown)."""
    fetch = usage.fetch_public_statistics(asked=args.fetch)
    failed = fetch["failed"] or (args.fetch and fetch["refused"])
    result = usage.compare()
    if args.json:
        print(json.dumps({**result, "fetch": fetch}, indent=2, sort_keys=True))
    else:
        print(render_comparison(result, fetch))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
