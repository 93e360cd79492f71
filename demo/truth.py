"""What privacy costs: the last published week's noisy numbers beside the simulated fleet's truth.

The demo counts the truth of its simulated fleet from the raw installation-weeks its ingest
holds (its own SQLite file) before they are published (the ingest forgets them then), and
sets it beside what the differentially private publication made of them: the week's active
installations, its deployment modes and versions, and the features switched on, each
published number with the 95 % margin of its noise. Only the demo can do this: a real
publication's truth is what the noise hides.
"""

from __future__ import annotations

import json
import sqlite3
from collections import Counter
from pathlib import Path

from otel_usage.catalog import load_catalog

__all__ = ["privacy_cost", "true_counts"]

Truth = dict[str, Counter[tuple[str, str]]]  # per week start, as the store writes it

_ATTRIBUTES = ("printernizer.deployment.mode", "service.version")
_FEATURES = "printernizer.features.enabled"
Row = tuple[str, str, int]  # what, published (with its margin), true


def true_counts(database: Path) -> Truth:
    """Every stored week's true numbers, counted from its raw installation-weeks."""
    with sqlite3.connect(database) as db:
        weeks = [w for (w,) in db.execute("SELECT DISTINCT week_start FROM weekly_reports")]
        return {week: _truth(db, week) for week in weeks}


def privacy_cost(database: Path, truths: Truth) -> str:
    """The table for the last published week, or a line saying that no week is published."""
    with sqlite3.connect(database) as db:
        week = db.execute("SELECT MAX(week_start) FROM published_weeks").fetchone()[0]
        if week is None:
            return "What privacy costs: no week is published yet."
        published = _published(db, week)
    truth = truths.get(week, Counter())
    rows = [(label, published.get(key, "-"), truth.get(key, 0)) for key, label in _labels(
        published, truth)]
    width = max(len(label) for label, _, _ in rows)
    lines = [f"What privacy costs: the week of {week[:10]} as published (noise drawn once, "
             "± its 95 % margin) and as the simulated fleet really was",
             f"{'':{width}}  {'published':>12}  {'true':>5}"]
    lines += [f"{label:{width}}  {shown:>12}  {true:>5}" for label, shown, true in rows]
    return "\n".join(lines)


def _published(db: sqlite3.Connection, week: str) -> dict[tuple[str, str], str]:
    """The week's noisy numbers shown: "installations ± margin", per (attribute, value)."""
    found = {}
    for kind, metric, attribute, value, count, margin in db.execute(
            "SELECT kind, metric, attribute, value, installations, installations_margin "
            "FROM published_cells WHERE week_start = ? AND installations IS NOT NULL", (week,)):
        key = _key(kind, metric, attribute, value)
        if key is not None:
            found[key] = f"{count} ± {margin:.0f}"
    return found


def _key(kind: str, metric: str, attribute: str, value: str) -> tuple[str, str] | None:
    if kind == "active":
        return ("", "")
    if kind == "resource" and attribute in _ATTRIBUTES:
        return (attribute, value)
    if kind == "metric" and metric == _FEATURES:
        return (_FEATURES, value)
    return None


def _truth(db: sqlite3.Connection, week: str) -> Counter[tuple[str, str]]:
    """The same numbers counted from the raw installation-weeks."""
    counted: Counter[tuple[str, str]] = Counter()
    for resource, points in db.execute(
            "SELECT resource, points FROM weekly_reports WHERE week_start = ?", (week,)):
        counted[("", "")] += 1
        attributes = json.loads(resource)
        for key, published in _partitions().items():
            if key in attributes:
                value = attributes[key]
                counted[(key, value if value in published else _OTHER[key])] += 1
        enabled = {a.get("feature.name") for m, a, v in json.loads(points)
                   if m == _FEATURES and v > 0}
        counted.update((_FEATURES, feature) for feature in enabled if feature)
    return counted


def _partitions() -> dict[str, frozenset[str]]:
    """The values each attribute is published by (the rest count as its "other")."""
    catalog = load_catalog()
    found = {}
    for key in _ATTRIBUTES:
        listed = catalog.resource[key].values or catalog.policy.privacy.resource[key].values
        found[key] = frozenset(listed or ())
    return found


_OTHER = {key: load_catalog().resource[key].other for key in _ATTRIBUTES}


def _labels(published: dict[tuple[str, str], str],
            truth: Counter[tuple[str, str]]) -> list[tuple[tuple[str, str], str]]:
    """Each row's key and label: the active installations first, then by attribute."""
    keys = sorted(set(published) | set(truth))
    names = {"": "active installations", "printernizer.deployment.mode": "deployment mode",
             "service.version": "version", _FEATURES: "feature on"}
    return [(key, f"{names[key[0]]} {key[1]}".rstrip()) for key in keys]
