"""Printernizer's vocabulary in the catalog's words: error codes and their categories, job
statuses, feature switches (with the names its settings and its old submission use), and its
version strings.

Error codes are what Printernizer's ``PrinternizerError`` subclasses carry (``error_code``, made
from the class name in UPPER_SNAKE_CASE without ``Error``); the catalog's ``error.type`` values
are the same codes in lower case, and each code belongs to one ``error.category``:

============================  ===================  ===============================
error class                   error.type           error.category
============================  ===================  ===============================
PrinterNotFoundError          printer_not_found    printer
PrinterConnectionError        printer_connection   printer
PrinterBusyError              printer_busy         printer
PrinterAlreadyExistsError     printer_already_...  printer
PrinterDisconnectedError      printer_disconnected printer
JobNotFoundError              job_not_found        api
JobAlreadyStartedError        job_already_started  validation
JobInvalidStatusError         job_invalid_status   validation
FileNotFoundError             file_not_found       file_operation
FileDownloadError             file_download        file_operation
InvalidFileTypeError          invalid_file_type    validation
FileProcessingError           file_processing      file_operation
MaterialNotFoundError         material_not_found   api
InsufficientMaterialError     insufficient_mat...  validation
LibraryItemNotFoundError      library_item_not...  api
GeneratorError                generator_error      system
ValidationError               validation           validation
ServiceUnavailableError       service_unavailable  system
ConfigurationError            configuration        configuration
DatabaseError                 database             database
FileOperationError            file_operation       file_operation
AuthenticationError           authentication       authentication
AuthorizationError            authorization        authorization
ResourceConflictError         resource_conflict    api
NotFoundError                 not_found            api
============================  ===================  ===============================

The base class ``PrinternizerError`` has no code of its own: it counts as ``system`` /
``unknown``. Errors raised below Printernizer's hierarchy (in the printer drivers and the
FTP/HTTP/MQTT download strategies) are mapped from Python's exception classes
(:data:`BUILTIN_ERRORS`): a timeout is ``network`` / ``connection_timeout``, and so on.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

__all__ = [
    "BUILTIN_ERRORS",
    "ERROR_CODES",
    "EVENT_TYPES",
    "FEATURES",
    "JOB_STATUSES",
    "Feature",
    "error_attributes",
    "error_code",
    "feature_name",
    "features_from_settings",
    "job_status",
    "normalise_version",
]

# Printernizer's 25 error codes and the category (a catalog `error.category` value) of each.
ERROR_CODES: Mapping[str, str] = {
    "PRINTER_NOT_FOUND": "printer",
    "PRINTER_CONNECTION": "printer",
    "PRINTER_BUSY": "printer",
    "PRINTER_ALREADY_EXISTS": "printer",
    "PRINTER_DISCONNECTED": "printer",
    "JOB_NOT_FOUND": "api",
    "JOB_ALREADY_STARTED": "validation",
    "JOB_INVALID_STATUS": "validation",
    "FILE_NOT_FOUND": "file_operation",
    "FILE_DOWNLOAD": "file_operation",
    "INVALID_FILE_TYPE": "validation",
    "FILE_PROCESSING": "file_operation",
    "MATERIAL_NOT_FOUND": "api",
    "INSUFFICIENT_MATERIAL": "validation",
    "LIBRARY_ITEM_NOT_FOUND": "api",
    "GENERATOR_ERROR": "system",
    "VALIDATION": "validation",
    "SERVICE_UNAVAILABLE": "system",
    "CONFIGURATION": "configuration",
    "DATABASE": "database",
    "FILE_OPERATION": "file_operation",
    "AUTHENTICATION": "authentication",
    "AUTHORIZATION": "authorization",
    "RESOURCE_CONFLICT": "api",
    "NOT_FOUND": "api",
}

# Python's own exceptions, as the printer drivers and download strategies meet them: the first
# class in an exception's MRO found here gives (error.category, error.type).
BUILTIN_ERRORS: Mapping[str, tuple[str, str]] = {
    "TimeoutError": ("network", "connection_timeout"),
    "ConnectionRefusedError": ("network", "connection_refused"),
    "ConnectionResetError": ("network", "connection_reset"),
    "ConnectionAbortedError": ("network", "connection_lost"),
    "BrokenPipeError": ("network", "connection_lost"),
    "gaierror": ("network", "dns_resolution_failed"),
    "SSLError": ("network", "tls_handshake_failed"),
    "ConnectionError": ("network", "connection_lost"),
    "PermissionError": ("system", "permission_denied"),
    "FileNotFoundError": ("file_operation", "file_not_found"),
    "error_perm": ("network", "ftp_error"),  # ftplib's permanent and temporary replies
    "error_temp": ("network", "ftp_error"),
    "MQTTException": ("network", "mqtt_error"),
    "HTTPError": ("network", "http_error"),
    "OperationalError": ("database", "database_error"),  # sqlite3, aiosqlite
    "DatabaseError": ("database", "database_error"),
    "RequestValidationError": ("validation", "invalid_input"),  # FastAPI's, answered 422
}

# An ``HTTPException`` (FastAPI's or Starlette's, answered by its ``http_exception_handler``)
# by its status code; any other status is an ``http_error`` of the API.
HTTP_STATUS_ERRORS: Mapping[int, tuple[str, str]] = {
    400: ("validation", "invalid_input"),
    401: ("authentication", "authentication_failed"),
    403: ("authorization", "authorization_failed"),
    404: ("api", "not_found"),
    409: ("api", "resource_conflict"),
    413: ("validation", "file_too_large"),
    422: ("validation", "invalid_input"),
    429: ("api", "rate_limited"),
    503: ("system", "service_unavailable"),
    504: ("network", "timeout"),
}

# Its job statuses (``JobStatus``), as the catalog's ``job.status`` values.
JOB_STATUSES = ("pending", "running", "printing", "paused", "completed", "failed", "cancelled",
                "unknown")

# The twelve event types of its old usage-statistics service.
EVENT_TYPES = ("app_start", "app_shutdown", "job_created", "job_completed", "job_failed",
               "file_downloaded", "file_uploaded", "printer_connected", "printer_disconnected",
               "error_occurred", "feature_enabled", "feature_disabled")

_SNAKE_1 = re.compile(r"(.)([A-Z][a-z]+)")
_SNAKE_2 = re.compile(r"([a-z0-9])([A-Z])")
_RELEASE = re.compile(r"^v?(\d{1,4})\.(\d{1,4})(?:\.(\d{1,4}))?(.*)$")


def error_code(exc: BaseException | type[BaseException]) -> str | None:
    """The Printernizer error code of `exc`: its ``error_code``, else the one its class (or the
    nearest base class with a known code) is named after; None outside the hierarchy (classes
    not derived from ``PrinternizerError``)."""
    own = getattr(exc, "error_code", None)
    if isinstance(own, str) and own.upper() in ERROR_CODES:
        return own.upper()
    cls = exc if isinstance(exc, type) else type(exc)
    if not any(k.__name__ == "PrinternizerError" for k in cls.__mro__):
        return None  # another library's DatabaseError is not Printernizer's DATABASE
    for klass in cls.__mro__:
        code = _code_of_class_name(klass.__name__)
        if code in ERROR_CODES:
            return code
    return None


def _code_of_class_name(name: str) -> str:
    """Printernizer's own rule: ``PrinterNotFoundError`` -> ``PRINTER_NOT_FOUND``."""
    if name.endswith("Error") and name != "GeneratorError":
        name = name[:-5]
    return _SNAKE_2.sub(r"\1_\2", _SNAKE_1.sub(r"\1_\2", name)).upper()


