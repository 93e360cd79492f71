"""The reporting views: the only part of the store the dashboards read.

This module is plain data so that `dashboards/` can import it without the ingest's
dependencies. The weekly views read only what the publication step made of each closed week
(`ingest/_publish.py`): a week appears once its reporting window has ended (`[policy]
publish_after_days` after it) and never changes after. Every weekly number comes out of one
differentially private mechanism per week (`ingest/_privacy.py`): it is the true number plus
noise drawn once, so it may be off by a few, even negative, and the rows of a partition need
not add up to its total. Each number has its `_margin`: the half-width of the interval that
holds the true number with 95 % probability. The partitions are the catalog's, so every week
has the same rows (a row for a value nobody has is noise around zero); only Python's minor
versions go through the library's partition selection and show when enough installations
have them. Hiding small noisy values for display is post-processing and costs no privacy.

- Weekly views have `week_start`: Monday 00:00 UTC of the ISO week, a naive UTC timestamp
  (DATETIME2 on SQL Server, TIMESTAMP on PostgreSQL, ISO text on SQLite) for Grafana's
  `$__timeFilter(week_start)`.
- `usage_active_installations`: the installations that reported in the week.
- `usage_resource_attributes`: installations per value of each resource attribute of the
  catalog (`attribute` is its key): versions, deployment modes, platforms (OS, architecture,
  Python), countries, catalog versions.
- `usage_metrics`: per catalog metric and per value of the attributes `[policy.privacy]` breaks
  it down by, the installations with a positive weekly value (`total` NULL); and for the
  metrics whose policy publishes a total, the row with `attribute = ''` and `value = ''`: the
  sum of the installations' weekly totals, each clamped to the policy's bound (`installations`
  NULL). Printer types, jobs by status, feature adoption, error types come from here.
- `usage_distributions`: per metric, installations by their weekly total, in buckets that start
  at `bucket_min` (0, 1, 2, 3, 6, 11, 21, 51, ...): fleet sizes, jobs per installation, uptime.
- `usage_published_weeks`: one row per published week: the day it was published
  (`published_on`, a naive UTC timestamp like `week_start`) and what its one draw cost each
  installation in privacy, by the mechanism's own accounting: `epsilon` at `delta` for the
  week, and `yearly_epsilon` for a year of such weeks composed. The public statistics
  (`ingest/site.py`) list the weeks from here.
- `usage_submissions`: per UTC `day`, requests by `outcome` (accepted, rejected, throttled) and
  `reason` ('' when accepted in full, 'partial' when some points were refused, 'erasure' for an
  erasure, the refusal's reason otherwise); no installation in it, so not part of the
  mechanism: exact, and today's counts grow during the day.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

__all__ = ["DISTRIBUTION_BUCKETS", "VIEWS", "WEEK_COLUMN"]

WEEK_COLUMN = "week_start"

VIEWS: Mapping[str, tuple[str, ...]] = MappingProxyType({
    "usage_active_installations": ("week_start", "installations", "installations_margin"),
    "usage_distributions": ("week_start", "metric", "bucket_min", "installations",
                            "installations_margin"),
    "usage_metrics": ("week_start", "metric", "attribute", "value", "installations",
                      "installations_margin", "total", "total_margin"),
    "usage_published_weeks": ("week_start", "published_on", "epsilon", "delta", "yearly_epsilon"),
    "usage_resource_attributes": ("week_start", "attribute", "value", "installations",
                                  "installations_margin"),
    "usage_submissions": ("day", "outcome", "reason", "requests"),
})

# Lower bounds of `usage_distributions`' buckets (`bucket_min`): a bucket holds the weekly
# totals from its bound to the next bound minus one; the last one is open.
DISTRIBUTION_BUCKETS: tuple[int, ...] = (0, 1, 2, 3, 6, 11, 21, 51, 101, 501, 1001, 10001)
