"""No other web site can change anything: every state-changing route of the privacy page's API
and of Printernizer's old ``/api/v1/usage-stats`` refuses a request unless ``Sec-Fetch-Site`` is
``same-origin`` or ``none``, or, where a browser sends no ``Sec-Fetch-Site``, its ``Origin`` is
the request's host (``Host``, or ``X-Forwarded-Host`` from Home Assistant's ingress). Tested over
HTTP with the headers browsers send, then in Chromium with real cross-origin pages, directly and
through a real proxy that rewrites ``Host`` as the ingress does."""

from __future__ import annotations

import json
import math
import re
from collections.abc import AsyncIterator, Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from browser_support import (
    INGRESS_PATH,
    RESOLVE_TEST_NAMES,
    Recorder,
    chromium,
    ingress_proxy,
    served,
    static_site,
)
from fastapi import FastAPI
from standin_support import printernizer_main

from examples.switch_over import switched_over
from otel_usage import ManualClock, UsageTelemetry
from otel_usage.catalog import load_catalog
from otel_usage.printernizer import UsageStatisticsService
from otel_usage.printernizer.api import usage_stats_router
from otel_usage.web import privacy_router

HOST = "printernizer.local:8000"
OLD = "/api/v1/usage-stats"
PAGE = "/usage/api"
VERSION = load_catalog().version
EVIL = {"Origin": "http://evil.example"}
CROSS_SITE = {"error": "cross_site"}


@pytest.fixture
async def service(data_dir: Path, midweek: datetime) -> AsyncIterator[UsageStatisticsService]:
    usage = UsageTelemetry(data_dir, service_version="2.42.0", export_interval_s=math.inf,
                           clock=ManualClock(midweek), background_uploads=False)
    service = UsageStatisticsService(usage)
    await service.initialize()
    yield service
    await usage.ashutdown()


@pytest.fixture
async def client(service: UsageStatisticsService) -> AsyncIterator[httpx.AsyncClient]:
    app = FastAPI()
    app.include_router(usage_stats_router(service))
    app.include_router(privacy_router(service.usage, prefix="/usage"))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url=f"http://{HOST}") as c:
        yield c


def _form() -> dict[str, Any]:
    return {"data": {"opt_in": "1"}}


# (method, path, request arguments): what another site's page makes a browser send.
REFUSED = {
    "no body, foreign origin": ("POST", f"{OLD}/opt-in", {"headers": EVIL}),
    "a form": ("POST", f"{OLD}/opt-in", {"headers": EVIL, **_form()}),
    "text/plain": ("POST", f"{OLD}/opt-in", {"headers": {**EVIL, "Content-Type": "text/plain"},
                                             "content": b"x"}),
    "multipart": ("POST", f"{OLD}/opt-in", {"headers": EVIL, "files": {"f": b"x"}}),
    "sec-fetch-site cross-site": ("POST", f"{OLD}/opt-in",
                                  {"headers": {"Sec-Fetch-Site": "cross-site"}}),
    "another port is same-site": ("POST", f"{OLD}/opt-in", {"headers": {
        "Sec-Fetch-Site": "same-site", "Origin": "http://printernizer.local:9000"}}),
    "another port, no sec-fetch-site": ("POST", f"{OLD}/opt-in", {"headers": {
        "Origin": "http://printernizer.local:9000"}}),
    "another host": ("POST", f"{OLD}/opt-in", {"headers": {
        "Origin": "http://printernizer.local.evil.example:8000"}}),
    "a forwarded host that is not it": ("POST", f"{OLD}/opt-in", {"headers": {
        "Origin": "http://evil.example", "X-Forwarded-Host": "homeassistant.local:8123"}}),
    "an opaque origin": ("POST", f"{OLD}/opt-in", {"headers": {"Origin": "null"}}),
    "the drop-in's delete": ("DELETE", OLD, {"headers": EVIL}),
    "the drop-in's agreement": ("POST", f"{OLD}/consent", {
        "headers": EVIL, "json": {"catalog_version": VERSION}}),
    "the page's mode": ("PUT", f"{PAGE}/mode", {
        "headers": EVIL, "json": {"mode": "on", "catalog_version": VERSION}}),
    "the page's delete": ("DELETE", f"{PAGE}/data", {
        "headers": {"Sec-Fetch-Site": "cross-site"}, "json": {"confirm": True}}),
    "the page's delete by post": ("POST", f"{PAGE}/data/delete", {
        "headers": {**EVIL, "Content-Type": "text/plain"}, "content": b'{"confirm": true}'}),
    "the page's send-now": ("POST", f"{PAGE}/send-now", {"headers": EVIL, "json": {}}),
}


async def _state(service: UsageStatisticsService) -> tuple[str, int, str]:
    export = json.loads(await service.export_stats())["usage"]
    return (await service.usage.amode(), await service.total_events(),
            json.dumps(export["installation"], sort_keys=True))