def error_attributes(exc: BaseException | str) -> dict[str, str]:
    """The catalog attributes of an error: ``error.category`` and ``error.type``. Takes an
    exception or an error code (``"PRINTER_BUSY"``, ``"printer_busy"``): Printernizer's errors
    by their code, Python's and its drivers' by class, an ``HTTPException`` by its status, a
    request that failed validation as ``invalid_input``, anything else as ``unknown``."""
    if isinstance(exc, str):
        text = exc.strip().lower()
        if text.upper() in ERROR_CODES:
            return {"error.category": ERROR_CODES[text.upper()], "error.type": text}
        for category, type_ in BUILTIN_ERRORS.values():
            if type_ == text:
                return {"error.category": category, "error.type": type_}
        # Scrubbed against the catalog where it is recorded: "other" unless a catalog value.
        return {"error.category": "unknown", "error.type": text or "unknown"}
    code = error_code(exc)
    if code is not None:
        return {"error.category": ERROR_CODES[code], "error.type": code.lower()}
    for klass in type(exc).__mro__:
        if klass.__name__ in BUILTIN_ERRORS:
            category, type_ = BUILTIN_ERRORS[klass.__name__]
            return {"error.category": category, "error.type": type_}
        if klass.__name__ == "HTTPException":
            status = getattr(exc, "status_code", None)
            category, type_ = HTTP_STATUS_ERRORS.get(
                status if isinstance(status, int) else 0, ("api", "http_error"))
            return {"error.category": category, "error.type": type_}
    printernizer = any(k.__name__ == "PrinternizerError" for k in type(exc).__mro__)
    return {"error.category": "system" if printernizer else "unknown", "error.type": "unknown"}


