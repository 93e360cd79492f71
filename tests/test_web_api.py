"""The privacy page's JSON API without a browser: every endpoint, behind an ingress prefix, and
bad input answered with a clear 4xx JSON error that changes nothing."""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
import sys
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from compare_support import PATH as PUBLIC
from compare_support import make as public_make
from compare_support import newest_publishable, public_server, site, with_history
from web_support import (
    INGRESS,
    MONDAY,
    PAGE,
    Client,
    IngressProxy,
    build_app,
    collector,
    make_usage,
    record,
    sent_once,
)

from otel_usage import ManualClock, UsageTelemetry
from otel_usage.catalog import load_catalog
from otel_usage.user.privacy import render_privacy_markdown
from otel_usage.web._language import negotiate
from otel_usage.web._markdown import markdown_to_html

API = PAGE + "api/"
VERSION = load_catalog().version


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(MONDAY)


@pytest.fixture
def usage(data_dir: Path, clock: ManualClock) -> Iterator[UsageTelemetry]:
    telemetry = make_usage(data_dir, clock)
    yield telemetry
    telemetry.shutdown()


def client_for(usage: UsageTelemetry) -> Client:
    return Client(IngressProxy(build_app(usage)))


@pytest.fixture
def client(usage: UsageTelemetry) -> Client:
    return client_for(usage)


def run(coro: Any) -> Any:
    return asyncio.run(coro)


# The page.


def test_page_is_served_behind_the_ingress_prefix_with_only_relative_urls(
    client: Client,
) -> None:
    response = client.get(PAGE, headers={"Accept-Language": "en-US,en;q=0.9"})
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/html; charset=utf-8"
    assert response.headers["content-language"] == "en"
    urls = re.findall(r'(?:href|src|action)="([^"]*)"', response.text)
    assert urls == ["static/icon.svg", "static/style.css", "static/app.js", "?lang=en",
                    "?lang=de", "#settings", "#stats", "#compare", "#report", "#history",
                    "#policy", "#policy", "#stats", "api/export"]
    assert "{{" not in response.text
    fetched = re.findall(r'api\("([^"?]*)', (client.get(PAGE + "static/app.js")).text)
    assert sorted(set(fetched)) == ["api/catalog", "api/comparison", "api/comparison/fetch",
                                    "api/data", "api/history", "api/mode", "api/privacy",
                                    "api/report", "api/send-now", "api/statistics"]


def test_page_headers_forbid_anything_from_elsewhere(client: Client) -> None:
    headers = client.get(PAGE).headers
    assert (headers["content-security-policy"], headers["cache-control"]) == (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
        "connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'self'",
        "no-store")


def test_prefix_without_slash_redirects_relatively(client: Client) -> None:
    """A relative Location keeps the ingress prefix the app never sees."""
    response = client.get(INGRESS + "/usage?lang=de", follow_redirects=False)
    assert (response.status_code, response.headers["location"]) == (307, "usage/?lang=de")
    assert client.get(INGRESS + "/usage").url.path == PAGE


@pytest.mark.parametrize(("query", "accept", "language", "title"), [
    ("", "de-DE,de;q=0.9,en;q=0.8", "de", "Datenschutz &amp; Nutzungsstatistik"),
    ("", "fr-FR,en;q=0.5", "en", "Privacy &amp; usage statistics"),
    ("?lang=en", "de-DE", "en", "Privacy &amp; usage statistics"),
    ("?lang=de", "", "de", "Datenschutz &amp; Nutzungsstatistik"),
    ("?lang=fr", "de", "de", "Datenschutz &amp; Nutzungsstatistik"),
])
def test_page_language_from_parameter_or_browser(
    client: Client, query: str, accept: str, language: str, title: str
) -> None:
    text = client.get(PAGE + query, headers={"Accept-Language": accept}).text
    assert re.findall(r'<html lang="(\w+)">|<title>(.*)</title>', text) == [
        (language, ""), ("", title)]


@pytest.mark.parametrize(("header", "language"), [
    (None, "en"), ("", "en"), ("de", "de"), ("en-GB,de;q=0.8", "en"), ("de-AT, en;q=0.9", "de"),
    ("fr, de;q=0.1", "de"), ("de;q=0, en", "en"), ("de;q=x", "en"), ("en;q=0.5, de;q=0.5", "en"),
])
def test_accept_language_negotiation(header: str | None, language: str) -> None:
    assert negotiate(header) == language


