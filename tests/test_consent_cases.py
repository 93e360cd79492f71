"""The ways the consent rules broke at their edges, each as it was reproduced: the eleven the
state machine of `otel_usage.consent` answered (numbered), and those found after it (exact
instants); every test here failed before its fix and passes now."""

from __future__ import annotations

import argparse
import math
import sqlite3
import stat
import threading
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from capture_server import STALL, CaptureServer, capture_server
from catalog_support import grown_raw, write_catalog

from otel_usage import ManualClock, UsageTelemetry
from otel_usage.catalog import Catalog, load_catalog
from otel_usage.cli import _consent, main
from otel_usage.errors import TransportError, UsageError
from otel_usage.send.transport import check_endpoint
from otel_usage.weeks import Week

JOB = {"job.status": "completed", "printer.type": "bambu_lab"}
HOUR = timedelta(hours=1)


@pytest.fixture
def server() -> Iterator[CaptureServer]:
    with capture_server() as running:
        yield running


@pytest.fixture
def opt_in(now: datetime) -> datetime:
    """Wednesday noon of this week: the instant users opt in (the next week is the first sent)."""
    return Week.of(now).start + timedelta(days=2, hours=12)


def make(data_dir: Path, clock: ManualClock, endpoint: str = "http://127.0.0.1:9",
         environ: dict[str, str] | None = None, catalog: Catalog | None = None
         ) -> UsageTelemetry:
    return UsageTelemetry(data_dir, clock=clock, endpoint=endpoint, service_version="2.7.0",
                          export_interval_s=math.inf, background_uploads=False,
                          environ={"DEPLOYMENT_MODE": "docker", **(environ or {})},
                          catalog=catalog)


def pin_slot(usage: UsageTelemetry) -> None:
    """Reports are due the moment their week closes (Monday 00:00 UTC)."""
    with usage.store.transaction() as tx:
        tx.set_meta("report_weekday", "0")
        tx.set_meta("report_hour", "0")


def count(usage: UsageTelemetry, jobs: int, attributes: dict[str, str] | None = None) -> None:
    usage.meter().create_counter("printernizer.jobs").add(jobs, attributes or JOB)


def next_week(when: datetime) -> Week:
    return Week.of(Week.of(when).end)


def sent_points(server: CaptureServer) -> list[dict[tuple[str, tuple[tuple[str, str], ...]], int]]:
    """The points of each report received, but the library's own (starts, days up)."""
    own = {"printernizer.app.starts", "printernizer.uptime"}
    return [{k: v for k, v in r.points().items() if k[0] not in own} for r in server.reports()]


def jobs_point(value: int, **attributes: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], int]:
    return {("printernizer.jobs", tuple(sorted({**JOB, **attributes}.items()))): value}


# 1. A one-off OTEL_USAGE_MODE=on is not permanent consent.

def test_1_the_environment_overrides_for_its_process_only(
        data_dir: Path, server: CaptureServer, opt_in: datetime) -> None:
    clock = ManualClock(opt_in)
    make(data_dir, clock).set_mode("local")
    once = make(data_dir, clock, server.url, environ={"OTEL_USAGE_MODE": "on"})
    once.start()
    assert once.mode == "on"
    once.shutdown()
    later = make(data_dir, clock, server.url)
    later.start()
    pin_slot(later)
    assert (later.mode, later.mode_state().stored) == ("local", "local")
    clock.set(next_week(opt_in).start + HOUR)
    count(later, 3)
    later.flush()
    clock.set(next_week(opt_in).end + HOUR)
    assert later.send_now()["sent"] == []
    later.shutdown()
    assert server.requests == []
    with sqlite3.connect(data_dir / "usage.sqlite3") as conn:
        assert conn.execute("SELECT mode, source FROM mode_changes").fetchall() == [
            ("local", "user")]


