"""The privacy page in a real browser: Debian's Chromium, headless, driven by Playwright.

The app is served by uvicorn on loopback behind a Home Assistant-like ingress proxy, so every
request the page makes must stay under ``/api/hassio_ingress/abc123/usage/``. Screenshots go
to ``artifacts/screenshots/`` at the repository root.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import socket
import threading
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from browser_support import chromium
from catalog_support import grown_raw, write_catalog
from compare_support import PATH, newest_publishable, public_server, site, with_history
from web_support import (
    MONDAY,
    PAGE,
    IngressProxy,
    build_app,
    collector,
    make_usage,
    record,
    sent_once,
)

from otel_usage import ManualClock, UsageTelemetry
from otel_usage.catalog import load_catalog

pytestmark = pytest.mark.browser

SCREENSHOTS = Path(__file__).resolve().parent.parent / "artifacts" / "screenshots"


class _Swappable:
    """The ASGI app the session's server runs: each test puts its own app in."""

    def __init__(self) -> None:
        self.app: Any = None

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        await self.app(scope, receive, send)


@pytest.fixture(scope="module")
def server() -> Iterator[tuple[str, _Swappable]]:
    """uvicorn on a free loopback port, in a thread, for the whole module."""
    holder = _Swappable()
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    config = uvicorn.Config(IngressProxy(holder), log_level="warning", lifespan="off", ws="none")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    while not server.started:
        thread.join(0.01)
        assert thread.is_alive(), "uvicorn did not start"
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}", holder
    finally:
        server.should_exit = True
        thread.join(5)
        sock.close()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """One headless Chromium for the module; a missing Chromium fails the tests, with why."""
    with chromium() as running:
        yield running


@pytest.fixture
def usage(data_dir: Path) -> Iterator[UsageTelemetry]:
    telemetry = make_usage(data_dir, _clock())
    yield telemetry
    telemetry.shutdown()


def _clock() -> ManualClock:
    return ManualClock(MONDAY)


Open = Callable[..., Any]


@pytest.fixture
def open_page(
    server: tuple[str, _Swappable], browser: Any, request: pytest.FixtureRequest
) -> Iterator[Open]:
    """Serve `usage` and open the page; afterwards, no request may have failed or left the
    ingress prefix, and nothing may have been logged as an error."""
    base, holder = server
    problems: list[str] = []
    contexts: list[Any] = []

    def open_(usage: UsageTelemetry, locale: str = "en-US", query: str = "",
              refused: int | None = None) -> Any:
        """`refused`: a status the test expects the API to answer (not a problem then)."""
        holder.app = build_app(usage)
        context = browser.new_context(locale=locale, accept_downloads=True,
                                      viewport={"width": 1100, "height": 900})
        contexts.append(context)
        page = context.new_page()
        expected = f"the server responded with a status of {refused} "
        page.on("console", lambda m: problems.append(m.text)
                if m.type == "error" and expected not in m.text else None)
        page.on("pageerror", lambda e: problems.append(str(e)))
        page.on("requestfailed", lambda r: problems.append(f"failed: {r.url}"))
        page.on("response", lambda r: problems.append(f"{r.status}: {r.url}")
                if (r.status >= 400 and r.status != refused)
                or not r.url.startswith(base + PAGE) else None)
        page.goto(base + PAGE + query)
        page.wait_for_selector("body[data-ready]")
        return page

    yield open_
    for context in contexts:
        context.close()
    assert problems == []


def in_thread(coroutine: Callable[[], Any]) -> Any:
    """Run a coroutine to completion off this thread (sync Playwright keeps a loop running)."""
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coroutine()).result()


