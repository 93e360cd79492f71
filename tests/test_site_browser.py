"""The public statistics' pages in a real browser: Debian's Chromium, headless, driven by
Playwright, at a phone's and a desktop's width, in English and German.

The files of `ingest._site_page.pages` and the site's JSON are served from loopback under
``/stats/`` with the site's policy (``Content-Security-Policy: default-src 'self'``); every
request the page makes is recorded. axe-core (vendored from the npm registry by
``scripts/setup test``) checks the page. Screenshots go to ``artifacts/screenshots/`` at the
repository root.
"""

from __future__ import annotations

import concurrent.futures
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from browser_support import chromium, static_files, vendored
from public_support import active, files, fixture_catalog, published

from ingest._site_page import TOP_COUNTRIES, pages
from otel_usage.catalog import CATALOG_PATH, load_catalog

pytestmark = pytest.mark.browser

SCREENSHOTS = Path(__file__).resolve().parent.parent / "artifacts" / "screenshots"
PREFIX = "/stats/"
POLICY = {"Content-Security-Policy": "default-src 'self'", "X-Content-Type-Options": "nosniff"}
PHONE, DESKTOP = {"width": 360, "height": 740}, {"width": 1280, "height": 900}
LATEST = "2026-W45"
# Each bar chart, and the rows of the latest week it draws: (part of the week, filter).
BARS: dict[str, tuple[str, dict[str, str]]] = {
    "modes": ("resource_attributes", {"attribute": "printernizer.deployment.mode"}),
    "printers": ("metrics", {"metric": "printernizer.printers", "attribute": "printer.type"}),
    "fleet": ("distributions", {"metric": "printernizer.printers"}),
    "features": ("metrics", {"metric": "printernizer.features.enabled",
                             "attribute": "feature.name"}),
    "errors": ("metrics", {"metric": "printernizer.errors", "attribute": "error.category"}),
    "os": ("resource_attributes", {"attribute": "os.type"}),
    "arch": ("resource_attributes", {"attribute": "host.arch"}),
    "python": ("resource_attributes", {"attribute": "process.runtime.version"}),
    "countries": ("resource_attributes", {"attribute": "geo.country.iso_code"}),
}


@pytest.fixture(scope="module")
def site() -> Iterator[tuple[str, dict[str, Any], dict[str, bytes], list[str]]]:
    """The site of six published weeks on a loopback static host: (base URL, the latest
    week's document, the files, the paths asked for)."""
    catalog = fixture_catalog()
    index, weeks = published(catalog, 6)
    served = {**pages(index, weeks, catalog), **files(index, weeks),
              "catalog.toml": CATALOG_PATH.read_bytes()}
    arrivals: list[str] = []
    with static_files(served, PREFIX, POLICY, arrivals) as port:
        yield f"http://127.0.0.1:{port}{PREFIX}", weeks[LATEST], served, arrivals


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with chromium() as running:
        yield running


def _open(browser: Any, url: str, viewport: dict[str, int], locale: str,
          bypass_csp: bool = False, scheme: str = "light") -> tuple[Any, Any, list[str],
                                                                   list[str]]:
    """The page at `url`, with every request it made and every error it logged. `bypass_csp`
    only for axe-core, which Playwright injects as an inline script the site's policy
    forbids."""
    context = browser.new_context(viewport=viewport, locale=locale, bypass_csp=bypass_csp,
                                  color_scheme=scheme)
    page = context.new_page()
    requests: list[str] = []
    problems: list[str] = []
    page.on("request", lambda r: requests.append(r.url))
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: problems.append(str(e)))
    page.on("requestfailed", lambda r: problems.append(f"failed: {r.url}"))
    page.on("response", lambda r: problems.append(f"{r.status}: {r.url}")
            if r.status >= 400 else None)
    page.goto(url, wait_until="networkidle")
    return context, page, requests, problems


def _axe(page: Any) -> list[str]:
    """axe-core's violations on the page as it is, one line each."""
    page.add_script_tag(path=str(vendored("axe-core", "axe.min.js")))
    found = page.evaluate("""async () => (await axe.run(document, {resultTypes: ['violations']}))
        .violations.map(v => `${v.id}: ${v.nodes.map(n => n.target.join(' ')).join(', ')}`)""")
    return list(found)


