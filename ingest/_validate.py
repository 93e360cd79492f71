"""Checks a decoded request against the catalog and turns it into reports to store.

Every problem is collected, not only the first (Go telemetry's upload handler does the same).
Problems with the resource or the week refuse the whole request (400); problems with single
points refuse only those points (OTLP `partial_success`), unless no point is left.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime

from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
)
from opentelemetry.proto.common.v1.common_pb2 import KeyValue
from opentelemetry.proto.metrics.v1.metrics_pb2 import (
    AggregationTemporality,
    Metric as OtlpMetric,
    NumberDataPoint,
    ResourceMetrics,
)

from otel_usage.catalog import Attribute, Catalog, Metric

from . import _weeks
from ._errors import InvalidReport, Problem

# The OpenTelemetry semantic convention that carries the random installation id (DESIGN.md).
INSTALLATION_KEY = "service.instance.id"
_DELTA = AggregationTemporality.AGGREGATION_TEMPORALITY_DELTA
_DAYS_IN_WEEK = 7
_MAX_MESSAGES = 20


@dataclass(frozen=True)
class Point:
    metric: str
    attributes: tuple[tuple[str, str], ...]
    value: int


@dataclass(frozen=True)
class Report:
    """One installation-week, as stored."""

    installation_id: str
    week_start: datetime
    resource: dict[str, str]
    points: tuple[Point, ...]

    def resource_json(self) -> str:
        return json.dumps(self.resource, sort_keys=True, separators=(",", ":"))

    def points_json(self) -> str:
        rows = [[p.metric, dict(p.attributes), p.value] for p in self.points]
        return json.dumps(rows, separators=(",", ":"))


@dataclass
class Accepted:
    """What a valid request holds: reports, and the points refused on the way."""

    installation_id: str
    reports: list[Report]
    rejected_points: int = 0
    problems: list[Problem] = field(default_factory=list)

    @property
    def error_message(self) -> str:
        return "; ".join(p.message for p in self.problems[:_MAX_MESSAGES])


@dataclass(frozen=True)
class Limits:
    catalog: Catalog
    now_s: float
    retention_months: int
    clock_skew_s: int

    @property
    def oldest_week(self) -> datetime:
        return _weeks.retention_cutoff(self.now_s, self.retention_months)

    @property
    def newest_week(self) -> datetime:
        return _weeks.week_of(_weeks.utc_now(self.now_s + self.clock_skew_s))


def validate(request: ExportMetricsServiceRequest, limits: Limits) -> Accepted:
    """The request's reports, or InvalidReport listing every problem."""
    problems: list[Problem] = []
    if not request.resource_metrics:
        raise InvalidReport([Problem("empty", "request holds no resource_metrics")])
    reports: list[Report] = []
    point_problems: list[Problem] = []
    rejected = 0
    for rm in request.resource_metrics:
        report, refused, rm_problems = _resource_metrics(rm, limits, point_problems)
        problems.extend(rm_problems)
        rejected += refused
        if report is not None:
            reports.append(report)
    problems.extend(_request_problems(reports))
    if problems:
        raise InvalidReport(problems)
    if not any(r.points for r in reports):
        raise InvalidReport(point_problems or [Problem("empty", "no data points")])
    kept = [r for r in reports if r.points]
    return Accepted(kept[0].installation_id, kept, rejected, point_problems)


def _request_problems(reports: list[Report]) -> list[Problem]:
    problems = []
    if len({r.installation_id for r in reports}) > 1:
        problems.append(Problem("mixed_installations", "one request must hold one installation"))
    weeks = [r.week_start for r in reports]
    if len(set(weeks)) != len(weeks):
        problems.append(Problem("duplicate_week", "a week appears twice in one request"))
    return problems


def _resource_metrics(
    rm: ResourceMetrics, limits: Limits, point_problems: list[Problem]
) -> tuple[Report | None, int, list[Problem]]:
    resource, problems = _resource(rm.resource.attributes, limits.catalog)
    otlp_points = [(m, p) for sm in rm.scope_metrics for m in sm.metrics for p in _points(m)]
    week, week_problems = _week([p for _, p in otlp_points], limits)
    problems.extend(week_problems)
    if problems or week is None:
        return None, 0, problems
    points, refused = _catalog_points(otlp_points, limits, point_problems)
    installation = resource[INSTALLATION_KEY]
    return Report(installation, week, resource, tuple(points)), refused, []


