"""The names panels use: metrics and attributes from the catalog, views from the ingest.

Each name is looked up once, here, and the import fails if the catalog or `ingest.views` no
longer has it, so a renamed metric breaks the build instead of emptying a panel.
"""

from __future__ import annotations

from ingest.views import DISTRIBUTION_BUCKETS, VIEWS, WEEK_COLUMN
from otel_usage.catalog import Catalog, load_catalog

CATALOG: Catalog = load_catalog()


class CatalogMismatch(LookupError):
    """A name the dashboards need is missing from the catalog or the reporting views."""


def view(name: str, *columns: str) -> str:
    """A reporting view's name, after checking it has `columns`."""
    if name not in VIEWS or not set(columns) <= set(VIEWS[name]):
        raise CatalogMismatch(f"the ingest has no view {name} with columns {columns}")
    return name


def metric(name: str, *attributes: str) -> str:
    spec = CATALOG.metric(name)
    if spec is None or not set(attributes) <= set(spec.attributes):
        raise CatalogMismatch(f"the catalog has no metric {name} with attributes {attributes}")
    return name


def resource(key: str) -> str:
    if key not in CATALOG.resource:
        raise CatalogMismatch(f"the catalog has no resource attribute {key}")
    return key


WEEK = WEEK_COLUMN
ACTIVE = view("usage_active_installations", WEEK, "installations", "installations_margin")
RESOURCE = view("usage_resource_attributes", WEEK, "attribute", "value", "installations",
                "installations_margin")
METRICS = view("usage_metrics", WEEK, "metric", "attribute", "value", "installations",
               "installations_margin", "total", "total_margin")
DISTRIBUTIONS = view("usage_distributions", WEEK, "metric", "bucket_min", "installations",
                     "installations_margin")
SUBMISSIONS = view("usage_submissions", "day", "outcome", "reason", "requests")
BUCKETS = DISTRIBUTION_BUCKETS

JOBS = metric("printernizer.jobs", "job.status")
PRINTERS = metric("printernizer.printers", "printer.type")
PRINTER_TYPE = "printer.type"
FEATURES_ENABLED = metric("printernizer.features.enabled", "feature.name")
FEATURE = "feature.name"
ERRORS = metric("printernizer.errors", "error.type", "error.category")
ERROR_TYPE = "error.type"
ERROR_CATEGORY = "error.category"

VERSION = resource("service.version")
DEPLOYMENT = resource("printernizer.deployment.mode")
OS = resource("os.type")
ARCH = resource("host.arch")
PYTHON = resource("process.runtime.version")
COUNTRY = resource("geo.country.iso_code")
