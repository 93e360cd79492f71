"""The testing API: what tests, benchmarks and simulations need beyond the host's API.

Documented and kept stable like the public API, so that nothing outside the package reaches
into its internals:

- :class:`ManualClock` (also in ``otel_usage``): a clock that moves only when told to; inject
  it with ``UsageTelemetry(..., clock=ManualClock(start))``.
- :func:`week_report`: build and scrub one week's report from an installation's store exactly as
  the sender would, without storing or sending it (to measure or inspect the weekly aggregation).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .clock import ManualClock
from .telemetry import UsageTelemetry
from .weeks import Week

__all__ = ["ManualClock", "WeekReport", "week_report"]


@dataclass(frozen=True)
class WeekReport:
    """A built report: its week, the gzipped protobuf body that would leave, how many points
    it holds, and its readable rendering."""

    week: Week
    body: bytes
    points: int
    rendering: dict[str, Any]


def week_report(usage: UsageTelemetry, week: Week,
                consent_version: int | None = None) -> WeekReport:
    """`week`'s report from `usage`'s store, scrubbed for `consent_version` (default: the
    catalog's version), with the resource attributes the sender would give it."""
    from .report.build import build_report

    version = usage.catalog.version if consent_version is None else consent_version
    with usage.store.read() as tx:
        installation_id = tx.meta("installation_id") or ""
        resource = usage.uploads.resource(installation_id)
        report = build_report(tx, usage.catalog, week, version, resource)
    return WeekReport(week, report.body, report.points, report.rendering)
