"""The legacy submission (POST /submit, DELETE /installation/{id}) on SQLite and on a real
PostgreSQL: mapped onto the catalog's version 1 weekly row, one report per installation-week
with OTLP (OTLP wins), refused after the transition period, attacks included."""

from __future__ import annotations

import copy
import gzip
import json
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from ingest_reports import (
    CATALOG,
    NOW,
    WEEK,
    encode,
    last_week,
    new_credential,
    new_installation,
    request,
)
from ingest_support import (  # noqa: F401  (fixture)
    app_client,
    database_url,
    query,
    server_process,
    settings,
)

from dashboards import queries
from ingest import Settings, publish
from ingest._legacy import LEGACY_CREDENTIAL
from ingest._publish import publish_week

KEY = "printernizer-shared-key-1"
HEADERS = {"X-API-Key": KEY}
UNTIL = datetime.fromtimestamp(NOW, UTC) + timedelta(days=30)
PATH = CATALOG.protocol.metrics_path
CREDENTIAL_HEADER = CATALOG.protocol.credential_header


def legacy(config: Settings, until: datetime = UNTIL, **overrides: Any) -> Settings:
    return replace(config, legacy_until=until, legacy_api_keys=frozenset({KEY}), **overrides)


def summary(installation_id: str, week: date = WEEK, **sections: Any) -> dict[str, Any]:
    """What today's Printernizer sends for the seven days of `week`."""
    start = datetime.combine(week, datetime.min.time())
    body: dict[str, Any] = {
        "schema_version": "1.0",
        "submission_timestamp": (start + timedelta(days=7, hours=3)).isoformat(),
        "installation": {
            "installation_id": installation_id, "first_seen": "2024-11-02T08:13:00",
            "app_version": "2.42.0-3-gbe0da09", "python_version": "3.11.7",
            "platform": "Linux-6.1.0-rpi7-rpi-v8-aarch64-with-glibc2.36",
            "deployment_mode": "homeassistant", "country_code": "de"},
        "period": {"start": start.isoformat(), "end": (start + timedelta(days=7)).isoformat(),
                   "duration_days": 7},
        "printer_fleet": {"printer_count": 4, "printer_types": ["bambu_lab", "prusa_core"],
                          "printer_type_counts": {"bambu_lab": 2, "prusa_core": 1,
                                                  "Voron-of-alice.local": 1}},
        "usage_stats": {"job_count": 12, "file_count": 4, "upload_count": 3,
                        "uptime_hours": 100.5,
                        "feature_usage": {"library_enabled": True, "timelapse_enabled": False,
                                          "german_compliance_enabled": True,
                                          "alice_private_switch": True}},
        # PRINTER_CONNECTION's type came with the catalog's version 2: "other" in version 1
        "error_summary": {"PRINTER_BUSY": 2, "PRINTER_CONNECTION": 3,
                          "connection to 192.168.1.20 failed": 1},
    }
    for name, value in sections.items():
        body[name] = value
    return body


EXPECTED_RESOURCE = {
    "geo.country.iso_code": "DE", "host.arch": "arm64", "os.type": "linux",
    "otel_usage.catalog.version": "1", "printernizer.deployment.mode": "homeassistant",
    "process.runtime.version": "3.11.7", "service.name": "printernizer",
    "service.version": "2.42.0"}
EXPECTED_POINTS = [
    ["printernizer.printers", {"printer.type": "bambu_lab"}, 2],
    ["printernizer.printers", {"printer.type": "prusa_core"}, 1],
    ["printernizer.printers", {"printer.type": "other"}, 1],
    ["printernizer.jobs", {"job.status": "created"}, 12],
    ["printernizer.file.downloads", {}, 4],
    ["printernizer.file.uploads", {}, 3],
    ["printernizer.uptime", {}, 5],
    ["printernizer.features.enabled", {"feature.name": "library"}, 1],
    ["printernizer.features.enabled", {"feature.name": "timelapse"}, 0],
    ["printernizer.features.enabled", {"feature.name": "german_business"}, 1],
    ["printernizer.errors", {"error.category": "printer", "error.type": "printer_busy"}, 2],
    ["printernizer.errors", {"error.category": "printer", "error.type": "other"}, 3],
    ["printernizer.errors", {"error.category": "unknown", "error.type": "other"}, 1],
]


