"""`otel-usage-ingest`: schema, migrate, publish, forget, site in process; serve as the subprocess
others start."""

from __future__ import annotations

import json
import signal
import threading
import time
from datetime import datetime
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa
from ingest_reports import CATALOG, encode, last_week, new_credential, new_installation, request
from ingest_support import database_url, query, server_process  # noqa: F401  (fixture)

from ingest import _schema, cli
from ingest._store import ReportJob, Store, create_engine
from otel_usage.weeks import Week

HEADER = CATALOG.protocol.credential_header


@pytest.mark.parametrize("dialect", ["mssql", "postgresql", "sqlite"])
def test_schema_prints_the_ddl_for_a_dialect(dialect: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["schema", "--dialect", dialect]) == 0
    assert capsys.readouterr().out == _schema.ddl(dialect)


def test_migrate_prepares_an_empty_database(database_url: str, capsys: pytest.CaptureFixture[str]) -> None:  # noqa: F811
    assert cli.main(["migrate", "--database", database_url]) == 0
    assert capsys.readouterr().out == "schema version 1\n"
    assert query(database_url, "SELECT name, value FROM schema_info") == [("schema_version", "1")]


def test_publish_then_forgets_the_raw_weeks_it_published(database_url: str, now: datetime, capsys: pytest.CaptureFixture[str]) -> None:  # noqa: F811
    """Run against the clock hook's now: `forget` leaves a week that is not published; `publish`
    publishes the week whose window has ended and forgets its raw reports; this week stays."""
    from ingest._privacy import mechanism
    from ingest._validate import Report

    store = Store(create_engine(database_url))
    store.migrate()
    this_week = Week.of(now)
    weeks = [this_week.plus(-10), this_week]
    jobs = []
    for week in weeks:
        installation = new_installation()
        report = Report(installation, week.naive_start, {"service.name": "printernizer"}, ())
        jobs.append(ReportJob(installation, "a" * 64, (report,), week.next().naive_start))
    store.write_reports(jobs)
    store.dispose()
    forgot_nothing = "forgot 0 raw installation-weeks of published weeks, 0 erasures, 0 silent installations\n"
    assert cli.main(["forget", "--database", database_url]) == 0
    assert capsys.readouterr().out == forgot_nothing
    assert cli.main(["publish", "--database", database_url]) == 0
    loss = mechanism(CATALOG).loss
    [(cells,)] = query(database_url, "SELECT COUNT(*) FROM published_cells")
    assert capsys.readouterr().out == (
        f"published the week of {weeks[0].monday}: {cells} cells, epsilon {loss.epsilon:.3g} at "
        f"delta {loss.delta:.3g} per installation (a year of weeks: epsilon "
        f"{loss.yearly_epsilon:.3g})\n"
        "forgot 1 raw installation-weeks of published weeks, 0 erasures, 0 silent installations\n")
    assert [str(w)[:10] for (w,) in query(database_url, "SELECT week_start FROM weekly_reports")] == [
        this_week.monday.isoformat()]


def test_publish_prints_each_weeks_privacy_loss(database_url: str, now: datetime, capsys: pytest.CaptureFixture[str]) -> None:  # noqa: F811
    """Last week, due at once with --after-days 0: one line with its cells and its loss, as
    the mechanism states it; a second run has nothing due."""
    from ingest._privacy import mechanism
    from ingest._validate import Report

    store = Store(create_engine(database_url))
    store.migrate()
    week = Week.of(now).previous().naive_start
    installation = new_installation()
    store.write_reports([ReportJob(installation, "a" * 64, (
        Report(installation, week, {"os.type": "linux"}, ()),), week)])
    store.dispose()
    assert cli.main(["publish", "--database", database_url, "--after-days", "0"]) == 0
    loss = mechanism(CATALOG).loss
    [(cells,)] = query(database_url, "SELECT COUNT(*) FROM published_cells")
    assert capsys.readouterr().out == (
        f"published the week of {week.date()}: {cells} cells, epsilon {loss.epsilon:.3g} at "
        f"delta {loss.delta:.3g} per installation (a year of weeks: epsilon "
        f"{loss.yearly_epsilon:.3g})\n"
        "forgot 1 raw installation-weeks of published weeks, 0 erasures, 0 silent installations\n")
    assert cli.main(["publish", "--database", database_url, "--after-days", "0"]) == 0
    assert capsys.readouterr().out == (
        "no week is due\n"
        "forgot 0 raw installation-weeks of published weeks, 0 erasures, 0 silent installations\n")


