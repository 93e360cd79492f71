"""The public statistics: built from the published views only, as the catalog's JSON Schema
describes, and written as files a static host can serve at any moment."""

from __future__ import annotations

import json
import os
import random
import stat
import uuid
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import jsonschema
import pytest
import sqlalchemy as sa
from compare_support import PATH, live_week, make
from ingest_reports import CATALOG
from ingest_support import (  # noqa: F401  (fixture)
    database_url,
    insert_published,
    published_cell,
    published_week,
    query,
    server_process,
    settings,
)

from ingest import cli
from ingest._errors import SiteError, StoreUnavailable
from ingest._privacy import mechanism
from ingest._publication import publish_due
from ingest._store import Store, create_engine
from ingest.site import (
    SITE_VIEWS,
    Site,
    build_site,
    latest_publication,
    read_engine,
    site_files,
    write_site,
)
from ingest.testing import StoredWeek, new_installation, points, resource, store_weeks
from otel_usage import ManualClock
from otel_usage.catalog import CATALOG_PATH
from otel_usage.weeks import Week

SCHEMA = json.loads(CATALOG.public.schema.read_text(encoding="utf-8"))
TODAY = date(2025, 12, 3)
W45, W46 = datetime(2025, 11, 3), datetime(2025, 11, 10)


def _valid(document: dict[str, Any]) -> None:
    jsonschema.Draft202012Validator(SCHEMA).validate(document)


# Two published weeks, the later one stored first: every kind of cell in the first (a negative
# count too, as noise can make one), only the active installations in the second.
CELLS = [
    published_cell(W46, "active", installations=15, margin=3.5),
    published_cell(W45, "active", installations=12, margin=3.5),
    published_cell(W45, "resource", attribute="service.version", value="2.7.0", installations=9,
          margin=4.0),
    published_cell(W45, "resource", attribute="printernizer.deployment.mode", value="other",
          installations=-1, margin=2.25),
    published_cell(W45, "resource", attribute="printernizer.deployment.mode", value="docker",
          installations=7, margin=2.25),
    published_cell(W45, "metric", "printernizer.jobs", "job.status", "failed", 0, 1.5),
    published_cell(W45, "metric", "printernizer.jobs", "job.status", "completed", 6, 1.5),
    published_cell(W45, "metric", "printernizer.jobs", total=40, total_margin=12.25),
    published_cell(W45, "distribution", "printernizer.printers", value="1", installations=5, margin=2.0),
    published_cell(W45, "distribution", "printernizer.printers", value="0", installations=2, margin=2.0),
    published_cell(W45, "distribution", "printernizer.jobs", value="2", installations=3, margin=2.0),
    published_cell(W45, "distribution", "printernizer.jobs", value="0", installations=1, margin=2.0),
    published_cell(W45, "distribution", "printernizer.jobs", value="1", installations=4, margin=2.0),
]
WEEK_45 = {
    "format": 1, "week": "2025-W45", "week_start": "2025-11-03", "published_on": "2025-11-24",
    "privacy": {"epsilon": 2.0, "delta": 1e-7, "yearly_epsilon": 19.1},
    "active_installations": {"installations": 12, "margin": 3.5},
    "resource_attributes": [
        {"attribute": "printernizer.deployment.mode", "value": "docker", "installations": 7,
         "margin": 2.25},
        {"attribute": "printernizer.deployment.mode", "value": "other", "installations": -1,
         "margin": 2.25},
        {"attribute": "service.version", "value": "2.7.0", "installations": 9, "margin": 4.0}],
    "metrics": [
        {"metric": "printernizer.jobs", "attribute": "job.status", "value": "completed",
         "installations": 6, "margin": 1.5},
        {"metric": "printernizer.jobs", "attribute": "job.status", "value": "failed",
         "installations": 0, "margin": 1.5}],
    "totals": [{"metric": "printernizer.jobs", "total": 40, "margin": 12.25}],
    "distributions": [
        {"metric": "printernizer.jobs", "bucket_min": 0, "bucket_max": 0, "installations": 1,
         "margin": 2.0},
        {"metric": "printernizer.jobs", "bucket_min": 1, "bucket_max": 1, "installations": 4,
         "margin": 2.0},
        {"metric": "printernizer.jobs", "bucket_min": 2, "bucket_max": None, "installations": 3,
         "margin": 2.0},
        {"metric": "printernizer.printers", "bucket_min": 0, "bucket_max": 0,
         "installations": 2, "margin": 2.0},
        {"metric": "printernizer.printers", "bucket_min": 1, "bucket_max": None,
         "installations": 5, "margin": 2.0}],
}
WEEK_46 = {
    "format": 1, "week": "2025-W46", "week_start": "2025-11-10", "published_on": "2025-12-01",
    "privacy": {"epsilon": 1.5, "delta": 1e-7, "yearly_epsilon": 19.1},
    "active_installations": {"installations": 15, "margin": 3.5},
    "resource_attributes": [], "metrics": [], "totals": [], "distributions": [],
}
INDEX = {
    "format": 1, "generated_on": "2025-12-01", "catalog_version": CATALOG.version,
    "weeks": [
        {"week": "2025-W45", "week_start": "2025-11-03", "published_on": "2025-11-24",
         "file": "weeks/2025-W45.json"},
        {"week": "2025-W46", "week_start": "2025-11-10", "published_on": "2025-12-01",
         "file": "weeks/2025-W46.json"}],
    "active_installations": [{"week": "2025-W45", "installations": 12, "margin": 3.5},
                             {"week": "2025-W46", "installations": 15, "margin": 3.5}],
}


