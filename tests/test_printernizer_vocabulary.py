"""Printernizer's vocabulary in the catalog's words: error codes and categories, job statuses,
feature switches, version strings, and its twelve event types as catalog points."""

from __future__ import annotations

import socket
import sqlite3

import pytest
from fastapi import HTTPException
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

from otel_usage.catalog import load_catalog
from otel_usage.printernizer import (
    error_attributes,
    feature_name,
    features_from_settings,
    job_status,
    normalise_version,
)
from otel_usage.printernizer.events import EVENT_METRICS, Point, event_point, feature_switch
from otel_usage.printernizer.vocabulary import (
    ERROR_CODES,
    EVENT_TYPES,
    FEATURES,
    JOB_STATUSES,
    error_code,
)


# Printernizer's hierarchy as its code has it: the base carries no code of its own, each
# subclass's error_code is made from its class name.
class PrinternizerError(Exception):
    pass


class PrinterConnectionError(PrinternizerError):
    pass


class GeneratorError(PrinternizerError):
    pass


class FileNotFoundError(PrinternizerError):  # Printernizer's own name
    pass


class BambuPrinterConnectionError(PrinterConnectionError):
    """A driver's subclass: counted as its nearest known base."""


def test_printernizers_25_error_codes_each_have_one_of_its_categories() -> None:
    assert len(ERROR_CODES) == 25
    categories = load_catalog().metrics["printernizer.errors"].attributes["error.category"]
    assert set(ERROR_CODES.values()) <= set(categories.values or ()) - {"unknown"}


def test_error_classes_give_category_and_code_as_printernizer_names_them() -> None:
    assert error_attributes(PrinterConnectionError("p1s", "timed out")) == {
        "error.category": "printer", "error.type": "printer_connection"}
    assert error_attributes(BambuPrinterConnectionError()) == {
        "error.category": "printer", "error.type": "printer_connection"}
    assert error_attributes(GeneratorError()) == {
        "error.category": "system", "error.type": "generator_error"}
    assert error_attributes(FileNotFoundError()) == {
        "error.category": "file_operation", "error.type": "file_not_found"}
    assert error_attributes(PrinternizerError("no code")) == {
        "error.category": "system", "error.type": "unknown"}
    assert error_code(PrinterConnectionError) == "PRINTER_CONNECTION"


def test_an_explicit_error_code_wins_over_the_class_name() -> None:
    error = PrinternizerError("busy")
    error.error_code = "PRINTER_BUSY"  # type: ignore[attr-defined]
    assert error_attributes(error) == {"error.category": "printer", "error.type": "printer_busy"}


@pytest.mark.parametrize(("exc", "expected"), [
    (TimeoutError(), ("network", "connection_timeout")),
    (ConnectionRefusedError(), ("network", "connection_refused")),
    (ConnectionResetError(), ("network", "connection_reset")),
    (socket.gaierror(), ("network", "dns_resolution_failed")),
    (PermissionError(), ("system", "permission_denied")),
    (sqlite3.OperationalError("database is locked"), ("database", "database_error")),
    (ValueError("a message that must never leave"), ("unknown", "unknown")),
])
def test_errors_below_the_hierarchy_map_from_pythons_classes(
    exc: BaseException, expected: tuple[str, str],
) -> None:
    assert error_attributes(exc) == {"error.category": expected[0], "error.type": expected[1]}


@pytest.mark.parametrize(("exc", "expected"), [
    (HTTPException(404, "Job not found"), ("api", "not_found")),
    (StarletteHTTPException(401), ("authentication", "authentication_failed")),
    (HTTPException(403), ("authorization", "authorization_failed")),
    (HTTPException(429), ("api", "rate_limited")),
    (HTTPException(503), ("system", "service_unavailable")),
    (HTTPException(418, "a detail that must never leave"), ("api", "http_error")),
    (RequestValidationError([{"loc": ("body", "name"), "msg": "missing"}]),
     ("validation", "invalid_input")),
])
def test_http_errors_by_status_and_failed_validation_as_invalid_input(
    exc: BaseException, expected: tuple[str, str],
) -> None:
    """What its http_exception_handler and validation handler answer is counted too."""
    assert error_attributes(exc) == {"error.category": expected[0], "error.type": expected[1]}


def test_error_codes_as_strings() -> None:
    assert error_attributes("PRINTER_BUSY") == {"error.category": "printer",
                                                "error.type": "printer_busy"}
    assert error_attributes("library_item_not_found") == {"error.category": "api",
                                                          "error.type": "library_item_not_found"}
    assert error_attributes("connection_timeout") == {"error.category": "network",
                                                      "error.type": "connection_timeout"}


def test_job_statuses() -> None:
    class JobStatus:
        value = "printing"

    assert [job_status(s) for s in JOB_STATUSES] == list(JOB_STATUSES)
    assert [job_status(s) for s in (JobStatus(), "PAUSED", "canceled", "exploded", None)] == [
        "printing", "paused", "cancelled", "unknown", "unknown"]


