"""What the user reviews before and after sending: the next report, its difference from the
last one sent, and the history of attempts.

The next report is the oldest pending one in the outbox, shown from its stored bytes (so the
preview is exactly what will leave). When nothing is pending it is a draft of the current week
so far, built the same way, so that a user in mode ``local`` can see what ``on`` would send.
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Callable
from typing import Any

from ..catalog import Catalog
from ..clock import Clock
from ..consent import current_consent
from ..store import Store
from ..store.outbox import OutboxTx, StoredReport
from ..weeks import Week

__all__ = ["difference", "history", "preview", "render_preview"]

Resource = Callable[[str], dict[str, str]]


def preview(store: Store, catalog: Catalog, clock: Clock, resource: Resource) -> dict[str, Any]:
    """The next report (readable and as OTLP JSON), and how it differs from the last one sent.
    `resource` gives the resource attributes of a report for an installation id."""
    from ..report.build import otlp_json

    if not store.exists:
        return {"report": None, "last_sent": None, "difference": None}
    with store.read(OutboxTx) as tx:
        stored = tx.next_report()
        last_sent = tx.last_sent_rendering()
        report = (_stored(stored) if stored is not None
                  else _draft(tx, catalog, clock, resource))
    if report is None:
        return {"report": None, "last_sent": last_sent, "difference": None}
    report["otlp"] = otlp_json(gzip.decompress(report.pop("body")))
    return {"report": report, "last_sent": last_sent,
            "difference": difference(last_sent, report["readable"])}


def _stored(stored: StoredReport) -> dict[str, Any]:
    return {"week": stored.week, "state": stored.state, "due": stored.due,
            "bytes": len(stored.body), "readable": stored.rendering, "body": stored.body}


def _draft(tx: OutboxTx, catalog: Catalog, clock: Clock,
           resource: Resource) -> dict[str, Any] | None:
    """The current week so far, as it would be sent if it closed now; None before first use
    (or after delete-all), when there is no installation to report on."""
    from ..report.build import build_report

    installation_id = tx.meta("installation_id")
    if installation_id is None:
        return None
    opt_in = current_consent(tx.mode_history())
    version = opt_in.catalog_version if opt_in else catalog.version
    week = Week.of(clock.now())
    report = build_report(tx, catalog, week, version, resource(installation_id))
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
    """Every report and erasure attempt, oldest first."""
    if not store.exists:
        return []
    with store.read(OutboxTx) as tx:
        return tx.history()


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