def test_1_saying_off_again_in_a_process_forced_on_ends_the_environments_consent(
        data_dir: Path, server: CaptureServer, opt_in: datetime) -> None:
    """Found by the model: the stored choice is off, a process forced on has sent a week; the
    user says off again (the choice does not change). The environment's consent ends there:
    what it sent is erased, and nothing more is sent by this process."""
    clock = ManualClock(opt_in)
    make(data_dir, clock).set_mode("off")
    usage = make(data_dir, clock, server.url, environ={"OTEL_USAGE_MODE": "on"})
    pin_slot(usage)
    usage.start()
    clock.set(next_week(opt_in).start + HOUR)
    count(usage, 2)
    usage.flush()
    clock.set(next_week(opt_in).end + HOUR)
    assert usage.send_now()["sent"] == [next_week(opt_in).label]
    (report,) = server.reports()
    usage.set_mode("off")
    assert usage.mode_state().stored == "off"
    count(usage, 3)
    usage.flush()
    clock.set(next_week(opt_in).next().end + HOUR)
    summary = usage.send_now()
    usage.shutdown()
    assert (summary["sent"], summary["erasures_acknowledged"]) == ([], 1)
    (erasure,) = server.erasures()
    assert (erasure.installation_id, erasure.credential) == (
        report.resource()["service.instance.id"], report.credential)
    assert len(server.reports()) == 1


# 2. Opting out while a report is in flight erases it.

def test_2_a_report_in_flight_when_the_user_opts_out_is_erased(
        data_dir: Path, server: CaptureServer, opt_in: datetime) -> None:
    clock = ManualClock(opt_in)
    usage = make(data_dir, clock, server.url)
    usage.set_mode("on")
    pin_slot(usage)
    usage.start()
    clock.set(next_week(opt_in).start + HOUR)
    count(usage, 2)
    usage.flush()
    clock.set(next_week(opt_in).end + HOUR)
    server.answers = [(STALL, {})]
    sending = threading.Thread(target=usage.send_now)
    sending.start()
    assert server.arrived.wait(10)
    usage.set_mode("local")  # the report is on the wire, unanswered
    server.release()
    sending.join(10)
    (report,) = server.reports()
    assert usage.send_now()["erasures_acknowledged"] == 1
    (erasure,) = server.erasures()
    assert (erasure.path, erasure.installation_id, erasure.credential) == (
        "/v1/metrics", report.resource()["service.instance.id"], report.credential)
    assert [(h["kind"], h["status"]) for h in usage.history()] == [
        ("report", 200), ("erasure", 200)]
    usage.shutdown()


# 3. delete --yes keeps the user's "off".