def test_static_files_and_unknown_names(client: Client) -> None:
    kinds = {name: client.get(PAGE + "static/" + name).headers["content-type"]
             for name in ("app.js", "style.css", "icon.svg", "en.json")}
    assert kinds == {"app.js": "text/javascript; charset=utf-8",
                     "style.css": "text/css; charset=utf-8", "icon.svg": "image/svg+xml",
                     "en.json": "application/json"}
    for name in ("index.html", "_router.py", "nope.js"):
        response = client.get(PAGE + "static/" + name)
        assert (response.status_code, response.json()) == (
            404, {"error": "not_found", "detail": f"no static file named {name!r}"})
    assert client.get(PAGE + "static/..%2F_router.py").status_code == 404


def test_english_and_german_texts_have_the_same_keys(client: Client) -> None:
    en, de = (client.get(PAGE + f"static/{lang}.json").json() for lang in ("en", "de"))
    assert sorted(en) == sorted(de)


# The mode.


def test_mode_defaults_to_local(client: Client) -> None:
    assert client.get(API + "mode").json() == {
        "mode": "local", "forced_by_environment": False, "modes": ["off", "local", "on"],
        "stored": None, "consented_version": None, "catalog_version": VERSION, "additions": []}


def test_opting_in_is_stored_and_makes_an_installation_id(
    client: Client, usage: UsageTelemetry
) -> None:
    response = client.put(API + "mode", json={"mode": "on", "catalog_version": VERSION})
    assert (response.status_code, response.json()) == (
        200, {"mode": "on", "forced_by_environment": False, "modes": ["off", "local", "on"],
              "stored": "on", "consented_version": VERSION, "catalog_version": VERSION,
              "additions": []})
    assert usage.mode == "on"
    stats = client.get(API + "statistics").json()
    assert (stats["mode"], stats["installation_id"] is not None) == ("on", True)


def test_mode_forced_by_the_environment_is_reported(data_dir: Path, clock: ManualClock) -> None:
    usage = make_usage(data_dir, clock, environ={"DO_NOT_TRACK": "1"})
    client = client_for(usage)
    response = client.put(API + "mode", json={"mode": "on", "catalog_version": VERSION})
    assert response.json() == {
        "mode": "off", "forced_by_environment": True, "modes": ["off", "local", "on"],
        "stored": "on", "consented_version": VERSION, "catalog_version": VERSION,
        "additions": []}


BAD_MODE_REQUESTS = [
    ("PUT", "mode", {"json": {"mode": "sometimes"}}, 422,
     {"error": "invalid_mode", "detail": "unknown mode 'sometimes': choose one of off, local, on"}),
    ("PUT", "mode", {"json": {}}, 422,
     {"error": "mode_required", "detail": 'send {"mode": "off" | "local" | "on"}'}),
    ("PUT", "mode", {"json": {"mode": 1}}, 422,
     {"error": "mode_required", "detail": 'send {"mode": "off" | "local" | "on"}'}),
    ("PUT", "mode", {"content": b"mode=on",
                     "headers": {"Content-Type": "application/x-www-form-urlencoded"}}, 415,
     {"error": "json_required", "detail": "send the request body as application/json"}),
    ("PUT", "mode", {"content": b'{"mode": ', "headers": {"Content-Type": "application/json"}},
     400, {"error": "invalid_json",
           "detail": "the body is not valid JSON: Expecting value: line 1 column 10 (char 9)"}),
    ("PUT", "mode", {"json": ["on"]}, 400,
     {"error": "invalid_json", "detail": "the body must be a JSON object"}),
    ("PUT", "mode", {"json": {"mode": "on"}}, 422,
     {"error": "catalog_version_required", "detail": 'agreeing names the catalog version you '
      'were shown: send {"mode": "on", "catalog_version": N}'}),
    ("PUT", "mode", {"json": {"mode": "on", "catalog_version": True}}, 422,
     {"error": "catalog_version_required", "detail": 'agreeing names the catalog version you '
      'were shown: send {"mode": "on", "catalog_version": N}'}),
    ("PUT", "mode", {"json": {"mode": "on", "catalog_version": VERSION - 1}}, 409,
     {"error": "catalog_changed", "detail": f"what may be sent has changed since version "
      f"{VERSION - 1} was shown: it is version {VERSION} now; look at it again"}),
    ("POST", "mode", {"json": {"mode": "on"}}, 405,
     {"error": "method_not_allowed", "detail": "POST is not allowed here: use GET or PUT"}),
    ("DELETE", "statistics", {}, 405,
     {"error": "method_not_allowed", "detail": "DELETE is not allowed here: use GET"}),
    ("GET", "send-now", {}, 405,
     {"error": "method_not_allowed", "detail": "GET is not allowed here: use POST"}),
    ("GET", "data", {}, 405,
     {"error": "method_not_allowed", "detail": "GET is not allowed here: use DELETE"}),
    ("PUT", "export", {}, 405,
     {"error": "method_not_allowed", "detail": "PUT is not allowed here: use GET"}),
]


