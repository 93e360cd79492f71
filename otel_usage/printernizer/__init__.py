"""Printernizer's switch-over: its vocabulary, its old service and API, its users' old data.

- :mod:`.vocabulary`: its error codes and their categories, job statuses, feature switches and
  version strings, in the catalog's words;
- :class:`UsageStatisticsService`: a drop-in for its ``UsageStatisticsService``, backed by
  :class:`~otel_usage.UsageTelemetry` (one store, one switch, shared with the privacy page);
- :func:`migrate_printernizer_database`: its old ``usage_events`` / ``usage_settings``, moved
  into the local store once, at start;
- :class:`AsyncSource`: what its async services know, observed from the reader's thread;
- :mod:`otel_usage.printernizer.api`: its ``/api/v1/usage-stats`` router (the ``web`` extra).
"""

from .migration import MigrationResult, migrate_printernizer_database
from .observe import AsyncSource
from .service import LocalStats, OptInResponse, RecordedEvent, UsageStatisticsService
from .vocabulary import (
    error_attributes,
    feature_name,
    features_from_settings,
    job_status,
    normalise_version,
)

__all__ = [
    "AsyncSource",
    "LocalStats",
    "MigrationResult",
    "OptInResponse",
    "RecordedEvent",
    "UsageStatisticsService",
    "error_attributes",
    "feature_name",
    "features_from_settings",
    "job_status",
    "migrate_printernizer_database",
    "normalise_version",
]
