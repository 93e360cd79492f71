"""The public statistics' pages (`ingest._site_page.pages`), read back with an HTML parser: what
each chart and its table show for published weeks written by hand (tests/public_support.py),
in English and German, escaped, with no script and no address outside the site."""

from __future__ import annotations

import copy
import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from html.parser import HTMLParser
from typing import Any

import pytest
from public_support import MARGIN, RELEASES, fixture_catalog, published

from ingest._site_page import ICON, LANGUAGES, STYLESHEET, TOP_COUNTRIES, pages
from otel_usage.catalog import Catalog

CHARTS = ["active", "modes", "versions", "printers", "fleet", "features", "errors", "os", "arch",
          "python", "countries"]
# Elements HTML never closes.
_VOID = {"meta", "link", "br", "img", "input", "hr", "source", "col", "area", "base", "wbr"}


@dataclass
class Node:
    tag: str
    attrs: dict[str, str]
    children: list[Node | str] = field(default_factory=list)

    def iter(self, tag: str | None = None) -> Iterator[Node]:
        if tag is None or self.tag == tag:
            yield self
        for child in self.children:
            if isinstance(child, Node):
                yield from child.iter(tag)

    def text(self) -> str:
        return "".join(c if isinstance(c, str) else c.text() for c in self.children)

    def by_id(self, ident: str) -> Node:
        found = [n for n in self.iter() if n.attrs.get("id") == ident]
        assert len(found) == 1, f"{len(found)} elements with id {ident!r}"
        return found[0]


