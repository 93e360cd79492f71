"""The old usage-statistics feature's models: its event types and its opt-in states."""

from __future__ import annotations

from enum import StrEnum


class EventType(StrEnum):
    APP_START = "app_start"
    APP_SHUTDOWN = "app_shutdown"
    JOB_CREATED = "job_created"
    JOB_COMPLETED = "job_completed"
    JOB_FAILED = "job_failed"
    FILE_DOWNLOADED = "file_downloaded"
    FILE_UPLOADED = "file_uploaded"
    PRINTER_CONNECTED = "printer_connected"
    PRINTER_DISCONNECTED = "printer_disconnected"
    ERROR_OCCURRED = "error_occurred"
    FEATURE_ENABLED = "feature_enabled"
    FEATURE_DISABLED = "feature_disabled"


class OptInStatus(StrEnum):
    ENABLED = "enabled"
    DISABLED = "disabled"