def screenshot(page: Any, name: str, *sections: str) -> None:
    """The whole page, and each named section on its own (easier to look at)."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    print(f"screenshot: {path}")
    for section in sections:
        part = SCREENSHOTS / f"{name}-{section}.png"
        page.locator(f"#{section}").screenshot(path=str(part))
        print(f"screenshot: {part}")


def texts(page: Any, selector: str) -> list[str]:
    return [t.strip() for t in page.locator(selector).all_inner_texts()]


def test_opt_in_with_the_keyboard_and_see_the_next_report(
    open_page: Open, usage: UsageTelemetry
) -> None:
    from playwright.sync_api import expect

    record(usage, 4, downloads=2)
    page = open_page(usage)
    assert (page.locator("#mode-local").is_checked(), page.locator("#send-now").is_visible()) == (
        True, False)
    page.locator("#mode-off").focus()
    page.keyboard.press("ArrowUp")  # to "local"
    page.keyboard.press("ArrowUp")  # to "on": selected, not yet saved
    assert (page.locator("#mode-on").is_checked(), usage.mode) == (True, "local")
    page.keyboard.press("Enter")
    expect(page.locator("#status")).to_have_text("Saved: Share usage statistics.")
    expect(page.locator("#send-now")).to_be_visible()
    assert usage.mode == "on"
    expect(page.locator("#report-body .note")).to_have_count(0)
    assert texts(page, "#report-body table >> nth=0 >> tbody tr") == [
        "printernizer.jobs\tjob.status=completed, printer.type=bambu_lab\t4\t\u2013",
        "printernizer.file.downloads\tprinter.type=prusa_core\t2\t\u2013",
        "printernizer.app.starts\t\u2013\t1\t\u2013",
        "printernizer.uptime\t\u2013\t1\t\u2013",
    ]
    assert texts(page, "#report-summary")[0].startswith(
        "Week 2026-W48 so far: this is what would be sent if the week ended now.")
    page.locator("#report-body details.raw summary").focus()
    page.keyboard.press("Enter")
    expect(page.locator("#otlp-json")).to_be_visible()
    shown = json.loads(page.locator("#otlp-json").inner_text())
    assert shown == usage.preview()["report"]["otlp"]
    screenshot(page, "opted-in-next-report")


def test_focus_is_visible_and_controls_are_labelled(open_page: Open, usage: UsageTelemetry) -> None:
    page = open_page(usage)
    page.keyboard.press("Tab")
    focused = page.evaluate("() => [document.activeElement.textContent.trim(), "
                            "getComputedStyle(document.activeElement).outlineStyle]")
    assert focused == ["English", "solid"]
    unlabelled = page.evaluate("""() => [...document.querySelectorAll('input, button, select')]
        .filter((e) => !(e.labels && e.labels.length) && !e.textContent.trim()
                       && !e.getAttribute('aria-label')).map((e) => e.outerHTML)""")
    assert unlabelled == []


def test_history_and_difference_from_the_last_sent_report(open_page: Open, data_dir: Path) -> None:
    clock = _clock()
    with collector() as (endpoint, _):
        usage = make_usage(data_dir, clock, endpoint=endpoint)
        sent_once(usage, clock)
        page = open_page(usage)
        size = usage.history()[0]["bytes"]
        assert texts(page, "#history-body tbody tr") == [
            f"2026-12-13T23:30:00+00:00\treport\t2026-W49\t{endpoint}\t{size}\t200 · {{}}"]
        assert texts(page, "#changes li") == [
            "printernizer.app.starts: 1 → not in the next report",
            "printernizer.file.downloads printer.type=prusa_core: new → 2",
            "printernizer.jobs job.status=completed, printer.type=bambu_lab: 3 → 5",
        ]
        assert "Last submitted: 2026-12-13T23:30:00+00:00" in page.locator("#stats-body").inner_text()
        screenshot(page, "history-and-difference", "report", "history", "stats")
        usage.shutdown()


def test_export_downloads_the_json(open_page: Open, usage: UsageTelemetry) -> None:
    record(usage, 2)
    page = open_page(usage)
    with page.expect_download() as info:
        page.locator("#export").click()
    download = info.value
    assert download.suggested_filename == "otel-usage-export-2026-11-23.json"
    exported = json.loads(Path(download.path()).read_text(encoding="utf-8"))
    assert exported == in_thread(usage.export_json)
    assert [s["metric"] for s in exported["series"]] == [
        "printernizer.app.starts", "printernizer.jobs", "printernizer.uptime"]


def test_delete_asks_first_then_the_viewer_is_empty(open_page: Open, usage: UsageTelemetry) -> None:
    from playwright.sync_api import expect

    record(usage, 2, downloads=1)
    page = open_page(usage)
    page.locator("#delete").focus()
    page.keyboard.press("Enter")
    expect(page.locator("#delete-dialog")).to_be_visible()
    screenshot(page, "delete-confirmation")
    page.keyboard.press("Escape")
    expect(page.locator("#delete-dialog")).to_be_hidden()
    assert in_thread(usage.statistics)["this_week"]["jobs_completed"] == 2
    page.locator("#delete").click()
    page.locator("#delete-confirm").click()
    expect(page.locator("#status")).to_have_text("All statistics on this machine were deleted.")
    expect(page.locator("#stats-empty")).to_have_text(
        "No statistics are stored on this machine.")
    assert texts(page, "#stats-body dl") == [
        "Installation ID\nnone yet (random: a pseudonym, not anonymous)\nFirst used\nnever\nDays active\n0"]
    assert texts(page, "#stats-body .this-week li") == [
        "Jobs completed\n0", "Files downloaded\n0", "Active printers\n0", "Errors encountered\n0"]
    assert in_thread(usage.export_json)["series"] == []
    expect(page.locator("#report-none")).to_have_text(
        "Nothing recorded yet: there is no report to show.")
    screenshot(page, "after-delete", "stats", "report")


def test_switch_to_german(open_page: Open, usage: UsageTelemetry) -> None:
    from playwright.sync_api import expect

    page = open_page(usage, locale="en-US")
    assert page.locator("h1").inner_text() == "Privacy & usage statistics"
    page.get_by_role("link", name="Deutsch").click()
    page.wait_for_selector("body[data-ready]")
    assert page.url.endswith(PAGE + "?lang=de")
    expect(page.locator("h1")).to_have_text("Datenschutz & Nutzungsstatistik")
    assert page.locator("html").get_attribute("lang") == "de"
    assert texts(page, "#never li") == [n.de for n in load_catalog().never]
    expect(page.locator("#policy-body h3").first).to_have_text("Ihre Wahl")
    assert page.locator("label[for=mode-on]").inner_text() == "Nutzungsstatistik teilen"
    screenshot(page, "german", "settings", "policy")


def test_german_browser_gets_german(open_page: Open, usage: UsageTelemetry) -> None:
    page = open_page(usage, locale="de-DE")
    assert (page.locator("h1").inner_text(), texts(page, "#stats-body h3")[0]) == (
        "Datenschutz & Nutzungsstatistik", "Diese Woche (ab 2026-11-23)")


def test_agreeing_on_a_page_opened_before_an_upgrade_shows_what_is_new_first(
    open_page: Open, server: tuple[str, _Swappable], data_dir: Path, tmp_path: Path,
) -> None:
    """The page listed what version 2 adds; the app is upgraded to version 3 before the user
    agrees: the agreement names version 2 and is refused, the page shows version 3's
    additions and says why, and the next click agrees to version 3."""
    from playwright.sync_api import expect

    grown = load_catalog(write_catalog(grown_raw(), tmp_path))
    clock = _clock()
    make_usage(data_dir, clock, catalog=grown.as_of(1)).set_mode("on")
    page = open_page(make_usage(data_dir, clock, catalog=grown.as_of(2)), refused=409)
    expect(page.locator("#consent-new-title")).to_have_text(
        "You agreed to version 1 of the list; version 2 adds the following. Nothing of it is "
        "sent until you agree:")
    upgraded = make_usage(data_dir, clock, catalog=grown)
    server[1].app = build_app(upgraded)
    page.locator("#consent-agree").click()
    expect(page.locator("#status")).to_have_text(
        "What may be sent has changed since this page was opened: the lists on this page are "
        "new. Look at them again, then choose.")
    expect(page.locator("#consent-new-title")).to_contain_text("version 3 adds")
    assert "New metric printernizer.slicer.uses: Slicer runs in the week." in texts(
        page, "#consent-new-list li")
    assert upgraded.catalog_additions()["consented_version"] == 1
    page.locator("#consent-agree").click()
    expect(page.locator("#status")).to_have_text(
        "Thank you: the new items are sent from the next week on.")
    expect(page.locator("#consent-new")).to_be_hidden()
    assert upgraded.catalog_additions()["consented_version"] == 3


def test_in_mode_local_the_button_names_what_it_contacts_and_the_comparison_shows(
        open_page: Open, data_dir: Path, midweek: datetime, monkeypatch: pytest.MonkeyPatch,
        tmp_path: Path) -> None:
    """Nothing is fetched until the button is pressed; then the page's API fetches (the
    browser's requests all stay on the page's own origin, as the fixture checks) and the
    comparison shows, in English and in German."""
    from playwright.sync_api import expect

    week = newest_publishable(midweek)
    with public_server(monkeypatch, tmp_path, site([week], midweek)) as server:
        usage, _ = with_history(data_dir, midweek, server.url, week)
        page = open_page(usage)
        button = page.locator("#compare-fetch")
        expect(button).to_have_text(f"Fetch the public statistics from {server.url}/stats/")
        seen_before = list(server.seen)
        button.click()
        expect(page.locator("#status")).to_have_text("The public statistics were fetched.")
        english = texts(page, "#compare-list li")
        screenshot(page, "compare-local-fetched", "compare")
        page.set_viewport_size({"width": 360, "height": 800})  # a phone: nothing runs wider
        overflow = page.evaluate("() => document.documentElement.scrollWidth - "
                                 "document.documentElement.clientWidth")
        screenshot(page, "compare-local-fetched-phone", "compare")
        german = texts(open_page(usage, locale="de-DE"), "#compare-list li")
        usage.shutdown()
    assert (seen_before, overflow) == ([], 0)
    assert len(server.seen) == 2
    pm, dash, nbsp = "\u00a0±\u00a0", "\u2013", "\u00a0"  # ± keeps its numbers on its line
    assert english[:3] == [
        f"You had 3 printers; 18.0%{pm}1.0% of installations (180{pm}9.1) had 3{dash}5.",
        f"You had 12 jobs; 25.0%{pm}1.0% of installations (250{pm}9.1) had 11{dash}20. On "
        f"average an installation had 7.2{pm}0.4 jobs.",
        f"Library: off here; on at -0.3%{pm}0.7% of installations (-3{pm}7).",
    ]
    assert german[0] == (f"Sie hatten 3 Drucker; 18,0{nbsp}%{pm}1,0{nbsp}% der Installationen "
                         f"(180{pm}9,1) hatten 3{dash}5.")


def test_in_mode_on_the_page_fetches_once_by_itself_and_the_comparison_shows(
        open_page: Open, data_dir: Path, midweek: datetime, monkeypatch: pytest.MonkeyPatch,
        tmp_path: Path) -> None:
    """Opening the page fetches when due: its script asks with a POST (its GET contacts
    nothing), the page's API fetches (the browser's requests all stay on the page's own
    origin, as the fixture checks), and opening it again fetches nothing more."""
    week = newest_publishable(midweek)
    with public_server(monkeypatch, tmp_path, site([week], midweek)) as server:
        usage, _ = with_history(data_dir, midweek, server.url, week)
        usage.set_mode("on")
        page = open_page(usage)
        first = texts(page, "#compare-list li")
        button_hidden = page.locator("#compare-fetch").is_hidden()
        seen_first = list(server.paths())
        second = texts(open_page(usage), "#compare-list li")
        usage.shutdown()
    pm, dash = "\u00a0±\u00a0", "\u2013"
    assert seen_first == [f"{PATH}index.json", f"{PATH}weeks/{week.label}.json"]
    assert server.paths() == seen_first
    assert (button_hidden, second, first[0]) == (
        True, first, f"You had 3 printers; 18.0%{pm}1.0% of installations (180{pm}9.1) had "
                     f"3{dash}5.")