def _overflow(page: Any) -> int:
    """How far the page is wider than the window (0: nothing scrolls sideways)."""
    return int(page.evaluate(
        "Math.max(0, document.scrollingElement.scrollWidth - window.innerWidth)"))


def _expected_bars(week: dict[str, Any]) -> dict[str, list[int]]:
    """Per bar chart, the counts it draws as bars: the published counts above their margin
    (of the countries, the ten largest)."""
    out = {}
    for chart, (part, match) in BARS.items():
        rows = [r for r in week[part] if all(r[k] == v for k, v in match.items())]
        if chart == "countries":
            rows = sorted(rows, key=lambda r: -r["installations"])[:TOP_COUNTRIES]
        out[chart] = [r["installations"] for r in rows
                      if r["installations"] >= r["margin"] and r["installations"] > 0]
    return out


def _drawn(page: Any) -> dict[str, Any]:
    """What the browser drew: per figure, each bar's count and drawn width, and each line's
    counts and its number of points."""
    return dict(page.evaluate("""() => Object.fromEntries([...document.querySelectorAll(
        'figure')].map(f => [f.id, {
          bars: [...f.querySelectorAll('rect.bar')].map(
            r => [Number(r.dataset.count), r.getBoundingClientRect().width]),
          lines: [...f.querySelectorAll('polyline.line')].map(
            l => [l.dataset.counts, l.points.numberOfItems])}]))"""))


CASES = [("phone", "index.html", PHONE, "en-US"), ("desktop", "index.html", DESKTOP, "en-US"),
         ("phone-de", "de/index.html", PHONE, "de-DE"),
         ("desktop-de", "de/index.html", DESKTOP, "de-DE")]


@pytest.mark.parametrize(("name", "path", "viewport", "locale"), CASES,
                         ids=[c[0] for c in CASES])
def test_the_page_draws_every_chart_from_its_own_origin_only(
        site: Any, browser: Any, name: str, path: str, viewport: dict[str, int],
        locale: str) -> None:
    base, week, _, _ = site
    context, page, requests, problems = _open(browser, base + path, viewport, locale)
    try:
        drawn = _drawn(page)
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SCREENSHOTS / f"site-{name}.png"), full_page=True)
        assert {chart: [count for count, _ in drawn[chart]["bars"]]
                for chart in BARS} == _expected_bars(week)
        assert [chart for chart, d in drawn.items()
                if any(width <= 0 for _, width in d["bars"])] == []
        assert [chart for chart, d in drawn.items() if not d["bars"] and not d["lines"]] == []
        assert drawn["active"]["lines"] == [[" ".join(str(active(i)) for i in range(6)), 6]]
        assert len(drawn["versions"]["lines"]) == 5
        assert _overflow(page) == 0
        page.evaluate("document.querySelectorAll('details').forEach(d => d.open = true)")
        assert _overflow(page) == 0
        page.screenshot(path=str(SCREENSHOTS / f"site-{name}-tables.png"), full_page=True)
    finally:
        context.close()
    assert problems == []
    origin = base[:-len(PREFIX)]
    assert [url for url in requests if not url.startswith(origin + "/")] == []
    assert sorted({url[len(origin):] for url in requests}) == sorted(
        [PREFIX + path, PREFIX + "icon.svg", PREFIX + "style.css"])


@pytest.mark.parametrize(("name", "path", "viewport", "locale", "scheme"),
                         [(*c, "light") for c in CASES]
                         + [("desktop-dark", "index.html", DESKTOP, "en-US", "dark"),
                            ("phone-de-dark", "de/index.html", PHONE, "de-DE", "dark")],
                         ids=[*(c[0] for c in CASES), "desktop-dark", "phone-de-dark"])
def test_axe_core_finds_no_violation_with_the_tables_closed_or_open(
        site: Any, browser: Any, name: str, path: str, viewport: dict[str, int],
        locale: str, scheme: str) -> None:
    """In the light and the dark colour scheme (contrast is checked in each)."""
    base, _, _, _ = site
    context, page, _, problems = _open(browser, base + path, viewport, locale, bypass_csp=True,
                                       scheme=scheme)
    try:
        closed = _axe(page)
        page.evaluate("document.querySelectorAll('details').forEach(d => d.open = true)")
        opened = page.evaluate("""async () => (await axe.run(document,
            {resultTypes: ['violations']})).violations.map(v => v.id)""")
    finally:
        context.close()
    assert (closed, opened, problems) == ([], [], [])