@pytest.mark.parametrize(("method", "path", "kwargs", "status", "body"), BAD_MODE_REQUESTS)
def test_bad_requests_get_a_clear_error_and_change_nothing(
    client: Client, usage: UsageTelemetry, method: str, path: str, kwargs: dict[str, Any],
    status: int, body: dict[str, str],
) -> None:
    record(usage, 2)
    before = (usage.mode, run(usage.export_json()))
    response = client.request(method, API + path, **kwargs)
    assert (response.status_code, response.json()) == (status, body)
    assert response.headers["content-type"] == "application/json"
    assert (usage.mode, run(usage.export_json())) == before


def test_method_not_allowed_names_the_allowed_ones(client: Client) -> None:
    assert client.patch(API + "mode").headers["allow"] == "GET, PUT"


@pytest.mark.parametrize(("method", "path"), [
    ("POST", PAGE), ("DELETE", PAGE + "static/app.js"), ("PUT", PAGE.rstrip("/"))])
def test_the_pages_own_paths_answer_other_methods_405_in_json(
        client: Client, method: str, path: str) -> None:
    """The page, its static files and the prefix's redirect are served with GET (and HEAD)."""
    response = client.request(method, path, follow_redirects=False)
    assert (response.status_code, response.headers["allow"], response.json()) == (
        405, "GET", {"error": "method_not_allowed",
                     "detail": f"{method} is not allowed here: use GET"})


def test_the_page_answers_head_as_get_without_a_body(client: Client) -> None:
    head = client.request("HEAD", PAGE)
    page = client.get(PAGE)
    assert (head.status_code, head.headers["content-type"], head.content) == (
        200, page.headers["content-type"], b"")


def test_unsupported_language_is_refused(client: Client) -> None:
    for path in ("catalog", "privacy"):
        response = client.get(API + path + "?lang=fr")
        assert (response.status_code, response.json()) == (400, {
            "error": "unsupported_language",
            "detail": "unsupported language 'fr': choose one of en, de"})


# Reading.


def test_statistics_are_the_local_viewer_with_the_last_sent_time(
    client: Client, usage: UsageTelemetry
) -> None:
    record(usage, 4, downloads=1)
    expected = run(usage.statistics())
    assert client.get(API + "statistics").json() == expected
    assert expected["this_week"] == {"jobs_completed": 4, "files_downloaded": 1,
                                     "active_printers": 0, "errors": 0}
    assert [w["week_start"] for w in expected["weeks"]] == [
        "2026-10-05", "2026-10-12", "2026-10-19", "2026-10-26", "2026-11-02", "2026-11-09",
        "2026-11-16", "2026-11-23"]


def test_statistics_of_a_fresh_installation(client: Client) -> None:
    assert client.get(API + "statistics").json() == {
        "mode": "local", "installation_id": None, "first_used": None, "days_active": 0,
        "week_start": "2026-11-23",
        "this_week": {"jobs_completed": 0, "files_downloaded": 0, "active_printers": 0,
                      "errors": 0},
        "weeks": [], "features": {f: None for f in (
            "library", "library_search", "timelapse", "auto_job_creation", "german_business",
            "watch_folders")},
        "last_submitted": None}


