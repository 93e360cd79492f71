"""The view names the dashboards import: plain data, importable without the ingest's dependencies."""

from __future__ import annotations

import subprocess
import sys

import ingest
from ingest.views import VIEWS, WEEK_COLUMN
from otel_usage.catalog import load_catalog


def test_the_package_exports_a_short_public_surface() -> None:
    assert ingest.__all__ == ["Settings", "create_app", "publish"]
    assert callable(ingest.create_app)
    assert ingest.Settings().publish_after == load_catalog().policy.publish_after_days


def test_views_are_named_with_their_columns() -> None:
    assert dict(VIEWS) == {
        "usage_active_installations": ("week_start", "installations", "installations_margin"),
        "usage_distributions": ("week_start", "metric", "bucket_min", "installations",
                                "installations_margin"),
        "usage_metrics": ("week_start", "metric", "attribute", "value", "installations",
                          "installations_margin", "total", "total_margin"),
        "usage_published_weeks": ("week_start", "published_on", "epsilon", "delta",
                                  "yearly_epsilon"),
        "usage_resource_attributes": ("week_start", "attribute", "value", "installations",
                                      "installations_margin"),
        "usage_submissions": ("day", "outcome", "reason", "requests"),
    }
    assert all(WEEK_COLUMN in columns for name, columns in VIEWS.items() if name != "usage_submissions")


def test_importing_the_view_names_loads_neither_fastapi_nor_sqlalchemy() -> None:
    """dashboards/ imports ingest.views in an install without the ingest extra."""
    code = ("import sys, ingest.views; "
            "print(sorted(m for m in ('fastapi', 'sqlalchemy', 'uvicorn') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout == "[]\n"