def test_the_page_prints_without_tables_or_sideways_overflow(site: Any, browser: Any) -> None:
    """Printed (the print stylesheet): the charts with their numbers, no language switch and
    no tables (the charts carry their numbers), nothing wider than the page; the PDF is kept
    beside the screenshots."""
    base, _, _, _ = site
    context, page, _, problems = _open(browser, base, PHONE, "en-US")
    try:
        page.emulate_media(media="print")
        shown = page.evaluate("""() => ({
            languages: getComputedStyle(document.querySelector('.languages')).display,
            tables: [...document.querySelectorAll('details')].filter(
                d => getComputedStyle(d).display !== 'none').length,
            figures: [...document.querySelectorAll('figure svg')].filter(
                s => s.getBoundingClientRect().width > 0).length})""")
        overflow = _overflow(page)
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        page.pdf(path=str(SCREENSHOTS / "site-print.pdf"), format="A4")
    finally:
        context.close()
    assert (shown, overflow, problems) == (
        {"languages": "none", "tables": 0, "figures": 11}, 0, [])


@pytest.mark.parametrize("path", ["index.html", "de/index.html"])
def test_every_link_to_the_data_opens_a_file_of_the_site(site: Any, browser: Any,
                                                         path: str) -> None:
    """index.json, each week's file and catalog.toml, from the English and the German page."""
    base, _, served, _ = site
    context, page, _, problems = _open(browser, base + path, DESKTOP, "en-US")
    try:
        hrefs = page.eval_on_selector_all("#data a", "links => links.map(a => a.href)")
        answers = [(href[len(base):], page.request.get(href).body()) for href in hrefs]
    finally:
        context.close()
    assert problems == []
    assert [url for url in hrefs if not url.startswith(base)] == []
    assert answers == [(name, served[name]) for name in (
        "index.json", "weeks/2026-W45.json", "catalog.toml",
        *(f"weeks/2026-W4{n}.json" for n in range(5, -1, -1)))]


WEEKS = 6


def test_the_pages_of_weeks_the_mechanism_published_draw_them_in_the_browser(
        browser: Any, tmp_path: Path) -> None:
    """End to end: the dashboards' simulated fleet (240 installations) sends six weeks of
    reports to the real ingest, which publishes them; the generator builds the site from the
    published views; served and opened at phone width, every chart draws what the latest week
    published, from the page's own origin only, and axe-core finds nothing."""
    from dashboards import testing as fleet
    from ingest.site import build_site, read_engine, site_files

    url = f"sqlite:///{tmp_path}/ingest.db"
    # In a thread: the sync Playwright of this module keeps an event loop running in this one.
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        assert pool.submit(fleet.load, url, weeks=WEEKS).result().accepted > 0
    catalog = load_catalog()
    engine = read_engine(url)
    built = build_site(engine, catalog, date(2025, 3, 1))
    assert len(built.weeks) == WEEKS
    engine.dispose()
    served = site_files(built, catalog)
    week = built.weeks[max(built.weeks)]
    arrivals: list[str] = []
    with static_files(served, PREFIX, POLICY, arrivals) as port:
        base = f"http://127.0.0.1:{port}{PREFIX}"
        context, page, requests, problems = _open(browser, base, PHONE, "en-US")
        try:
            drawn = _drawn(page)
            page.screenshot(path=str(SCREENSHOTS / "site-published-phone.png"), full_page=True)
            overflow = _overflow(page)
        finally:
            context.close()
        axe_context, axe_page, _, _ = _open(browser, base, PHONE, "en-US", bypass_csp=True)
        try:
            violations = _axe(axe_page)
        finally:
            axe_context.close()
    expected = _expected_bars(week)
    assert {chart: [count for count, _ in drawn[chart]["bars"]] for chart in BARS} == expected
    # Only Python's versions go through partition selection: a small fleet may publish none.
    assert [chart for chart, counts in expected.items() if not counts] in ([], ["python"])
    assert drawn["active"]["lines"] == [
        [" ".join(str(r["installations"]) for r in built.index["active_installations"]), WEEKS]]
    assert (overflow, violations, problems) == (0, [], [])
    origin = base[:-len(PREFIX)]
    assert sorted({url[len(origin):] for url in requests}) == sorted(
        [PREFIX, PREFIX + "icon.svg", PREFIX + "style.css"])