def _published_last_week(url: str, now: datetime) -> Week:
    """A store with last week published (one installation): its week."""
    from ingest._validate import Report

    store = Store(create_engine(url))
    store.migrate()
    week = Week.of(now).previous()
    installation = new_installation()
    store.write_reports([ReportJob(installation, "a" * 64, (
        Report(installation, week.naive_start, {"os.type": "linux"}, ()),), week.naive_start)])
    store.dispose()
    assert cli.main(["publish", "--database", url, "--after-days", "0"]) == 0
    return week


def test_site_writes_the_published_weeks_and_says_where(tmp_path: Path, now: datetime, capsys: pytest.CaptureFixture[str]) -> None:
    """The site of the store's one published week, generated on the clock's day; a second
    run changes only what changed (nothing)."""
    url = f"sqlite:///{tmp_path}/ingest.db"
    week = _published_last_week(url, now)
    capsys.readouterr()
    out = tmp_path / "stats"
    assert cli.main(["site", "--database", url, "--out", str(out)]) == 0
    assert capsys.readouterr() == (
        f"wrote the public statistics of 1 published week ({week.label}) to {out}: 4 files, 4 "
        f"of them changed\n  weeks/{week.label}.json\n  catalog.toml\n  index.html\n"
        f"  index.json\nopen {out}/index.html\n", "")
    index = json.loads((out / "index.json").read_text(encoding="utf-8"))
    assert (index["generated_on"], [w["week"] for w in index["weeks"]]) == (
        now.date().isoformat(), [week.label])
    assert sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file()) == [
        "catalog.toml", "index.html", "index.json", f"weeks/{week.label}.json"]
    assert cli.main(["site", "--database", url, "--out", str(out)]) == 0
    assert capsys.readouterr().out == (
        f"wrote the public statistics of 1 published week ({week.label}) to {out}: 4 files, 0 "
        f"of them changed\nopen {out}/index.html\n")


def test_site_refuses_a_database_it_cannot_read_and_writes_nothing(tmp_path: Path, now: datetime, capsys: pytest.CaptureFixture[str]) -> None:
    """A missing SQLite file is not created as an empty database; no directory is made."""
    assert cli.main(["site", "--database", f"sqlite:///{tmp_path}/missing.db",
                     "--out", str(tmp_path / "stats")]) == 1
    assert capsys.readouterr() == ("", "otel-usage-ingest site: cannot read the published "
                                       "views: unable to open database file\n")
    assert list(tmp_path.iterdir()) == []


def test_site_refuses_a_directory_that_holds_something_else(tmp_path: Path, now: datetime, capsys: pytest.CaptureFixture[str]) -> None:
    url = f"sqlite:///{tmp_path}/ingest.db"
    _published_last_week(url, now)
    capsys.readouterr()
    out = tmp_path / "documents"
    out.mkdir()
    (out / "letter.txt").write_text("dear", encoding="utf-8")
    assert cli.main(["site", "--database", url, "--out", str(out)]) == 1
    assert capsys.readouterr() == ("", f"otel-usage-ingest site: {out} is neither empty nor a "
                                       "site written before (no readable index.json listing "
                                       "its weeks): nothing was written; choose an empty or new "
                                       "directory\n")
    assert [p.name for p in out.iterdir()] == ["letter.txt"]