def job_status(status: object) -> str:
    """A ``JobStatus`` (or its value) as the catalog's ``job.status``; "unknown" otherwise."""
    value = getattr(status, "value", status)
    text = str(value).strip().lower() if value is not None else ""
    text = {"canceled": "cancelled", "complete": "completed"}.get(text, text)
    return text if text in JOB_STATUSES else "unknown"


@dataclass(frozen=True)
class Feature:
    """A feature: its catalog name, its switch in Printernizer's settings (None: no switch) and
    its name in the old submission's ``feature_usage``."""

    name: str
    setting: str | None
    legacy: str | None


FEATURES: tuple[Feature, ...] = (
    Feature("library", "library_enabled", "library_enabled"),
    Feature("library_search", None, None),
    Feature("timelapse", "timelapse_enabled", "timelapse_enabled"),
    Feature("auto_job_creation", "job_creation_auto_create", "auto_job_creation_enabled"),
    Feature("german_business", "enable_german_compliance", "german_compliance_enabled"),
    Feature("watch_folders", "watch_folders_enabled", "watch_folders_enabled"),
)
_ALIASES: Mapping[str, str] = {
    alias: f.name for f in FEATURES for alias in (f.name, f.setting, f.legacy) if alias}


def feature_name(name: object) -> str | None:
    """The catalog's name of a feature named by the catalog, a setting or the old submission."""
    if not isinstance(name, str):
        return None
    text = name.strip().lower()
    found = _ALIASES.get(text) or _ALIASES.get(text.removesuffix("_enabled"))
    return found


def features_from_settings(settings: object) -> dict[str, bool]:
    """Which features Printernizer's settings switch on, by catalog name (a settings object or
    a mapping; switches it lacks are left out)."""
    found: dict[str, bool] = {}
    for feature in FEATURES:
        if feature.setting is None:
            continue
        if isinstance(settings, Mapping):
            value: Any = settings.get(feature.setting)
        else:
            value = getattr(settings, feature.setting, None)
        if value is not None:
            found[feature.name] = bool(value)
    return found


def normalise_version(raw: object) -> str:
    """A version as the catalog takes it: the release, plus ``-dev`` for anything built from
    a checkout (``2.42.0-3-gbe0da09``, ``2.42.0-dirty``, ``2.42.0rc1`` -> ``2.42.0-dev``); never a
    commit hash (a bare hash, or no version at all, is ``0.0.0-dev``)."""
    text = str(raw or "").strip()
    match = _RELEASE.match(text)
    if match is None:
        return "0.0.0-dev"
    major, minor, patch, rest = match.groups()
    release = f"{int(major)}.{int(minor)}.{int(patch or 0)}"
    return release if not rest.strip() else f"{release}-dev"
