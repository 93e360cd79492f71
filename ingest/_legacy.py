"""The legacy submission: what Printernizer versions in the field send today, for a transition
period the maintainers set.

`POST /submit` with the shared `X-API-Key` and a JSON summary (`schema_version` "1.0", see
`../shared/printernizer-notes.md`), and `DELETE /installation/{id}`. A summary is decoded
strictly (JSON object, known keys only, integers where counts belong, bounded maps) and mapped
onto what an OTLP report of the catalog's version 1 (what the old feature sent) says of the same
installation and week; that report then passes the same validation as every OTLP report
(`_validate.validate`), so it lands in the same weekly row and the same views.

Kept: only catalog values. Free-form maps are filtered in Printernizer's words
(`otel_usage.printernizer.vocabulary`: its error codes give `error.type` and `error.category`,
its feature switches by every name it uses give `feature.name`); printer types and error
types outside the catalog become its "other", feature switches outside it are dropped;
versions are cut to their release (`2.42.0-3-gbe0da09` -> `2.42.0`), the platform string to
its OS family and architecture, and the rest is dropped unread beyond its type: timestamps
other than the period, `first_seen`, printer type lists. Nothing personal is stored: no
address, no free text, no host name.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.metrics.v1.metrics_pb2 import AggregationTemporality

from otel_usage.catalog import Catalog
from otel_usage.printernizer.vocabulary import error_attributes, feature_name
from otel_usage.weeks import Week

from ._errors import InvalidReport, MalformedBody, Problem
from ._validate import INSTALLATION_KEY, Accepted, Limits, validate

__all__ = ["CATALOG_VERSION", "LEGACY_CREDENTIAL", "check_catalog", "parse", "to_report"]

# The credential column of an installation known only from legacy submissions: no SHA-256
# (64 hex digits) is ever equal to it, so no OTLP credential matches it by accident.
LEGACY_CREDENTIAL = "legacy"
# A legacy summary stands for a report of the catalog's version 1: what the old feature sent.
CATALOG_VERSION = 1
SCHEMA_VERSION = "1.0"
_DELTA = AggregationTemporality.AGGREGATION_TEMPORALITY_DELTA
_MAX_ENTRIES = 64  # entries of a free-form map, items of a list
_MAX_TEXT = 128  # characters of any string
_MAX_PERIOD = timedelta(days=7, hours=1)
_HOURS_IN_WEEK = 7 * 24

# The summary's shape: every key it may have, and whether it must.
_SECTIONS: dict[str, dict[str, bool]] = {
    "installation": {"installation_id": True, "first_seen": False, "app_version": True,
                     "python_version": True, "platform": True, "deployment_mode": True,
                     "country_code": False},
    "period": {"start": True, "end": True, "duration_days": False},
    "printer_fleet": {"printer_count": False, "printer_types": False,
                      "printer_type_counts": False},
    "usage_stats": {"job_count": False, "file_count": False, "upload_count": False,
                    "uptime_hours": False, "feature_usage": False},
}
_TOP = {"schema_version": True, "submission_timestamp": False, "installation": True,
        "period": True, "printer_fleet": False, "usage_stats": False, "error_summary": False}

# What the old feature's numbers are in the catalog's words (version 1 metrics).
JOBS, DOWNLOADS, UPLOADS = "printernizer.jobs", "printernizer.file.downloads", \
    "printernizer.file.uploads"
PRINTERS, FEATURES, ERRORS, UPTIME = ("printernizer.printers", "printernizer.features.enabled",
                                      "printernizer.errors", "printernizer.uptime")
_JOB_STATUS = ("job.status", "created")  # job_count counts the jobs created
_OS = {"linux": "linux", "darwin": "darwin", "macos": "darwin", "windows": "windows",
       "win32": "windows", "freebsd": "freebsd", "openbsd": "openbsd", "netbsd": "netbsd"}
_ARCH = {"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64",
         "armv7l": "arm32", "armv6l": "arm32", "armhf": "arm32", "i386": "x86", "i686": "x86",
         "ppc64le": "ppc64", "ppc64": "ppc64", "s390x": "s390x", "riscv64": "riscv64"}
_DEPLOYMENT = {"homeassistant": "homeassistant", "home_assistant": "homeassistant",
               "hassio": "homeassistant", "docker": "docker", "pi": "pi",
               "raspberrypi": "pi", "raspberry_pi": "pi", "standalone": "standalone"}
_RELEASE = re.compile(r"v?([0-9]{1,4}\.[0-9]{1,4}\.[0-9]{1,4})(?![0-9])")
_PYTHON = re.compile(r"(3\.[0-9]{1,2}\.[0-9]{1,2})(?![0-9])")
_COUNTRY = re.compile(r"[A-Za-z]{2}")
_TOKENS = re.compile(r"[^A-Za-z0-9_]+")


_VERSION_1: dict[int, tuple[Catalog, Catalog]] = {}


def version_1(catalog: Catalog) -> Catalog:
    """What the catalog's version 1 lets leave (values added later are "other" in it)."""
    cached = _VERSION_1.get(id(catalog))
    if cached is None or cached[0] is not catalog:
        cached = _VERSION_1[id(catalog)] = (catalog, catalog.as_of(CATALOG_VERSION))
    return cached[1]


