"""Reports are checked against the catalog; every problem is named, nothing unknown passes."""

from __future__ import annotations

import itertools
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from catalog_support import raw_catalog, write_catalog
from ingest_reports import (
    CATALOG,
    NOW,
    WEEK,
    add_week,
    new_installation,
    parsed,
    request,
    resource,
    varint,
)
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
)
from opentelemetry.proto.metrics.v1.metrics_pb2 import AggregationTemporality

from ingest._decode import MAX_KEPT_BYTES
from ingest._errors import InvalidReport, Problem
from ingest._validate import (
    _MAX_VALID_SETS,
    Limits,
    Point,
    _rules,
    count_request,
    validate,
)
from otel_usage.catalog import load_catalog

LIMITS = Limits(CATALOG, NOW, CATALOG.policy.publish_after_days, 3600)
JOBS = {"job.status": "completed", "printer.type": "bambu_lab"}


def _codes(message: ExportMetricsServiceRequest) -> list[str]:
    with pytest.raises(InvalidReport) as caught:
        validate(parsed(message), LIMITS)
    return [p.code for p in caught.value.problems]


def test_a_valid_report_becomes_one_installation_week() -> None:
    """Resource and points come through unchanged, attributes in key order."""
    installation = new_installation()
    data = {"printernizer.jobs": [(JOBS, 4)], "printernizer.uptime": [({}, 6)]}
    accepted = validate(parsed(request(installation, data=data)), LIMITS)
    assert accepted.installation_id == installation
    assert accepted.rejected_points == 0
    [report] = accepted.reports
    assert report.week_start == datetime(2025, 6, 9)
    assert report.resource == resource(installation)
    assert report.points == (
        Point("printernizer.jobs", (("job.status", "completed"), ("printer.type", "bambu_lab")), 4),
        Point("printernizer.uptime", (), 6),
    )


def test_other_is_allowed_for_every_enum() -> None:
    """The client sends "other" for a value outside an enum; it is kept."""
    data = {"printernizer.jobs": [({"job.status": "other", "printer.type": "other"}, 1)]}
    accepted = validate(parsed(request(new_installation(), data=data)), LIMITS)
    assert accepted.reports[0].points == (
        Point("printernizer.jobs", (("job.status", "other"), ("printer.type", "other")), 1),)


def test_unknown_metric_key_and_value_are_refused_point_by_point() -> None:
    """Bad points are dropped and counted (partial success); the good one is kept."""
    data = {
        "printernizer.jobs": [(JOBS, 2), ({"job.status": "exploded", "printer.type": "prusa_core"}, 1)],
        "printernizer.secret": [({}, 1)],
        "printernizer.app.starts": [({"hostname": "kitchen"}, 1)],
    }
    accepted = validate(parsed(request(new_installation(), data=data)), LIMITS)
    assert accepted.rejected_points == 3
    assert [p.code for p in accepted.problems] == [
        "value_not_allowed", "unknown_metric", "unknown_attribute"]
    assert [p.metric for p in accepted.reports[0].points] == ["printernizer.jobs"]


def test_every_resource_problem_is_reported_at_once() -> None:
    """Unknown key, bad value, missing required key: all three in one 400."""
    res = resource(new_installation())
    res["host.name"] = "kitchen-pi"
    res["os.type"] = "Linux 6.1"
    del res["service.version"]
    codes = _codes(request("x", res=res))
    assert sorted(codes) == ["missing_resource_attribute", "unknown_resource_attribute",
                             "value_not_allowed"]


def test_installation_id_must_be_a_uuid4() -> None:
    res = resource("not-a-uuid")
    assert _codes(request("x", res=res)) == ["value_not_allowed"]


@pytest.mark.parametrize(("week", "code"), [
    (date(2025, 6, 23), "week_in_future"),
    (date(2025, 5, 26), "week_too_old"),
])
def test_weeks_outside_the_window_are_refused(week: date, code: str) -> None:
    """No future weeks, none whose reporting window (14 days after its end) has ended."""
    assert _codes(request(new_installation(), week)) == [code]


