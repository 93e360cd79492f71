"""The user's own numbers beside the public statistics of one published week, computed here.

The week is the one the public statistics were kept for (:mod:`.public`: the newest published
week the local history also has). The user's numbers of it are those its report would carry
(:func:`..report.build.build_report`, whether or not it was sent): printers and jobs (each
installation's weekly total, as the published distributions bucket it), the features switched
on, and, from the machine's facts now, the deployment mode and Printernizer's version. Each is
set beside the share of installations in the same bucket or with the same value, out of the
week's active installations.

Every public number is a count plus the noise it was published with; it carries its 95 %
margin, and so does each share (to first order: the count's and the active installations'
margins together). A small count can be near zero or even negative: it is shown as published.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

from ..catalog import Catalog
from ..store import Store
from ..store.public import PublicTx
from ..weeks import Week, from_epoch_day
from . import public
from .public import Cached

__all__ = ["DISTRIBUTIONS", "RESOURCES", "compare", "compare_for", "render_comparison"]

# What is compared: (topic, the catalog's role whose metric is bucketed: for jobs, every job
# counts, whatever the role's `where` selects for the viewer), and (topic, resource attribute).
# The features compared are the catalog's "features" role.
DISTRIBUTIONS = (("printers", "printers"), ("jobs", "jobs_completed"))
RESOURCES = (("deployment_mode", "printernizer.deployment.mode"),
             ("version", "service.version"))


def compare(store: Store, catalog: Catalog, kept: Cached | None,
            facts: Mapping[str, str]) -> dict[str, Any]:
    """The comparison of the kept week with the local history's (`facts`: the installation's
    resource attributes now). ``available`` is False, with a ``detail``, when there is nothing
    to compare."""
    if kept is None:
        return _unavailable(None, "the public statistics have not been fetched yet")
    week = kept.week
    head = {"source": kept.index_document.url.removesuffix("index.json"),
            "fetched_at": kept.index_document.fetched_at.isoformat(),
            "newest_week": kept.index_document.week,
            "catalog_version": kept.index["catalog_version"]}
    if week is None:
        return _unavailable(head, "nothing has been published yet")
    local = _local_week(store, catalog, Week.parse(week["week"]))
    if local is None:
        return _unavailable({**head, "week": week["week"]},
                            f"this machine kept no statistics in {week['week']}, the newest "
                            "week published that could be compared")
    active = week["active_installations"]
    items = [*(_distribution(topic, catalog.role(role).metric.name, local, week, active)
               for topic, role in DISTRIBUTIONS),
             *_features(catalog, local, week, active),
             *(_resource(topic, key, facts, catalog, week, active) for topic, key in RESOURCES)]
    return {**head, "available": True, "detail": "", "week": week["week"],
            "week_start": week["week_start"], "published_on": week["published_on"],
            "privacy": week["privacy"], "active_installations": active, "items": items}


def compare_for(store: Store, catalog: Catalog, endpoint: str,
                facts: Callable[[], Mapping[str, str]]) -> dict[str, Any]:
    """:meth:`~otel_usage.UsageTelemetry.compare`: the kept week beside this installation's;
    `facts` gives its resource attributes as a report would carry them now (asked only when
    a week is kept)."""
    kept = public.cached(store, public.base_url(endpoint, catalog), catalog)
    found = {} if kept is None else facts()
    return compare(store, catalog, kept,
                   {key: found[key] for _, key in RESOURCES if key in found})


def _unavailable(head: dict[str, Any] | None, detail: str) -> dict[str, Any]:
    return {**(head or {}), "available": False, "detail": detail, "items": []}


def _local_week(store: Store, catalog: Catalog, week: Week) -> dict[str, list[Any]] | None:
    """The week's points per metric, as its report carries them (None: no day of it kept)."""
    from ..report.build import build_report  # here: a host that never compares never loads it

    with store.read(PublicTx) as tx:
        if not any(Week.of(from_epoch_day(d)) == week for d in tx.recorded_days()):
            return None
        rendering = build_report(tx, catalog, week, catalog.version, {}).rendering
    return {m["name"]: m["points"] for m in rendering["metrics"]}


# A number the week does not publish.
_NOT_PUBLISHED = {"installations": None, "margin": None, "share": None, "share_margin": None}


def _share(count: Mapping[str, Any], active: Mapping[str, Any]) -> dict[str, Any]:
    """`count` with its share of the active installations and that share's margin (first
    order); no share when the published active installations are not positive."""
    n, m = count["installations"], count["margin"]
    total, total_margin = active["installations"], active["margin"]
    shown: dict[str, Any] = {"installations": n, "margin": m, "share": None,
                             "share_margin": None}
    if total > 0:
        shown["share"] = round(n / total, 4)
        shown["share_margin"] = round(math.hypot(m / total, n * total_margin / total ** 2), 4)
    return shown