def check_catalog(catalog: Catalog) -> None:
    """The metrics, attributes and values the mapping names must be in the catalog's version 1
    (raised at start, not on a client's request)."""
    catalog = version_1(catalog)
    needed = {JOBS: {"job.status"}, DOWNLOADS: set(), UPLOADS: set(), UPTIME: set(),
              PRINTERS: {"printer.type"}, FEATURES: {"feature.name"},
              ERRORS: {"error.type", "error.category"}}
    for name, attributes in needed.items():
        spec = catalog.metric(name)
        if spec is None or spec.since > CATALOG_VERSION or not attributes <= set(spec.attributes):
            raise ValueError(f"the legacy mapping needs the catalog's version 1 metric {name} "
                             f"with attributes {sorted(attributes)}")
    if not catalog.metrics[JOBS].attributes[_JOB_STATUS[0]].allows(_JOB_STATUS[1]):
        raise ValueError("the legacy mapping names a job status the catalog lacks")


# Decoding -------------------------------------------------------------------------------------

def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise ValueError(f"key {key[:40]!r} appears twice")
        result[key] = value
    return result


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a number")


def parse(data: bytes) -> dict[str, Any]:
    """The summary as a JSON object: UTF-8, no repeated keys, no NaN or Infinity; 400 else."""
    try:
        document = json.loads(data.decode("utf-8"), object_pairs_hook=_no_duplicates,
                              parse_constant=_no_constant)
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise MalformedBody(f"body is not a legacy submission: {exc}") from exc
    if not isinstance(document, dict):
        raise MalformedBody("body is not a legacy submission: a JSON object is expected")
    return document


class _Reader:
    """Reads the summary's fields by their type, collecting every problem."""

    def __init__(self, max_count: int) -> None:
        self.problems: list[Problem] = []
        self.max_count = max_count

    def problem(self, code: str, message: str) -> None:
        self.problems.append(Problem(code, message))

    def section(self, document: Mapping[str, Any], name: str,
                shape: Mapping[str, bool]) -> dict[str, Any]:
        value = document.get(name, {})
        if not isinstance(value, dict):
            self.problem("wrong_type", f"{name} must be an object")
            return {}
        self.keys(value, shape, f"{name}.")
        return value

    def keys(self, value: Mapping[str, Any], shape: Mapping[str, bool], prefix: str) -> None:
        for key in value:
            if key not in shape:
                self.problem("unknown_field", f"{prefix}{key[:40]} is not a field of the "
                                              "legacy submission")
        for key, required in shape.items():
            if required and key not in value:
                self.problem("missing_field", f"{prefix}{key} is required")

    def text(self, value: Any, where: str, *, optional: bool = False) -> str | None:
        if value is None and optional:
            return None
        if not isinstance(value, str) or len(value) > _MAX_TEXT:
            self.problem("wrong_type", f"{where} must be a string of at most {_MAX_TEXT} "
                                       "characters")
            return None
        return value

    def count(self, value: Any, where: str, ceiling: int | None = None) -> int | None:
        """A non-negative integer up to `ceiling` (the catalog's largest weekly value)."""
        top = self.max_count if ceiling is None else ceiling
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int):
            self.problem("wrong_type", f"{where} must be an integer")
            return None
        if not 0 <= value <= top:
            self.problem("value_out_of_range", f"{where} must be from 0 to {top}")
            return None
        return value

    def number(self, value: Any, where: str, top: float) -> float | None:
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(
                value):
            self.problem("wrong_type", f"{where} must be a number")
            return None
        if not 0 <= value <= top:
            self.problem("value_out_of_range", f"{where} must be from 0 to {top:g}")
            return None
        return float(value)

    def mapping(self, value: Any, where: str) -> dict[str, Any]:
        if value is None:
            return {}
        if not isinstance(value, dict) or len(value) > _MAX_ENTRIES:
            self.problem("wrong_type", f"{where} must be an object of at most {_MAX_ENTRIES} "
                                       "entries")
            return {}
        if any(len(key) > _MAX_TEXT for key in value):
            self.problem("wrong_type", f"{where} has a key over {_MAX_TEXT} characters")
            return {}
        return value

    def moment(self, value: Any, where: str) -> datetime | None:
        text = self.text(value, where)
        if text is None:
            return None
        try:
            moment = datetime.fromisoformat(text)
        except ValueError:
            self.problem("wrong_type", f"{where} must be an ISO 8601 time")
            return None
        return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


