"""Exceptions raised to callers of otel_usage's public functions.

    UsageError                  the root: catch this to catch every error of this library
    ├── InvalidModeError        a mode other than off, local or on, or a catalog version to
    │                           consent to that the catalog does not have
    ├── StoreUnavailableError   the local database cannot be read or written
    ├── TransportError          a report, an erasure request or a public document could not
    │                           be exchanged with the server
    └── PublicStatisticsError   the public statistics that arrived cannot be read (not JSON,
                                a format this version does not know, a field of the wrong kind)

The recording path (the OTel exporter) never raises into the host: it logs instead.
"""

from __future__ import annotations

__all__ = ["InvalidModeError", "PublicStatisticsError", "StoreUnavailableError", "TransportError",
           "UsageError"]


class UsageError(Exception):
    """Root of this library's exceptions."""


class InvalidModeError(UsageError, ValueError):
    """A mode other than off, local or on was given, or a catalog version to consent to that
    the catalog does not have."""


class StoreUnavailableError(UsageError):
    """The local database could not be opened, read or written.

    `kind` names the failure briefly and stably (``corrupt``, ``disk_full``, ``read_only``,
    ``locked``, ...), so that each kind is logged once.
    """

    def __init__(self, message: str, *, kind: str = "unknown") -> None:
        super().__init__(message)
        self.kind = kind


class TransportError(UsageError):
    """A report or an erasure request could not be delivered, or a public document fetched."""


class PublicStatisticsError(UsageError):
    """The public statistics that arrived cannot be read: nothing of them is kept."""