def test_the_current_week_and_the_oldest_open_week_are_accepted() -> None:
    for week in (date(2025, 6, 16), date(2025, 6, 2)):
        assert validate(parsed(request(new_installation(), week)), LIMITS).reports[0].week_start.date() == week


def test_a_week_is_refused_from_the_instant_its_reporting_window_ends() -> None:
    """The week of 2 June ends 9 June; its window, 23 June 00:00 UTC, when it is published."""
    closes = datetime(2025, 6, 23, tzinfo=UTC).timestamp()
    days = CATALOG.policy.publish_after_days
    message = parsed(request(new_installation(), date(2025, 6, 2)))
    assert validate(message, Limits(CATALOG, closes - 1, days, 3600)).reports[0].week_start == datetime(2025, 6, 2)
    with pytest.raises(InvalidReport) as caught:
        validate(message, Limits(CATALOG, closes, days, 3600))
    assert caught.value.problems == [Problem(
        "week_too_old", "week 2025-06-02 closed for reports on 2025-06-23, when it is published: "
                        "a report of it could change nothing")]


def test_points_must_span_exactly_one_aligned_week() -> None:
    message = request(new_installation(), data={"printernizer.uptime": [({}, 3)]})
    point = message.resource_metrics[0].scope_metrics[0].metrics[0].gauge.data_points[0]
    point.start_time_unix_nano += 3600 * 10**9
    point.time_unix_nano += 3600 * 10**9
    assert _codes(message) == ["week_not_aligned"]


def test_points_of_two_weeks_in_one_resource_are_refused() -> None:
    message = request(new_installation(), data={"printernizer.uptime": [({}, 3)],
                                                "printernizer.app.starts": [({}, 1)]})
    point = message.resource_metrics[0].scope_metrics[0].metrics[1].sum.data_points[0]
    point.start_time_unix_nano -= 7 * 86400 * 10**9
    point.time_unix_nano -= 7 * 86400 * 10**9
    assert _codes(message) == ["mixed_weeks"]


@pytest.mark.parametrize(("metric", "value"), [
    ("printernizer.jobs", CATALOG.protocol.max_counter_value + 1),
    ("printernizer.jobs", -1),
    ("printernizer.uptime", 8),
])
def test_values_out_of_bounds_are_refused(metric: str, value: int) -> None:
    """Counters are non-negative and at most the catalog's max; days at most 7."""
    attrs = JOBS if metric == "printernizer.jobs" else {}
    with pytest.raises(InvalidReport) as caught:
        validate(parsed(request(new_installation(), data={metric: [(attrs, value)]})), LIMITS)
    assert [p.code for p in caught.value.problems] == ["value_out_of_range"]


def test_a_value_above_a_metrics_max_is_clamped_as_the_catalog_says() -> None:
    """printernizer.printers: at most 1,000 (out_of_range clamp), so 999,999 printers are
    stored as 1,000, as the client would have sent them, and the answer says so (a warning:
    no point is refused)."""
    top = CATALOG.metrics["printernizer.printers"].max
    data = {"printernizer.printers": [({"printer.type": "octoprint"}, 999_999),
                                      ({"printer.type": "prusa_core"}, top)]}
    accepted = validate(parsed(request(new_installation(), data=data)), LIMITS)
    assert accepted.reports[0].points == (
        Point("printernizer.printers", (("printer.type", "octoprint"),), top),
        Point("printernizer.printers", (("printer.type", "prusa_core"),), top))
    assert (accepted.rejected_points, accepted.error_message) == (
        0, f"metric 'printernizer.printers' takes values up to {top}: 999999 was stored as {top}")


def test_a_value_above_the_max_of_a_metric_that_drops_is_refused(tmp_path: Path) -> None:
    """A metric whose out_of_range is drop: its point above the max is refused, the rest kept."""
    raw = raw_catalog()
    [printers] = [m for m in raw["metric"] if m["name"] == "printernizer.printers"]
    printers["out_of_range"] = "drop"
    catalog = load_catalog(write_catalog(raw, tmp_path))
    data = {"printernizer.printers": [({"printer.type": "octoprint"}, 1001),
                                      ({"printer.type": "prusa_core"}, 2)]}
    message = parsed(request(new_installation(), data=data, catalog=catalog))
    accepted = validate(message, Limits(catalog, NOW, 14, 3600))
    assert accepted.reports[0].points == (
        Point("printernizer.printers", (("printer.type", "prusa_core"),), 2),)
    assert (accepted.rejected_points, accepted.problems) == (1, [Problem(
        "value_out_of_range", "metric 'printernizer.printers' takes values from 0 to 1000")])


