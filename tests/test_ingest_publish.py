"""The publication step: closed weeks only, each drawn once through the mechanism, stored with
its noise scales, margins and privacy loss, frozen.

Noise cannot be seeded: a test that bounds a noisy number allows the interval that holds the
true number with probability 1 - 1e-6, so a correct publication fails it less than once in a
million runs."""

from __future__ import annotations

import contextlib
import subprocess
import sys
from collections.abc import Iterable, Iterator
from datetime import UTC, date, datetime, timedelta

import pytest
import sqlalchemy as sa
from ingest_reports import CATALOG, NOW, new_installation, parsed, request
from ingest_support import database_url, query, settings  # noqa: F401  (fixture)

from ingest import _privacy as privacy
from ingest._errors import WriteFailed
from ingest._maintenance import publish_due
from ingest._publish import Publication, newest_due, publish_week
from ingest._store import ReportJob, Store, create_engine
from ingest._validate import Limits, Report, validate
from ingest.testing import Data
from otel_usage.weeks import Week

WEEK = date(2025, 6, 2)
# The reports are written into the store directly: validated with a reporting window long
# enough for every week these tests use (the week of 26 May too).
LIMITS = Limits(CATALOG, NOW, 28, 3600)


def _job(installation: str, data: Data, week: date = WEEK, os: str = "linux") -> ReportJob:
    message = request(installation, week, data=data)
    for kv in message.resource_metrics[0].resource.attributes:
        if kv.key == "os.type":
            kv.value.string_value = os
    accepted = validate(parsed(message), LIMITS)
    return ReportJob(installation, "a" * 64, tuple(accepted.reports), datetime(2025, 6, 9))


@pytest.fixture
def store(database_url: str) -> Iterator[Store]:  # noqa: F811
    store = Store(create_engine(database_url))
    store.migrate()
    yield store
    store.dispose()


def _at(day: date, hour: int = 12) -> float:
    return datetime(day.year, day.month, day.day, hour, tzinfo=UTC).timestamp()


def _jobs() -> list[ReportJob]:
    """5 installations on linux with 2 jobs each, 2 on darwin with 7 uptime days."""
    linux = [_job(new_installation(), {"printernizer.jobs": [(
        {"job.status": "completed", "printer.type": "prusa_core"}, 2)]}) for _ in range(5)]
    darwin = [_job(new_installation(), {"printernizer.uptime": [({}, 7)]}, os="darwin")
              for _ in range(2)]
    return linux + darwin


CELLS = ("SELECT kind, metric, attribute, value, installations, installations_scale, "
         "installations_margin, total, total_scale, total_margin FROM published_cells "
         "ORDER BY kind, metric, attribute, value")
ONE_IN_A_MILLION = 1e-6


def _rows(publication: Publication) -> list[tuple[object, ...]]:
    """The publication's cells as `CELLS` reads them back."""
    return sorted(tuple(row[k] for k in ("kind", "metric", "attribute", "value", "installations",
                                         "installations_scale", "installations_margin", "total",
                                         "total_scale", "total_margin"))
                  for row in publication.cell_rows())


@pytest.fixture
def drawn(monkeypatch: pytest.MonkeyPatch) -> list[privacy.Publication]:
    """Every publication the real mechanism draws during the test (a spy: each call goes on
    to the mechanism)."""
    found: list[privacy.Publication] = []
    real = privacy.Mechanism.publish

    def publish(self: privacy.Mechanism, records: Iterable[privacy.Record]) -> privacy.Publication:
        publication = real(self, records)
        found.append(publication)
        return publication

    monkeypatch.setattr(privacy.Mechanism, "publish", publish)
    return found


def test_a_week_is_published_once_its_reporting_window_has_ended(store: Store, database_url: str) -> None:  # noqa: F811
    """The week of 2 June ends 9 June; with 14 days of window it is due on 23 June. Its 7
    installations come out noisy, within the one-in-a-million interval of their noise."""
    store.write_reports(_jobs())
    assert publish_due(store, settings(database_url, clock=lambda: _at(date(2025, 6, 22), 23))) == []
    [published] = publish_due(store, settings(database_url, clock=lambda: _at(date(2025, 6, 23), 0)))
    assert published.week == datetime(2025, 6, 2)
    [(week, active, margin)] = query(database_url, "SELECT week_start, installations, "
                                                   "installations_margin FROM usage_active_installations")
    [(scale,)] = query(database_url, "SELECT installations_scale FROM published_cells WHERE kind = 'active'")
    assert str(week)[:10] == "2025-06-02"
    assert abs(active - 7) <= privacy.margin(scale, ONE_IN_A_MILLION)
    assert margin == privacy.margin(scale)