def _rows(url: str) -> list[tuple[str, str, dict[str, str], list[Any], bool]]:
    return [(i, str(w)[:10], json.loads(r), json.loads(p), bool(legacy_mark))
            for i, w, r, p, legacy_mark in query(
                url, "SELECT installation_id, week_start, resource, points, legacy "
                     "FROM weekly_reports ORDER BY installation_id, week_start")]


def _otlp(installation: str, credential: str, seed: int = 0) -> dict[str, Any]:
    body, headers = encode(request(installation, seed=seed), "protobuf", True)
    return {"content": body, "headers": headers | {CREDENTIAL_HEADER: credential}}


async def test_a_summary_becomes_the_weeks_version_1_report(database_url: str) -> None:  # noqa: F811
    installation = new_installation()
    async with app_client(legacy(settings(database_url))) as client:
        answer = await client.post("/submit", json=summary(installation), headers=HEADERS)
    assert (answer.status_code, answer.json()) == (200, {
        "status": "success", "submission_id": "2025-W24",
        "message": "stored as the week's report"})
    assert _rows(database_url) == [(installation, "2025-06-09",
                                    EXPECTED_RESOURCE | {"service.instance.id": installation},
                                    EXPECTED_POINTS, True)]
    assert query(database_url, "SELECT installation_id, credential_hash FROM installations") == [
        (installation, LEGACY_CREDENTIAL)]
    assert query(database_url, "SELECT outcome, reason, requests FROM daily_stats") == [
        ("accepted", "legacy", 1)]


async def test_nothing_personal_is_stored(database_url: str) -> None:  # noqa: F811
    """Host names, addresses, free text and exact times in the summary never reach the store."""
    async with app_client(legacy(settings(database_url))) as client:
        answer = await client.post("/submit", json=summary(new_installation()), headers=HEADERS)
    assert answer.status_code == 200
    tables = ("installations", "weekly_reports", "daily_stats", "erasures")
    stored = repr([query(database_url, f"SELECT * FROM {t}") for t in tables])
    for secret in ("alice", "Voron", "192.168", "203.0.113.7", "rpi7", "glibc", "gbe0da09",
                   "2024-11-02", "08:13", KEY):
        assert secret not in stored


async def test_legacy_then_otlp_of_one_week_is_one_report_and_otlp_wins(
        database_url: str) -> None:  # noqa: F811
    """The upgraded client keeps its installation id: its first OTLP report claims the
    installation and replaces the legacy week; legacy submissions for it are refused after."""
    installation, credential = new_installation(), new_credential()
    async with app_client(legacy(settings(database_url))) as client:
        first = await client.post("/submit", json=summary(installation), headers=HEADERS)
        otlp = await client.post(PATH, **_otlp(installation, credential))  # type: ignore[arg-type]
        late = await client.post("/submit", json=summary(installation), headers=HEADERS)
        foreign = await client.post(PATH, **_otlp(installation, new_credential(), 1))  # type: ignore[arg-type]
    assert [a.status_code for a in (first, otlp, late, foreign)] == [200, 200, 403, 403]
    assert late.json() == {"status": "error", "message": "this installation reports over "
                                                         "OTLP: legacy submissions for it are "
                                                         "refused"}
    ((stored_id, week, resource, _points, is_legacy),) = _rows(database_url)
    assert (stored_id, week, resource["otel_usage.catalog.version"], is_legacy) == (
        installation, "2025-06-09", str(CATALOG.version), False)
    assert query(database_url, "SELECT credential_hash FROM installations") != [
        (LEGACY_CREDENTIAL,)]


async def test_otlp_then_legacy_of_one_week_keeps_the_otlp_report(database_url: str) -> None:  # noqa: F811
    installation, credential = new_installation(), new_credential()
    async with app_client(legacy(settings(database_url))) as client:
        otlp = await client.post(PATH, **_otlp(installation, credential))  # type: ignore[arg-type]
        before = _rows(database_url)
        late = await client.post("/submit", json=summary(installation), headers=HEADERS)
    assert (otlp.status_code, late.status_code) == (200, 403)
    assert _rows(database_url) == before and before[0][4] is False