def test_catalog_texts_in_german(client: Client, usage: UsageTelemetry) -> None:
    data = client.get(API + "catalog?lang=de").json()
    catalog = usage.catalog
    assert (data["language"], data["catalog_version"], data["policy"]) == (
        "de", catalog.version,
        {"publish_after_days": catalog.policy.publish_after_days,
         "raw_weeks_after_publication": catalog.policy.raw_weeks_after_publication,
         "tombstone_days": catalog.policy.tombstone_days,
         "installation_silent_days": catalog.policy.installation_silent_days,
         "outbox_max_age_weeks": catalog.policy.outbox_max_age_weeks,
         "weekly_epsilon": catalog.policy.privacy.weekly_epsilon})
    assert data["never"] == [n.de for n in catalog.never]
    assert [m["name"] for m in data["collect"]] == list(catalog.metrics)
    assert data["collect"][0] == {
        "name": "printernizer.jobs", "unit": "{job}",
        "text": "Druckaufträge der Woche, nach Ergebnis und Druckertyp.",
        "attributes": {"job.status": "created, started, completed, failed, cancelled, pending, "
                                     "running, printing, paused, unknown",
                       "printer.type": "bambu_lab, prusa_core, octoprint, unknown"}}
    assert data["resource"][7] == {
        "key": "geo.country.iso_code",
        "text": "Das Land, auf Ihrem Gerät aus der Zeitzoneneinstellung abgeleitet "
                "(nie aus einer IP-Adresse)."}


def test_catalog_language_follows_the_browser(client: Client) -> None:
    data = client.get(API + "catalog", headers={"Accept-Language": "de-CH"}).json()
    assert data["language"] == "de"


def test_privacy_policy_is_the_generated_markdown(client: Client, usage: UsageTelemetry) -> None:
    markdown = render_privacy_markdown(usage.catalog, "de")
    assert client.get(API + "privacy?lang=de").json() == {
        "language": "de", "markdown": markdown, "html": markdown_to_html(markdown)}


def test_markdown_subset_is_escaped_html() -> None:
    text = ("<!-- note -->\n\n# Title <b>\n\nOne `a<b>` and **bold**\nline.\n\n- x & y\n- z\n\n"
            "| A | B |\n|---|---|\n| `k` | 1 \\| 2 |\n\n---\n")
    assert markdown_to_html(text) == (
        "<h2>Title &lt;b&gt;</h2>\n"
        "<p>One <code>a&lt;b&gt;</code> and <strong>bold</strong> line.</p>\n"
        "<ul><li>x &amp; y</li><li>z</li></ul>\n"
        '<div class="table-scroll"><table><thead><tr><th scope="col">A</th>'
        '<th scope="col">B</th></tr></thead><tbody><tr><td><code>k</code></td><td>1 | 2</td>'
        "</tr></tbody></table></div>")


def test_report_preview_of_a_new_installation(client: Client) -> None:
    assert client.get(API + "report").json() == {
        "report": None, "last_sent": None, "difference": None}


def test_report_preview_with_its_difference_from_the_last_sent(
    data_dir: Path, clock: ManualClock
) -> None:
    with collector() as (endpoint, received):
        usage = make_usage(data_dir, clock, endpoint=endpoint)
        sent_once(usage, clock)
        data = client_for(usage).get(API + "report").json()
        assert data == usage.preview()
        usage.shutdown()
    assert [(method, path) for method, path, _ in received] == [("POST", "/v1/metrics")]
    assert (data["report"]["week"], data["report"]["state"]) == ("2026-W50", "draft")
    assert data["difference"]["points"] == [
        {"metric": "printernizer.app.starts", "attributes": {}, "last_sent": 1, "next": None},
        {"metric": "printernizer.file.downloads", "attributes": {"printer.type": "prusa_core"},
         "last_sent": None, "next": 2},
        {"metric": "printernizer.jobs",
         "attributes": {"job.status": "completed", "printer.type": "bambu_lab"},
         "last_sent": 3, "next": 5},
    ]
    assert list(data["report"]["otlp"]) == ["resourceMetrics"]


def test_upload_history(data_dir: Path, clock: ManualClock) -> None:
    with collector() as (endpoint, _):
        usage = make_usage(data_dir, clock, endpoint=endpoint)
        client = client_for(usage)
        assert client.get(API + "history").json() == {"uploads": []}
        sent_once(usage, clock)
        history = client.get(API + "history").json()
        stats = client.get(API + "statistics").json()
        usage.shutdown()
    assert history == {"uploads": [{
        "kind": "report", "week": "2026-W49", "attempted_at": "2026-12-13T23:30:00+00:00",
        "endpoint": endpoint, "bytes": history["uploads"][0]["bytes"], "status": 200,
        "answer": "{}"}]}
    assert stats["last_submitted"] == "2026-12-13T23:30:00+00:00"


# Changing.


def test_send_now_in_mode_local_sends_nothing(client: Client) -> None:
    response = client.post(API + "send-now", json={})
    assert (response.status_code, response.json()) == (200, {
        "built": [], "sent": [], "failed": [], "retry": [], "expired": 0,
        "erasures_acknowledged": 0, "erasures_pending": 0, "refused": None})