class _Tree(HTMLParser):
    """A document as nodes; a closing tag that does not close the open element fails."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.root = Node("#document", {})
        self.open = [self.root]

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        node = Node(tag, {k: v or "" for k, v in attrs})
        self.open[-1].children.append(node)
        if tag not in _VOID:
            self.open.append(node)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.open[-1].children.append(Node(tag, {k: v or "" for k, v in attrs}))

    def handle_endtag(self, tag: str) -> None:
        assert self.open[-1].tag == tag, f"</{tag}> closes <{self.open[-1].tag}>"
        self.open.pop()

    def handle_data(self, data: str) -> None:
        self.open[-1].children.append(data)


def parse(page: bytes) -> Node:
    tree = _Tree()
    tree.feed(page.decode("utf-8"))
    tree.close()
    assert [n.tag for n in tree.open] == ["#document"], "elements left open"
    return tree.root


def table(document: Node, chart: str) -> list[list[str]]:
    """The rows of a chart's table (the header first), each cell's text."""
    rows = document.by_id(chart).iter("tr")
    return [[cell.text() for cell in row.children if isinstance(cell, Node)] for row in rows]


@pytest.fixture(scope="module")
def catalog() -> Catalog:
    return fixture_catalog()


@pytest.fixture(scope="module")
def site(catalog: Catalog) -> tuple[dict[str, Any], dict[str, dict[str, Any]], dict[str, bytes]]:
    index, weeks = published(catalog, 6)
    return index, weeks, pages(index, weeks, catalog)


def shown(count: int, margin: float, language: str = "en") -> str:
    """A count as the page is to show it (written out here from the page's rule)."""
    if count < margin or count <= 0:
        return ("under {}" if language == "en" else "unter {}").format(math.ceil(margin))
    return f"{count} ± {math.ceil(margin)}"


def interval(count: int, margin: float) -> str:
    return f"{max(0, math.floor(count - margin))}\u2013{max(0, math.ceil(count + margin))}"


def test_the_site_has_a_page_per_language_and_one_stylesheet(site: Any) -> None:
    _, _, out = site
    assert sorted(out) == ["de/index.html", ICON, "index.html", STYLESHEET]
    assert [parse(out[p]).iter("html").__next__().attrs["lang"]
            for p in ("index.html", "de/index.html")] == ["en", "de"]


def test_deployment_modes_table_shows_the_latest_weeks_published_numbers(site: Any) -> None:
    _, weeks, out = site
    latest = weeks["2026-W45"]
    active = latest["active_installations"]["installations"]
    rows = [r for r in latest["resource_attributes"]
            if r["attribute"] == "printernizer.deployment.mode"]
    expected = [["Value", "Installations", "95 % interval", "Share"]] + [
        [r["value"], shown(r["installations"], r["margin"]),
         interval(r["installations"], r["margin"]),
         f"{100 * r['installations'] / active:.0f}%" if r["installations"] >= r["margin"]
         else "\u2013"] for r in rows]
    assert table(parse(out["index.html"]), "modes") == expected
    assert [row[1] for row in expected[1:]] == [
        f"147 ± {math.ceil(MARGIN)}", f"85 ± {math.ceil(MARGIN)}", f"113 ± {math.ceil(MARGIN)}",
        "under 10", "under 10"]


def test_each_shown_bar_has_the_published_count_and_small_ones_have_none(site: Any) -> None:
    _, weeks, out = site
    latest = weeks["2026-W45"]
    document = parse(out["index.html"])
    rows = [r for r in latest["metrics"]
            if r["metric"] == "printernizer.features.enabled" and r["attribute"] == "feature.name"]
    bars = [int(n.attrs["data-count"]) for n in document.by_id("features").iter("rect")]
    assert bars == [r["installations"] for r in rows if r["installations"] >= r["margin"]]
    assert [r["installations"] for r in rows if r["installations"] < r["margin"]] == [-4, 3]


def test_fleet_sizes_are_the_printers_distributions_buckets(site: Any) -> None:
    _, weeks, out = site
    rows = [r for r in weeks["2026-W45"]["distributions"] if r["metric"] == "printernizer.printers"]
    got = table(parse(out["index.html"]), "fleet")
    assert [row[0] for row in got] == ["Value", "0", "1", "2", "3\u20135", "6\u201310", "11\u201320", "21\u201350",
                                       "51\u2013100", "101\u2013500", "501\u20131000", "1001+"]
    assert [row[1] for row in got[1:]] == [shown(r["installations"], r["margin"]) for r in rows]


def test_countries_show_the_top_ten_by_count(site: Any) -> None:
    _, weeks, out = site
    rows = sorted((r for r in weeks["2026-W45"]["resource_attributes"]
                   if r["attribute"] == "geo.country.iso_code"),
                  key=lambda r: -r["installations"])[:TOP_COUNTRIES]
    got = table(parse(out["index.html"]), "countries")[1:]
    assert [row[:2] for row in got] == [[r["value"], shown(r["installations"], r["margin"])]
                                        for r in rows]


def test_active_installations_and_versions_run_over_every_published_week(site: Any) -> None:
    index, weeks, out = site
    document = parse(out["index.html"])
    assert table(document, "active") == [["Week", "Installations"]] + [
        [r["week"], shown(r["installations"], r["margin"])] for r in index["active_installations"]]
    line = next(document.by_id("active").iter("polyline"))
    assert line.attrs["data-counts"].split() == [
        str(r["installations"]) for r in index["active_installations"]]
    versions = [*RELEASES, "other"]
    assert table(document, "versions") == [["Week", *versions]] + [
        [week, *(shown(r["installations"], r["margin"]) for r in doc["resource_attributes"]
                 if r["attribute"] == "service.version")] for week, doc in weeks.items()]
    assert len(list(document.by_id("versions").iter("polyline"))) == len(versions)


def test_the_weeks_privacy_budget_and_what_noise_means_are_stated(site: Any) -> None:
    _, _, out = site
    english = parse(out["index.html"]).by_id("privacy")
    facts = [n.text() for n in english.iter() if n.tag in ("dt", "dd")]
    assert facts == ["ε (this week)", "2.0", "δ", "1 \u00d7 10\u22127", "ε over a year of weeks", "19.1"]
    german = parse(out["de/index.html"]).by_id("privacy")
    assert [n.text() for n in german.iter("dd")] == ["2,0", "1 \u00d7 10\u22127", "19,1"]
    assert "95 % probability" in english.text() and "counts as 0" in english.text()


def test_last_updated_catalog_version_and_links_to_the_data(site: Any) -> None:
    index, _, out = site
    for path, root in (("index.html", ""), ("de/index.html", "../")):
        document = parse(out[path])
        links = [a.attrs["href"] for a in document.by_id("data").iter("a")]
        assert links == [f"{root}index.json", f"{root}weeks/2026-W45.json", f"{root}catalog.toml",
                         *(f"{root}weeks/{e['week']}.json" for e in reversed(index["weeks"]))]
    summary = parse(out["index.html"]).by_id("summary-title").text()
    assert summary == "Week 2026-W45 (from 2026-11-02), published on 2026-11-24."
    assert f"Last updated {index['generated_on']}, under catalog version 2." in (
        out["index.html"].decode())


def test_both_languages_have_the_same_charts_and_numbers(site: Any) -> None:
    _, _, out = site
    english, german = parse(out["index.html"]), parse(out["de/index.html"])
    for document in (english, german):
        assert [f.attrs["id"] for f in document.iter("figure")] == CHARTS
    for chart in CHARTS:
        assert table(english, chart)[1:] == [
            [cell.replace("unter", "under").replace(" %", "%") for cell in row]
            for row in table(german, chart)[1:]], chart


def test_every_chart_is_a_figure_with_an_image_named_by_its_title_and_a_table(site: Any) -> None:
    _, _, out = site
    for language, path in zip(LANGUAGES, ("index.html", "de/index.html"), strict=True):
        document = parse(out[path])
        for figure in document.iter("figure"):
            svg = next(figure.iter("svg"))
            title = next(svg.iter("title"))
            assert (svg.attrs["role"], svg.attrs["aria-labelledby"]) == ("img", title.attrs["id"])
            assert svg.attrs["viewbox"]  # the parser lowers names.startswith("0 0 ")
            assert title.text() and next(figure.iter("figcaption")).text()
            assert len(list(figure.iter("table"))) == 1, (language, figure.attrs["id"])


def test_pages_have_no_script_and_reach_nothing_outside_the_site(site: Any) -> None:
    _, _, out = site
    for path in ("index.html", "de/index.html"):
        document = parse(out[path])
        assert list(document.iter("script")) == []
        addresses = [n.attrs[a] for n in document.iter() for a in ("href", "src") if a in n.attrs]
        assert [a for a in addresses if ":" in a or a.startswith("/")] == []
        assert not [n for n in document.iter() if "style" in n.attrs or n.tag == "style"]
    assert b"url(" not in out[STYLESHEET] and b"@import" not in out[STYLESHEET]


HOSTILE = '"><script>alert(1)</script><img src=x onerror=alert(2)>'


def test_a_hostile_value_is_escaped_everywhere_it_is_shown(catalog: Catalog) -> None:
    index, weeks = published(catalog, 3)
    weeks = copy.deepcopy(weeks)
    latest = weeks["2026-W42"]
    for row in latest["resource_attributes"]:
        if row["attribute"] in ("printernizer.deployment.mode", "service.version"):
            row["value"] = HOSTILE
    index["weeks"][-1]["file"] = HOSTILE
    out = pages(index, weeks, catalog)
    for path in ("index.html", "de/index.html"):
        document = parse(out[path])
        assert list(document.iter("script")) == [] and list(document.iter("img")) == []
        assert HOSTILE in [row[0] for row in table(document, "modes")]
        assert HOSTILE in table(document, "versions")[0]
        assert HOSTILE.encode() not in out[path]


def test_a_site_with_no_published_week_says_so(catalog: Catalog) -> None:
    index, _ = published(catalog, 1)
    empty = {**index, "weeks": [], "active_installations": []}
    out = pages(empty, {}, catalog)
    assert parse(out["index.html"]).by_id("nothing").text() == "No week has been published yet."
    assert (parse(out["de/index.html"]).by_id("nothing").text()
            == "Es wurde noch keine Woche veröffentlicht.")

