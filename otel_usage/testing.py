"""The testing API: what tests, benchmarks and simulations need beyond the host's API.

Documented and kept stable like the public API, so that nothing outside the package reaches
into its internals:

- :class:`ManualClock` (also in ``otel_usage``): a clock that moves only when told to; inject
  it with ``UsageTelemetry(..., clock=ManualClock(start))``.
- :func:`week_report`: build and scrub one week's report from an installation's store exactly as
  the sender would, without storing or sending it (to measure or inspect the weekly aggregation).
- :func:`wait_for_uploads`: wait until the sender's background thread has finished the run a
  start or a change of mode woke it for (to look at what it sent, without sleeping).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .clock import ManualClock
from .telemetry import UsageTelemetry
from .weeks import Week

__all__ = ["ManualClock", "WeekReport", "wait_for_uploads", "week_report"]


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


def wait_for_uploads(usage: UsageTelemetry, timeout_s: float = 10.0) -> bool:
    """Wait until `usage`'s background sender is between runs: True once the run in progress
    (or woken, not yet begun) has finished, False when `timeout_s` passed first."""
    return usage.uploads.idle.wait(timeout_s)
