"""Fetching the public statistics (otel_usage/user/public.py, through the facade): only in
mode on by itself, in local only when asked, never in off or under DO_NOT_TRACK; at most once
per published week; over HTTPS with the reports' certificate settings and nothing about the
installation; what cannot be read is refused and nothing of it kept. Every test runs against a
real HTTPS server on loopback that records each request."""

from __future__ import annotations

import gzip
import json
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from compare_support import (
    CATALOG,
    PATH,
    make,
    newest_publishable,
    public_server,
    site,
    with_history,
)

from otel_usage import ManualClock
from otel_usage.send.transport import post_report
from otel_usage.store import Store
from otel_usage.user.public import MAX_DOCUMENT_BYTES, base_url
from otel_usage.user.public import newest_publishable as newest


def test_in_mode_on_the_index_and_the_week_are_fetched_once_per_published_week(
        data_dir: Path, midweek: datetime, monkeypatch: pytest.MonkeyPatch,
        tmp_path: Path) -> None:
    week = newest_publishable(midweek)
    with public_server(monkeypatch, tmp_path, site([week.previous(), week], midweek)) as server:
        usage, clock = with_history(data_dir, midweek, server.url, week)
        usage.set_mode("on")
        first = usage.fetch_public_statistics()
        again = usage.fetch_public_statistics()
        assert server.paths() == [f"{PATH}index.json", f"{PATH}weeks/{week.label}.json"]
        # A week on, the next week is published: the index is fetched again; the week this
        # machine has history of is the same, and a published week never changes.
        clock.advance(timedelta(days=7))
        server.files.update(site([week.previous(), week, week.next()], midweek))
        later = usage.fetch_public_statistics()
        usage.shutdown()
    url = f"{server.url}{PATH}"
    assert first == {"url": url, "askable": True, "refused": False, "failed": False, "fetched": True,
                     "due": False, "week": week.label,
                     "detail": f"fetched the public statistics up to {week.label}"}
    following = week.next().end + timedelta(days=14)
    assert again == {"url": url, "askable": True, "refused": False, "failed": False, "fetched": False,
                     "due": False, "week": None,
                     "detail": f"the public statistics are up to date: {week.label} is the "
                               f"newest week published, and the next is published from "
                               f"{following:%Y-%m-%d} on"}
    assert later == {"url": url, "askable": True, "refused": False, "failed": False,
                     "fetched": True, "due": False, "week": week.next().label,
                     "detail": f"fetched the public statistics up to {week.next().label}"}
    assert server.paths()[2:] == [f"{PATH}index.json"]


def test_the_request_carries_nothing_about_the_installation(
        data_dir: Path, midweek: datetime, monkeypatch: pytest.MonkeyPatch,
        tmp_path: Path) -> None:
    """No installation id, no credential, no cookie, no version, no client certificate
    (reports present the one they are given; a public document needs none): the headers any
    HTTP client sends, and the same two paths for everyone."""
    week = newest_publishable(midweek)
    with public_server(monkeypatch, tmp_path, site([week], midweek)) as server:
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE", str(tmp_path / "client.pem"))
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_CLIENT_KEY", str(tmp_path / "client-key.pem"))
        usage, _ = with_history(data_dir, midweek, server.url, week)
        usage.set_mode("on")
        usage.send_now()  # a credential exists now
        usage.fetch_public_statistics()
        usage.shutdown()
        # What a report presents, under the same settings: the client certificate.
        post_report(server.url, "/v1/metrics", {}, gzip.compress(b"report"), midweek)
    host = server.url.removeprefix("https://")
    expected = sorted([("Host", host), ("User-Agent", "otel-usage"),
                       ("Accept-Encoding", "gzip"), ("Accept", "application/json"),
                       ("Connection", "close")])
    assert [(s.method, s.path, s.client_certificate) for s in server.seen] == [
        ("GET", f"{PATH}index.json", False), ("GET", f"{PATH}weeks/{week.label}.json", False),
        ("POST", "/v1/metrics", True)]
    assert [sorted(s.headers) for s in server.seen[:2]] == [expected, expected]