@pytest.mark.parametrize(("method", "path", "kwargs"), REFUSED.values(), ids=REFUSED.keys())
async def test_a_request_from_another_site_is_refused_and_changes_nothing(
    client: httpx.AsyncClient, service: UsageStatisticsService, method: str, path: str,
    kwargs: dict[str, Any],
) -> None:
    await service.record_event("job_completed", {"printer_type": "bambu_lab"})
    service.usage.flush()
    before = await _state(service)
    response = await client.request(method, path, **kwargs)
    assert (response.status_code, response.json()["error"]) == (403, CROSS_SITE["error"])
    assert response.json()["detail"].startswith(
        "refused: a page of another site cannot change usage statistics")
    assert await _state(service) == before


async def test_a_request_from_another_site_cannot_opt_out_either(
    client: httpx.AsyncClient, service: UsageStatisticsService,
) -> None:
    assert (await client.post(f"{OLD}/opt-in")).status_code == 200
    refused = await client.post(f"{OLD}/opt-out", headers=EVIL)
    assert (refused.status_code, await service.usage.amode()) == (403, "on")


ALLOWED = {
    "no browser headers (a script, curl)": {},
    "the same origin": {"Origin": f"http://{HOST}"},
    "sec-fetch-site same-origin": {"Sec-Fetch-Site": "same-origin",
                                   "Origin": f"http://{HOST}"},
    "sec-fetch-site none (typed by the user)": {"Sec-Fetch-Site": "none"},
    "home assistant's ingress": {"Origin": "http://homeassistant.local:8123",
                                 "X-Forwarded-Host": "homeassistant.local:8123"},
    "a default port": {"Origin": "http://homeassistant.local",
                       "X-Forwarded-Host": "homeassistant.local:80"},
}


@pytest.mark.parametrize("headers", ALLOWED.values(), ids=ALLOWED.keys())
async def test_printernizers_own_front_end_switches_without_a_body(
    client: httpx.AsyncClient, service: UsageStatisticsService, headers: dict[str, str],
) -> None:
    """Its front end sends the POSTs and the DELETE without a body, from its own origin."""
    opted = await client.post(f"{OLD}/opt-in", headers=headers)
    assert (opted.status_code, opted.json()["success"], await service.usage.amode()) == (
        200, True, "on")
    out = await client.post(f"{OLD}/opt-out", headers=headers)
    assert (out.status_code, await service.usage.amode()) == (200, "local")
    deleted = await client.delete(OLD, headers=headers)
    assert (deleted.status_code, deleted.json()["success"]) == (200, True)


@pytest.mark.parametrize(("kwargs", "status"), [
    (_form(), 415),
    ({"content": b"x", "headers": {"Content-Type": "text/plain"}}, 415),
    ({"files": {"f": b"x"}}, 415),
    ({"content": b"opt_in=1"}, 415),
    ({"json": {}}, 200),
])
async def test_the_old_switch_takes_no_body_or_json_only(
    client: httpx.AsyncClient, service: UsageStatisticsService, kwargs: dict[str, Any],
    status: int,
) -> None:
    """As the page's API: a form, text or multipart body is refused (415), even from the
    same origin; no body or a JSON one is fine."""
    headers = {"Origin": f"http://{HOST}", **kwargs.pop("headers", {})}
    response = await client.post(f"{OLD}/opt-in", headers=headers, **kwargs)
    assert response.status_code == status
    assert await service.usage.amode() == ("on" if status == 200 else "local")
    if status == 415:
        assert response.json() == {"error": "json_required",
                                   "detail": "send no body, or the request body as "
                                             "application/json"}


# In Chromium: pages of another origin, and Printernizer's own front end, directly on loopback
# (Chromium sends Sec-Fetch-Site there) and through a real ingress proxy under a name Chromium
# does not trust (it sends Origin only, and the proxy rewrites Host).

EVIL_PAGE = """<!doctype html><html><head><title>cat pictures</title></head><body>
<form id="form" method="post" action="{base}/api/v1/usage-stats/opt-in">
  <input name="opt_in" value="1"></form>
<script>
const base = "{base}";
const old = base + "/api/v1/usage-stats/opt-in";
Promise.allSettled([
  fetch(old, {{method: "POST", mode: "no-cors"}}),
  fetch(old, {{method: "POST", mode: "no-cors", headers: {{"Content-Type": "text/plain"}},
              body: "x"}}),
  fetch(old, {{method: "POST", mode: "no-cors", body: new FormData(document.forms[0])}}),
  fetch(base + "/usage/api/data/delete", {{method: "POST", mode: "no-cors",
        headers: {{"Content-Type": "text/plain"}}, body: '{{"confirm": true}}'}}),
]).then(() => {{ document.title = "sent"; }});
</script></body></html>"""


@dataclass(frozen=True)
class Site:
    """Printernizer (the example app) as a browser reaches it, and a page of another origin."""

    recorder: Recorder
    service: UsageStatisticsService
    front_end: str  # its front end's URL, ending in "/"
    elsewhere: str  # the other origin's page
    proxied: bool


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with chromium(RESOLVE_TEST_NAMES) as running:
        yield running