def test_send_now_sends_a_closed_week(data_dir: Path, clock: ManualClock) -> None:
    with collector() as (endpoint, received):
        usage = make_usage(data_dir, clock, endpoint=endpoint)
        client = client_for(usage)
        assert client.put(API + "mode", json={"mode": "on", "catalog_version": VERSION}
                          ).status_code == 200
        record(usage, 1)
        clock.set(MONDAY.replace(day=30))
        record(usage, 2)
        clock.set(MONDAY.replace(month=12, day=13, hour=23))
        response = client.post(API + "send-now", json={})
        usage.shutdown()
    assert response.json() == {
        "built": ["2026-W49"], "sent": ["2026-W49"], "failed": [], "retry": [], "expired": 0,
        "erasures_acknowledged": 0, "erasures_pending": 0, "refused": None}
    assert len(received) == 1


def test_export_is_a_json_attachment(client: Client, usage: UsageTelemetry) -> None:
    record(usage, 2)
    response = client.get(API + "export")
    assert (response.status_code, response.headers["content-disposition"],
            response.headers["content-type"]) == (
        200, 'attachment; filename="otel-usage-export-2026-11-23.json"', "application/json")
    assert response.json() == run(usage.export_json())


@pytest.mark.parametrize("body", [None, {}, {"confirm": "yes"}, {"confirm": 1},
                                  {"confirmed": True}])
def test_delete_needs_an_explicit_confirmation(
    client: Client, usage: UsageTelemetry, body: Any
) -> None:
    record(usage, 2)
    before = run(usage.export_json())
    kwargs: dict[str, Any] = ({"content": b"", "headers": {"Content-Type": "application/json"}}
                              if body is None else {"json": body})
    for method, path in (("DELETE", "data"), ("POST", "data/delete")):
        response = client.request(method, API + path, **kwargs)
        assert (response.status_code, response.json()) == (400, {
            "error": "confirmation_required",
            "detail": 'deleting every statistic on this machine needs {"confirm": true}'})
    assert run(usage.export_json()) == before


@pytest.mark.parametrize(("method", "path"), [("DELETE", "data"), ("POST", "data/delete")])
def test_delete_all_empties_the_viewer(
    client: Client, usage: UsageTelemetry, method: str, path: str
) -> None:
    client.put(API + "mode", json={"mode": "on", "catalog_version": VERSION})
    record(usage, 2)
    response = client.request(method, API + path, json={"confirm": True})
    assert (response.status_code, response.json()) == (200, {"deleted": True,
                                                             "mode_kept": "on"})
    stats = client.get(API + "statistics").json()
    assert (stats["mode"], stats["installation_id"], stats["days_active"], stats["this_week"]) == (
        "on", None, 0,
        {"jobs_completed": 0, "files_downloaded": 0, "active_printers": 0, "errors": 0})
    assert run(usage.export_json())["series"] == []


def test_a_broken_database_is_a_503_json_error(data_dir: Path, clock: ManualClock) -> None:
    (data_dir / "usage.sqlite3").mkdir()  # there, but no database can be opened
    client = client_for(make_usage(data_dir, clock))
    for path in ("statistics", "report", "history", "export"):
        response = client.get(API + path)
        assert (response.status_code, response.json()["error"]) == (503, "store_unavailable")


def test_the_client_core_does_not_import_fastapi() -> None:
    code = ("import sys, otel_usage, otel_usage.cli, otel_usage.user.privacy, "
            "otel_usage.user.viewer, otel_usage.user.data, otel_usage.user.review; "
            "print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in "
            "('fastapi', 'starlette'))))")
    out = subprocess.run([sys.executable, "-c", "import json; " + code], capture_output=True,
                         text=True, check=True).stdout
    assert json.loads(out) == []


@pytest.mark.parametrize("prefix", ["/api/hassio_ingress/abc123/usage", "/privacy", ""])
def test_any_mount_prefix_works_without_a_proxy(usage: UsageTelemetry, prefix: str) -> None:
    from fastapi import FastAPI

    from otel_usage.web import privacy_router

    app = FastAPI()
    app.include_router(privacy_router(usage, prefix=prefix))
    client = Client(app)
    page = client.get(prefix + "/", headers={"Accept-Language": "de"})
    mode = client.put(prefix + "/api/mode", json={"mode": "off"})
    assert (page.status_code, page.headers["content-language"], mode.json()["mode"]) == (
        200, "de", "off")