def test_largest_counter_value_is_accepted() -> None:
    top = CATALOG.protocol.max_counter_value
    accepted = validate(parsed(request(new_installation(), data={"printernizer.jobs": [(JOBS, top)]})), LIMITS)
    assert accepted.reports[0].points[0].value == top


def test_a_counter_sent_as_a_cumulative_sum_is_the_wrong_kind() -> None:
    message = request(new_installation(), data={"printernizer.app.starts": [({}, 1)],
                                                "printernizer.uptime": [({}, 1)]})
    metric = message.resource_metrics[0].scope_metrics[0].metrics[0]
    metric.sum.aggregation_temporality = AggregationTemporality.AGGREGATION_TEMPORALITY_CUMULATIVE
    accepted = validate(parsed(message), LIMITS)
    assert accepted.problems == [Problem("wrong_kind",
                                         "metric 'printernizer.app.starts' must be a monotonic delta Sum")]


def test_double_values_and_non_string_attributes_are_refused() -> None:
    message = request(new_installation(), data={"printernizer.app.starts": [({}, 1)],
                                                "printernizer.jobs": [(JOBS, 1)],
                                                "printernizer.uptime": [({}, 1)]})
    metrics = message.resource_metrics[0].scope_metrics[0].metrics
    metrics[0].sum.data_points[0].as_double = 1.5
    metrics[1].sum.data_points[0].attributes[0].value.int_value = 3
    accepted = validate(parsed(message), LIMITS)
    assert [p.code for p in accepted.problems] == ["not_an_integer", "value_not_allowed"]
    assert accepted.rejected_points == 2


def test_a_repeated_point_is_refused() -> None:
    accepted = validate(parsed(request(new_installation(), data={"printernizer.jobs": [(JOBS, 1), (JOBS, 2)]})),
                        LIMITS)
    assert [p.code for p in accepted.problems] == ["duplicate_point"]
    assert accepted.reports[0].points[0].value == 1


def test_a_report_whose_points_are_all_refused_is_invalid() -> None:
    assert _codes(request(new_installation(), data={"printernizer.secret": [({}, 1)]})) == [
        "unknown_metric"]


def test_empty_requests_are_invalid() -> None:
    assert _codes(ExportMetricsServiceRequest()) == ["empty"]
    assert _codes(request(new_installation(), data={})) == ["empty"]


def test_two_installations_in_one_request_are_invalid() -> None:
    message = request(new_installation())
    other = new_installation()
    add_week(message, resource(other), {"printernizer.uptime": [({}, 1)]}, date(2025, 6, 2))
    assert _codes(message) == ["mixed_installations"]


def test_several_weeks_of_one_installation_are_accepted_but_not_twice_the_same() -> None:
    installation = new_installation()
    message = request(installation, WEEK)
    add_week(message, resource(installation), {"printernizer.uptime": [({}, 1)]}, date(2025, 6, 2))
    assert [r.week_start.date() for r in validate(parsed(message), LIMITS).reports] == [WEEK, date(2025, 6, 2)]
    add_week(message, resource(installation), {"printernizer.uptime": [({}, 1)]}, WEEK)
    assert _codes(message) == ["duplicate_week"]


def test_attributes_seen_valid_do_not_let_a_bad_value_through() -> None:
    """Valid attribute sets are remembered by their bytes; the value is checked every time."""
    validate(parsed(request(new_installation(), data={"printernizer.jobs": [(JOBS, 1)]})), LIMITS)
    message = request(new_installation(), data={"printernizer.jobs": [(JOBS, 1)],
                                                "printernizer.app.starts": [({}, 1)]})
    metrics = message.resource_metrics[0].scope_metrics[0].metrics
    metrics[0].sum.data_points[0].as_double = 2.0
    assert [p.code for p in validate(parsed(message), LIMITS).problems] == ["not_an_integer"]
    too_big = request(new_installation(), data={
        "printernizer.jobs": [(JOBS, CATALOG.protocol.max_counter_value + 1)]})
    assert _codes(too_big) == ["value_out_of_range"]


