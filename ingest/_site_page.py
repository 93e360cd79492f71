"""The public statistics' pages, rendered from the site's JSON documents.

A placeholder until the rendered pages (English and German, inline SVG charts) replace this
module: one plain page that links the JSON documents, so the site is browsable meanwhile."""

from __future__ import annotations

from collections.abc import Mapping
from html import escape
from typing import Any

from otel_usage.catalog import Catalog

__all__ = ["pages"]


def pages(index: Mapping[str, Any], weeks: Mapping[str, Mapping[str, Any]],
          catalog: Catalog) -> dict[str, bytes]:
    """The site's pages by their path relative to the site's root."""
    links = "".join(f'<li><a href="{escape(week["file"])}">{escape(week["week"])}</a></li>'
                    for week in index["weeks"])
    html = ("<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            "<title>otel-usage public statistics</title></head><body>"
            "<h1>otel-usage public statistics</h1>"
            f"<p>Catalog version {catalog.version}, generated on "
            f"{escape(index['generated_on'])}: <a href=\"index.json\">index.json</a>, "
            f"<a href=\"catalog.toml\">catalog.toml</a>.</p><ul>{links}</ul></body></html>\n")
    return {"index.html": html.encode()}