async def test_a_replayed_or_second_summary_of_a_week_changes_nothing(
        database_url: str) -> None:  # noqa: F811
    """The first legacy report of a week stays (someone who read the id on the plain-HTTP
    wire cannot overwrite it); another week is stored beside it."""
    installation = new_installation()
    changed = summary(installation)
    changed["usage_stats"]["job_count"] = 999
    async with app_client(legacy(settings(database_url))) as client:
        first = await client.post("/submit", json=summary(installation), headers=HEADERS)
        replay = await client.post("/submit", json=summary(installation), headers=HEADERS)
        other = await client.post("/submit", json=changed, headers=HEADERS)
        next_week = await client.post("/submit", json=summary(installation, WEEK + timedelta(
            days=7)), headers=HEADERS)
    assert [a.status_code for a in (first, replay, other, next_week)] == [200] * 4
    assert replay.json()["message"] == "a report of this week is stored already; it stays"
    rows = _rows(database_url)
    assert [(w, p[3]) for _i, w, _r, p, _legacy in rows] == [
        ("2025-06-09", ["printernizer.jobs", {"job.status": "created"}, 12]),
        ("2025-06-16", ["printernizer.jobs", {"job.status": "created"}, 12])]


@pytest.mark.parametrize("key", [None, "", "wrong-key", KEY + "x"])
async def test_a_missing_or_wrong_api_key_is_403_and_stores_nothing(
        database_url: str, key: str | None) -> None:  # noqa: F811
    headers = {} if key is None else {"X-API-Key": key}
    async with app_client(legacy(settings(database_url))) as client:
        answer = await client.post("/submit", json=summary(new_installation()), headers=headers)
        erase = await client.delete(f"/installation/{new_installation()}", headers=headers)
    assert (answer.status_code, answer.json()) == (403, {
        "status": "error", "message": "header X-API-Key is missing or wrong"})
    assert erase.status_code == 403
    assert query(database_url, "SELECT COUNT(*) FROM installations") == [(0,)]
    assert query(database_url, "SELECT COUNT(*) FROM erasures") == [(0,)]


def _break(path: str, value: Any) -> dict[str, Any]:
    body = copy.deepcopy(summary(new_installation()))
    *parents, last = path.split(".")
    target = body
    for name in parents:
        target = target[name]
    target[last] = value
    return body


BAD = [
    ("usage_stats.job_count", "12", "usage_stats.job_count must be an integer"),
    ("usage_stats.job_count", True, "usage_stats.job_count must be an integer"),
    ("usage_stats.job_count", 1.5, "usage_stats.job_count must be an integer"),
    ("usage_stats.job_count", -1, "usage_stats.job_count must be from 0 to 1000000"),
    ("usage_stats.file_count", 10**7, "usage_stats.file_count must be from 0 to 1000000"),
    ("usage_stats.uptime_hours", 169, "usage_stats.uptime_hours must be from 0 to 168"),
    ("usage_stats.feature_usage", {"library_enabled": "yes"},
     "usage_stats.feature_usage values must be true or false"),
    ("usage_stats.feature_usage", ["library_enabled"],
     "usage_stats.feature_usage must be an object of at most 64 entries"),
    ("printer_fleet.printer_type_counts", {"bambu_lab": "2"},
     "printer_fleet.printer_type_counts values must be an integer"),
    ("printer_fleet.printer_type_counts", {f"t{i}": 1 for i in range(65)},
     "printer_fleet.printer_type_counts must be an object of at most 64 entries"),
    ("error_summary", {"a": 600_000, "b": 600_000}, "printernizer.errors sums to more than "
                                                    "1000000"),
    ("installation.installation_id", "alice-laptop",
     "resource attribute 'service.instance.id' must be a string of "),
    ("installation.app_version", "be0da09",
     "installation.app_version must begin with a release such as 2.7.0"),
    ("installation.hostname", "alice-laptop",
     "installation.hostname is not a field of the legacy submission"),
    ("schema_version", "2.0", "schema_version must be '1.0'"),
    ("period.end", "2025-06-09T00:00:00", "period must end after it starts, at most 7 days "
                                          "later"),
    ("period.start", "last week", "period.start must be an ISO 8601 time"),
    ("period", {"start": "2026-06-01T00:00:00", "end": "2026-06-08T00:00:00"},
     "week 2026-06-01 has not begun"),
    ("period", {"start": "2020-06-01T00:00:00", "end": "2020-06-08T00:00:00"},
     "week 2020-06-01 is older than the retention"),
]