def test_any_encoding_and_order_of_an_allowed_attribute_set_is_stored_alike() -> None:
    message = request(new_installation(), data={"printernizer.jobs": [(JOBS, 3)]})
    attributes = message.resource_metrics[0].scope_metrics[0].metrics[0].sum.data_points[0].attributes
    first, second = attributes[0].SerializeToString(), attributes[1].SerializeToString()
    del attributes[:]
    attributes.add().ParseFromString(second + b"\x78\x01")  # a field the schema does not know
    attributes.add().ParseFromString(first)
    assert validate(parsed(message), LIMITS).reports[0].points == (
        Point("printernizer.jobs", (("job.status", "completed"), ("printer.type", "bambu_lab")), 3),)


def test_remembered_attribute_sets_are_bounded_whatever_the_client_sends() -> None:
    """Who chooses the key: the client, with distinct encodings of one allowed set."""
    rule = _rules(CATALOG)["printernizer.jobs"]
    for index in range(_MAX_VALID_SETS + 50):
        message = request(new_installation(), data={"printernizer.jobs": [(JOBS, 1)]})
        point = message.resource_metrics[0].scope_metrics[0].metrics[0].sum.data_points[0]
        unknown = str(index).encode()  # field 15, bytes: a parser skips it
        point.attributes[0].MergeFromString(b"\x7a" + bytes([len(unknown)]) + unknown)
        assert validate(parsed(message), LIMITS).reports[0].points == (
            Point("printernizer.jobs", tuple(sorted(JOBS.items())), 1),)
        assert len(rule.valid) <= _MAX_VALID_SETS


def test_remembered_attribute_sets_keep_no_long_encoding() -> None:
    """Who chooses the size: the client, padding an allowed attribute with unknown fields.
    The point is stored as itself, and its padded bytes are not remembered."""
    rule = _rules(CATALOG)["printernizer.jobs"]
    padded = []
    for index in range(50):
        message = request(new_installation(), data={"printernizer.jobs": [(JOBS, 1)]})
        point = message.resource_metrics[0].scope_metrics[0].metrics[0].sum.data_points[0]
        unknown = b"p" * 3000 + str(index).encode()  # field 15, bytes: a parser skips it
        point.attributes[0].MergeFromString(b"\x7a" + varint(len(unknown)) + unknown)
        padded.append(point.attributes[0].SerializeToString())
        assert validate(parsed(message), LIMITS).reports[0].points == (
            Point("printernizer.jobs", tuple(sorted(JOBS.items())), 1),)
    kept = {one for key in rule.valid for one in key}
    assert (kept & set(padded), max(map(len, kept), default=0) <= MAX_KEPT_BYTES) == (set(), True)



# Counting before checking --------------------------------------------------------------------

ERRORS = "printernizer.errors"


def _refusal(message: ExportMetricsServiceRequest) -> list[Problem]:
    with pytest.raises(InvalidReport) as caught:
        count_request(parsed(message), LIMITS)
    return caught.value.problems


def test_more_points_than_a_week_can_hold_are_refused_before_any_point_is_read() -> None:
    """A week holds a point per allowed attribute set of a metric (each key absent, one of its
    values, or "other"): 1 for app.starts, 13 x 54 = 702 for errors; and at most 64 points of
    metrics the catalog lacks (all of them refused)."""
    unknown = request(new_installation(), data={"printernizer.nope": [({}, 1)] * 1500})
    assert _refusal(unknown) == [Problem(
        "too_many_points", "1500 points of metrics the catalog lacks; at most 64 are refused")]
    starts = request(new_installation(), data={"printernizer.app.starts": [({}, 1)] * 2})
    assert _refusal(starts) == [Problem(
        "too_many_points", "metric 'printernizer.app.starts' holds 2 points; a week of it holds "
                           "at most 1")]
    errors = request(new_installation(), data={ERRORS: [({"error.category": "nope"}, 1)] * 703})
    assert _refusal(errors) == [Problem(
        "too_many_points", "metric 'printernizer.errors' holds 703 points; a week of it holds at "
                           "most 702")]


