"""Published weeks written by hand, for the tests of the public statistics: an index.json and
week documents that validate against the catalog's public schema (``public.schema.json``),
built from the catalog's own partitions (its enums, the policy's listed values and buckets), so
a chart of the page has a row for every value a real publication has.

The numbers are made up but deterministic (a function of the week and the row), and noisy the
way published numbers are: one value per chart is below its margin, and one is negative."""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from datetime import timedelta
from typing import Any

import jsonschema

from ingest._privacy import buckets
from ingest.testing import listing_releases
from otel_usage.catalog import Catalog, load_catalog
from otel_usage.weeks import Week

FIRST_WEEK = Week.parse("2026-W40")
# Python's minor versions, as the policy's partition selection would have found them.
PYTHON_VERSIONS = ("3.11", "3.12", "3.13")
# Countries a fixture week has (the policy lists every ISO code; a week shows those it has).
COUNTRIES = ("DE", "US", "GB", "FR", "NL", "AT", "CH", "IT", "ES", "PL", "CA", "AU", "other")
MARGIN = 9.5
# The releases a fixture week publishes: no Printernizer release carries the client yet, so the
# catalog lists none; the fixtures list made-up ones, as each real release will add its number.
RELEASES = ("2.5.0", "2.6.0", "2.6.3", "2.7.0")


def fixture_catalog() -> Catalog:
    """The catalog with the fixtures' releases listed as published versions."""
    return listing_releases(load_catalog(), RELEASES)


def schema(catalog: Catalog) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(catalog.public.schema.read_text(encoding="utf-8"))
    return loaded


def valid(document: Mapping[str, Any], catalog: Catalog) -> Mapping[str, Any]:
    """`document`, after holding it to the public schema (a ValidationError if it breaks it)."""
    jsonschema.validate(document, schema(catalog))
    return document


def _count(week: int, row: int) -> int:
    """A made-up published count: larger for earlier rows, growing over the weeks."""
    return 12 + ((row * 37 + week * 11) % 90) + 4 * week + max(0, 60 - 9 * row)


def _rows(week: int, values: tuple[str, ...]) -> Iterator[tuple[str, int]]:
    """(value, count) per value: the last value is below the margin, the one before it, when
    there are four or more, negative."""
    for row, value in enumerate(values):
        count = _count(week, row)
        if row == len(values) - 1:
            count = 3
        elif row == len(values) - 2 and len(values) >= 4:
            count = -4
        yield value, count


def resource_values(catalog: Catalog, key: str) -> tuple[str, ...]:
    """The values a fixture week publishes for a resource attribute."""
    attribute = catalog.resource[key]
    release = catalog.policy.privacy.resource[key]
    if key == "geo.country.iso_code":
        return COUNTRIES
    if release.values is None and attribute.values is None:
        return PYTHON_VERSIONS
    listed = attribute.values if attribute.values is not None else release.values
    assert listed is not None
    return (*listed, attribute.other)


def week_document(catalog: Catalog, index: int) -> dict[str, Any]:
    """The week `index` weeks after FIRST_WEEK, published 15 days after it ended."""
    week = FIRST_WEEK.plus(index)
    privacy = catalog.policy.privacy
    resources = [{"attribute": key, "value": value, "installations": count, "margin": MARGIN}
                 for key in privacy.resource
                 for value, count in _rows(index, resource_values(catalog, key))]
    metrics, totals, distributions = [], [], []
    for name, release in privacy.metrics.items():
        metric = catalog.metrics[name]
        for key in release.by:
            values = (*(metric.attributes[key].values or ()), metric.attributes[key].other)
            metrics += [{"metric": name, "attribute": key, "value": value,
                         "installations": count, "margin": MARGIN}
                        for value, count in _rows(index, values)]
        if release.total:
            totals.append({"metric": name, "total": 40 * _count(index, 0), "margin": 120.5})
        if release.distribution:
            limits = buckets(metric)
            distributions += [
                {"metric": name, "bucket_min": low,
                 "bucket_max": limits[row + 1] - 1 if row + 1 < len(limits) else None,
                 "installations": count, "margin": MARGIN}
                for row, (low, count) in enumerate(
                    (int(value), count) for value, count in _rows(index, tuple(map(str, limits))))]
    return {
        "format": catalog.public.format, "week": week.label,
        "week_start": week.start.date().isoformat(),
        "published_on": published_on(week),
        "privacy": {"epsilon": privacy.weekly_epsilon, "delta": privacy.delta,
                    "yearly_epsilon": privacy.yearly_epsilon},
        "active_installations": {"installations": active(index), "margin": 4.5},
        "resource_attributes": resources, "metrics": metrics, "totals": totals,
        "distributions": distributions,
    }


def active(index: int) -> int:
    return 180 + 23 * index - (index % 3) * 7


def published_on(week: Week) -> str:
    return (week.end + timedelta(days=15)).date().isoformat()


def published(catalog: Catalog, count: int = 6) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    """(index, weeks) of `count` consecutive published weeks, both valid against the schema."""
    weeks = {doc["week"]: doc for doc in (week_document(catalog, i) for i in range(count))}
    last = FIRST_WEEK.plus(count - 1)
    index = {
        "format": catalog.public.format,
        "generated_on": (last.end + timedelta(days=16)).date().isoformat(),
        "catalog_version": catalog.version,
        "weeks": [{"week": doc["week"], "week_start": doc["week_start"],
                   "published_on": doc["published_on"], "file": f"weeks/{doc['week']}.json"}
                  for doc in weeks.values()],
        "active_installations": [{"week": doc["week"], **doc["active_installations"]}
                                 for doc in weeks.values()],
    }
    valid(index, catalog)
    for doc in weeks.values():
        valid(doc, catalog)
    return index, weeks


def files(index: Mapping[str, Any], weeks: Mapping[str, Mapping[str, Any]]) -> dict[str, bytes]:
    """The JSON files of a site beside its pages: index.json and weeks/<week>.json."""
    out = {"index.json": json.dumps(index).encode()}
    for entry in index["weeks"]:
        out[entry["file"]] = json.dumps(weeks[entry["week"]]).encode()
    return out
