"""What the user reviews before and after sending: the next report, its difference from the
last one sent, and the history of attempts (issue 3, item 4).

The next report is the oldest pending one in the outbox, shown from its stored bytes (so the
preview is exactly what will leave). When nothing is pending it is a draft of the current week
so far, built the same way, so that a user in mode ``local`` can see what ``on`` would send.
"""

from __future__ import annotations

import gzip
import json
from typing import Any

from . import _outbox
from ._schedule import Uploader, consent
from ._store import Store
from .catalog import Catalog
from .clock import Clock
from .weeks import Week

__all__ = ["difference", "history", "preview", "render_preview"]

_NEXT = ("SELECT week, rendering, body, state, next_attempt_at FROM outbox "
         "WHERE state = 'pending' ORDER BY week LIMIT 1")
_LAST_SENT = "SELECT rendering FROM outbox WHERE state = 'sent' ORDER BY week DESC LIMIT 1"


def preview(store: Store, catalog: Catalog, clock: Clock, uploader: Uploader) -> dict[str, Any]:
    """The next report (readable and as OTLP JSON), and how it differs from the last one sent."""
    from ._report import otlp_json

    if not store.exists:
        return {"report": None, "last_sent": None, "difference": None}
    with store.read() as conn:
        row = conn.execute(_NEXT).fetchone()
        last = conn.execute(_LAST_SENT).fetchone()
        report = _stored(row) if row is not None else _draft(conn, catalog, clock, uploader)
    last_sent = json.loads(last[0]) if last else None
    if report is None:
        return {"report": None, "last_sent": last_sent, "difference": None}
    report["otlp"] = otlp_json(gzip.decompress(report.pop("body")))
    return {"report": report, "last_sent": last_sent,
            "difference": difference(last_sent, report["readable"])}


def _stored(row: tuple[Any, ...]) -> dict[str, Any]:
    week, rendering, body, state, due = row
    return {"week": week, "state": state, "due": due, "bytes": len(body),
            "readable": json.loads(rendering), "body": bytes(body)}


def _draft(conn: Any, catalog: Catalog, clock: Clock,
           uploader: Uploader) -> dict[str, Any] | None:
    """The current week so far, as it would be sent if it closed now; None before first use
    (or after delete-all), when there is no installation to report on."""
    from ._report import build_report

    row = conn.execute("SELECT value FROM meta WHERE key = 'installation_id'").fetchone()
    if row is None:
        return None
    opt_in = consent(conn)
    version = opt_in.catalog_version if opt_in else catalog.version
    resource = uploader.resource(row[0])
    week = Week.of(clock.now())
    report = build_report(conn, catalog, week, version, resource)
    return {"week": week.label, "state": "draft", "due": None, "bytes": len(report.body),
            "readable": report.rendering, "body": report.body}


def _points(rendering: dict[str, Any] | None) -> dict[tuple[str, str], int]:
    if rendering is None:
        return {}
    return {(m["name"], json.dumps(p["attributes"], sort_keys=True)): p["value"]
            for m in rendering["metrics"] for p in m["points"]}


def difference(old: dict[str, Any] | None, new: dict[str, Any]) -> dict[str, Any]:
    """Points and resource attributes that differ: each with its last-sent and next value."""
    before, after = _points(old), _points(new)
    points = [
        {"metric": name, "attributes": json.loads(attrs), "last_sent": before.get(key),
         "next": after.get(key)}
        for key in sorted(before.keys() | after.keys())
        for name, attrs in [key]
        if before.get(key) != after.get(key)
    ]
    old_resource = old["resource"] if old else {}
    resource = {k: [old_resource.get(k), new["resource"].get(k)]
                for k in sorted(old_resource.keys() | new["resource"].keys())
                if old_resource.get(k) != new["resource"].get(k)}
    return {"points": points, "resource": resource}


def history(store: Store) -> list[dict[str, Any]]:
    if not store.exists:
        return []
    with store.read() as conn:
        return _outbox.history(conn)


def render_preview(result: dict[str, Any]) -> str:
    """The preview as a readable table."""
    report = result["report"]
    if report is None:
        return "Nothing recorded yet: there is no report to show."
    readable = report["readable"]
    state = "pending, due " + str(report["due"]) if report["state"] == "pending" else "draft"
    lines = [f"Next report: week {readable['week']} ({readable['start']} to {readable['end']}), "
             f"{state}, {report['bytes']} bytes (gzip)", "", "Resource:"]
    lines += [f"  {k:<28} {v}" for k, v in readable["resource"].items()]
    lines += ["", "Metrics:"]
    changed = {(d["metric"], json.dumps(d["attributes"], sort_keys=True)): d["last_sent"]
               for d in result["difference"]["points"]}
    for metric in readable["metrics"]:
        for point in metric["points"]:
            attrs = ", ".join(f"{k}={v}" for k, v in point["attributes"].items())
            label = f"{metric['name']}{{{attrs}}}" if attrs else metric["name"]
            key = (metric["name"], json.dumps(point["attributes"], sort_keys=True))
            note = f"   (last sent: {changed[key]})" if key in changed else ""
            lines.append(f"  {label:<70} {point['value']:>8}{note}")
    if not readable["metrics"]:
        lines.append("  (none)")
    if result["last_sent"] is None:
        lines += ["", "Nothing has been sent before."]
    return "\n".join(lines)