def test_the_page_is_one_route_outside_the_hosts_openapi_schema_and_leaves_the_rest_to_the_host(
        usage: UsageTelemetry) -> None:
    """The page's API is its script's: the host's schema lists only the host's own paths, and
    the host's routes under the page's prefix (before or after the mount) still answer."""
    from fastapi import FastAPI

    from otel_usage.web import privacy_router

    app = FastAPI()

    @app.get("/usage/api/before")
    def before() -> dict[str, str]:
        return {"host": "before"}

    app.include_router(privacy_router(usage, prefix="/usage"))

    @app.get("/usage/after/{name}")
    def after(name: str) -> dict[str, str]:
        return {"host": name}

    client = Client(app)
    answers = [(r.status_code, r.json()) for r in (
        client.get("/usage/api/before"), client.get("/usage/after/x"),
        client.get("/usage/api/nothing"), client.get("/usage/static/a/b"))]
    assert (sorted(app.openapi()["paths"]), answers) == (
        ["/usage/after/{name}", "/usage/api/before"],
        [(200, {"host": "before"}), (200, {"host": "x"}), (404, {"detail": "Not Found"}),
         (404, {"detail": "Not Found"})])
    assert [route.path for route in privacy_router(usage).routes] == [
        "/usage{path:otel_usage_page}"]


@pytest.mark.parametrize("prefix", ["", "/usage"])
def test_the_pages_route_matches_its_paths_in_their_letter_case_only(
        usage: UsageTelemetry, prefix: str) -> None:
    """At the host's root too: another letter case is the host's path (a 404 here, or the
    host's own route), never the page's."""
    from fastapi import FastAPI

    from otel_usage.web import privacy_router

    app = FastAPI()
    app.include_router(privacy_router(usage, prefix=prefix))

    @app.get(prefix + "/STATIC/logo.png")
    def logo() -> dict[str, str]:
        return {"host": "logo"}

    client = Client(app)
    answers = [client.get(prefix + path, follow_redirects=False).status_code
               for path in ("/", "/api/mode", "/API/MODE", "/Static/app.js", "/static/app.js")]
    assert (answers, client.get(prefix + "/STATIC/logo.png").json()) == (
        [200, 200, 404, 404, 200], {"host": "logo"})


def test_the_dependencies_a_host_includes_the_page_with_guard_every_path_of_it(
        usage: UsageTelemetry) -> None:
    """A host that includes the router behind its own authentication (a dependency) has the
    page, its static files, its API and the prefix's redirect refused without it."""
    from fastapi import Depends, FastAPI, Header, HTTPException

    from otel_usage.web import privacy_router

    def signed_in(authorization: str = Header("")) -> None:
        if authorization != "Bearer host":
            raise HTTPException(401, "sign in")

    app = FastAPI()
    app.include_router(privacy_router(usage, prefix="/usage"), dependencies=[Depends(signed_in)])
    client = Client(app)
    paths = ["/usage", "/usage/", "/usage/static/app.js", "/usage/api/mode", "/usage/api/export"]
    refused = [client.get(path, follow_redirects=False).status_code for path in paths]
    allowed = [client.get(path, headers={"Authorization": "Bearer host"},
                          follow_redirects=False).status_code for path in paths]
    assert (refused, allowed) == ([401] * 5, [307, 200, 200, 200, 200])


def test_head_answers_the_pages_own_paths_not_its_api(client: Client) -> None:
    """HEAD is GET without a body for the page, its static files and the prefix's redirect;
    the JSON API answers only its own methods (a HEAD of the export builds nothing)."""
    answers = [client.request("HEAD", path, follow_redirects=False).status_code
               for path in (PAGE, PAGE + "static/app.js", PAGE.rstrip("/"), API + "export",
                            API + "mode")]
    assert answers == [200, 200, 307, 405, 405]


# The user's place in the public statistics: the page's API fetches (never the browser), only
# when a POST asks (a GET contacts nothing).

def _page_for(data_dir: Path, midweek: datetime, url: str, mode: str,
              environ: dict[str, str] | None = None) -> tuple[UsageTelemetry, Client]:
    """An installation with a week of history in the newest published week, in `mode`."""
    usage, clock = with_history(data_dir, midweek, url, newest_publishable(midweek))
    usage.set_mode(mode)
    if environ:
        usage.shutdown()
        usage = public_make(data_dir, clock, url, environ)
    return usage, client_for(usage)


