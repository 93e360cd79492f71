"""The weekly report's commands: ``preview [--json]``, ``history`` and ``send-now`` (issue 3)."""

from __future__ import annotations

import argparse
import json
from typing import Any

from ..telemetry import UsageTelemetry

__all__ = ["register"]


def register(sub: Any) -> None:
    """Add the commands to the ``otel-usage`` parser's subcommands."""
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
    from .review import render_preview

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
