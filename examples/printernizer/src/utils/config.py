"""Its settings as ``get_settings()`` returns them (pydantic-settings there; read from the
environment on every call here, so that each test's ``DATABASE_PATH`` holds)."""

from __future__ import annotations

import os
from dataclasses import dataclass


@dataclass
class PrinternizerSettings:
    """What the switch-over touches: the database, the feature switches, the old sender."""

    database_path: str = "data/printernizer.db"
    library_enabled: bool = True
    timelapse_enabled: bool = False
    job_creation_auto_create: bool = True
    enable_german_compliance: bool = False
    watch_folders_enabled: bool = False
    usage_stats_endpoint: str = "http://usage.invalid/api/v1"
    usage_stats_api_key: str = ""
    usage_stats_retry_count: int = 3
    usage_stats_submission_interval_days: int = 7
    usage_stats_timeout: int = 10


def get_settings() -> PrinternizerSettings:
    return PrinternizerSettings(
        database_path=os.environ.get("DATABASE_PATH", PrinternizerSettings.database_path))