def test_more_weeks_resource_attributes_or_metrics_than_a_report_can_hold_are_refused() -> None:
    """Three weeks are open at the tests' now (2 June to 16 June); a resource has the catalog's
    9 attributes at most; a report holds the catalog's 10 metrics and 64 more at most."""
    message = ExportMetricsServiceRequest()
    for _ in range(4):
        add_week(message, resource(new_installation()), {"printernizer.uptime": [({}, 1)]}, WEEK)
    assert _refusal(message) == [Problem(
        "too_many_weeks", "request holds 4 resource_metrics; 3 weeks are open")]
    message = request(new_installation())
    rm = message.resource_metrics[0]
    rm.resource.attributes.add(key="host.name").value.string_value = "kitchen"
    for index in range(75):
        rm.scope_metrics[0].metrics.add().name = f"printernizer.empty{index}"
    assert _refusal(message) == [
        Problem("too_many_resource_attributes", "a resource has 10 attributes; the catalog has 9"),
        Problem("too_many_metrics", "a resource_metrics holds 85 metrics in 1 scopes; a report "
                                    "holds at most 74")]


def test_every_allowed_attribute_set_of_a_metric_fits_in_a_week() -> None:
    """The bound is no tighter than the catalog: errors with each of its 702 attribute sets
    (each key absent, one of its values, or "other") is counted and accepted whole."""
    spec = CATALOG.metrics[ERRORS].attributes
    choices = [[None, "other", *(a.values or ())] for a in spec.values()]
    sets = [{key: value for key, value in zip(spec, combination, strict=True) if value}
            for combination in itertools.product(*choices)]
    message = request(new_installation(), data={ERRORS: [(attributes, 1) for attributes in sets]})
    count_request(parsed(message), LIMITS)
    accepted = validate(parsed(message), LIMITS)
    assert (len(sets), accepted.rejected_points, len(accepted.reports[0].points)) == (702, 0, 702)


def test_checking_points_stops_once_more_than_64_are_refused() -> None:
    """A client checks every point against its catalog: a request with more than 64 refused
    points is refused whole, and no point after the 65th is checked."""
    data = {ERRORS: [({"error.category": "network", "error.type": f"nope{i}"}, 1)
                     for i in range(100)]}
    with pytest.raises(InvalidReport) as caught:
        validate(parsed(request(new_installation(), data=data)), LIMITS)
    refused = Problem("value_not_allowed", "metric 'printernizer.errors' attribute 'error.type' "
                                           "must be a string of the catalog's 52 values")
    assert caught.value.problems == [Problem(
        "too_many_refused_points", "more than 64 points are refused: a report checked against "
                                   "the catalog holds none"), refused, refused, refused, refused]


def test_64_refused_points_are_still_a_partial_success() -> None:
    data = {ERRORS: [({"error.category": "network", "error.type": f"nope{i}"}, 1)
                     for i in range(64)]} | {"printernizer.uptime": [({}, 3)]}
    accepted = validate(parsed(request(new_installation(), data=data)), LIMITS)
    assert (accepted.rejected_points, accepted.reports[0].points) == (
        64, (Point("printernizer.uptime", (), 3),))


def test_a_points_attributes_are_read_as_far_as_its_metric_has_keys_and_one_more() -> None:
    """app.starts has no key: of a point with a key and then bytes that are no KeyValue, the
    first is read and refuses the point; the rest is never read (so it refuses nothing more)."""
    message = request(new_installation(), data={"printernizer.app.starts": [({"host": "x"}, 1)],
                                                "printernizer.uptime": [({}, 3)]})
    lazy = parsed(message)
    lazy.resource_metrics[0].scope_metrics[0].metrics[0].sum.data_points[0].attributes.append(
        b"\x0a\x02\xc3\x28")
    accepted = validate(lazy, LIMITS)
    assert (accepted.rejected_points, accepted.problems) == (1, [Problem(
        "unknown_attribute", "metric 'printernizer.app.starts' has no attribute 'host'")])