@pytest.mark.end_to_end
def test_serve_answers_reports_and_logs_json_without_addresses(now: datetime, database_url: str) -> None:  # noqa: F811
    """The interface other parts rely on: serve --database --host --port, poll /readyz."""
    body, headers = encode(request(new_installation(), last_week()), "protobuf", True)
    with server_process(database_url, "--host", "127.0.0.1") as (base, process):
        ok = httpx.post(f"{base}{CATALOG.protocol.metrics_path}", content=body,
                        headers=headers | {HEADER: new_credential()})
        refused = httpx.post(f"{base}{CATALOG.protocol.metrics_path}", content=b"x",
                             headers={"content-type": "text/csv"})
        process.send_signal(signal.SIGTERM)
        assert process.wait(30) == 0
        assert process.stderr is not None
        lines = process.stderr.read().decode().splitlines()
    assert (ok.status_code, refused.status_code) == (200, 415)
    records = [json.loads(line) for line in lines]
    events = [r["event"] for r in records]
    assert {"ingest.started", "writer.stopped", "ingest.stopped"} <= set(events)
    refusal = next(r for r in records if r["event"] == "export.refused")
    assert refusal == {"event": "export.refused", "status": 415, "reason": "unsupported_media_type",
                       "level": "info", "logger": "ingest.app", "timestamp": refusal["timestamp"]}
    # The only address in the logs is the one the server listens on.
    assert [line for line in lines if "127.0.0.1" in line and "Uvicorn running" not in line] == []


@pytest.mark.end_to_end
def test_serve_serves_the_site_the_site_command_writes(tmp_path: Path, now: datetime) -> None:
    """The public statistics through the real server on loopback: the files `site` writes
    (built on the day the server built them: the test may cross midnight), and no client
    address in the log."""
    from ingest.site import build_site, read_engine, site_files

    url = f"sqlite:///{tmp_path}/ingest.db"
    _published_last_week(url, now)
    stats = CATALOG.public.path
    with server_process(url) as (base, process):
        with httpx.Client(base_url=base) as client:
            answers = {path: client.get(stats + path) for path in (
                "", "index.json", f"weeks/{Week.of(now).previous().label}.json", "catalog.toml")}
            head = client.head(stats + "index.json")
        process.send_signal(signal.SIGTERM)
        assert process.wait(30) == 0
        assert process.stderr is not None
        lines = process.stderr.read().decode().splitlines()
    built_on = datetime.fromisoformat(answers["index.json"].json()["generated_on"]).date()
    assert (built_on - now.date()).days in (0, 1)
    engine = read_engine(url)
    files = site_files(build_site(engine, CATALOG, built_on), CATALOG)
    engine.dispose()
    assert {path: (r.status_code, r.content) for path, r in answers.items()} == {
        path: (200, files[path or "index.html"]) for path in answers}
    assert (head.status_code, head.content, head.headers["content-length"]) == (
        200, b"", str(len(files["index.json"])))
    assert {(r.headers["content-security-policy"], r.headers["cache-control"],
             "set-cookie" in r.headers) for r in answers.values()} == {
        ("default-src 'self'; frame-ancestors 'none'", "public, max-age=600", False)}
    assert [line for line in lines if "127.0.0.1" in line and "Uvicorn running" not in line] == []


@pytest.mark.end_to_end
def test_sigterm_finishes_the_request_in_flight(now: datetime, database_url: str) -> None:  # noqa: F811
    """Graceful shutdown: a report waiting for a locked database still gets its 200."""
    body, headers = encode(request(new_installation(), last_week()), "protobuf", True)
    with server_process(database_url) as (base, process):
        engine = sa.create_engine(database_url, poolclass=sa.pool.NullPool, isolation_level="AUTOCOMMIT")
        conn = engine.connect()
        conn.exec_driver_sql("BEGIN EXCLUSIVE" if engine.dialect.name == "sqlite" else "BEGIN")
        if engine.dialect.name != "sqlite":
            conn.exec_driver_sql("LOCK TABLE installations IN ACCESS EXCLUSIVE MODE")
        answers: list[int] = []
        sender = threading.Thread(target=lambda: answers.append(httpx.post(
            f"{base}{CATALOG.protocol.metrics_path}", content=body,
            headers=headers | {HEADER: new_credential()}, timeout=30).status_code))
        sender.start()
        time.sleep(0.5)
        process.send_signal(signal.SIGTERM)
        time.sleep(0.5)
        conn.exec_driver_sql("ROLLBACK")
        conn.close()
        engine.dispose()
        sender.join(30)
        assert process.wait(30) == 0
    assert answers == [200]
    assert query(database_url, "SELECT COUNT(*) FROM weekly_reports") == [(1,)]