def _resource(attributes: Iterable[KeyValue], catalog: Catalog) -> tuple[dict[str, str], list[Problem]]:
    resource: dict[str, str] = {}
    problems = []
    for kv in attributes:
        spec = catalog.resource.get(kv.key)
        value = _string(kv)
        if spec is None:
            problems.append(Problem("unknown_resource_attribute", f"resource attribute {kv.key!r} is not in the catalog"))
        elif kv.key in resource:
            problems.append(Problem("duplicate_attribute", f"resource attribute {kv.key!r} appears twice"))
        elif value is None or not spec.allows(value):
            problems.append(_value_problem("resource attribute", kv.key, spec))
        else:
            resource[kv.key] = value
    for key in catalog.required_resource_keys:
        if key not in resource and not any(p.message.startswith(f"resource attribute {key!r}") for p in problems):
            problems.append(Problem("missing_resource_attribute", f"resource attribute {key!r} is required"))
    return resource, problems


def _value_problem(what: str, key: str, spec: Attribute) -> Problem:
    return Problem("value_not_allowed", f"{what} {key!r} must be a string of {spec.describe_values()}")


def _string(kv: KeyValue) -> str | None:
    if kv.value.WhichOneof("value") != "string_value":
        return None
    return kv.value.string_value


def _points(metric: OtlpMetric) -> Iterable[NumberDataPoint]:
    kind = metric.WhichOneof("data")
    if kind == "sum":
        return metric.sum.data_points
    if kind == "gauge":
        return metric.gauge.data_points
    return ()


def _week(points: list[NumberDataPoint], limits: Limits) -> tuple[datetime | None, list[Problem]]:
    if not points:
        return None, [Problem("empty", "a resource_metrics holds no number data points")]
    spans = {(p.start_time_unix_nano, p.time_unix_nano) for p in points}
    if len(spans) != 1:
        return None, [Problem("mixed_weeks", "all points of a resource_metrics must cover one week")]
    start, end = spans.pop()
    if not _weeks.is_week_start(start) or end - start != _weeks.WEEK_NS:
        return None, [Problem("week_not_aligned", "points must run from a Monday 00:00 UTC to the next")]
    week = _weeks.from_unix_ns(start)
    if week > limits.newest_week:
        return None, [Problem("week_in_future", f"week {week.date()} has not begun")]
    if week < limits.oldest_week:
        return None, [Problem("week_too_old", f"week {week.date()} is older than the retention")]
    return week, []


def _catalog_points(
    otlp_points: list[tuple[OtlpMetric, NumberDataPoint]], limits: Limits, problems: list[Problem]
) -> tuple[list[Point], int]:
    points: list[Point] = []
    seen: set[tuple[str, tuple[tuple[str, str], ...]]] = set()
    for metric, otlp_point in otlp_points:
        point, problem = _point(metric, otlp_point, limits)
        if point is not None and (point.metric, point.attributes) in seen:
            point, problem = None, Problem("duplicate_point", f"metric {metric.name!r} repeats a point")
        if point is None:
            assert problem is not None
            problems.append(problem)
            continue
        seen.add((point.metric, point.attributes))
        points.append(point)
    return points, len(otlp_points) - len(points)


def _point(metric: OtlpMetric, point: NumberDataPoint, limits: Limits) -> tuple[Point | None, Problem | None]:
    spec = limits.catalog.metric(metric.name)
    if spec is None:
        return None, Problem("unknown_metric", f"metric {metric.name!r} is not in the catalog")
    problem = _kind_problem(metric, spec) or _value_problem_of(point, spec, limits)
    if problem is not None:
        return None, problem
    attributes: dict[str, str] = {}
    for kv in point.attributes:
        attr = spec.attributes.get(kv.key)
        value = _string(kv)
        if attr is None:
            return None, Problem("unknown_attribute", f"metric {spec.name!r} has no attribute {kv.key!r}")
        if kv.key in attributes:
            return None, Problem("duplicate_attribute", f"metric {spec.name!r} repeats {kv.key!r}")
        if value is None or not attr.allows(value):
            return None, _value_problem(f"metric {spec.name!r} attribute", kv.key, attr)
        attributes[kv.key] = value
    return Point(spec.name, tuple(sorted(attributes.items())), point.as_int), None


def _kind_problem(metric: OtlpMetric, spec: Metric) -> Problem | None:
    kind = metric.WhichOneof("data")
    if spec.is_sum:
        ok = kind == "sum" and metric.sum.aggregation_temporality == _DELTA and metric.sum.is_monotonic
        expected = "a monotonic delta Sum"
    else:
        ok, expected = kind == "gauge", "a Gauge"
    return None if ok else Problem("wrong_kind", f"metric {spec.name!r} must be {expected}")


def _value_problem_of(point: NumberDataPoint, spec: Metric, limits: Limits) -> Problem | None:
    if point.WhichOneof("value") != "as_int":
        return Problem("not_an_integer", f"metric {spec.name!r} takes as_int values")
    ceiling = _DAYS_IN_WEEK if spec.weekly == "days" else limits.catalog.protocol.max_counter_value
    if not 0 <= point.as_int <= ceiling:
        return Problem("value_out_of_range", f"metric {spec.name!r} takes values from 0 to {ceiling}")
    return None