def _distribution(topic: str, metric: str, local: Mapping[str, list[Any]],
                  week: Mapping[str, Any], active: Mapping[str, Any]) -> dict[str, Any]:
    """The user's weekly total of `metric`, and the installations in its bucket."""
    yours = sum(int(p["value"]) for p in local.get(metric, []))
    rows = [r for r in week["distributions"] if r["metric"] == metric
            and r["bucket_min"] <= yours and (r["bucket_max"] is None or yours <= r["bucket_max"])]
    item: dict[str, Any] = {"topic": topic, "metric": metric, "yours": yours,
                            "bucket_min": None, "bucket_max": None, **_NOT_PUBLISHED}
    if rows:
        row = rows[0]
        item.update(bucket_min=row["bucket_min"], bucket_max=row["bucket_max"],
                    **_share(row, active))
    total = next((t for t in week["totals"] if t["metric"] == metric), None)
    if total is not None and active["installations"] > 0:
        n = active["installations"]
        item["mean"] = round(total["total"] / n, 2)
        item["mean_margin"] = round(math.hypot(total["margin"] / n,
                                               total["total"] * active["margin"] / n ** 2), 2)
    return item


def _features(catalog: Catalog, local: Mapping[str, list[Any]], week: Mapping[str, Any],
              active: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Each published feature (but "other", which names none): switched on here, and at how
    many installations."""
    role, other = catalog.role("features"), catalog.policy.other_value
    metric, key = role.metric.name, role.key
    on = {p["attributes"].get(key) for p in local.get(metric, []) if p["value"] > 0}
    return [{"topic": "feature", "metric": metric, "value": r["value"],
             "yours": r["value"] in on, **_share(r, active)}
            for r in week["metrics"]
            if r["metric"] == metric and r["attribute"] == key and r["value"] != other]


def _resource(topic: str, key: str, facts: Mapping[str, str], catalog: Catalog,
              week: Mapping[str, Any], active: Mapping[str, Any]) -> dict[str, Any]:
    """The installation's value of a resource attribute, and the installations that share it
    (a value not published on its own is counted as "other")."""
    yours = facts.get(key)
    rows = {r["value"]: r for r in week["resource_attributes"] if r["attribute"] == key}
    counted = yours if yours in rows else catalog.policy.other_value
    row = rows.get(counted)
    shared = _share(row, active) if row is not None else _NOT_PUBLISHED
    return {"topic": topic, "attribute": key, "yours": yours, "counted_as": counted, **shared}


# The command's plain text. ---------------------------------------------------------------

def _pm(value: float, margin: float, digits: int = 0) -> str:
    """`value` ± `margin`, the margin rounded up (outward), as the public page rounds it: a
    shown margin never understates the uncertainty."""
    scale = 10 ** digits
    up = math.ceil(margin * scale - 1e-9) / scale  # 1e-9: 0.7 stays 0.7 despite binary floats
    return f"{value:,.{digits}f} ± {up:,.{digits}f}"


def _share_text(item: Mapping[str, Any]) -> str:
    if item["installations"] is None:
        return "not published"
    count = f"{_pm(item['installations'], item['margin'])} installations"
    if item["share"] is None:
        return count
    return (f"{_pm(100 * item['share'], 100 * item['share_margin'], 1)} % of installations "
            f"({count})")


def _bucket(item: Mapping[str, Any]) -> str:
    low, high = item["bucket_min"], item["bucket_max"]
    return f"{low} or more" if high is None else str(low) if low == high else f"{low}-{high}"


def _line(item: Mapping[str, Any]) -> str:
    topic = item["topic"]
    if topic in ("printers", "jobs"):
        line = f"{topic.capitalize()}: you had {item['yours']}"
        if item["bucket_min"] is not None:
            line += f"; {_share_text(item)} had {_bucket(item)}"
        if "mean" in item:
            line += f"; on average an installation had {_pm(item['mean'], item['mean_margin'], 1)}"
        return line + "."
    if topic == "feature":
        here = "on" if item["yours"] else "off"
        return f"Feature {item['value']}: {here} here; on at {_share_text(item)}."
    name = {"deployment_mode": "Deployment", "version": "Version"}[topic]
    counted = "" if item["counted_as"] == item["yours"] else f" (counted as {item['counted_as']})"
    return f"{name}: {item['yours']}{counted}, like {_share_text(item)}."


def render_comparison(result: Mapping[str, Any], fetch: Mapping[str, Any]) -> str:
    """The comparison as the ``otel-usage compare`` command prints it, after what became of
    this run's fetch."""
    lines = [f"Public statistics: {fetch['detail']}."]
    if not result["available"]:
        lines.append(f"Nothing to compare: {result['detail']}.")
        return "\n".join(lines)
    active = result["active_installations"]
    lines += [
        f"Week {result['week']} (from {result['week_start']}), published on "
        f"{result['published_on']} at {result['source']}:",
        f"{_pm(active['installations'], active['margin'])} active installations. Every public "
        "number carries noise (± its 95 % margin); a small one can even be negative.",
        "",
        *(_line(item) for item in result["items"]),
    ]
    return "\n".join(lines)