@pytest.mark.parametrize(("path", "value", "message"), BAD, ids=[f"{p}={v!r}"[:40]
                                                                  for p, v, _ in BAD])
async def test_bad_types_and_out_of_range_numbers_are_400_and_store_nothing(
        database_url: str, path: str, value: Any, message: str) -> None:  # noqa: F811
    async with app_client(legacy(settings(database_url))) as client:
        answer = await client.post("/submit", json=_break(path, value), headers=HEADERS)
    assert answer.status_code == 400
    assert answer.json()["status"] == "error" and answer.json()["message"].startswith(message)
    assert query(database_url, "SELECT COUNT(*) FROM installations") == [(0,)]


@pytest.mark.parametrize(("body", "message"), [
    (b'{"schema_version": "1.0", "schema_version": "1.0"}', "key 'schema_version' appears twice"),
    (b'{"usage_stats": {"job_count": NaN}}', "NaN is not a number"),
    (b"[1, 2]", "a JSON object is expected"),
    (b"\xff\xfe", "'utf-8' codec can't decode"),
])
async def test_strict_decoding(database_url: str, body: bytes, message: str) -> None:  # noqa: F811
    async with app_client(legacy(settings(database_url))) as client:
        answer = await client.post("/submit", content=body, headers=HEADERS | {
            "content-type": "application/json"})
    assert answer.status_code == 400
    assert message in answer.json()["message"]


async def test_every_problem_is_named_in_a_bounded_answer(database_url: str) -> None:  # noqa: F811
    body = summary(new_installation())
    body["usage_stats"] = {"job_count": "x", "file_count": "x", "upload_count": "x",
                           "uptime_hours": "x", "feature_usage": {f"f{i}": "x"
                                                                   for i in range(60)}}
    async with app_client(legacy(settings(database_url))) as client:
        answer = await client.post("/submit", json=body, headers=HEADERS)
    assert answer.status_code == 400 and len(answer.content) < 700
    assert answer.json()["message"].endswith("; and 59 more")


async def test_oversize_bodies_are_413_and_other_content_types_415(database_url: str) -> None:  # noqa: F811
    config = legacy(settings(database_url, max_body_bytes=2000))
    padded = summary(new_installation(), error_summary={f"e{i:04}": 1 for i in range(60)})
    padded["installation"]["first_seen"] = "x" * 100
    raw = json.dumps(padded).encode() + b" " * 2000
    async with app_client(config) as client:
        big = await client.post("/submit", content=raw, headers=HEADERS | {
            "content-type": "application/json"})
        bomb = await client.post("/submit", content=gzip.compress(b" " * 100_000), headers=HEADERS
                                 | {"content-type": "application/json",
                                    "content-encoding": "gzip"})
        text = await client.post("/submit", content=b"job_count=1", headers=HEADERS | {
            "content-type": "application/x-www-form-urlencoded"})
        gzipped = await client.post("/submit", content=gzip.compress(json.dumps(summary(
            new_installation())).encode()), headers=HEADERS | {
            "content-type": "application/json", "content-encoding": "gzip"})
    assert [a.status_code for a in (big, bomb, text, gzipped)] == [413, 413, 415, 200]
    assert bomb.json() == {"status": "error",
                           "message": "body is over 2000 bytes after decompression"}


async def test_after_the_transition_period_legacy_is_410_but_erasure_still_works(
        database_url: str) -> None:  # noqa: F811
    installation = new_installation()
    ended = datetime.fromtimestamp(NOW, UTC) - timedelta(days=1)
    async with app_client(legacy(settings(database_url))) as client:
        assert (await client.post("/submit", json=summary(installation),
                                  headers=HEADERS)).status_code == 200
    async with app_client(legacy(settings(database_url), until=ended)) as client:
        late = await client.post("/submit", json=summary(new_installation()), headers=HEADERS)
        erase = await client.delete(f"/installation/{installation}", headers=HEADERS)
    assert (late.status_code, late.json()) == (410, {
        "status": "error", "message": f"legacy submissions ended on {ended.date()}: update "
                                      "Printernizer to send its reports with otel-usage"})
    assert erase.status_code == 200
    assert query(database_url, "SELECT COUNT(*) FROM weekly_reports") == [(0,)]