def _migrated(url: str) -> None:
    store = Store(create_engine(url))
    store.migrate()
    store.dispose()


def _with_two_weeks(url: str) -> str:
    """A store with the two published weeks above."""
    _migrated(url)
    insert_published(url, [published_week(W46, datetime(2025, 12, 1), 1.5),
                           published_week(W45, datetime(2025, 11, 24))], CELLS)
    return url


@pytest.fixture
def two_weeks(database_url: str) -> str:  # noqa: F811
    return _with_two_weeks(database_url)


@pytest.fixture
def site(two_weeks: str) -> Iterator[Site]:
    engine = read_engine(two_weeks)
    yield build_site(engine, CATALOG, TODAY)
    engine.dispose()


def test_the_site_holds_every_published_week_whole_as_the_views_have_it(site: Site) -> None:
    """Oldest week first; rows in a stable order; a metric's rows with an attribute apart from
    its total; each bucket ends where the metric's next begins, its last one open."""
    assert site.index == INDEX
    assert dict(site.weeks) == {"2025-W45": WEEK_45, "2025-W46": WEEK_46}


def test_every_document_of_the_site_is_valid_against_the_catalogs_schema(site: Site) -> None:
    for document in [site.index, *site.weeks.values()]:
        _valid(document)


def test_a_store_without_a_published_week_gives_an_index_without_weeks(database_url: str) -> None:  # noqa: F811
    _migrated(database_url)
    engine = read_engine(database_url)
    site = build_site(engine, CATALOG, TODAY)
    assert latest_publication(engine) == (None, 0)
    engine.dispose()
    assert (site.index, dict(site.weeks)) == ({
        "format": 1, "generated_on": "2025-12-03", "catalog_version": CATALOG.version,
        "weeks": [], "active_installations": []}, {})
    _valid(site.index)


def test_the_latest_publication_is_the_newest_week_and_the_number_of_weeks(two_weeks: str) -> None:
    engine = read_engine(two_weeks)
    assert latest_publication(engine) == (W46, 2)
    engine.dispose()


