"""The reporting views: the only part of the store the dashboards read.

This module is plain data so that `dashboards/` can import it without the ingest's
dependencies. The weekly views read only what the publication step made of each closed week
(`ingest/_publish.py`): a week appears once its reporting window has ended (`[policy]
publish_after_days` after it) and never changes after; it counts only established
installations (reports arrived in `[policy] established_weeks` distinct weeks, the first no
later than that week); a row shows only if it holds at least k installations and no group of
fewer than k can be computed from the published rows by subtraction, so some rows of at least
k are left out too (a metric's whole row when almost every installation used it, the larger
values of an attribute when a rare one is left out, ...). Read a missing row as "not
published", never as zero, and do not expect the rows of a partition to add up to its total.

- Weekly views have `week_start`: Monday 00:00 UTC of the ISO week, a naive UTC timestamp
  (DATETIME2 on SQL Server, TIMESTAMP on PostgreSQL, ISO text on SQLite) for Grafana's
  `$__timeFilter(week_start)`.
- `usage_active_installations`: the established installations that reported in the week.
- `usage_resource_attributes`: installations per value of each resource attribute of the
  catalog (`attribute` is its key): versions, deployment modes, platforms (OS, architecture,
  Python), countries, catalog versions.
- `usage_metrics`: per catalog metric and per value of each of its attributes, the installations
  with a positive weekly value and the sum of their values (`total`); the row with
  `attribute = ''` and `value = ''` is the whole metric. Printer types and fleets (the printers
  gauge), jobs, feature adoption (features enabled / used), error types come from here.
- `usage_distributions`: per metric, installations by their weekly total, in buckets that start
  at `bucket_min` (0, 1, 2, 3, 6, 11, 21, 51, ...): fleet sizes, jobs per installation, uptime.
- `usage_submissions`: per UTC `day`, requests by `outcome` (accepted, rejected, throttled) and
  `reason` ('' when accepted in full, 'partial' when some points were refused, 'erasure' for an
  erasure, the refusal's reason otherwise); no identifiers, so no suppression, and today's
  counts grow during the day.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

__all__ = ["DISTRIBUTION_BUCKETS", "VIEWS", "WEEK_COLUMN"]

WEEK_COLUMN = "week_start"

VIEWS: Mapping[str, tuple[str, ...]] = MappingProxyType({
    "usage_active_installations": ("week_start", "installations"),
    "usage_distributions": ("week_start", "metric", "bucket_min", "installations", "total"),
    "usage_metrics": ("week_start", "metric", "attribute", "value", "installations", "total"),
    "usage_resource_attributes": ("week_start", "attribute", "value", "installations"),
    "usage_submissions": ("day", "outcome", "reason", "requests"),
})

# Lower bounds of `usage_distributions`' buckets (`bucket_min`): a bucket holds the weekly
# totals from its bound to the next bound minus one; the last one is open.
DISTRIBUTION_BUCKETS: tuple[int, ...] = (0, 1, 2, 3, 6, 11, 21, 51, 101, 501, 1001, 10001)