async def test_without_a_transition_period_the_legacy_paths_are_not_served(
        database_url: str) -> None:  # noqa: F811
    async with app_client(settings(database_url)) as client:
        submit = await client.post("/submit", json=summary(new_installation()), headers=HEADERS)
        erase = await client.delete(f"/installation/{new_installation()}", headers=HEADERS)
    assert (submit.status_code, erase.status_code) == (404, 404)


def test_a_transition_period_needs_an_api_key_and_an_aware_end(tmp_path: Path) -> None:
    from ingest import create_app

    base = settings(f"sqlite:///{tmp_path}/x.db")
    with pytest.raises(ValueError, match="needs the API key"):
        create_app(replace(base, legacy_until=UNTIL))
    with pytest.raises(ValueError, match="aware"):
        create_app(replace(base, legacy_until=UNTIL.replace(tzinfo=None),
                           legacy_api_keys=frozenset({KEY})))


async def test_legacy_erasure_erases_what_legacy_sent_and_the_id_stays_erased(
        database_url: str) -> None:  # noqa: F811
    installation = new_installation()
    async with app_client(legacy(settings(database_url))) as client:
        await client.post("/submit", json=summary(installation), headers=HEADERS)
        erase = await client.delete(f"/installation/{installation}", headers=HEADERS)
        again = await client.post("/submit", json=summary(installation), headers=HEADERS)
        otlp = await client.post(PATH, **_otlp(installation, new_credential()))  # type: ignore[arg-type]
        bad_id = await client.delete("/installation/not-an-id", headers=HEADERS)
    assert (erase.status_code, erase.json()) == (200, {
        "status": "success", "message": "the installation's data is erased"})
    assert (again.status_code, again.json()["message"]) == (
        410, "this installation was erased: start over with a new installation id")
    assert (otlp.status_code, bad_id.status_code) == (410, 400)
    assert query(database_url, "SELECT COUNT(*) FROM weekly_reports") == [(0,)]
    assert query(database_url, "SELECT COUNT(*) FROM installations") == [(0,)]


async def test_the_shared_key_cannot_erase_an_installation_that_reports_over_otlp(
        database_url: str) -> None:  # noqa: F811
    """Anyone may know the shared key: it erases only installations without a credential."""
    installation, credential = new_installation(), new_credential()
    async with app_client(legacy(settings(database_url))) as client:
        await client.post(PATH, **_otlp(installation, credential))  # type: ignore[arg-type]
        erase = await client.delete(f"/installation/{installation}", headers=HEADERS)
    assert erase.status_code == 403
    assert query(database_url, "SELECT COUNT(*) FROM weekly_reports") == [(1,)]


async def test_new_legacy_installations_are_limited_per_address(database_url: str) -> None:  # noqa: F811
    config = legacy(settings(database_url, registrations_per_day=2))
    async with app_client(config) as client:
        answers = [await client.post("/submit", json=summary(new_installation()),
                                     headers=HEADERS) for _ in range(3)]
    assert [a.status_code for a in answers] == [200, 200, 429]
    assert answers[2].headers["retry-after"] == "43200"
    assert answers[2].json() == {"status": "error",
                                 "message": "too many new installations from this address"}
    assert query(database_url, "SELECT COUNT(*) FROM installations") == [(2,)]


async def test_legacy_installations_behind_the_gateway_are_limited_per_pseudonym(
        database_url: str) -> None:  # noqa: F811
    """The legacy path finds the client as the OTLP path does: the trusted gateway's pseudonym
    has its own allowance, and one over it gets a 403 the gateway does not retry."""
    pseudonyms = ["b" * 32, "b" * 32, "c" * 32]
    config = legacy(settings(database_url, registrations_per_day=1,
                             trusted_proxies=("203.0.113.7",)))
    header = CATALOG.protocol.client_pseudonym_header
    async with app_client(config) as client:
        answers = [await client.post("/submit", json=summary(new_installation()),
                                     headers=HEADERS | {header: p}) for p in pseudonyms]
    assert [a.status_code for a in answers] == [200, 403, 200]
    assert "retry-after" not in answers[1].headers
    assert answers[1].json() == {"status": "error", "message": "too many new installations "
                                 "from this address: refused, not to be retried"}
    assert query(database_url, "SELECT COUNT(*) FROM installations") == [(2,)]