def _stored_weeks(week: datetime, count: int) -> Iterator[StoredWeek]:
    for seed in range(count):
        rng = random.Random(seed)
        installation = new_installation()
        data = points(rng)
        yield StoredWeek(installation, week, resource(installation, rng),
                         [(m, a, v) for m, series in data.items() for a, v in series],
                         datetime(2025, 6, 9))


def test_a_week_the_mechanism_published_is_in_the_site_row_for_row(database_url: str) -> None:  # noqa: F811
    """A real publication: every row of each weekly view is in the week's document, the
    week's loss is the mechanism's, and the documents are valid."""
    store_weeks(database_url, _stored_weeks(datetime(2025, 6, 2), 8))
    store = Store(create_engine(database_url))
    clock = datetime(2025, 7, 1, 12, tzinfo=UTC).timestamp()
    [published] = publish_due(store, settings(database_url, clock=lambda: clock))
    store.dispose()
    engine = read_engine(database_url)
    site = build_site(engine, CATALOG, TODAY)
    engine.dispose()
    [(label, week)] = site.weeks.items()
    loss = mechanism(CATALOG).loss
    assert (label, week["published_on"], week["privacy"]) == ("2025-W23", "2025-07-01", {
        "epsilon": loss.epsilon, "delta": loss.delta, "yearly_epsilon": loss.yearly_epsilon})

    def rows(sql: str) -> list[tuple[Any, ...]]:
        return sorted(tuple(row) for row in query(database_url, sql))

    assert rows("SELECT attribute, value, installations, installations_margin "
                "FROM usage_resource_attributes") == sorted(
        tuple(r.values()) for r in week["resource_attributes"])
    assert rows("SELECT metric, attribute, value, installations, installations_margin "
                "FROM usage_metrics WHERE attribute <> ''") == sorted(
        tuple(r.values()) for r in week["metrics"])
    assert rows("SELECT metric, total, total_margin FROM usage_metrics WHERE attribute = ''") == sorted(
        tuple(r.values()) for r in week["totals"])
    assert rows("SELECT metric, bucket_min, installations, installations_margin "
                "FROM usage_distributions") == sorted(
        (r["metric"], r["bucket_min"], r["installations"], r["margin"]) for r in week["distributions"])
    assert [(r["installations"], r["margin"]) for r in site.index["active_installations"]] == rows(
        "SELECT installations, installations_margin FROM usage_active_installations")
    assert len(published.cells) == 1 + sum(len(week[k]) for k in (
        "resource_attributes", "metrics", "totals", "distributions"))
    for document in [site.index, week]:
        _valid(document)


def test_a_database_without_the_views_is_refused_with_the_reason(tmp_path: Path) -> None:
    engine = sa.create_engine(f"sqlite:///{tmp_path}/empty.db")
    with engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE other (x INTEGER)")
    engine.dispose()
    engine = read_engine(f"sqlite:///{tmp_path}/empty.db")
    with pytest.raises(StoreUnavailable) as raised:
        build_site(engine, CATALOG, TODAY)
    engine.dispose()
    assert str(raised.value) == ("cannot read the published views: no such table: "
                                 "usage_published_weeks")


def test_a_missing_sqlite_file_is_refused_and_not_created(tmp_path: Path) -> None:
    engine = read_engine(f"sqlite:///{tmp_path}/missing.db")
    with pytest.raises(StoreUnavailable) as raised:
        build_site(engine, CATALOG, TODAY)
    engine.dispose()
    assert str(raised.value) == "cannot read the published views: unable to open database file"
    assert list(tmp_path.iterdir()) == []


def test_the_site_opens_a_sqlite_store_read_only(tmp_path: Path) -> None:
    """A write through the site's engine fails (on PostgreSQL the login's grants decide)."""
    two_weeks = _with_two_weeks(f"sqlite:///{tmp_path}/ingest.db")
    engine = read_engine(two_weeks)
    with pytest.raises(sa.exc.OperationalError, match="readonly"), engine.begin() as conn:
        conn.exec_driver_sql("DELETE FROM published_weeks")
    engine.dispose()
    assert query(two_weeks, "SELECT COUNT(*) FROM published_weeks") == [(2,)]