def test_a_week_stores_every_cell_with_its_noise_scale_and_margin_and_the_weeks_loss(
        store: Store, database_url: str) -> None:  # noqa: F811
    """What the mechanism drew is what is stored, whole: every cell of the catalog's
    partitions with the scale of its noise and its 95 % margin (NULL where the release
    publishes no such number), and the week's loss by the library's accounting."""
    store.write_reports(_jobs())
    [published] = publish_due(store, settings(database_url, clock=lambda: _at(date(2025, 7, 1))))
    assert query(database_url, CELLS) == _rows(published)
    loss = privacy.mechanism(CATALOG).loss
    assert published.loss == loss
    assert [row[1:] for row in query(database_url, "SELECT published_on, rho, epsilon, delta, yearly_epsilon FROM published_weeks")] == [
        (loss.rho, loss.epsilon, loss.delta, loss.yearly_epsilon)]
    assert [(str(week)[:10], str(on)[:10], *rest) for week, on, *rest in query(
        database_url, "SELECT week_start, published_on, epsilon, delta, yearly_epsilon FROM usage_published_weeks")] == [
        ("2025-06-02", "2025-07-01", loss.epsilon, loss.delta, loss.yearly_epsilon)]
    jobs = {(c.attribute, c.value): c for c in published.cells if c.metric == "printernizer.jobs" and c.kind == "metric"}
    whole = jobs[("", "")]
    assert (whole.installations, whole.installations_scale, whole.total is not None, whole.total_scale is not None) == (
        None, None, True, True)
    completed = jobs[("job.status", "completed")]
    assert (completed.installations is not None, completed.total, completed.total_scale) == (True, None, None)
    assert all(row["installations_margin"] == privacy.margin(row["installations_scale"])
               for row in published.cell_rows() if row["installations_scale"] is not None)


def test_republishing_retries_and_restarts_never_draw_a_second_sample(
        store: Store, database_url: str, drawn: list[privacy.Publication], now: datetime) -> None:  # noqa: F811
    """Last week, published at now: the mechanism runs once. Running the publication again
    and again in this process draws nothing; nor does a new process (`otel-usage-ingest
    publish`, a restart); the stored cells and loss stay exactly what the one draw gave."""
    week = Week.of(now).previous()
    reports = [Report(new_installation(), week.naive_start, {"os.type": "linux"}, ())
               for _ in range(6)]
    store.write_reports([ReportJob(r.installation_id, "a" * 64, (r,), week.naive_start)
                         for r in reports])
    config = settings(database_url, clock=lambda: now.timestamp(), publish_after_days=0)
    [published] = publish_due(store, config)
    assert len(drawn) == 1
    before = query(database_url, CELLS), query(database_url, "SELECT * FROM published_weeks")
    assert before[0] == _rows(published)
    for _ in range(3):
        assert publish_due(store, config) == []
    restart = subprocess.run([sys.executable, "-m", "ingest.cli", "publish", "--database",
                              database_url, "--after-days", "0"],
                             capture_output=True, text=True, check=True)
    assert restart.stdout == (  # and it forgets the raw weeks of what is published
        "no week is due\n"
        "forgot 6 raw installation-weeks of published weeks, 0 erasures, 0 silent installations\n")
    assert len(drawn) == 1
    assert (query(database_url, CELLS), query(database_url, "SELECT * FROM published_weeks")) == before