async def test_the_report_source_is_published_k_anonymously(database_url: str) -> None:  # noqa: F811
    """usage_report_sources: installations per source in a closed week, and neither row when
    one side is under k."""
    config = legacy(settings(database_url, k_anonymity=3, established_weeks=0))
    async with app_client(config) as client:  # the week is not due yet: published below
        for _ in range(3):
            await client.post("/submit", json=summary(new_installation()), headers=HEADERS)
        for _ in range(4):
            await client.post(PATH, **_otlp(new_installation(), new_credential()))  # type: ignore[arg-type]
        await client.post("/submit", json=summary(new_installation(), WEEK - timedelta(days=7)),
                          headers=HEADERS)
        for _ in range(3):
            await client.post(PATH, **_otlp(new_installation(), new_credential()))  # type: ignore[arg-type]
    # the last three OTLP reports are of WEEK too; a week earlier has one legacy report only
    assert publish(replace(config, publish_after_days=0)) == [datetime(2025, 6, 2),
                                                             datetime(2025, 6, 9)]
    rows = query(database_url, "SELECT week_start, source, installations "
                               "FROM usage_report_sources ORDER BY week_start, source")
    assert [(str(w)[:10], s, n) for w, s, n in rows] == [
        ("2025-06-09", "legacy", 3), ("2025-06-09", "otlp", 7)]
    panel = queries.run_panel(database_url, queries.panel("legacy"),
                              datetime(2025, 5, 1, tzinfo=UTC), datetime(2025, 7, 1, tzinfo=UTC))
    assert panel.columns == ("time", "metric", "installations")
    assert [(str(t)[:10], m, i) for t, m, i in panel.rows] == [("2025-06-09", "legacy", 3),
                                                              ("2025-06-09", "otlp", 7)]


def test_one_legacy_installation_among_many_hides_both_sources() -> None:
    resource = json.dumps({"service.name": "printernizer"})
    points = json.dumps([["printernizer.uptime", {}, 5]])
    week = datetime(2025, 6, 9)
    rows = [(resource, points, False)] * 9 + [(resource, points, True)]
    cells = publish_week(week, rows, CATALOG, 5).cells
    assert ("active", "", "", "") in cells
    assert not [key for key in cells if key[0] == "source"]
    balanced = publish_week(week, [(resource, points, False)] * 5
                            + [(resource, points, True)] * 5, CATALOG, 5).cells
    assert {key: cell.count for key, cell in balanced.items() if key[0] == "source"} == {
        ("source", "", "", "legacy"): 5, ("source", "", "", "otlp"): 5}


def test_legacy_installations_nested_in_a_small_group_are_not_shown() -> None:
    """Five legacy installations, all in a country with two OTLP ones more: the country row
    minus the legacy row would give those two away, so the sources are hidden."""
    points = json.dumps([["printernizer.uptime", {}, 5]])

    def row(country: str, legacy_mark: bool) -> tuple[str, str, bool]:
        return (json.dumps({"service.name": "printernizer", "geo.country.iso_code": country}),
                points, legacy_mark)

    rows = [row("AT", True)] * 5 + [row("AT", False)] * 2 + [row("DE", False)] * 10
    cells = publish_week(datetime(2025, 6, 9), rows, CATALOG, 5).cells
    assert not [key for key in cells if key[0] == "source"]
    assert cells[("active", "", "", "")].count == 17


def test_serve_takes_the_transition_period_and_the_key_file(tmp_path: Path,
                                                            midweek: datetime) -> None:
    """The real server, as maintainers start it, at the clock hook's now."""
    keys = tmp_path / "legacy-keys"
    keys.write_text(f"{KEY}\n\n")
    until = (midweek + timedelta(days=60)).date().isoformat()
    url = f"sqlite:///{tmp_path}/ingest.db"
    with server_process(url, "--legacy-until", until, "--legacy-api-key-file",
                        str(keys)) as (base, _process):
        answer = httpx.post(f"{base}/submit", json=summary(new_installation(), last_week()),
                            headers=HEADERS, timeout=10)
        wrong = httpx.post(f"{base}/submit", json=summary(new_installation(), last_week()),
                           headers={"X-API-Key": "guess"}, timeout=10)
    assert (answer.status_code, wrong.status_code) == (200, 403)
    assert query(url, "SELECT COUNT(*) FROM weekly_reports WHERE legacy = 1") == [(1,)]