def test_the_files_are_the_week_documents_the_catalog_the_pages_and_the_index_last(site: Site) -> None:
    files = site_files(site, CATALOG)
    assert list(files) == ["weeks/2025-W45.json", "weeks/2025-W46.json", "catalog.toml",
                           "style.css", "icon.svg", "index.html", "de/index.html", "index.json"]
    assert json.loads(files["index.json"]) == INDEX
    assert json.loads(files["weeks/2025-W45.json"]) == WEEK_45
    assert files["catalog.toml"] == CATALOG_PATH.read_bytes()


def test_a_catalog_file_of_another_version_is_refused(site: Site, tmp_path: Path) -> None:
    other = tmp_path / "catalog.toml"
    text = CATALOG_PATH.read_text(encoding="utf-8")
    other.write_text(text.replace(f"\nversion = {CATALOG.version}\n",
                                  f"\nversion = {CATALOG.version + 1}\n", 1), encoding="utf-8")
    with pytest.raises(SiteError, match=f"is not catalog version {CATALOG.version}, the one "
                                        "the site was computed under"):
        site_files(site, CATALOG, other)


def _tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file()}


def test_writing_a_site_into_a_new_directory_writes_every_file_readable(site: Site, tmp_path: Path) -> None:
    out = tmp_path / "public" / "stats"
    written = write_site(out, site, CATALOG)
    files = site_files(site, CATALOG)
    assert (written.weeks, written.files, written.changed) == (
        ("2025-W45", "2025-W46"), tuple(files), tuple(files))
    assert _tree(out) == files
    assert {stat.S_IMODE(os.stat(out / p).st_mode) for p in files} == {0o644}


def test_writing_the_same_site_again_changes_no_file(site: Site, tmp_path: Path) -> None:
    out = tmp_path / "site"
    write_site(out, site, CATALOG)
    before = {p: os.stat(out / p).st_ino for p in site_files(site, CATALOG)}
    assert write_site(out, site, CATALOG).changed == ()
    assert {p: os.stat(out / p).st_ino for p in before} == before


def test_a_new_week_replaces_the_index_and_adds_its_file_beside_the_old_ones(
        two_weeks: str, tmp_path: Path) -> None:
    """A file a reader opens before a replacement keeps its old content (each file is renamed
    into place, never rewritten), and nothing else is left in the directory."""
    out = tmp_path / "site"
    engine = read_engine(two_weeks)
    write_site(out, build_site(engine, CATALOG, TODAY), CATALOG)
    with open(out / "index.json", "rb") as reading:
        insert_published(two_weeks, [published_week(datetime(2025, 11, 17), datetime(2025, 12, 8))],
                [published_cell(datetime(2025, 11, 17), "active", installations=20, margin=3.5)])
        site = build_site(engine, CATALOG, date(2025, 12, 8))
        written = write_site(out, site, CATALOG)
        assert json.loads(reading.read()) == INDEX
    engine.dispose()
    assert written.changed == ("weeks/2025-W47.json", "index.html", "de/index.html",
                               "index.json")
    assert _tree(out) == site_files(site, CATALOG)


def test_a_directory_holding_something_else_is_refused_and_left_as_it_is(site: Site, tmp_path: Path) -> None:
    out = tmp_path / "site"
    out.mkdir()
    (out / "notes.txt").write_text("mine", encoding="utf-8")
    with pytest.raises(SiteError, match="is neither empty nor a site written before"):
        write_site(out, site, CATALOG)
    assert _tree(out) == {"notes.txt": b"mine"}