# Mapping ----------------------------------------------------------------------------------------

Data = dict[str, dict[tuple[tuple[str, str], ...], int]]


def to_report(document: Mapping[str, Any], catalog: Catalog, limits: Limits) -> Accepted:
    """The summary as the week's report of the catalog's version 1 (values added later are its
    "other"), validated as an OTLP report is; InvalidReport listing every problem (nothing is
    stored then)."""
    catalog = version_1(catalog)
    reader = _Reader(catalog.protocol.max_counter_value)
    reader.keys(document, _TOP, "")
    if "schema_version" in document and document["schema_version"] != SCHEMA_VERSION:
        reader.problem("schema_version", f"schema_version must be {SCHEMA_VERSION!r}")
    reader.text(document.get("submission_timestamp"), "submission_timestamp", optional=True)
    installation = reader.section(document, "installation", _SECTIONS["installation"])
    period = reader.section(document, "period", _SECTIONS["period"])
    fleet = reader.section(document, "printer_fleet", _SECTIONS["printer_fleet"])
    usage = reader.section(document, "usage_stats", _SECTIONS["usage_stats"])
    resource = _resource(installation, reader, catalog)
    week = _week(period, reader)
    data: Data = {}
    _fleet(fleet, reader, catalog, data)
    _usage(usage, reader, catalog, data)
    _errors(reader.mapping(document.get("error_summary"), "error_summary"), reader, catalog,
            data)
    if reader.problems:
        raise InvalidReport(reader.problems)
    assert week is not None
    accepted = validate(_request(resource, data, week, catalog), limits)
    if accepted.rejected_points:  # a mapped point the catalog refuses is a mapping's fault
        raise InvalidReport(accepted.problems)
    return accepted


def _resource(installation: Mapping[str, Any], reader: _Reader,
              catalog: Catalog) -> dict[str, str]:
    def field(key: str, *, optional: bool = False) -> str | None:
        return reader.text(installation.get(key), f"installation.{key}", optional=optional)

    reader.text(installation.get("first_seen"), "installation.first_seen", optional=True)
    resource = {"service.name": "printernizer",
                "otel_usage.catalog.version": str(CATALOG_VERSION)}
    installation_id = field("installation_id")
    if installation_id is not None:
        resource[INSTALLATION_KEY] = installation_id  # checked by validation, as in OTLP
    version = field("app_version")
    if version is not None:
        _set(resource, "service.version", _RELEASE.match(version.strip()), reader,
             "installation.app_version must begin with a release such as 2.7.0")
    python = field("python_version")
    if python is not None:
        _set(resource, "process.runtime.version", _PYTHON.match(python.strip()), reader,
             "installation.python_version must begin with a version such as 3.11.7")
    platform = field("platform")
    if platform is not None:
        tokens = [t.lower() for t in _TOKENS.split(platform) if t]
        os_type = next((_OS[t] for t in tokens if t in _OS), None)
        resource["os.type"] = os_type or catalog.policy.other_value
        arch = next((_ARCH[t] for t in tokens if t in _ARCH), None)
        if arch is not None and "host.arch" in catalog.resource:
            resource["host.arch"] = arch
    mode = field("deployment_mode")
    if mode is not None:
        resource["printernizer.deployment.mode"] = _DEPLOYMENT.get(
            mode.strip().lower().replace("-", "_"), catalog.policy.other_value)
    country = field("country_code", optional=True)
    if country is not None and _COUNTRY.fullmatch(country.strip()):
        resource["geo.country.iso_code"] = country.strip().upper()
    return resource


def _set(resource: dict[str, str], key: str, match: re.Match[str] | None, reader: _Reader,
         message: str) -> None:
    if match is None:
        reader.problem("value_not_allowed", message)
    else:
        resource[key] = match.group(1)


def _week(period: Mapping[str, Any], reader: _Reader) -> Week | None:
    """The ISO week holding the middle of the period (a period of at most a week)."""
    start = reader.moment(period.get("start"), "period.start")
    end = reader.moment(period.get("end"), "period.end")
    reader.number(period.get("duration_days"), "period.duration_days", 7.0)
    if start is None or end is None:
        return None
    if not timedelta(0) < end - start <= _MAX_PERIOD:
        reader.problem("period", "period must end after it starts, at most 7 days later")
        return None
    return Week.of(start + (end - start) / 2)