def test_in_mode_on_a_get_contacts_nothing_and_the_pages_automatic_post_fetches_once(
        data_dir: Path, midweek: datetime, monkeypatch: pytest.MonkeyPatch,
        tmp_path: Path) -> None:
    week = newest_publishable(midweek)
    with public_server(monkeypatch, tmp_path, site([week], midweek)) as server:
        usage, client = _page_for(data_dir, midweek, server.url, "on")
        opened = client.get(API + "comparison")
        seen_on_opening = list(server.paths())
        first = client.post(API + "comparison/fetch", json={"automatic": True})
        reopened = client.get(API + "comparison").json()
        again = client.post(API + "comparison/fetch", json={"automatic": True})
        usage.shutdown()
    url = f"{server.url}{PUBLIC}"
    assert seen_on_opening == []
    assert (opened.status_code, opened.json()["available"], opened.json()["fetch"]) == (
        200, False, {"url": url, "askable": True, "refused": False, "failed": False,
                     "fetched": False, "due": True, "week": None,
                     "detail": "the public statistics are due to be fetched"})
    assert server.paths() == [f"{PUBLIC}index.json", f"{PUBLIC}weeks/{week.label}.json"]
    body = first.json()
    assert (first.status_code, body["available"], body["week"], body["fetch"]) == (
        200, True, week.label, {"url": url, "askable": True, "refused": False,
                                "failed": False, "fetched": True, "due": False,
                                "week": week.label,
                                "detail": f"fetched the public statistics up to {week.label}"})
    assert [i["topic"] for i in body["items"]][:2] == ["printers", "jobs"]
    assert (reopened["fetch"]["due"], reopened["items"]) == (False, body["items"])
    assert (again.status_code, again.json()["fetch"]["fetched"], again.json()["items"]) == (
        200, False, body["items"])


def test_a_get_from_another_sites_page_in_mode_on_contacts_nothing(
        data_dir: Path, midweek: datetime, monkeypatch: pytest.MonkeyPatch,
        tmp_path: Path) -> None:
    """What another site's ``<img src=".../api/comparison">`` makes a browser send."""
    with public_server(monkeypatch, tmp_path, site([newest_publishable(midweek)], midweek)) as server:
        usage, client = _page_for(data_dir, midweek, server.url, "on")
        answers = [client.get(API + "comparison", headers=headers) for headers in (
            {"Sec-Fetch-Site": "cross-site", "Sec-Fetch-Dest": "image"},
            {"Referer": "http://elsewhere.example/"})]
        usage.shutdown()
    assert server.seen == []
    assert [(a.status_code, a.json()["available"], a.json()["fetch"]["due"]) for a in answers] == [
        (200, False, True), (200, False, True)]


def test_in_mode_local_only_the_button_fetches_the_public_statistics(
        data_dir: Path, midweek: datetime, monkeypatch: pytest.MonkeyPatch,
        tmp_path: Path) -> None:
    week = newest_publishable(midweek)
    with public_server(monkeypatch, tmp_path, site([week], midweek)) as server:
        usage, client = _page_for(data_dir, midweek, server.url, "local")
        opened = client.get(API + "comparison").json()
        seen_on_opening = list(server.paths())
        pressed = client.post(API + "comparison/fetch", json={})
        usage.shutdown()
    assert seen_on_opening == []
    assert (opened["available"], opened["fetch"]["refused"], opened["fetch"]["askable"],
            opened["fetch"]["due"]) == (False, True, True, False)
    assert (pressed.status_code, pressed.json()["available"], pressed.json()["week"]) == (
        200, True, week.label)
    assert server.paths() == [f"{PUBLIC}index.json", f"{PUBLIC}weeks/{week.label}.json"]


def test_in_mode_local_an_automatic_fetch_is_refused_and_contacts_nothing(
        data_dir: Path, midweek: datetime, monkeypatch: pytest.MonkeyPatch,
        tmp_path: Path) -> None:
    with public_server(monkeypatch, tmp_path, site([newest_publishable(midweek)], midweek)) as server:
        usage, client = _page_for(data_dir, midweek, server.url, "local")
        automatic = client.post(API + "comparison/fetch", json={"automatic": True})
        opened = client.get(API + "comparison").json()
        usage.shutdown()
    assert server.seen == []
    assert (automatic.status_code, automatic.json()) == (403, {
        "error": "fetch_refused",
        "detail": "mode is local: the public statistics are fetched only when you ask "
                  "(the page's button, or otel-usage compare --fetch)"})
    assert opened["available"] is False