def test_3_delete_all_keeps_off_and_says_so(data_dir: Path, opt_in: datetime,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    clock = ManualClock(opt_in)
    make(data_dir, clock).set_mode("off")
    assert main(["--data-dir", str(data_dir), "delete", "--yes"]) == 0
    assert capsys.readouterr().out == (
        "All usage statistics on this machine were deleted.\n"
        "Your choice of mode off is kept (change it with `otel-usage mode`).\n")
    usage = make(data_dir, clock)
    usage.start()
    count(usage, 4)
    usage.shutdown()
    assert usage.mode_state().stored == "off"
    with sqlite3.connect(data_dir / "usage.sqlite3") as conn:
        assert conn.execute("SELECT count(*) FROM daily").fetchone() == (0,)


# 4. Catalog growth waits for consent per key and value; agreeing again keeps "on".

def test_4_new_values_wait_for_consent_and_agreeing_again_stays_on(
        data_dir: Path, server: CaptureServer, opt_in: datetime, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    clock = ManualClock(opt_in)
    grown = load_catalog(write_catalog(grown_raw(), tmp_path))
    make(data_dir, clock, catalog=grown.as_of(1)).set_mode("on")  # consent to version 1
    usage = make(data_dir, clock, server.url, catalog=grown)
    pin_slot(usage)
    usage.start()
    first = next_week(opt_in)
    clock.set(first.start + HOUR)
    count(usage, 2, {**JOB, "printer.type": "creality", "job.origin": "ui"})
    usage.flush()
    clock.set(first.end + HOUR)
    assert usage.send_now()["sent"] == [first.label]
    assert sent_points(server) == [jobs_point(2, **{"printer.type": "other"})]
    assert [a["text"] for a in usage.catalog_additions()["additions"]][:2] == [
        "printernizer.jobs, printer.type: new value 'creality'",
        "printernizer.jobs: now also by job.origin"]
    usage.shutdown()
    # One action, on the CLI: what is new is shown, then agreed to; no opt-out happens.
    usage = make(data_dir, clock, server.url, catalog=grown)
    usage.start()
    assert _consent(usage, argparse.Namespace(yes=False)) == 0
    shown = capsys.readouterr().out
    assert "version 3 adds:\n  - printernizer.jobs, printer.type: new value 'creality'\n" \
        in shown and shown.endswith("Run again with --yes to agree to send these too.\n")
    assert usage.catalog_additions()["consented_version"] == 1
    assert _consent(usage, argparse.Namespace(yes=True)) == 0
    assert capsys.readouterr().out.endswith("You now agree to catalog version 3.\n")
    assert usage.mode_state().stored == "on"
    assert usage.catalog_additions() == {"consented_version": 3, "catalog_version": 3,
                                         "additions": []}
    assert usage.send_now()["erasures_pending"] == 0 and server.erasures() == []
    second = next_week(first.start)
    third = next_week(second.start)
    clock.set(third.start + HOUR)  # the first week begun after the agreement
    count(usage, 1, {**JOB, "printer.type": "creality", "job.origin": "ui"})
    usage.flush()
    clock.set(third.end + HOUR)
    usage.send_now()
    assert sent_points(server)[-1] == jobs_point(
        1, **{"printer.type": "creality", "job.origin": "ui"})
    usage.shutdown()


# 5. HTTPS-only cannot be bypassed by the URL parser's disagreement.

@pytest.mark.parametrize("url", [
    "http://192.0.2.1\\@localhost:4318", "https://user:secret@stats.example",
    "http://localhost@192.0.2.1:4318", "https://stats.example\\@localhost",
    "http://127.0.0.1:4318 /x", "https://stats.example/v1?x=1", "https://stats.example#x",
    "http://localhost\t.example:4318", "https://stats.exa\u0430mple",
])
def test_5_an_ambiguous_endpoint_is_refused(url: str) -> None:
    with pytest.raises(TransportError, match="refusing to send to"):
        check_endpoint(url)


def test_5_a_refused_endpoint_sends_no_report_and_no_erasure(
        data_dir: Path, server: CaptureServer, opt_in: datetime) -> None:
    port = server.url.rsplit(":", 1)[1]
    bypass = f"http://192.0.2.1\\@localhost:{port}"
    clock = ManualClock(opt_in)
    usage = make(data_dir, clock, bypass)
    usage.set_mode("on")
    pin_slot(usage)
    usage.start()
    clock.set(next_week(opt_in).start + HOUR)
    count(usage, 1)
    usage.flush()
    clock.set(next_week(opt_in).end + HOUR)
    assert usage.send_now()["refused"].startswith("refusing to send to")
    usage.shutdown()
    assert server.requests == []


# 6. The erasure goes where the reports went, with their credential.

def test_6_the_erasure_goes_to_the_endpoint_the_reports_went_to(
        data_dir: Path, opt_in: datetime) -> None:
    clock = ManualClock(opt_in)
    with capture_server() as first, capture_server() as second:
        usage = make(data_dir, clock, first.url)
        usage.set_mode("on")
        pin_slot(usage)
        usage.start()
        clock.set(next_week(opt_in).start + HOUR)
        count(usage, 1)
        usage.flush()
        clock.set(next_week(opt_in).end + HOUR)
        usage.send_now()
        usage.shutdown()
        (report,) = first.reports()
        elsewhere = make(data_dir, clock, second.url)
        elsewhere.set_mode("off")
        assert elsewhere.send_now()["erasures_acknowledged"] == 1
        assert second.requests == []
        (erasure,) = first.erasures()
        assert erasure.credential == report.credential
        assert erasure.installation_id == report.resource()["service.instance.id"]


# 7. A series is its name and its instrument's kind.

def test_7_a_histogram_named_like_a_catalog_counter_stays_local(
        data_dir: Path, server: CaptureServer, opt_in: datetime) -> None:
    clock = ManualClock(opt_in)
    usage = make(data_dir, clock, server.url)
    usage.set_mode("on")
    pin_slot(usage)
    usage.start()
    clock.set(next_week(opt_in).start + HOUR)
    count(usage, 2)
    usage.meter("other").create_histogram("printernizer.jobs").record(3600, JOB)
    usage.meter("other").create_up_down_counter("printernizer.jobs").add(40, JOB)
    usage.flush()
    clock.set(next_week(opt_in).end + HOUR)
    usage.send_now()
    usage.shutdown()
    assert sent_points(server) == [jobs_point(2)]


# 8. An out-of-range value is clamped or dropped per point and never blocks a report.

def test_8_out_of_range_values_are_clamped_or_dropped_and_shown(
        data_dir: Path, server: CaptureServer, opt_in: datetime) -> None:
    clock = ManualClock(opt_in)
    usage = make(data_dir, clock, server.url)
    usage.set_mode("on")
    pin_slot(usage)
    usage.start()
    usage.observe_printers(lambda: {"bambu_lab": 10**300, "prusa_core": -3, "octoprint": 2})
    clock.set(next_week(opt_in).start + HOUR)
    count(usage, 2**70)
    count(usage, 5, {"job.status": "failed", "printer.type": "bambu_lab"})
    usage.flush()
    clock.set(next_week(opt_in).end + HOUR)
    summary = usage.send_now()
    preview = usage.preview()["last_sent"]
    usage.shutdown()
    limit = usage.catalog.protocol.max_counter_value
    printers = usage.catalog.metric("printernizer.printers")
    assert printers is not None and printers.max is not None
    assert summary["sent"] == [next_week(opt_in).label]
    (points,) = sent_points(server)
    assert points == {
        **jobs_point(limit), **jobs_point(5, **{"job.status": "failed"}),
        ("printernizer.printers", (("printer.type", "bambu_lab"),)): printers.max,
        ("printernizer.printers", (("printer.type", "octoprint"),)): 2,
    }
    assert preview["adjusted"] == [
        {"metric": "printernizer.jobs", "attributes": JOB, "value": "1.2e+21",
         "became": limit},
        {"metric": "printernizer.printers", "attributes": {"printer.type": "bambu_lab"},
         "value": "1.0e+300", "became": printers.max},
        {"metric": "printernizer.printers", "attributes": {"printer.type": "prusa_core"},
         "value": "-3", "became": None},
    ]


# 9. Counts held in memory follow mode changes, deletes and the consent instant.

def test_9_counts_made_while_off_are_not_stored_after_switching_to_local(
        data_dir: Path, opt_in: datetime) -> None:
    clock = ManualClock(opt_in)
    usage = make(data_dir, clock)
    usage.set_mode("off")
    usage.start()
    count(usage, 3)
    usage.set_mode("local")
    count(usage, 1)
    usage.shutdown()
    assert _jobs_in(usage) == 1


def test_9_counts_made_while_off_by_another_process_choice_are_dropped(
        data_dir: Path, opt_in: datetime) -> None:
    clock = ManualClock(opt_in)
    usage = make(data_dir, clock)
    usage.set_mode("local")
    usage.start()
    count(usage, 3)
    make(data_dir, clock).set_mode("off")  # the CLI, while the host counts
    make(data_dir, clock).set_mode("local")
    count(usage, 2)
    usage.shutdown()
    assert _jobs_in(usage) == 0


def test_9_counts_made_before_delete_all_do_not_come_back(
        data_dir: Path, opt_in: datetime) -> None:
    clock = ManualClock(opt_in)
    usage = make(data_dir, clock)
    usage.start()
    count(usage, 3)
    usage.delete_all_now()
    count(usage, 1)
    usage.shutdown()
    assert _jobs_in(usage) == 1
    other = make(data_dir, clock)
    other.start()
    count(other, 5)
    make(data_dir, clock).delete_all_now()  # the CLI, while the host counts
    other.shutdown()
    assert _jobs_in(other) == 0


def test_9_a_count_made_before_opting_in_is_never_sent(
        data_dir: Path, server: CaptureServer, opt_in: datetime) -> None:
    sunday = Week.of(opt_in).end - timedelta(seconds=20)
    clock = ManualClock(sunday)
    usage = make(data_dir, clock, server.url)
    usage.set_mode("local")
    pin_slot(usage)
    usage.start()
    count(usage, 7)  # seconds before the opt-in, exported only after the week turned
    clock.set(sunday + timedelta(seconds=10))
    usage.set_mode("on")
    clock.set(Week.of(opt_in).end + timedelta(minutes=1))
    count(usage, 1)
    usage.flush()
    clock.set(next_week(opt_in).end + HOUR)
    usage.send_now()
    usage.shutdown()
    assert sent_points(server) == [jobs_point(1)]


def _jobs_in(usage: UsageTelemetry) -> int:
    with sqlite3.connect(usage.store.path) as conn:
        (total,) = conn.execute(
            "SELECT coalesce(sum(d.total), 0) FROM daily d JOIN series s ON s.id = d.series_id "
            "WHERE s.metric = 'printernizer.jobs'").fetchone()
    return int(total)


# 10. Only the library's errors, one line on the CLI, a message on the page, a fresh store.

def test_10_public_calls_raise_only_the_librarys_errors(data_dir: Path,
                                                        opt_in: datetime) -> None:
    (data_dir / "usage.sqlite3").mkdir()  # a store that cannot be opened
    usage = make(data_dir, ManualClock(opt_in))
    for call in (lambda: usage.set_mode("local"), usage.preview, usage.history,
                 usage.delete_all_now, usage.catalog_additions,
                 usage.mode_state):
        with pytest.raises(UsageError, match="the local usage database cannot be used"):
            call()
    assert usage.send_now()["sent"] == []  # the sender logs, never raises
    usage.start()  # nor does recording
    count(usage, 1)
    usage.shutdown()


def test_10_a_corrupt_store_is_moved_aside_and_a_fresh_one_started(
        data_dir: Path, opt_in: datetime, capsys: pytest.CaptureFixture[str]) -> None:
    garbage = b"not a database" * 100
    (data_dir / "usage.sqlite3").write_bytes(garbage)
    clock = ManualClock(opt_in)
    usage = make(data_dir, clock)
    usage.start()
    count(usage, 2)
    usage.shutdown()
    aside = data_dir / f"usage.sqlite3.corrupt-{opt_in.strftime('%Y%m%dT%H%M%SZ')}"
    assert sorted(p.name for p in data_dir.iterdir() if "corrupt" in p.name) == [aside.name]
    assert aside.read_bytes() == garbage
    assert _jobs_in(usage) == 2


def test_10_the_cli_prints_one_line_on_a_damaged_store(now: datetime,
        data_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (data_dir / "usage.sqlite3").mkdir()  # a store that cannot be opened
    for command in (["mode", "on"], ["preview"], ["history"], ["delete", "--yes"],
                    ["consent"], ["status"], ["show"], ["export"]):
        code = main(["--data-dir", str(data_dir), *command])
        err = capsys.readouterr().err
        assert (code, err.count("\n"), err.split(":")[0]) == (1, 1, "otel-usage"), (command, err)


# 11. Nothing of the old identity is recoverable; exports are the owner's only.

def test_11_the_erased_identity_cannot_be_read_back_from_the_file(
        data_dir: Path, server: CaptureServer, opt_in: datetime) -> None:
    clock = ManualClock(opt_in)
    usage = make(data_dir, clock, server.url)
    usage.set_mode("on")
    pin_slot(usage)
    usage.start()
    clock.set(next_week(opt_in).start + HOUR)
    count(usage, 1)
    usage.flush()
    clock.set(next_week(opt_in).end + HOUR)
    usage.send_now()
    (report,) = server.reports()
    old_id, secret = report.resource()["service.instance.id"], report.credential
    usage.set_mode("local")
    assert usage.send_now()["erasures_acknowledged"] == 1
    usage.shutdown()
    files = b"".join(p.read_bytes() for p in data_dir.iterdir() if p.is_file())
    assert old_id.encode() not in files and secret.encode() not in files


def test_11_exports_are_readable_by_the_owner_only(data_dir: Path, opt_in: datetime,
                                                  tmp_path: Path) -> None:
    make(data_dir, ManualClock(opt_in)).set_mode("local")
    target = tmp_path / "export.json"
    assert main(["--data-dir", str(data_dir), "export", "-o", str(target)]) == 0
    assert stat.S_IMODE(target.stat().st_mode) == 0o600


# The ingest answers 410 for an erased installation, the gateway 403 with the catalog's erased
# message in an OTLP status: the client starts over.

PROTOBUF = {"Content-Type": "application/x-protobuf"}
PROTOCOL = load_catalog().protocol


def otlp_status(code: int, message: str, detail: bytes = b"") -> bytes:
    """A google.rpc.Status as the OTLP receiver writes it (with one detail of `detail`)."""
    from google.protobuf.any_pb2 import Any as AnyMessage
    from google.rpc.status_pb2 import Status

    details = [AnyMessage(type_url="type.googleapis.com/example", value=detail)] if detail else []
    return bytes(Status(code=code, message=message, details=details).SerializeToString())


ERASED_ANSWERS = {
    "ingest": (PROTOCOL.erased_status, {}),
    "gateway": (403, PROTOBUF, otlp_status(7, PROTOCOL.erased_message)),
}


@pytest.mark.parametrize("answer", ERASED_ANSWERS.values(), ids=ERASED_ANSWERS.keys())
def test_an_erased_installation_starts_over_with_a_new_id_and_credential(
        data_dir: Path, server: CaptureServer, opt_in: datetime,
        answer: tuple[int, dict[str, str]] | tuple[int, dict[str, str], bytes]) -> None:
    clock = ManualClock(opt_in)
    usage = make(data_dir, clock, server.url)
    usage.set_mode("on")
    pin_slot(usage)
    usage.start()
    clock.set(next_week(opt_in).start + HOUR)
    count(usage, 1)
    usage.flush()
    clock.set(next_week(opt_in).end + HOUR)
    server.answers = [answer]
    assert usage.send_now()["failed"] == [next_week(opt_in).label]
    # The week that went out under the erased identity is never sent again under another.
    assert usage.send_now()["sent"] == []
    later_week = next_week(next_week(opt_in).start)
    clock.set(later_week.start + HOUR)
    count(usage, 2)
    usage.flush()
    clock.set(later_week.end + HOUR)
    assert usage.send_now()["sent"] == [later_week.label]
    usage.shutdown()
    first, later = server.reports()
    assert first.resource()["service.instance.id"] != later.resource()["service.instance.id"]
    assert first.credential != later.credential
    assert (sent_points(server)[0], sent_points(server)[1]) == (jobs_point(1), jobs_point(2))


def test_a_server_answering_erased_to_everything_cannot_churn_identities(
        data_dir: Path, server: CaptureServer, opt_in: datetime) -> None:
    """Three weeks of hourly runs against a server that answers 410 to everything: a new
    identity at most once a week, each week sent once (never again under a new identity),
    `destinations` holds only the identities that sent, and the opt-out erases each of them
    (it minted one identity per report, re-sent the same week under each, and owed an erasure
    per minted id)."""
    clock = ManualClock(opt_in)
    usage = make(data_dir, clock, server.url)
    usage.set_mode("on")
    pin_slot(usage)
    usage.start()
    server.always = ERASED_ANSWERS["ingest"]
    while clock.now() < opt_in + timedelta(weeks=3):
        clock.advance(HOUR)
        count(usage, 1)
        usage.flush()
        usage.send_now()
    first, second = next_week(opt_in), next_week(next_week(opt_in).start)
    sent = [(Week.of(datetime.fromtimestamp(r.week_start_nanos() / 1e9, tz=opt_in.tzinfo))
             .label, r.installation_id, r.credential) for r in server.reports()]
    assert [week for week, _, _ in sent] == [first.label, second.label]
    assert len({(i, c) for _, i, c in sent}) == 2
    with sqlite3.connect(data_dir / "usage.sqlite3") as conn:
        assert sorted(conn.execute("SELECT installation_id, credential FROM destinations")) == (
            sorted((i, c) for _, i, c in sent))
    usage.set_mode("local")
    assert usage.send_now()["erasures_acknowledged"] == 2
    usage.shutdown()
    assert sorted((r.installation_id, r.credential) for r in server.erasures()) == sorted(
        (i, c) for _, i, c in sent)


OTHER_REFUSALS = {
    "another message": (403, PROTOBUF, otlp_status(7, PROTOCOL.erased_message + ".")),
    "the message as text": (403, {"Content-Type": "text/plain"},
                            PROTOCOL.erased_message.encode()),
    "the message as json": (403, {"Content-Type": "application/json"},
                            b'{"code": 7, "message": "%s"}' % PROTOCOL.erased_message.encode()),
    "no body": (403, PROTOBUF),
    "not protobuf": (403, PROTOBUF, b"\xff\xff\xff\xff"),
    "invalid utf-8": (403, PROTOBUF, b"\x12\x02\xc3\x28"),
    "too long": (403, PROTOBUF, otlp_status(7, PROTOCOL.erased_message, b"x" * 5000)),
    "401": (401, PROTOBUF, otlp_status(16, PROTOCOL.erased_message)),
}


@pytest.mark.parametrize("answer", OTHER_REFUSALS.values(), ids=OTHER_REFUSALS.keys())
def test_any_other_refusal_keeps_the_installation(
        data_dir: Path, server: CaptureServer, opt_in: datetime,
        answer: tuple[int, dict[str, str]] | tuple[int, dict[str, str], bytes]) -> None:
    """Only the catalog's erased answers start over: another refusal fails the week for good
    and keeps the id, and no body raises."""
    clock = ManualClock(opt_in)
    usage = make(data_dir, clock, server.url)
    usage.set_mode("on")
    pin_slot(usage)
    usage.start()
    clock.set(next_week(opt_in).start + HOUR)
    count(usage, 1)
    usage.flush()
    clock.set(next_week(opt_in).end + HOUR)
    server.answers = [answer]
    assert usage.send_now()["failed"] == [next_week(opt_in).label]
    assert usage.send_now()["sent"] == []
    later_week = next_week(next_week(opt_in).start)
    clock.set(later_week.start + HOUR)
    count(usage, 1)
    usage.flush()
    clock.set(later_week.end + HOUR)
    assert usage.send_now()["sent"] == [later_week.label]
    usage.shutdown()
    first, later = server.reports()
    assert (first.installation_id, first.credential) == (later.installation_id, later.credential)
    assert usage.history()[-1]["status"] == 200


def test_the_gateways_erased_answer_acknowledges_an_erasure_request(
        data_dir: Path, server: CaptureServer, opt_in: datetime) -> None:
    """An erasure request the gateway answers erased is done: the server has forgotten it."""
    clock = ManualClock(opt_in)
    usage = make(data_dir, clock, server.url)
    usage.set_mode("on")
    pin_slot(usage)
    usage.start()
    clock.set(next_week(opt_in).start + HOUR)
    count(usage, 1)
    usage.flush()
    clock.set(next_week(opt_in).end + HOUR)
    assert usage.send_now()["sent"] == [next_week(opt_in).label]
    server.answers = [ERASED_ANSWERS["gateway"]]
    usage.set_mode("local")
    summary = usage.send_now()
    usage.shutdown()
    assert (summary["erasures_acknowledged"], summary["erasures_pending"]) == (1, 0)
    assert [r.installation_id for r in server.erasures()] == [
        server.reports()[0].installation_id]


# The page and its API: what a newer catalog adds, agreed to in one action.

def test_the_page_api_shows_what_is_new_and_agrees_in_one_action(
        data_dir: Path, opt_in: datetime, tmp_path: Path) -> None:
    from web_support import PAGE, Client, IngressProxy, build_app

    clock = ManualClock(opt_in)
    grown = load_catalog(write_catalog(grown_raw(), tmp_path))
    make(data_dir, clock, catalog=grown.as_of(1)).set_mode("on")
    usage = make(data_dir, clock, catalog=grown)
    client = Client(IngressProxy(build_app(usage)))
    before = client.get(PAGE + "api/mode").json()
    assert (before["consented_version"], before["catalog_version"],
            len(before["additions"])) == (1, 3, 9)
    assert before["additions"][1] == {
        "version": 2, "kind": "attribute", "metric": "printernizer.jobs",
        "key": "job.origin", "value": None, "text": "printernizer.jobs: now also by job.origin"}
    # An agreement names the version the page showed; a page opened before an upgrade (it
    # showed version 2) is refused, and agrees once it has shown version 3.
    stale = client.put(PAGE + "api/mode", json={"mode": "on", "catalog_version": 2})
    assert (stale.status_code, stale.json()["error"]) == (409, "catalog_changed")
    assert client.get(PAGE + "api/mode").json()["consented_version"] == 1
    after = client.put(PAGE + "api/mode", json={"mode": "on", "catalog_version": 3}).json()
    assert (after["mode"], after["consented_version"], after["additions"]) == ("on", 3, [])
    usage.shutdown()


# Instants are exact: a cut in the first second of a week is not the week's start.

def test_a_count_in_a_weeks_first_second_before_the_opt_in_is_never_sent(
        data_dir: Path, server: CaptureServer, now: datetime) -> None:
    """Counted at Monday 00:00:00.3 under local, opted in at 00:00:00.6: the week began
    before the consent, so it is never sent (a consent instant cut to whole seconds was the
    week's start, and the count went out)."""
    first = next_week(now)
    clock = ManualClock(first.start + timedelta(milliseconds=300))
    usage = make(data_dir, clock, server.url)
    usage.start()
    pin_slot(usage)
    count(usage, 2)
    usage.flush()
    clock.set(first.start + timedelta(milliseconds=600))
    usage.set_mode("on")
    second = next_week(first.start)
    clock.set(second.start + HOUR)
    count(usage, 5)
    usage.flush()
    clock.set(second.end + HOUR)
    assert usage.send_now()["sent"] == [second.label]
    assert [Week.of(datetime.fromtimestamp(r.week_start_nanos() / 1e9, tz=now.tzinfo)).label
            for r in server.reports()] == [second.label]
    assert sent_points(server) == [jobs_point(5)]
    usage.shutdown()


def test_an_agreement_in_a_weeks_first_second_does_not_cover_that_week(
        data_dir: Path, server: CaptureServer, opt_in: datetime, tmp_path: Path) -> None:
    """Consent to version 1; a new printer type counted at Monday 00:00:00.2, version 3
    agreed to at 00:00:00.7: that week is scrubbed with version 1 (the type is "other"),
    the next one with version 3."""
    grown = load_catalog(write_catalog(grown_raw(), tmp_path))
    clock = ManualClock(opt_in)
    make(data_dir, clock, catalog=grown.as_of(1)).set_mode("on")
    usage = make(data_dir, clock, server.url, catalog=grown)
    usage.start()
    pin_slot(usage)
    first = next_week(opt_in)
    creality = {**JOB, "printer.type": "creality"}
    clock.set(first.start + timedelta(milliseconds=200))
    count(usage, 2, creality)
    usage.flush()
    clock.set(first.start + timedelta(milliseconds=700))
    usage.set_mode("on")  # agrees to version 3
    second = next_week(first.start)
    clock.set(second.start + HOUR)
    count(usage, 1, creality)
    usage.flush()
    clock.set(second.end + HOUR)
    assert usage.send_now()["sent"] == [first.label, second.label]
    assert sent_points(server) == [jobs_point(2, **{"printer.type": "other"}),
                                   jobs_point(1, **{"printer.type": "creality"})]
    usage.shutdown()