def _add(data: Data, metric: str, attributes: dict[str, str], value: int) -> None:
    series = data.setdefault(metric, {})
    key = tuple(sorted(attributes.items()))
    series[key] = series.get(key, 0) + value


def _fleet(fleet: Mapping[str, Any], reader: _Reader, catalog: Catalog, data: Data) -> None:
    reader.count(fleet.get("printer_count"), "printer_fleet.printer_count")
    types = fleet.get("printer_types")
    if types is not None and (not isinstance(types, list) or len(types) > _MAX_ENTRIES
                              or not all(isinstance(t, str) and len(t) <= _MAX_TEXT
                                         for t in types)):
        reader.problem("wrong_type", f"printer_fleet.printer_types must be a list of at most "
                                     f"{_MAX_ENTRIES} strings")
    printer_type = catalog.metrics[PRINTERS].attributes["printer.type"]
    counts = reader.mapping(fleet.get("printer_type_counts"), "printer_fleet.printer_type_counts")
    for name, value in counts.items():
        count = reader.count(value, "printer_fleet.printer_type_counts values")
        if count is not None:
            _add(data, PRINTERS, {"printer.type": printer_type.scrub(name.lower())}, count)
    _cap(data, PRINTERS, reader, catalog.protocol.max_counter_value)


def _cap(data: Data, metric: str, reader: _Reader, ceiling: int) -> None:
    """Values summed into "other" stay within the catalog's range too."""
    if any(value > ceiling for value in data.get(metric, {}).values()):
        reader.problem("value_out_of_range", f"{metric} sums to more than {ceiling}")


def _usage(usage: Mapping[str, Any], reader: _Reader, catalog: Catalog, data: Data) -> None:
    counters: list[tuple[str, str, dict[str, str]]] = [
        ("job_count", JOBS, dict([_JOB_STATUS])), ("file_count", DOWNLOADS, {}),
        ("upload_count", UPLOADS, {})]
    for key, metric, attributes in counters:
        count = reader.count(usage.get(key), f"usage_stats.{key}")
        if count is not None:
            _add(data, metric, attributes, count)
    hours = reader.number(usage.get("uptime_hours"), "usage_stats.uptime_hours", _HOURS_IN_WEEK)
    if hours is not None:  # the days it ran at least: a day of uptime per 24 hours begun
        _add(data, UPTIME, {}, min(7, math.ceil(hours / 24)))
    features = reader.mapping(usage.get("feature_usage"), "usage_stats.feature_usage")
    allowed = catalog.metrics[FEATURES].attributes["feature.name"]
    for name, enabled in features.items():
        if not isinstance(enabled, bool):
            reader.problem("wrong_type", "usage_stats.feature_usage values must be true or false")
            continue
        feature = feature_name(name)
        if feature is not None and feature in (allowed.values or ()):  # others are dropped
            key = (("feature.name", feature),)
            series = data.setdefault(FEATURES, {})
            series[key] = max(int(enabled), series.get(key, 0))


def _errors(summary: Mapping[str, Any], reader: _Reader, catalog: Catalog, data: Data) -> None:
    """Error counts by Printernizer's error code (or a catalog error type), with its
    category; anything else is counted as "other" / "unknown"."""
    spec = catalog.metrics[ERRORS].attributes
    for name, value in summary.items():
        count = reader.count(value, "error_summary values")
        if count is not None:
            attributes = error_attributes(name)
            _add(data, ERRORS, {key: spec[key].scrub(attributes[key]) for key in
                                ("error.category", "error.type")}, count)
    _cap(data, ERRORS, reader, catalog.protocol.max_counter_value)


def _request(resource: Mapping[str, str], data: Data, week: Week,
             catalog: Catalog) -> ExportMetricsServiceRequest:
    """The OTLP request an upgraded client would send for the same numbers."""
    message = ExportMetricsServiceRequest()
    rm = message.resource_metrics.add()
    rm.resource.attributes.extend(_kvs(resource))
    scope = rm.scope_metrics.add()
    scope.scope.name = "otel_usage.legacy"
    for name, series in data.items():
        metric = scope.metrics.add()
        metric.name = name
        spec = catalog.metrics[name]
        if spec.is_sum:
            metric.sum.aggregation_temporality = _DELTA
            metric.sum.is_monotonic = True
            points: Callable[[], Any] = metric.sum.data_points.add
        else:
            points = metric.gauge.data_points.add
        for attributes, value in series.items():
            point = points()
            point.start_time_unix_nano, point.time_unix_nano = week.start_nanos, week.end_nanos
            point.as_int = value
            point.attributes.extend(_kvs(dict(attributes)))
    return message


def _kvs(values: Mapping[str, str]) -> list[KeyValue]:
    return [KeyValue(key=k, value=AnyValue(string_value=v)) for k, v in values.items()]
