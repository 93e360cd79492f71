"""Erasure as an OTLP export (contracts: "Erasure travels the same path as reports").

The gateway only forwards OTLP exports, so a client asks for its installation to be erased with
one: a single ResourceMetrics naming the installation (`service.instance.id`, with
`service.name` and `otel_usage.catalog.version`; other resource attributes may be there or
not), whose only metric is `[protocol] erasure_metric`, a Gauge with one `as_int` point of
value 1 spanning an ISO week (the sender's; not checked beyond that shape). The credential
travels in its header, as with a report.
"""

from __future__ import annotations

from collections.abc import Sequence

from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
)
from opentelemetry.proto.metrics.v1.metrics_pb2 import Metric

from otel_usage.catalog import Catalog
from otel_usage.weeks import WEEK_NS, Week

from ._decode import RawPoint, attribute_pairs
from ._errors import InvalidReport, Problem
from ._validate import INSTALLATION_KEY, _resource

_NAMED = ("service.name", INSTALLATION_KEY, "otel_usage.catalog.version")


def erasure_of(request: ExportMetricsServiceRequest, catalog: Catalog) -> str | None:
    """The installation an erasure request names; None when the request asks for no erasure;
    InvalidReport when it holds the erasure metric in another shape than the contract's (a
    request as `_decode.parse` gives it)."""
    name = catalog.protocol.erasure_metric
    metrics = [(rm, m) for rm in request.resource_metrics for sm in rm.scope_metrics
               for m in sm.metrics]
    if not any(m.name == name for _, m in metrics):
        return None
    if len(request.resource_metrics) != 1 or len(metrics) != 1:
        raise InvalidReport([Problem("erasure_shape", f"{name} must be the request's only "
                                                      "metric, of one resource")])
    rm, metric = metrics[0]
    resource, problems = _resource(rm.resource.attributes, catalog)
    problems = [p for p in problems if p.code != "missing_resource_attribute"]
    problems += [Problem("missing_resource_attribute",
                         f"resource attribute {key!r} is required")
                 for key in _NAMED if key not in resource
                 and not any(f"{key!r}" in p.message for p in problems)]
    if not _one_point_of_one(metric):
        problems.append(Problem("erasure_shape", f"{name} must be a Gauge with one as_int point "
                                                 "of value 1 spanning an ISO week"))
    if problems:
        raise InvalidReport(problems)
    return resource[INSTALLATION_KEY]


def _one_point_of_one(metric: Metric) -> bool:
    if metric.WhichOneof("data") != "gauge":
        return False
    points: Sequence[RawPoint] = metric.gauge.data_points
    if len(points) != 1:
        return False
    point = points[0]
    attribute_pairs(point.attributes[:1])  # a body that does not parse is refused whole
    return (point.WhichOneof("value") == "as_int" and point.as_int == 1
            and Week.from_start_ns(point.start_time_unix_nano) is not None
            and point.time_unix_nano - point.start_time_unix_nano == WEEK_NS)
