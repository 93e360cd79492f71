"""The local statistics viewer ("Your Local Usage Statistics"): who, since when, this
week and the last weeks, which features are on, when a report last reached the server.

Its sums come from the catalog's roles (jobs completed, files downloaded, errors, printers,
features), never from restated metric names. Reading never creates the database.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

from ..catalog import Catalog
from ..clock import Clock
from ..consent import Mode
from ..store import Store
from ..store.reads import ReadsTx
from ..weeks import Week, epoch_day

__all__ = ["HISTORY_WEEKS", "render_statistics", "statistics"]

HISTORY_WEEKS = 8


def statistics(store: Store, clock: Clock, catalog: Catalog, mode: Mode) -> dict[str, Any]:
    """The viewer's numbers; `mode` is the mode in force (read by the caller)."""
    monday = Week.of(clock.now()).monday
    features_role = catalog.role("features")
    feature_key = features_role.key or ""
    features: dict[str, bool | None] = dict.fromkeys(
        features_role.metric.attributes[feature_key].values or (), None)
    result: dict[str, Any] = {
        "mode": mode, "installation_id": None, "first_used": None, "days_active": 0,
        "week_start": monday.isoformat(), "this_week": _week_values(0, 0, 0, 0),
        "weeks": [], "features": features, "last_submitted": None,
    }
    if not store.exists:
        return result
    with store.read(ReadsTx) as tx:
        result["installation_id"] = tx.meta("installation_id")
        result["first_used"] = tx.meta("first_used")
        result["last_submitted"] = tx.last_submitted()
        result["days_active"] = tx.days_active()
        weeks = [{"week_start": start.isoformat(), **_week(tx, catalog, start)}
                 for start in (monday - timedelta(weeks=back)
                               for back in range(HISTORY_WEEKS - 1, -1, -1))]
        for name, value in tx.latest_by_key(features_role.metric.name, feature_key):
            if name in features:
                features[name] = bool(value)
    result["weeks"] = weeks
    result["this_week"] = {k: v for k, v in weeks[-1].items() if k != "week_start"}
    return result


def _week(tx: ReadsTx, catalog: Catalog, start: date) -> dict[str, int]:
    first = epoch_day(datetime(start.year, start.month, start.day, tzinfo=UTC))

    def total(role: str) -> float:
        spec = catalog.role(role)
        return tx.total(spec.metric.name, spec.where, first, first + 7)

    printers = tx.peak_sum(catalog.role("printers").metric.name, first, first + 7)
    return _week_values(total("jobs_completed"), total("files_downloaded"), printers,
                        total("errors"))


def _week_values(jobs: float, downloads: float, printers: float, errors: float) -> dict[str, int]:
    return {"jobs_completed": int(jobs), "files_downloaded": int(downloads),
            "active_printers": int(printers), "errors": int(errors)}


def render_statistics(stats: dict[str, Any]) -> str:
    """The "Your Local Usage Statistics" panel, as text."""
    week = stats["this_week"]
    lines = [
        "Your Local Usage Statistics",
        "",
        f"Installation ID: {stats['installation_id'] or 'none yet'}"
        " (random: a pseudonym, not anonymous)",
        f"First used:      {stats['first_used'] or 'never'}",
        f"Days active:     {stats['days_active']}",
        f"Mode:            {stats['mode']}",
        "",
        f"This week (from {stats['week_start']}):",
        f"  Jobs completed:     {week['jobs_completed']}",
        f"  Files downloaded:   {week['files_downloaded']}",
        f"  Active printers:    {week['active_printers']}",
        f"  Errors encountered: {week['errors']}",
        "",
        "Features:",
    ]
    for name, enabled in stats["features"].items():
        mark = {True: "on ", False: "off", None: " - "}[enabled]
        lines.append(f"  [{mark}] {name}")
    lines += ["", "This data is stored on this device only."]
    return "\n".join(lines)