def test_a_failed_transaction_stores_nothing_and_its_retry_stores_the_same_draw(
        store: Store, database_url: str, drawn: list[privacy.Publication]) -> None:  # noqa: F811
    """The database refuses the week's cells (a trigger: a constraint on SQLite, an error on
    PostgreSQL): nothing of the week is stored, the week row neither. The retry stores the
    sample drawn the first time, not a new one."""
    store.write_reports(_jobs())
    config = settings(database_url, clock=lambda: _at(date(2025, 7, 1)))
    _refuse_cells(database_url, True)
    with contextlib.suppress(WriteFailed):  # the service logs it and tries again later
        assert publish_due(store, config) == []
    assert query(database_url, "SELECT COUNT(*) FROM published_weeks") == [(0,)]
    assert query(database_url, "SELECT COUNT(*) FROM published_cells") == [(0,)]
    _refuse_cells(database_url, False)
    [published] = publish_due(store, config)
    assert [p.cells for p in drawn] == [published.cells]
    assert query(database_url, CELLS) == _rows(published)


def _refuse_cells(url: str, refuse: bool) -> None:
    """A trigger that makes the database refuse every published cell, or its removal."""
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    sqlite = engine.dialect.name == "sqlite"
    if refuse:
        statements = ["CREATE TRIGGER refuse BEFORE INSERT ON published_cells "
                      "BEGIN SELECT RAISE(ABORT, 'refused'); END"] if sqlite else [
            "CREATE FUNCTION refuse() RETURNS trigger AS $$ BEGIN RAISE EXCEPTION 'refused'; "
            "END $$ LANGUAGE plpgsql",
            "CREATE TRIGGER refuse BEFORE INSERT ON published_cells FOR EACH ROW "
            "EXECUTE FUNCTION refuse()"]
    else:
        statements = ["DROP TRIGGER refuse"] if sqlite else [
            "DROP TRIGGER refuse ON published_cells", "DROP FUNCTION refuse()"]
    with engine.begin() as conn:
        for statement in statements:
            conn.exec_driver_sql(statement)
    engine.dispose()


def test_publish_week_draws_the_catalogs_cells_from_stored_reports() -> None:
    """Stored rows (resource and points JSON) become the mechanism's records: every keyed
    partition of the catalog, whatever the data."""
    rows = [('{"os.type": "linux"}', '[["printernizer.jobs", {"job.status": "failed"}, 2]]')]
    publication = publish_week(datetime(2025, 6, 2), rows, CATALOG)
    cells = {(c.kind, c.metric, c.attribute, c.value) for c in publication.cells}
    empty = {(c.kind, c.metric, c.attribute, c.value) for c in publish_week(datetime(2025, 6, 2), [], CATALOG).cells}
    assert cells == empty and ("resource", "", "os.type", "linux") in cells
    assert publication.week == datetime(2025, 6, 2)


def test_a_published_week_never_changes(store: Store, database_url: str) -> None:  # noqa: F811
    """Neither a late report nor an erasure nor another run changes what was published."""
    jobs = _jobs()
    store.write_reports(jobs)
    config = settings(database_url, clock=lambda: _at(date(2025, 7, 1)))
    publish_due(store, config)
    before = query(database_url, "SELECT * FROM published_cells ORDER BY kind, metric, attribute, value")
    store.write_reports([_job(new_installation(), {"printernizer.uptime": [({}, 3)]})])
    store.erase(jobs[0].installation_id, "a" * 64, datetime(2025, 7, 1))
    assert publish_due(store, config) == []
    assert query(database_url, "SELECT * FROM published_cells ORDER BY kind, metric, attribute, value") == before


def test_a_due_week_is_published_however_late_publication_runs(store: Store, database_url: str) -> None:  # noqa: F811
    """No week is too old to publish: its reports are there only because they arrived within
    its reporting window, and they go once it is published."""
    store.write_reports(_jobs())
    published = publish_due(store, settings(database_url, clock=lambda: _at(date(2027, 7, 1))))
    assert [p.week for p in published] == [datetime(2025, 6, 2)]


def test_the_newest_due_week_is_the_last_whose_window_has_ended() -> None:
    now = datetime(2025, 6, 23, 0, 0, tzinfo=UTC)  # a Monday: 2 June's window ends now
    assert newest_due(now, 14) == datetime(2025, 6, 2)
    assert newest_due(now - timedelta(seconds=1), 14) == datetime(2025, 5, 26)
    assert newest_due(now, 0) == datetime(2025, 6, 16)  # every week that has ended


