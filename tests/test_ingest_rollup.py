"""What a report adds to the weekly rollups, and how batches add and subtract it."""

from __future__ import annotations

from datetime import datetime

import pytest
from ingest_reports import CATALOG, resource

from ingest import _rollup
from ingest._validate import Point, Report

INSTALLATION = "12345678-1234-4234-8234-123456789abc"
WEEK = datetime(2025, 6, 9)


def _report() -> Report:
    points = (
        Point("printernizer.jobs", (("job.status", "completed"), ("printer.type", "bambu_lab")), 3),
        Point("printernizer.jobs", (("job.status", "failed"), ("printer.type", "bambu_lab")), 1),
        Point("printernizer.printers", (("printer.type", "bambu_lab"), ), 2),
        Point("printernizer.features.enabled", (("feature.name", "timelapse"),), 0),
    )
    return Report(INSTALLATION, WEEK, resource(INSTALLATION), points)


@pytest.mark.parametrize(("total", "bucket"), [(0, 0), (1, 1), (2, 2), (5, 3), (6, 6), (50, 21),
                                               (10**6, 10001)])
def test_totals_fall_in_the_bucket_that_starts_at_or_below_them(total: int, bucket: int) -> None:
    assert _rollup.bucket(total) == bucket


def test_a_report_counts_once_per_group_it_belongs_to() -> None:
    """Resource values, metric totals and values, and a distribution bucket per metric."""
    delta = _rollup.contributions(_report(), CATALOG)
    resource_rows = {k: v for k, v in delta.items() if k[0] == "resource"}
    assert resource_rows == {("resource", "", key, value): (1, 1)
                             for key, value in resource(INSTALLATION).items()
                             if key != "service.instance.id"}
    metric_rows = {k: v for k, v in delta.items() if k[0] == "metric"}
    assert metric_rows == {
        ("metric", "printernizer.jobs", "", ""): (1, 4),
        ("metric", "printernizer.jobs", "job.status", "completed"): (1, 3),
        ("metric", "printernizer.jobs", "job.status", "failed"): (1, 1),
        ("metric", "printernizer.jobs", "printer.type", "bambu_lab"): (1, 4),
        ("metric", "printernizer.printers", "", ""): (1, 2),
        ("metric", "printernizer.printers", "printer.type", "bambu_lab"): (1, 2),
    }
    distribution = {k[1]: (k[3], v) for k, v in delta.items() if k[0] == "distribution"}
    assert distribution == {name: ("0", (1, 0)) for name in CATALOG.metrics} | {
        "printernizer.jobs": ("3", (1, 4)), "printernizer.printers": ("2", (1, 2))}
    assert delta[_rollup.ACTIVE] == (1, 1)


def test_the_installation_id_never_becomes_a_group() -> None:
    delta = _rollup.contributions(_report(), CATALOG)
    assert not [k for k in delta if INSTALLATION in k]


def test_merging_a_report_in_and_out_leaves_zero() -> None:
    """Replacing a report subtracts exactly what it added."""
    sums: dict[tuple[object, ...], list[int]] = {}
    delta = _rollup.contributions(_report(), CATALOG)
    _rollup.merge(sums, WEEK, delta, +1)
    _rollup.merge(sums, WEEK, delta, +1)
    assert sums[(WEEK, *_rollup.ACTIVE)] == [2, 2]
    _rollup.merge(sums, WEEK, delta, -1)
    _rollup.merge(sums, WEEK, delta, -1)
    assert set(map(tuple, sums.values())) == {(0, 0)}