def test_an_index_that_is_not_a_sites_is_refused(site: Site, tmp_path: Path) -> None:
    out = tmp_path / "site"
    out.mkdir()
    (out / "index.json").write_text('{"name": "something else"}', encoding="utf-8")
    with pytest.raises(SiteError, match="is neither empty nor a site written before"):
        write_site(out, site, CATALOG)
    assert _tree(out) == {"index.json": b'{"name": "something else"}'}


def test_a_file_in_place_of_the_directory_is_refused(site: Site, tmp_path: Path) -> None:
    (tmp_path / "out").write_text("x", encoding="utf-8")
    with pytest.raises(SiteError, match="is not a directory"):
        write_site(tmp_path / "out", site, CATALOG)


def test_week_files_a_previous_site_listed_and_this_one_does_not_are_removed(
        site: Site, tmp_path: Path) -> None:
    """A store that lost a week (restored from a backup): its file goes with it; what the
    previous site did not list stays."""
    out = tmp_path / "site"
    write_site(out, site, CATALOG)
    (out / "robots.txt").write_text("User-agent: *\n", encoding="utf-8")
    fewer = Site({**site.index, "weeks": site.index["weeks"][1:],
                  "active_installations": site.index["active_installations"][1:]},
                 {"2025-W46": site.weeks["2025-W46"]})
    write_site(out, fewer, CATALOG)
    assert _tree(out) == {**site_files(fewer, CATALOG), "robots.txt": b"User-agent: *\n"}


def test_on_postgresql_a_login_granted_only_the_published_views_builds_the_site(postgres_url: str) -> None:
    """The site needs SELECT on the published views and nothing else: a login granted those
    alone (not even usage_submissions, which the site does not show) builds it whole, and the
    same login reading a table is refused, so the grant is what this runs under."""
    suffix = uuid.uuid4().hex[:12]
    schema, role, password = f"t_{suffix}", f"site_{suffix}", uuid.uuid4().hex
    admin = sa.create_engine(postgres_url, poolclass=sa.pool.NullPool)
    with admin.begin() as conn:
        conn.exec_driver_sql(f"CREATE SCHEMA {schema}")
    owner_url = sa.make_url(postgres_url).update_query_dict({"options": f"-csearch_path={schema}"})
    try:
        _with_two_weeks(owner_url.render_as_string(hide_password=False))
        with admin.begin() as conn:
            conn.exec_driver_sql(f"CREATE ROLE {role} LOGIN PASSWORD '{password}'")
            conn.exec_driver_sql(f"GRANT USAGE ON SCHEMA {schema} TO {role}")
            for view in SITE_VIEWS:
                conn.exec_driver_sql(f"GRANT SELECT ON {schema}.{view} TO {role}")
        reader = read_engine(owner_url.set(username=role, password=password).render_as_string(
            hide_password=False))
        site = build_site(reader, CATALOG, TODAY)
        refused = []
        for table in ("published_cells", "published_weeks", "weekly_reports", "usage_submissions"):
            with pytest.raises(sa.exc.ProgrammingError) as raised, reader.connect() as conn:
                conn.exec_driver_sql(f"SELECT * FROM {table}")
            refused.append(str(raised.value.orig).splitlines()[0])
        reader.dispose()
    finally:
        with admin.begin() as conn:
            conn.exec_driver_sql(f"DROP SCHEMA {schema} CASCADE")
            conn.exec_driver_sql(f"DROP OWNED BY {role}")
            conn.exec_driver_sql(f"DROP ROLE IF EXISTS {role}")
        admin.dispose()
    assert SITE_VIEWS == ("usage_published_weeks", "usage_active_installations",
                          "usage_resource_attributes", "usage_metrics", "usage_distributions")
    assert (site.index, dict(site.weeks)) == (INDEX, {"2025-W45": WEEK_45, "2025-W46": WEEK_46})
    assert refused == [f"permission denied for table {t}" for t in (
        "published_cells", "published_weeks", "weekly_reports")] + [
        "permission denied for view usage_submissions"]