def test_in_mode_local_they_are_fetched_only_when_the_user_asks(
        data_dir: Path, midweek: datetime, monkeypatch: pytest.MonkeyPatch,
        tmp_path: Path) -> None:
    week = newest_publishable(midweek)
    with public_server(monkeypatch, tmp_path, site([week], midweek)) as server:
        usage, _ = with_history(data_dir, midweek, server.url, week)
        by_itself = usage.fetch_public_statistics()
        nothing_yet = list(server.paths())
        asked = usage.fetch_public_statistics(asked=True)
        usage.shutdown()
    assert (nothing_yet, by_itself) == ([], {
        "url": f"{server.url}{PATH}", "askable": True, "refused": True, "failed": False,
        "fetched": False, "due": False,
        "week": None, "detail": "mode is local: the public statistics are fetched only when "
                                "you ask (the page's button, or otel-usage compare --fetch)"})
    assert asked["fetched"] is True
    assert server.paths() == [f"{PATH}index.json", f"{PATH}weeks/{week.label}.json"]


@pytest.mark.parametrize(("stored", "environ", "detail"), [
    ("off", {}, "mode is off: the public statistics are never fetched"),
    ("on", {"OTEL_USAGE_MODE": "off"},
     "mode is off (set by the environment): the public statistics are never fetched"),
    ("on", {"DO_NOT_TRACK": "1"}, "DO_NOT_TRACK is set: the public statistics are never fetched"),
    ("local", {"DO_NOT_TRACK": "1"},
     "DO_NOT_TRACK is set: the public statistics are never fetched"),
])
def test_in_mode_off_or_under_do_not_track_nothing_is_fetched_even_when_asked(
        stored: str, environ: dict[str, str], detail: str, data_dir: Path, midweek: datetime,
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    week = newest_publishable(midweek)
    with public_server(monkeypatch, tmp_path, site([week], midweek)) as server:
        clock = ManualClock(midweek)
        chooser = make(data_dir, clock, server.url)
        chooser.set_mode(stored)
        chooser.shutdown()
        usage = make(data_dir, clock, server.url, environ)
        answers = [usage.fetch_public_statistics(), usage.fetch_public_statistics(asked=True)]
        usage.shutdown()
    assert server.seen == []
    assert answers == [{"url": f"{server.url}{PATH}", "askable": False, "refused": True,
                        "failed": False, "fetched": False, "due": False, "week": None,
                        "detail": detail}] * 2


def test_under_do_not_track_a_machine_without_a_store_still_has_none(
        data_dir: Path, midweek: datetime, monkeypatch: pytest.MonkeyPatch,
        tmp_path: Path) -> None:
    with public_server(monkeypatch, tmp_path, site([], midweek)) as server:
        usage = make(data_dir, ManualClock(midweek), server.url, {"DO_NOT_TRACK": "1"})
        fetched = usage.fetch_public_statistics(asked=True)["fetched"]
        compared = usage.compare()
    assert (fetched, server.seen, Store(data_dir).exists) == (False, [], False)
    assert compared == {"available": False, "items": [],
                        "detail": "the public statistics have not been fetched yet"}


def test_a_week_not_yet_published_is_looked_for_at_most_once_a_day(
        data_dir: Path, midweek: datetime, monkeypatch: pytest.MonkeyPatch,
        tmp_path: Path) -> None:
    """The server publishes late: the index is asked again a day later, not at every look,
    and the week kept is not fetched again."""
    week = newest_publishable(midweek).previous()
    with public_server(monkeypatch, tmp_path, site([week], midweek)) as server:
        usage, clock = with_history(data_dir, midweek, server.url, week)
        usage.set_mode("on")
        answers = [usage.fetch_public_statistics()["detail"]]
        clock.advance(timedelta(hours=23))
        answers.append(usage.fetch_public_statistics()["detail"])
        clock.advance(timedelta(hours=1))
        answers.append(usage.fetch_public_statistics()["detail"])
        usage.shutdown()
    assert answers == [f"fetched the public statistics up to {week.label}",
                       "the public statistics were looked for less than a day ago",
                       f"fetched the public statistics up to {week.label}"]
    assert server.paths() == [f"{PATH}index.json", f"{PATH}weeks/{week.label}.json",
                              f"{PATH}index.json"]


def test_the_status_says_when_an_automatic_fetch_is_due_and_contacts_nothing(
        data_dir: Path, midweek: datetime, monkeypatch: pytest.MonkeyPatch,
        tmp_path: Path) -> None:
    """Due before the first fetch, not after it; due again a day after a look that found the
    newest week not yet published; never due in mode local."""
    week = newest_publishable(midweek).previous()
    with public_server(monkeypatch, tmp_path, site([week], midweek)) as server:
        usage, clock = with_history(data_dir, midweek, server.url, week)
        usage.set_mode("on")
        looks = [usage.public_statistics_status()]
        seen_before = list(server.paths())
        usage.fetch_public_statistics()
        looks.append(usage.public_statistics_status())
        clock.advance(timedelta(days=1))
        looks.append(usage.public_statistics_status())
        usage.set_mode("local")
        looks.append(usage.public_statistics_status())
        usage.shutdown()
    assert seen_before == []
    assert server.paths() == [f"{PATH}index.json", f"{PATH}weeks/{week.label}.json"]
    assert [(look["due"], look["refused"], look["fetched"], look["detail"]) for look in looks] == [
        (True, False, False, "the public statistics are due to be fetched"),
        (False, False, False, "the public statistics were looked for less than a day ago"),
        (True, False, False, "the public statistics are due to be fetched"),
        (False, True, False, "mode is local: the public statistics are fetched only when you "
                             "ask (the page's button, or otel-usage compare --fetch)")]


def _week_file(week_label: str) -> str:
    return f"{PATH}weeks/{week_label}.json"


def _changed(files: dict[str, bytes], path: str, change: object) -> dict[str, bytes]:
    """`files` with the JSON at `path` changed by `change` (a dict to merge, or raw bytes)."""
    if isinstance(change, bytes):
        return {**files, path: change}
    assert isinstance(change, dict)
    return {**files, path: json.dumps({**json.loads(files[path]), **change}).encode()}


BAD = [
    ("index.json", b"<html>maintenance</html>",
     "the public statistics' index is not JSON: Expecting value: line 1 column 1 (char 0)"),
    ("index.json", {"format": 2},
     "the public statistics' index is in format 2, and this version of otel-usage reads "
     "format 1 only: update otel-usage to compare"),
    ("index.json", {"weeks": {"2026-W01": "weeks/2026-W01.json"}},
     "the public statistics' index has no list 'weeks'"),
    ("week", {"week": "2020-W01"},
     "the public statistics' document for {week} holds '2020-W01'"),
    ("week", {"active_installations": {"installations": "many", "margin": 1}},
     "the public statistics' week {week} has no whole number 'installations'"),
    ("week", {"metrics": [{"metric": "m", "attribute": "a", "value": "v", "installations": 1,
                           "margin": -1}]},
     "the public statistics' week {week} has no non-negative 'margin'"),
    ("week", None, "{url}weeks/{week}.json answered 404 Not Found"),
    ("week", b" " * (MAX_DOCUMENT_BYTES + 1),
     "{url}weeks/{week}.json: the answer is larger than 1048576 bytes"),
]


@pytest.mark.parametrize(("name", "change", "message"), BAD,
                         ids=[f"{n}-{i}" for i, (n, *_) in enumerate(BAD)])
def test_what_cannot_be_read_is_refused_and_nothing_of_it_is_kept(
        name: str, change: object, message: str, data_dir: Path,
        midweek: datetime, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    week = newest_publishable(midweek)
    files = site([week], midweek)
    path = _week_file(week.label) if name == "week" else PATH + name
    if change is None:
        files.pop(path)
    else:
        files = _changed(files, path, change)
    with public_server(monkeypatch, tmp_path, files) as server:
        usage, _ = with_history(data_dir, midweek, server.url, week)
        answer = usage.fetch_public_statistics(asked=True)
        kept = usage.compare()
        usage.shutdown()
    assert (answer["failed"], answer["fetched"], answer["detail"]) == (
        True, False, "they could not be fetched: "
        + message.format(week=week.label, url=f"{server.url}{PATH}"))
    assert kept == {"available": False, "items": [],
                    "detail": "the public statistics have not been fetched yet"}


def test_a_bad_answer_after_a_good_one_keeps_what_the_good_one_brought(
        data_dir: Path, midweek: datetime, monkeypatch: pytest.MonkeyPatch,
        tmp_path: Path) -> None:
    """A week after a good fetch, the server answers its index with a maintenance page: the
    fetch fails, and the comparison is the one the good fetch allowed, unchanged."""
    week = newest_publishable(midweek)
    with public_server(monkeypatch, tmp_path, site([week], midweek)) as server:
        usage, clock = with_history(data_dir, midweek, server.url, week)
        assert usage.fetch_public_statistics(asked=True)["fetched"] is True
        before = usage.compare()
        clock.advance(timedelta(days=7))
        server.files[PATH + "index.json"] = b"<html>maintenance</html>"
        answer = usage.fetch_public_statistics(asked=True)
        after = usage.compare()
        usage.shutdown()
    assert (answer["failed"], answer["fetched"], answer["detail"]) == (
        True, False, "they could not be fetched: the public statistics' index is not JSON: "
                     "Expecting value: line 1 column 1 (char 0)")
    assert (before["available"], before["week"]) == (True, week.label)
    assert after == before


def test_a_week_file_outside_the_statistics_path_is_refused(
        data_dir: Path, midweek: datetime, monkeypatch: pytest.MonkeyPatch,
        tmp_path: Path) -> None:
    week = newest_publishable(midweek)
    files = site([week], midweek)
    index = json.loads(files[PATH + "index.json"])
    index["weeks"][0]["file"] = "../v1/installations/x.json"
    files[PATH + "index.json"] = json.dumps(index).encode()
    with public_server(monkeypatch, tmp_path, files) as server:
        usage = make(data_dir, ManualClock(midweek), server.url)
        answer = usage.fetch_public_statistics(asked=True)
        usage.shutdown()
    assert (answer["failed"], answer["detail"]) == (
        True, f"they could not be fetched: the index names a week file outside "
              f"{server.url}{PATH}: '../v1/installations/x.json'")
    assert server.paths() == [f"{PATH}index.json"]


def test_a_certificate_the_reports_would_not_trust_is_refused(
        data_dir: Path, midweek: datetime, monkeypatch: pytest.MonkeyPatch,
        tmp_path: Path) -> None:
    """The same verification as reports: without the CA the reports are told to trust, the
    server's certificate is not accepted and nothing is kept."""
    with public_server(monkeypatch, tmp_path, site([], midweek)) as server:
        monkeypatch.delenv("OTEL_EXPORTER_OTLP_CERTIFICATE")
        usage = make(data_dir, ManualClock(midweek), server.url)
        answer = usage.fetch_public_statistics(asked=True)
        usage.shutdown()
    assert (answer["failed"], answer["detail"]) == (
        True, f"they could not be fetched: {server.url}{PATH}index.json: no answer: SSLError")


def test_the_address_is_the_endpoints_origin_and_the_catalogs_path() -> None:
    assert base_url("https://stats.example.org:8443/some/prefix", CATALOG) == (
        "https://stats.example.org:8443/stats/")


@pytest.mark.parametrize(("instant", "week"), [
    ("2026-12-06T23:59:50+00:00", "2026-W46"),  # W47 ends 23 Nov: published from 7 Dec on
    ("2026-12-07T00:00:00+00:00", "2026-W47"),
    ("2027-01-10T12:00:00+00:00", "2026-W51"),  # W52 ends 28 Dec: published from 11 Jan on
    ("2027-01-11T00:00:00+00:00", "2026-W52"),
])
def test_the_newest_week_that_can_be_published(instant: str, week: str) -> None:
    assert newest(datetime.fromisoformat(instant), CATALOG).label == week


def test_an_endpoint_reports_could_not_go_to_is_not_contacted_for_the_statistics_either(
        data_dir: Path, midweek: datetime) -> None:
    """Plain HTTP to another machine: refused before any connection, as a report would be."""
    usage = make(data_dir, ManualClock(midweek), "http://stats.example.org")
    usage.set_mode("on")
    answer = usage.fetch_public_statistics()
    usage.shutdown()
    assert answer == {
        "url": "http://stats.example.org/stats/", "askable": True, "refused": False,
        "failed": True, "fetched": False, "due": False, "week": None,
        "detail": "they could not be fetched: refusing to send to http://stats.example.org: "
                  "usage reports travel over HTTPS only (plain HTTP only to this machine)"}
