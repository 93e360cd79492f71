"""Checks a decoded request against the catalog and turns it into reports to store.

Every problem is collected, not only the first (Go telemetry's upload handler does the same).
Problems with the resource or the week refuse the whole request (400); problems with single
points refuse only those points (OTLP `partial_success`), unless no point is left. A value
above its metric's `max` is handled as the catalog says, as the client does: clamped to the
max (and said in `partial_success` as a warning) or refused; above the plausible ceiling
(`[protocol] max_counter_value`, 7 for days) it is refused.

Before any of that a request is counted (`count_request`): the catalog bounds what a valid
request can hold (the weeks still open, a resource attribute per key, a point per allowed
attribute set of each metric), and one beyond it is refused at once, before the work its
points would cost. Checking its points then stops once more than `MAX_REFUSED_POINTS` are
refused, and a point's attributes are read only as far as its metric has keys, and one more.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import NamedTuple

from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
)
from opentelemetry.proto.common.v1.common_pb2 import KeyValue
from opentelemetry.proto.metrics.v1.metrics_pb2 import (
    AggregationTemporality,
    ResourceMetrics,
)
from opentelemetry.proto.metrics.v1.metrics_pb2 import (
    Metric as OtlpMetric,
)

from otel_usage.catalog import Attribute, Catalog, Metric
from otel_usage.weeks import WEEK_NS, Week

from ._decode import MAX_KEPT_BYTES, RawPoint, attribute_pairs
from ._errors import SHOWN_PROBLEMS, InvalidReport, Problem, summary

# The OpenTelemetry semantic convention (a service instance's id) that carries the random
# installation id: random, so it names no person or machine.
INSTALLATION_KEY = "service.instance.id"
_DELTA = AggregationTemporality.AGGREGATION_TEMPORALITY_DELTA
_DAYS_IN_WEEK = 7
_LISTED_VALUES = 6
# Refused points are what a client knows and this server does not yet (a newer catalog's
# metrics, keys and values: partial success keeps the rest); a client checks every point
# against its catalog before it sends. A request with more than this many was not made that
# way: it is refused whole, and checking its points stops there.
MAX_REFUSED_POINTS = 64


class Point(NamedTuple):
    """One data point as stored (a tuple: cheap to build)."""

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
        """`[[metric, {attribute: value}, value], ...]`, each metric's name and attribute set
        encoded once per process (they come from the catalog's few values)."""
        return "[" + ",".join(f"[{_json_prefix(p.metric, p.attributes)},{p.value}]"
                              for p in self.points) + "]"


# Point(...) runs a Python-level __new__: building the tuple directly is several times cheaper.
_new_point = tuple.__new__

_PREFIXES: dict[tuple[str, tuple[tuple[str, str], ...]], str] = {}
_MAX_PREFIXES = 10_000


def _json_prefix(metric: str, attributes: tuple[tuple[str, str], ...]) -> str:
    key = (metric, attributes)
    text = _PREFIXES.get(key)
    if text is None:
        if len(_PREFIXES) >= _MAX_PREFIXES:  # pattern attributes could have many values
            _PREFIXES.clear()
        text = _PREFIXES[key] = json.dumps([metric, dict(attributes)], separators=(",", ":"))[1:-1]
    return text


@dataclass
class Accepted:
    """What a valid request holds: reports, the points refused on the way, and the values
    clamped to their metric's max (warnings: the points were kept)."""

    installation_id: str
    reports: list[Report]
    rejected_points: int = 0
    problems: list[Problem] = field(default_factory=list)
    clamped: list[Problem] = field(default_factory=list)

    @property
    def error_message(self) -> str:
        return summary(self.problems + self.clamped)


@dataclass(frozen=True)
class Limits:
    """What validation checks against, at `now_s`: the catalog and the weeks it accepts (those
    whose reporting window of `publish_after_days` after their end is still open, up to the
    week beginning within `clock_skew_s`)."""

    catalog: Catalog
    now_s: float
    publish_after_days: int
    clock_skew_s: int

    @property
    def now(self) -> datetime:
        return datetime.fromtimestamp(self.now_s, UTC)

    @functools.cached_property
    def oldest_week(self) -> datetime:
        """The oldest week still open for reports: it ended less than `publish_after_days`
        ago (the week before it is due for publication, or published)."""
        return Week.of(self.now - timedelta(days=self.publish_after_days)).naive_start

    @functools.cached_property
    def this_week(self) -> datetime:
        return Week.of(self.now).naive_start

    @functools.cached_property
    def newest_week(self) -> datetime:
        return Week.of(self.now + timedelta(seconds=self.clock_skew_s)).naive_start

    @functools.cached_property
    def open_weeks(self) -> int:
        """How many weeks a request may cover: those from `oldest_week` to `newest_week`."""
        return (self.newest_week - self.oldest_week).days // _DAYS_IN_WEEK + 1


def validate(request: ExportMetricsServiceRequest, limits: Limits) -> Accepted:
    """The request's reports, or InvalidReport listing every problem (a request as
    `_decode.parse` gives it: its points are `RawPoint`s)."""
    problems: list[Problem] = []
    if not request.resource_metrics:
        raise InvalidReport([Problem("empty", "request holds no resource_metrics")])
    reports: list[Report] = []
    point_problems: list[Problem] = []
    clamped: list[Problem] = []
    rejected = 0
    for rm in request.resource_metrics:
        report, refused, rm_problems = _resource_metrics(rm, limits, point_problems, clamped)
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
    return Accepted(kept[0].installation_id, kept, rejected, point_problems, clamped)


def _request_problems(reports: list[Report]) -> list[Problem]:
    problems = []
    if len({r.installation_id for r in reports}) > 1:
        problems.append(Problem("mixed_installations", "one request must hold one installation"))
    weeks = [r.week_start for r in reports]
    if len(set(weeks)) != len(weeks):
        problems.append(Problem("duplicate_week", "a week appears twice in one request"))
    return problems


def _resource_metrics(
    rm: ResourceMetrics, limits: Limits, point_problems: list[Problem], clamped: list[Problem]
) -> tuple[Report | None, int, list[Problem]]:
    resource, problems = _resource(rm.resource.attributes, limits.catalog)
    rules = _rules(limits.catalog)
    points: list[Point] = []
    spans: set[tuple[int, int]] = set()
    refused = 0
    for sm in rm.scope_metrics:
        for metric in sm.metrics:
            refused += _metric_points(metric, rules, points, spans, point_problems, clamped)
    week, week_problems = _week(spans, limits)
    problems.extend(week_problems)
    if problems or week is None:
        return None, 0, problems
    refused += _drop_duplicates(points, point_problems)
    installation = resource[INSTALLATION_KEY]
    return Report(installation, week, resource, tuple(points)), refused, []


def _resource(attributes: Iterable[KeyValue],
              catalog: Catalog) -> tuple[dict[str, str], list[Problem]]:
    allowed = _resource_rules(catalog)
    resource: dict[str, str] = {}
    problems = []
    for key, text in [(kv.key, kv.value.string_value) for kv in attributes]:
        rule = allowed.get(key)
        if rule is None:
            problems.append(Problem("unknown_resource_attribute",
                                    f"resource attribute {key!r} is not in the catalog"))
        elif key in resource:
            problems.append(Problem("duplicate_attribute",
                                    f"resource attribute {key!r} appears twice"))
        elif not text or not (text in rule if isinstance(rule, frozenset) else rule(text)):
            problems.append(_value_problem("resource attribute", key, catalog.resource[key]))
        else:
            resource[key] = text
    if len(resource) < len(allowed):
        named = {p.message.split("'")[1] for p in problems}
        for key in catalog.required_resource_keys:
            if key not in resource and key not in named:
                problems.append(Problem("missing_resource_attribute",
                                        f"resource attribute {key!r} is required"))
    return resource, problems


def _value_problem(what: str, key: str, spec: Attribute) -> Problem:
    if spec.values is None or len(spec.values) <= _LISTED_VALUES:
        allowed = spec.describe_values()
    else:
        allowed = f"the catalog's {len(spec.values)} values"
    return Problem("value_not_allowed", f"{what} {key!r} must be a string of {allowed}")


def _week(spans: set[tuple[int, int]], limits: Limits) -> tuple[datetime | None, list[Problem]]:
    if not spans:
        return None, [Problem("empty", "a resource_metrics holds no number data points")]
    if len(spans) != 1:
        return None, [Problem("mixed_weeks",
                              "all points of a resource_metrics must cover one week")]
    start, end = spans.pop()
    aligned = Week.from_start_ns(start)
    if aligned is None or end - start != WEEK_NS:
        return None, [Problem("week_not_aligned",
                              "points must run from a Monday 00:00 UTC to the next")]
    week = aligned.naive_start
    if week > limits.newest_week:
        return None, [Problem("week_in_future", f"week {week.date()} has not begun")]
    if week < limits.oldest_week:
        closed = (week + timedelta(days=_DAYS_IN_WEEK + limits.publish_after_days)).date()
        return None, [Problem("week_too_old", f"week {week.date()} closed for reports on "
                                              f"{closed}, when it is published: a report of "
                                              "it could change nothing")]
    return week, []


# An attribute's check: an enum's values (and "other") as a set, or a pattern's test.
_Allowed = frozenset[str] | Callable[[object], bool]


@dataclass(frozen=True)
class _MetricRules:
    """A catalog metric made quick to check: allowed values as sets, the plausible ceiling
    (above it a value is refused), the largest value kept as it is (the metric's max, at most
    the ceiling), and the attribute sets seen valid, by their bytes (a catalog allows a few
    dozen per metric)."""

    spec: Metric
    values: dict[str, _Allowed]
    ceiling: int
    largest: int
    valid: dict[tuple[bytes, ...], tuple[tuple[str, str], ...]] = field(default_factory=dict)


_RULES: dict[int, tuple[Catalog, dict[str, _MetricRules]]] = {}
_MAX_VALID_SETS = 1_000
_RESOURCE_RULES: dict[int, tuple[Catalog, dict[str, _Allowed]]] = {}


def _resource_rules(catalog: Catalog) -> dict[str, _Allowed]:
    """The catalog's resource attributes made quick to check (enums as sets). The
    installation id must match its pattern: as "other" it would merge every installation
    that sent it into one (a client always has a real id)."""
    cached = _RESOURCE_RULES.get(id(catalog))
    if cached is not None and cached[0] is catalog:
        return cached[1]
    rules = {key: _allowed(attribute) for key, attribute in catalog.resource.items()}
    if INSTALLATION_KEY in catalog.resource:
        rules[INSTALLATION_KEY] = catalog.resource[INSTALLATION_KEY].allows
    _RESOURCE_RULES[id(catalog)] = (catalog, rules)
    return rules


def _allowed(attribute: Attribute) -> _Allowed:
    """What the client's scrubber can send (`Attribute.sendable`): an enum's values and
    "other" as a set; for a pattern, a value it matches or "other"."""
    if attribute.values is None:
        return attribute.sendable
    return frozenset((*attribute.values, attribute.other))


def _rules(catalog: Catalog) -> dict[str, _MetricRules]:
    cached = _RULES.get(id(catalog))
    if cached is not None and cached[0] is catalog:
        return cached[1]
    rules = {}
    for name, spec in catalog.metrics.items():
        values = {key: _allowed(attr) for key, attr in spec.attributes.items()}
        ceiling = _DAYS_IN_WEEK if spec.weekly == "days" else catalog.protocol.max_counter_value
        rules[name] = _MetricRules(spec, values, ceiling, min(spec.max, ceiling))
    _RULES[id(catalog)] = (catalog, rules)
    return rules


def _metric_points(metric: OtlpMetric, rules: dict[str, _MetricRules], points: list[Point],
                   spans: set[tuple[int, int]], problems: list[Problem],
                   clamped: list[Problem]) -> int:
    """Append the metric's valid points (a value above the max clamped, if the catalog says
    so, and noted in `clamped`); the number refused."""
    kind = metric.WhichOneof("data")
    if kind not in _NUMBER_KINDS:  # histograms, summaries: no point type of the catalog
        refused = _other_points(metric, kind)
        _refuse(problems, Problem("wrong_kind", f"metric {metric.name!r} sends {kind} points, "
                                  "which the catalog has none of"), refused)
        return refused
    data: Sequence[RawPoint] = (metric.sum.data_points if kind == "sum"
                                else metric.gauge.data_points)
    rule = rules.get(metric.name)
    problem = (Problem("unknown_metric", f"metric {metric.name!r} is not in the catalog")
               if rule is None else _kind_problem(metric, kind, rule.spec))
    if problem is not None:
        read = _most_keys(rules) + 1
        for point in data:  # their week still counts: a request covers one week
            spans.add((point.start_time_unix_nano, point.time_unix_nano))
            attribute_pairs(point.attributes[:read])  # a body that does not parse: refused
        _refuse(problems, problem, len(data))
        return len(data)
    assert rule is not None
    # The per-point work is most of a report's validation: a point whose attributes' bytes
    # were seen valid before, with an integer in range, is taken here; any other goes
    # through `_point`, which says what is wrong or remembers its attributes as valid.
    name, valid, largest, keys = rule.spec.name, rule.valid, rule.largest, len(rule.values)
    refused = 0
    start = end = -1
    for point in data:
        if point.start_time_unix_nano != start or point.time_unix_nano != end:
            start, end = point.start_time_unix_nano, point.time_unix_nano
            spans.add((start, end))
        raw = point.attributes
        attributes = valid.get(tuple(raw)) if len(raw) <= keys else None
        value = point.as_int
        if attributes is not None and 0 <= value <= largest and point.HasField("as_int"):
            points.append(_new_point(Point, (name, attributes, value)))
            continue
        checked = _point(point, rule)
        if isinstance(checked, Problem):
            _refuse(problems, checked)
            refused += 1
        else:
            points.append(checked)
            if checked.value != point.as_int:
                clamped.append(Problem("value_clamped", f"metric {name!r} takes values up to "
                                       f"{checked.value}: {point.as_int} was stored as "
                                       f"{checked.value}"))
    return refused


_NUMBER_KINDS = frozenset(("sum", "gauge"))


def _other_points(metric: OtlpMetric, kind: str | None) -> int:
    """How many points a metric of another kind (or none) carries."""
    if kind is None:
        return 0
    return len(getattr(metric, kind).data_points)


def _point(point: RawPoint, rule: _MetricRules) -> Point | Problem:
    name = rule.spec.name
    # Read as far as the metric has keys and one more: beyond that a key must be unknown or
    # repeated, and the point is refused for what was read. First, so that a body that does
    # not parse (as far as it is read) is refused whole.
    encoded = tuple(point.attributes[:len(rule.values) + 1])
    pairs = attribute_pairs(encoded)
    if not point.HasField("as_int"):
        return Problem("not_an_integer", f"metric {name!r} takes as_int values")
    value = point.as_int
    accepted = rule.ceiling if rule.spec.out_of_range == "clamp" else rule.largest
    if not 0 <= value <= accepted:
        return Problem("value_out_of_range", f"metric {name!r} takes values from 0 to {accepted}")
    value = min(value, rule.largest)  # the catalog's clamp, as the client applies it
    # A value that is not a string reads as "", which is never allowed.
    for key, text in pairs:
        allowed = rule.values.get(key)
        if allowed is None:
            return Problem("unknown_attribute", f"metric {name!r} has no attribute {key!r}")
        if not text or not (text in allowed if isinstance(allowed, frozenset)
                            else allowed(text)):
            return _value_problem(f"metric {name!r} attribute", key, rule.spec.attributes[key])
    if len(pairs) > 1:
        pairs.sort()
        if len({key for key, _ in pairs}) < len(pairs):
            return Problem("duplicate_attribute", f"metric {name!r} repeats an attribute")
    attributes = tuple(pairs)
    if all(len(one) <= MAX_KEPT_BYTES for one in encoded):  # the bytes are the client's:
        if len(rule.valid) >= _MAX_VALID_SETS:  # bounded in number and in size
            rule.valid.clear()
        rule.valid[encoded] = attributes
    return _new_point(Point, (name, attributes, value))


def _drop_duplicates(points: list[Point], problems: list[Problem]) -> int:
    seen: set[tuple[str, tuple[tuple[str, str], ...]]] = set()
    kept = []
    for point in points:
        key = (point.metric, point.attributes)
        if key in seen:
            _refuse(problems, Problem("duplicate_point",
                                      f"metric {point.metric!r} repeats a point"))
            continue
        seen.add(key)
        kept.append(point)
    refused = len(points) - len(kept)
    points[:] = kept
    return refused


def _kind_problem(metric: OtlpMetric, kind: str, spec: Metric) -> Problem | None:
    if spec.is_sum:
        ok = (kind == "sum" and metric.sum.aggregation_temporality == _DELTA
              and metric.sum.is_monotonic)
        expected = "a monotonic delta Sum"
    else:
        ok, expected = kind == "gauge", "a Gauge"
    return None if ok else Problem("wrong_kind", f"metric {spec.name!r} must be {expected}")


def _refuse(problems: list[Problem], problem: Problem, points: int = 1) -> None:
    """Note `points` refused for `problem`; beyond `MAX_REFUSED_POINTS` the whole request is
    refused (InvalidReport), and nothing more is checked."""
    problems.extend(problem for _ in range(min(points, MAX_REFUSED_POINTS + 1)))
    if len(problems) > MAX_REFUSED_POINTS:
        raise InvalidReport([Problem(
            "too_many_refused_points", f"more than {MAX_REFUSED_POINTS} points are refused: "
            "a report checked against the catalog holds none"), *problems[:SHOWN_PROBLEMS - 1]])


def _most_keys(rules: dict[str, _MetricRules]) -> int:
    return max((len(rule.values) for rule in rules.values()), default=0)


# Counting before checking ----------------------------------------------------------------


@dataclass(frozen=True)
class _Bounds:
    """What a valid week of a report can hold, by the catalog: resource attributes, metrics,
    and points of each metric (one per allowed attribute set: each key absent or one of its
    values or "other"; a key with a pattern bounds nothing)."""

    resource_attributes: int
    metrics: int
    points: dict[str, float]


_BOUNDS: dict[int, tuple[Catalog, _Bounds]] = {}


def _bounds(catalog: Catalog) -> _Bounds:
    cached = _BOUNDS.get(id(catalog))
    if cached is not None and cached[0] is catalog:
        return cached[1]
    points: dict[str, float] = {}
    for name, metric in catalog.metrics.items():
        sets = 1.0
        for attribute in metric.attributes.values():
            sets *= len(attribute.values) + 2 if attribute.values is not None else float("inf")
        points[name] = sets
    bounds = _Bounds(len(catalog.resource), len(catalog.metrics) + MAX_REFUSED_POINTS, points)
    _BOUNDS[id(catalog)] = (catalog, bounds)
    return bounds


def count_request(request: ExportMetricsServiceRequest, limits: Limits) -> None:
    """Refuse (InvalidReport) a parsed request that holds more than a valid one can, counting
    before reading any point."""
    bounds = _bounds(limits.catalog)
    _count_weeks(len(request.resource_metrics), limits)
    for rm in request.resource_metrics:
        scopes = rm.scope_metrics
        _count_resource(len(rm.resource.attributes), len(scopes),
                        sum(len(sm.metrics) for sm in scopes), bounds)
        _count_points(((m.name, _point_count(m)) for sm in scopes for m in sm.metrics), bounds)


def _point_count(metric: OtlpMetric) -> int:
    kind = metric.WhichOneof("data")
    return len(getattr(metric, kind).data_points) if kind is not None else 0


def _count_weeks(weeks: int, limits: Limits) -> None:
    if weeks > limits.open_weeks:
        raise InvalidReport([Problem("too_many_weeks", f"request holds {weeks} "
                                     f"resource_metrics; {limits.open_weeks} weeks are open")])


def _count_resource(attributes: int, scopes: int, metrics: int, bounds: _Bounds) -> None:
    problems = []
    if attributes > bounds.resource_attributes:
        problems.append(Problem("too_many_resource_attributes", f"a resource has {attributes} "
                                f"attributes; the catalog has {bounds.resource_attributes}"))
    if max(scopes, metrics) > bounds.metrics:
        problems.append(Problem("too_many_metrics", f"a resource_metrics holds {metrics} "
                                f"metrics in {scopes} scopes; a report holds at most "
                                f"{bounds.metrics}"))
    if problems:
        raise InvalidReport(problems)


def _count_points(metrics: Iterable[tuple[str, int]], bounds: _Bounds) -> None:
    """Points per metric within what its attribute sets allow; those of metrics the catalog
    lacks (all refused) within `MAX_REFUSED_POINTS`."""
    counts: dict[str, int] = {}
    for name, points in metrics:
        known = name if name in bounds.points else ""
        counts[known] = counts.get(known, 0) + points
    problems = [Problem("too_many_points", f"metric {name!r} holds {n} points; a week of it "
                        f"holds at most {int(bounds.points[name])}")
                for name, n in counts.items() if name and n > bounds.points[name]]
    if counts.get("", 0) > MAX_REFUSED_POINTS:
        problems.append(Problem("too_many_points", f"{counts['']} points of metrics the "
                                f"catalog lacks; at most {MAX_REFUSED_POINTS} are refused"))
    if problems:
        raise InvalidReport(problems)
