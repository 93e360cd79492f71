"""The twelve event types of Printernizer's old usage-statistics service, as catalog points.

Each event becomes at most one point of a catalog instrument: a metric, the value to add and
its attributes, taken from the event's metadata through Printernizer's vocabulary and checked
against the catalog (a value outside an enum becomes "other" here, before anything is stored;
metadata the catalog has no key for, such as ``duration_seconds`` or a file name, is dropped).

``app_start`` is counted by :class:`~otel_usage.UsageTelemetry` itself when it starts, and
``app_shutdown`` ends the day's uptime it already observes: live, both add nothing; in the
old ``usage_events`` table (:mod:`.migration`), ``app_start`` rows count as starts.
``feature_enabled`` / ``feature_disabled`` switch a feature in the observed feature state
(``printernizer.features.enabled``), which is a gauge, not a count.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ..catalog import Catalog
from .vocabulary import EVENT_TYPES, error_attributes, feature_name, job_status

__all__ = ["EVENT_METRICS", "FEATURE_EVENTS", "Point", "event_point", "feature_switch",
           "known_event"]

# event type -> (metric, the attributes it always has)
EVENT_METRICS: Mapping[str, tuple[str, Mapping[str, str]]] = {
    "app_start": ("printernizer.app.starts", {}),
    "job_created": ("printernizer.jobs", {"job.status": "created"}),
    "job_completed": ("printernizer.jobs", {"job.status": "completed"}),
    "job_failed": ("printernizer.jobs", {"job.status": "failed"}),
    "file_downloaded": ("printernizer.file.downloads", {}),
    "file_uploaded": ("printernizer.file.uploads", {}),
    "printer_connected": ("printernizer.printer.connections", {"connection.event": "connected"}),
    "printer_disconnected": ("printernizer.printer.connections",
                             {"connection.event": "disconnected"}),
    "error_occurred": ("printernizer.errors", {}),
}
FEATURE_EVENTS = {"feature_enabled": True, "feature_disabled": False}


@dataclass(frozen=True)
class Point:
    """One count of a catalog instrument."""

    metric: str
    unit: str
    attributes: Mapping[str, str] = field(default_factory=dict)


def event_point(catalog: Catalog, event_type: str,
                metadata: Mapping[str, Any] | None) -> Point | None:
    """The catalog point of an event (None: an event that counts nothing, or an unknown type)."""
    spec = EVENT_METRICS.get(event_type)
    metric = catalog.metric(spec[0]) if spec else None
    if spec is None or metric is None:
        return None
    meta = metadata if isinstance(metadata, Mapping) else {}
    wanted: dict[str, object] = dict(spec[1])
    if "printer_type" in meta:
        wanted["printer.type"] = meta["printer_type"]
    if "job_status" in meta and "job.status" not in wanted:
        wanted["job.status"] = job_status(meta["job_status"])
    if event_type == "error_occurred":
        code = meta.get("error_code") or meta.get("error_type") or ""
        wanted.update(error_attributes(str(code)))
    attributes = {key: metric.attributes[key].scrub(value)
                  for key, value in wanted.items() if key in metric.attributes}
    return Point(metric.name, metric.unit, attributes)


def feature_switch(event_type: str, metadata: Mapping[str, Any] | None) -> tuple[str, bool] | None:
    """(catalog feature name, on) of a ``feature_enabled`` / ``feature_disabled`` event."""
    if event_type not in FEATURE_EVENTS or not isinstance(metadata, Mapping):
        return None
    name = feature_name(metadata.get("feature") or metadata.get("feature_name"))
    return None if name is None else (name, FEATURE_EVENTS[event_type])


def known_event(event_type: object) -> str | None:
    """`event_type` (a string or Printernizer's ``EventType``) if it is one of the twelve."""
    value = getattr(event_type, "value", event_type)
    return value if isinstance(value, str) and value in EVENT_TYPES else None