def test_a_fetch_that_is_neither_asked_nor_automatic_is_refused_and_contacts_nothing(
        data_dir: Path, midweek: datetime, monkeypatch: pytest.MonkeyPatch,
        tmp_path: Path) -> None:
    with public_server(monkeypatch, tmp_path, site([newest_publishable(midweek)], midweek)) as server:
        usage, client = _page_for(data_dir, midweek, server.url, "on")
        answer = client.post(API + "comparison/fetch", json={"automatic": "yes"})
        usage.shutdown()
    assert server.seen == []
    assert (answer.status_code, answer.json()) == (422, {
        "error": "invalid_automatic",
        "detail": 'send {} (the user asks) or {"automatic": true} (the page, by the '
                  "automatic rule)"})


@pytest.mark.parametrize(("mode", "environ", "detail"), [
    ("off", None, "mode is off: the public statistics are never fetched"),
    ("local", {"DO_NOT_TRACK": "1"},
     "DO_NOT_TRACK is set: the public statistics are never fetched"),
])
def test_in_mode_off_or_under_do_not_track_the_button_is_refused_and_nothing_fetched(
        mode: str, environ: dict[str, str] | None, detail: str, data_dir: Path,
        midweek: datetime, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    with public_server(monkeypatch, tmp_path, site([newest_publishable(midweek)], midweek)) as server:
        usage, client = _page_for(data_dir, midweek, server.url, mode, environ)
        opened = client.get(API + "comparison").json()
        pressed = client.post(API + "comparison/fetch", json={})
        usage.shutdown()
    assert server.seen == []
    assert (opened["fetch"]["askable"], opened["fetch"]["detail"]) == (False, detail)
    assert (pressed.status_code, pressed.json()) == (
        403, {"error": "fetch_refused", "detail": detail})


@pytest.mark.parametrize("mode", ["on", "local"])
@pytest.mark.parametrize("headers", [{"Sec-Fetch-Site": "cross-site"},
                                     {"Origin": "http://elsewhere.example"}])
@pytest.mark.parametrize("body", [{}, {"automatic": True}])
def test_another_sites_page_cannot_make_the_installation_fetch(
        mode: str, headers: dict[str, str], body: dict[str, Any], data_dir: Path,
        midweek: datetime, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    with public_server(monkeypatch, tmp_path, site([newest_publishable(midweek)], midweek)) as server:
        usage, client = _page_for(data_dir, midweek, server.url, mode)
        pressed = client.post(API + "comparison/fetch", json=body, headers=headers)
        form = client.post(API + "comparison/fetch", content=b"a=1",
                           headers={"Content-Type": "application/x-www-form-urlencoded"})
        usage.shutdown()
    assert server.seen == []
    assert (pressed.status_code, pressed.json()["error"]) == (403, "cross_site")
    assert (form.status_code, form.json()["error"]) == (415, "json_required")


def test_public_statistics_that_cannot_be_fetched_are_a_502_when_asked_and_the_page_stays_usable(
        data_dir: Path, midweek: datetime, monkeypatch: pytest.MonkeyPatch,
        tmp_path: Path) -> None:
    with public_server(monkeypatch, tmp_path, {}) as server:
        usage, client = _page_for(data_dir, midweek, server.url, "on")
        automatic = client.post(API + "comparison/fetch", json={"automatic": True})
        opened = client.get(API + "comparison")
        usage.set_mode("local")
        pressed = client.post(API + "comparison/fetch", json={})  # asked: not a day later
        usage.shutdown()
    failure = f"they could not be fetched: {server.url}{PUBLIC}index.json answered 404 Not Found"
    assert (pressed.status_code, pressed.json()) == (502, {
        "error": "fetch_failed",
        "detail": f"the public statistics at {server.url}{PUBLIC}: {failure}"})
    assert (automatic.status_code, automatic.json()["fetch"]["failed"],
            automatic.json()["fetch"]["detail"], automatic.json()["available"]) == (
        200, True, failure, False)
    assert server.paths() == [f"{PUBLIC}index.json", f"{PUBLIC}index.json"]
    assert (opened.status_code, opened.json()["fetch"]["due"], opened.json()["fetch"]["detail"],
            opened.json()["available"]) == (
        200, False, "the public statistics were looked for less than a day ago", False)