@pytest.fixture(params=["direct", "ingress"])
def site(request: pytest.FixtureRequest, tmp_path: Path, midweek: datetime) -> Iterator[Site]:
    """Printernizer's stand-in, switched over as the README says. direct: the app on one
    loopback port, the other page on another (same site, another origin). ingress: the app
    behind the ingress proxy at homeassistant.test, the other page at evil.test."""
    root = switched_over(tmp_path / "printernizer")
    with ExitStack() as stack:
        main = stack.enter_context(printernizer_main(root, tmp_path / "data" / "p.db"))
        app = main.app
        recorder = Recorder(app)
        proxied = request.param == "ingress"
        port = stack.enter_context(served(recorder, lifespan="on"))
        if proxied:
            proxy = stack.enter_context(ingress_proxy(port))
            base = f"http://homeassistant.test:{proxy}{INGRESS_PATH}"
            host = "evil.test"
        else:
            base, host = f"http://127.0.0.1:{port}", "127.0.0.1"
        evil = stack.enter_context(static_site({"/": EVIL_PAGE.format(base=base)}))
        yield Site(recorder, app.state.usage_statistics_service, base + "/",
                   f"http://{host}:{evil}/", proxied)


@pytest.mark.browser
def test_pages_of_another_origin_cannot_switch_or_delete_in_chromium(
    browser: Any, site: Site,
) -> None:
    """A page of another origin makes Chromium post to the old switch (no body, text, a form
    as multipart, then a form submitted by navigation) and to the page's delete: each arrives
    and is refused, and the mode and the data stay as they were."""
    context = browser.new_context()
    page = context.new_page()
    page.goto(site.elsewhere)
    page.wait_for_function("document.title === 'sent'")
    with page.expect_navigation():
        page.evaluate("document.forms[0].submit()")
    context.close()
    opt_in = ("POST", "/api/v1/usage-stats/opt-in", 403)
    assert sorted(site.recorder.changes()) == sorted(
        [opt_in] * 4 + [("POST", "/usage/api/data/delete", 403)])
    assert site.service.usage.mode == "local"
    origin = site.elsewhere.rstrip("/")
    seen = {(a.headers.get("origin"), a.headers.get("sec-fetch-site"))
            for a in site.recorder.arrivals if a.method == "POST"}
    assert seen == {(origin, None if site.proxied else "same-site")}


@pytest.mark.browser
def test_printernizers_front_end_makes_its_six_calls_in_chromium(
    browser: Any, site: Site,
) -> None:
    """Its front end's calls (status, local, opt-in, opt-out, export, delete, all without a
    body), and the offer of what is new, work from its own origin."""
    from playwright.sync_api import expect

    context = browser.new_context(accept_downloads=True)
    page = context.new_page()
    page.on("dialog", lambda dialog: dialog.accept())
    page.goto(site.front_end)
    page.wait_for_selector("body[data-ready]")
    expect(page.locator("#usage-status")).to_have_text("off")
    page.locator("#opt-in").click()
    expect(page.locator("#usage-message")).to_have_text(
        "Usage statistics enabled. Thank you for helping improve Printernizer!")
    expect(page.locator("#usage-status")).to_have_text("on")
    expect(page.locator("#usage-consent-title")).to_have_text(
        f"Version {VERSION} of what is sent adds (you agreed to version 1):")
    page.locator("#usage-consent-agree").click()
    expect(page.locator("#usage-message")).to_have_text(f"You now agree to version {VERSION}.")
    expect(page.locator("#usage-consent")).to_be_hidden()
    page.locator("#opt-out").click()
    expect(page.locator("#usage-message")).to_have_text(
        "Usage statistics disabled. Your data will remain local.")
    expect(page.locator("#usage-status")).to_have_text("off")
    with page.expect_download() as download:
        page.locator("#export").click()
    exported = json.loads(Path(download.value.path()).read_text(encoding="utf-8"))
    assert (download.value.suggested_filename, sorted(exported)) == (
        "usage-statistics-export.json",
        ["events", "export_version", "exported_at", "settings", "usage"])
    page.locator("#delete").click()
    expect(page.locator("#usage-message")).to_have_text(
        re.compile(r"^Deleted [0-9]+ usage statistics events\.$"))
    context.close()
    old = "/api/v1/usage-stats"
    assert [a for a in site.recorder.arrivals if a.status >= 400] == []
    assert {(a.method, a.path) for a in site.recorder.arrivals if a.path.startswith(old)} == {
        ("GET", f"{old}/status"), ("GET", f"{old}/local"), ("POST", f"{old}/opt-in"),
        ("POST", f"{old}/opt-out"), ("GET", f"{old}/export"), ("DELETE", old),
        ("GET", f"{old}/consent"), ("POST", f"{old}/consent")}
    opted = next(a for a in site.recorder.arrivals if a.path == f"{old}/opt-in")
    if site.proxied:  # the Origin is the browser's host, which only X-Forwarded-Host names
        front = site.front_end.split(INGRESS_PATH)[0]
        assert (opted.headers["origin"], opted.headers["x-forwarded-host"],
                opted.headers["host"].startswith("127.0.0.1:"), "sec-fetch-site" in
                opted.headers) == (front, front.removeprefix("http://"), True, False)
    else:
        assert opted.headers["sec-fetch-site"] == "same-origin"