def test_the_readmes_examples_are_documents_of_one_site() -> None:
    """The README documents the JSON with an index and a week's document: both valid against
    the schema, and the week the one the index lists, with the same active installations."""
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text(encoding="utf-8")
    section = readme.split("\n## The public statistics\n", 1)[1].split("\n## ", 1)[0]
    index, week = (json.loads(block.split("\n```", 1)[0])
                   for block in section.split("```json\n")[1:])
    for document in (index, week):
        _valid(document)
    listed = {w["week"]: w for w in index["weeks"]}[week["week"]]
    assert listed == {"week": week["week"], "week_start": week["week_start"],
                      "published_on": week["published_on"], "file": f"weeks/{week['week']}.json"}
    active = {row["week"]: row for row in index["active_installations"]}
    assert active[week["week"]] == {"week": week["week"], **week["active_installations"]}
    buckets = [(d["bucket_min"], d["bucket_max"]) for d in week["distributions"]]
    assert [high for _, high in buckets] == [low - 1 for low, _ in buckets[1:]] + [None]


@pytest.mark.end_to_end
def test_a_real_ingest_publishes_a_week_and_the_client_in_mode_on_compares_with_it(
        tmp_path: Path, now: datetime, data_dir: Path) -> None:
    """The whole way: this installation reports last week to `otel-usage-ingest serve` on
    loopback, the week is published, and in mode on the client fetches the ingest's /stats/
    and compares its own week with the published numbers, row for row as served."""
    week = Week.of(now).previous()
    url = f"sqlite:///{tmp_path}/ingest.db"
    assert cli.main(["migrate", "--database", url]) == 0
    with server_process(url) as (base, _):
        clock = ManualClock(week.start - timedelta(days=1))
        usage = make(data_dir, clock, base)
        usage.set_mode("on")
        live_week(usage, clock, week)
        clock.set(week.end + timedelta(days=7))  # past this installation's slot, whatever it is
        assert usage.send_now()["sent"] == [week.label]
        assert cli.main(["publish", "--database", url, "--after-days", "0"]) == 0
        clock.set(now)
        fetch = usage.fetch_public_statistics()
        result = usage.compare()
        usage.shutdown()
        served = httpx.get(f"{base}{PATH}weeks/{week.label}.json").json()
    assert (fetch["fetched"], fetch["week"], result["week"], result["available"]) == (
        True, week.label, week.label, True)
    assert result["active_installations"] == served["active_installations"]
    items = {(i["topic"], i.get("value")): i for i in result["items"]}
    printers = next(r for r in served["distributions"]
                    if r["metric"] == "printernizer.printers" and r["bucket_min"] == 3)
    timelapse = next(r for r in served["metrics"] if r["value"] == "timelapse"
                     and r["metric"] == "printernizer.features.enabled")
    docker = next(r for r in served["resource_attributes"]
                  if r["attribute"] == "printernizer.deployment.mode" and r["value"] == "docker")
    assert [(items[k]["yours"], items[k]["installations"], items[k]["margin"]) for k in (
        ("printers", None), ("feature", "timelapse"), ("deployment_mode", None))] == [
        (3, printers["installations"], printers["margin"]),
        (True, timelapse["installations"], timelapse["margin"]),
        ("docker", docker["installations"], docker["margin"])]


def test_the_same_weeks_give_the_same_files_on_any_day(two_weeks: str) -> None:
    """Replicas, restarts and daily runs of the site command build the same bytes from the
    same published weeks (the same ETags, nothing rewritten): the index is dated by its data."""
    engine = read_engine(two_weeks)
    today, later = (site_files(build_site(engine, CATALOG, day), CATALOG)
                    for day in (TODAY, TODAY + timedelta(days=30)))
    engine.dispose()
    assert today == later
    assert json.loads(today["index.json"])["generated_on"] == "2025-12-01"