def test_feature_switches_by_every_name_printernizer_uses() -> None:
    catalog_features = load_catalog().metrics["printernizer.features.enabled"].attributes[
        "feature.name"].values
    assert tuple(f.name for f in FEATURES) == catalog_features
    assert [feature_name(n) for n in ("library_enabled", "job_creation_auto_create",
                                      "enable_german_compliance", "german_compliance_enabled",
                                      "auto_job_creation_enabled", "watch_folders", "Timelapse",
                                      "library_search", "vat_rate", 3)] == [
        "library", "auto_job_creation", "german_business", "german_business",
        "auto_job_creation", "watch_folders", "timelapse", "library_search", None, None]


def test_features_from_settings_objects_and_mappings() -> None:
    class Settings:
        library_enabled = True
        timelapse_enabled = False
        job_creation_auto_create = True
        enable_german_compliance = False
        watch_folders_enabled = True
        database_path = "/data/printernizer.db"

    expected = {"library": True, "timelapse": False, "auto_job_creation": True,
                "german_business": False, "watch_folders": True}
    assert features_from_settings(Settings()) == expected
    assert features_from_settings({"library_enabled": 1, "timelapse_enabled": None}) == {
        "library": True}


@pytest.mark.parametrize(("raw", "expected"), [
    ("2.42.0", "2.42.0"),
    ("v2.42.0", "2.42.0"),
    ("2.42", "2.42.0"),
    ("2.42.0-3-gbe0da09", "2.42.0-dev"),
    ("2.42.0-dirty", "2.42.0-dev"),
    ("2.42.0rc1", "2.42.0-dev"),
    ("2.42.0+local.build", "2.42.0-dev"),
    ("be0da09", "0.0.0-dev"),
    ("be0da0912ab34cd56ef78", "0.0.0-dev"),
    ("", "0.0.0-dev"),
    (None, "0.0.0-dev"),
])
def test_versions_are_a_release_and_a_development_marker_never_a_hash(
    raw: str | None, expected: str,
) -> None:
    assert normalise_version(raw) == expected


def test_every_event_metric_and_key_is_in_the_catalog() -> None:
    catalog = load_catalog()
    for metric, attributes in EVENT_METRICS.values():
        assert set(attributes) <= set(catalog.metrics[metric].attributes), metric
    assert set(EVENT_METRICS) | {"app_shutdown", "feature_enabled", "feature_disabled"} == set(
        EVENT_TYPES)


def test_events_become_catalog_points_and_metadata_outside_the_catalog_is_dropped() -> None:
    catalog = load_catalog()
    assert event_point(catalog, "job_completed", {
        "printer_type": "bambu_lab", "duration_seconds": 3600, "file_name": "secret.3mf"}) == \
        Point("printernizer.jobs", "{job}", {"job.status": "completed",
                                             "printer.type": "bambu_lab"})
    assert event_point(catalog, "file_downloaded", {"printer_type": "01S00C123456"}) == Point(
        "printernizer.file.downloads", "{file}", {"printer.type": "other"})
    assert event_point(catalog, "printer_disconnected", None) == Point(
        "printernizer.printer.connections", "{event}", {"connection.event": "disconnected"})
    assert event_point(catalog, "error_occurred", {"error_type": "PRINTER_BUSY",
                                                   "message": "Printer is busy"}) == Point(
        "printernizer.errors", "{error}", {"error.category": "printer",
                                           "error.type": "printer_busy"})
    assert event_point(catalog, "app_shutdown", {}) is None
    assert feature_switch("feature_enabled", {"feature": "library_enabled"}) == (
        "library", True)
    assert feature_switch("feature_disabled", {"feature": "timelapse"}) == ("timelapse", False)
    assert feature_switch("feature_disabled", {"feature": "unknown_thing"}) is None


def test_the_catalog_speaks_printernizers_words_from_version_2() -> None:
    catalog = load_catalog()
    errors = catalog.metrics["printernizer.errors"].attributes["error.type"]
    statuses = catalog.metrics["printernizer.jobs"].attributes["job.status"]
    assert {c.lower() for c in ERROR_CODES} <= set(errors.values or ())
    assert set(JOB_STATUSES) <= set(statuses.values or ())
    assert {c.lower() for c in ERROR_CODES if errors.value_version(c.lower()) == 1} == {
        "printer_busy", "printer_disconnected", "file_not_found", "invalid_file_type",
        "service_unavailable"}
    version = catalog.resource["service.version"]
    assert [version.scrub(normalise_version(v)) for v in ("2.42.0-3-gbe0da09", "2.42.0",
                                                           "be0da09")] == [
        "2.42.0-dev", "2.42.0", "0.0.0-dev"]
