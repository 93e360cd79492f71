"""Every panel's SQL, run as Grafana would run it, on a fleet loaded through the real ingest;
and the anomaly rule against noise, on weeks published by the real mechanism.

Noise cannot be seeded: a test that depends on it says how its threshold keeps a correct
implementation's chance of failing it below one in a million per run."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
import sqlglot
from sqlglot import exp

from dashboards import queries
from dashboards import testing as fleet
from dashboards._dialects import DIALECT_NAMES, dialect
from dashboards._macros import expand
from dashboards._panels import HIGH, LOW, MARGIN, alert_sql, release_sql
from ingest.views import VIEWS

CATALOG = fleet.CATALOG  # the catalog with the fleet's releases listed
PANELS = queries.panels()
NUMERIC = (int, float, Decimal)


@pytest.fixture(scope="session")
def sqlite_store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[sa.Engine]:
    url = f"sqlite:///{tmp_path_factory.mktemp('fleet') / 'ingest.db'}"
    outcomes = fleet.load(url)
    assert outcomes.accepted > 2000 and outcomes.rejected > 0 and outcomes.throttled > 0
    engine = sa.create_engine(url)
    yield engine
    engine.dispose()


@pytest.fixture(scope="session")
def postgres_store(postgres_url: str) -> Iterator[sa.Engine]:
    schema = f"dash_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(postgres_url, poolclass=sa.pool.NullPool)
    with admin.begin() as conn:
        conn.exec_driver_sql(f"CREATE SCHEMA {schema}")
    sep = "&" if "?" in postgres_url else "?"
    url = f"{postgres_url}{sep}options=-csearch_path%3D{schema}"
    fleet.load(url)
    engine = sa.create_engine(url)
    yield engine
    engine.dispose()
    with admin.begin() as conn:
        conn.exec_driver_sql(f"DROP SCHEMA {schema} CASCADE")
    admin.dispose()


@pytest.fixture(params=["sqlite_store", "postgres_store"])
def store(request: pytest.FixtureRequest) -> sa.Engine:
    """The seeded store on SQLite, then on PostgreSQL."""
    engine: sa.Engine = request.getfixturevalue(request.param)
    return engine


def _panel(key: str) -> queries.Panel:
    (found,) = [p for p in PANELS if p.key == key]
    return found


def _column(result: queries.Result, name: str) -> list[Any]:
    index = result.columns.index(name)
    return [row[index] for row in result.rows]


def _as_time(value: Any) -> datetime:
    """A `time` value as Grafana reads it: a SQL timestamp, or Unix seconds."""
    if isinstance(value, NUMERIC):
        return datetime.fromtimestamp(float(value), UTC)
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    assert isinstance(value, datetime), value
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value


def _check_shape(panel: queries.Panel, result: queries.Result) -> None:
    if panel.format == "time_series":
        assert result.columns[0] == "time"
        times = [_as_time(v) for v in _column(result, "time")]
        assert times == sorted(times), "time must ascend"
        values = [c for c in result.columns if c not in ("time", "metric")]
        assert values and all(isinstance(r[result.columns.index(c)], NUMERIC)
                              for r in result.rows for c in values)
    elif panel.kind in ("stat", "bargauge", "piechart", "barchart"):
        assert any(isinstance(v, NUMERIC) for v in result.rows[0])
    if panel.kind in ("piechart", "barchart", "bargauge"):
        assert isinstance(result.rows[0][0], str), "the first column names the bars or slices"


# Panels that may rightly be empty for the test fleet of 240 installations: its error surge is
# within the noise at that size (the rule against noise is tested on a larger fleet below),
# Python's minor versions show only once the library's partition selection lets them through
# (about 140 installations on one version), and a country only above twice its margin (84).
MAY_BE_EMPTY = frozenset({"anomalies", "python_versions", "countries"})


@pytest.mark.parametrize("panel", PANELS, ids=[p.key for p in PANELS])
def test_every_panel_answers_with_the_columns_its_type_needs(store: sa.Engine,
                                                             panel: queries.Panel) -> None:
    """Macros expanded as Grafana would; rows non-empty, shaped for the panel type; a noisy
    count shows with its margin, and never below zero."""
    result = queries.run_panel(store, panel, *fleet.time_range())
    if panel.key in MAY_BE_EMPTY and not result.rows:
        return
    assert result.rows, f"{panel.key} returned no rows"
    _check_shape(panel, result)
    if "installations" in result.columns and panel.format == "table":
        assert min(_column(result, "installations")) >= 0
        assert MARGIN in result.columns or panel.key == "top_errors"


SHARE = "installations %"


def test_every_share_shows_with_its_95_percent_interval(store: sa.Engine) -> None:
    """A share of installations is a noisy count over the active ones: every panel that shows
    one shows its interval too, a margin in points or the bounds of a series, which hold it;
    no such panel is stacked (its bounds would stack as well)."""
    shares = 0
    for panel in PANELS:
        result = queries.run_panel(store, panel, *fleet.time_range())
        if SHARE not in result.columns:
            continue
        shares += 1
        assert not panel.stacked, panel.key
        if MARGIN + " points" in result.columns:
            assert min(_column(result, MARGIN + " points")) > 0, panel.key
            continue
        rows = list(zip(_column(result, LOW), _column(result, SHARE), _column(result, HIGH),
                        strict=True))
        assert rows and all(low <= share <= high for low, share, high in rows), panel.key
        # Empty only where a count's noise took it a whole margin below zero (then 0 to 0).
        assert all(high > low or high == 0 for low, _share, high in rows), panel.key
        assert any(high > low for low, _share, high in rows), panel.key
    assert shares == 13  # deployment modes, versions, features (2), errors; 8 catalog metrics


def test_a_shares_interval_is_its_counts_margin_over_the_active_installations(
        store: sa.Engine) -> None:
    """Deployment modes per week: share ± 100 x margin / active installations, as the views
    hold them (bounds not below 0)."""
    result = queries.run_panel(store, _panel("deployment_modes"), *fleet.time_range())
    sql = ("SELECT r.value, 100.0 * r.installations / a.installations, "
           "100.0 * r.installations_margin / a.installations FROM usage_resource_attributes r "
           "JOIN usage_active_installations a ON a.week_start = r.week_start "
           "WHERE r.attribute = 'printernizer.deployment.mode' ORDER BY r.week_start, r.value")
    with store.connect() as conn:
        expected = [(value, max(0.0, float(share) - float(margin)),
                     max(0.0, float(share) + float(margin)))
                    for value, share, margin in conn.exec_driver_sql(sql)]
    shown = [(metric, float(low), float(high)) for metric, low, high in zip(
        _column(result, "metric"), _column(result, LOW), _column(result, HIGH), strict=True)]
    assert [row[0] for row in shown] == [row[0] for row in expected]
    assert all(abs(a - b) < 1e-9 for s, e in zip(shown, expected, strict=True)
               for a, b in zip(s[1:], e[1:], strict=True))


def test_countries_show_only_those_above_twice_their_margin(store: sa.Engine) -> None:
    """Of the latest week's countries, the panel shows exactly those whose noisy count is
    above twice its 95 % margin (at most 20, largest first)."""
    result = queries.run_panel(store, _panel("countries"), *fleet.time_range())
    sql = ("SELECT value, installations, installations_margin FROM usage_resource_attributes "
           "WHERE attribute = 'geo.country.iso_code' AND week_start = "
           "(SELECT MAX(week_start) FROM usage_active_installations)")
    with store.connect() as conn:
        latest = conn.exec_driver_sql(sql).all()
    above = sorted(((-count, value) for value, count, margin in latest if count > 2 * margin))
    assert [(row[0], row[1]) for row in result.rows] == [(v, -c) for c, v in above[:20]]


def _alert(store: sa.Engine, week: str | None = None) -> dict[str, Any]:
    with store.connect() as conn:
        rows = conn.exec_driver_sql(alert_sql(dialect(store.dialect.name), week)).all()
    assert [type(value) for row in rows for value in row] == [str, int] * len(rows)
    return dict(rows)  # type: ignore[arg-type]


def test_the_alert_judges_the_last_published_week_per_error_type(store: sa.Engine) -> None:
    """One row per error type (and all errors) of the last published week: a table whose
    string column Grafana makes the `error_type` label, 1 where anomalous."""
    rows = _alert(store)
    assert set(rows) == _published_error_series(store)
    assert {"all errors", fleet.SURGE_TYPE[1]} <= set(rows)
    assert set(rows.values()) <= {0, 1}


# Steady weeks: each publishes the same fleet's same week again, so only the noise differs.
# The rule flags a series when it rises above its trailing mean by 3 of its 95 % margins,
# which for these scales is at least 5.88 (all errors) or 6.0 (an error type) standard
# deviations of the difference: noise alone does it with probability below 2e-9 and 1e-9.
# 18 steady weeks give 14 judged weeks (4 trailing weeks needed) of 54 series, plus the surge
# week's 53 steady types: 15 * (2e-9 + 53 * 1e-9) = 8.3e-7 < 1e-6 per run.
STEADY_WEEKS = 18
# At 800 installations the surge adds some 9,900 errors (clamped) to the week's total, where
# the rule asks for 4,013 more than the trailing mean: 8.6 standard deviations of the
# difference to spare, so all errors fires except with probability far below 1e-9.
SURGE_FLEET = 800


def _publish_weeks(url: str, weeks: list[list[Any]]) -> None:
    """Publish each week's records with the real mechanism into a fresh store, as the
    publication step stores them."""
    from ingest._privacy import mechanism
    from ingest._publication import Publication
    from ingest._store import Store, create_engine

    store = Store(create_engine(url))
    store.migrate()
    drawn = mechanism(CATALOG)
    for index, records in enumerate(weeks):
        week = fleet.week_start(index).replace(tzinfo=None)
        publication = drawn.publish(records)
        assert store.save_publication(Publication(week, publication.cells, publication.loss), week)
    store.dispose()


def _records(members: list[fleet.Installation], week: int, weeks: int) -> list[Any]:
    """The fleet's installation-weeks as the store keeps them."""
    return [(inst.resource | {"service.version": fleet.version(inst, week)},
             [(metric, dict(attributes), value)
              for metric, series in fleet.points(inst, week, weeks).items()
              for attributes, value in series.items()]) for inst in members]


def test_the_alert_fires_on_the_surge_and_never_on_noise_alone(tmp_path: Path) -> None:
    """The same steady week published STEADY_WEEKS times by the real mechanism (nothing but
    the noise changes), then the surge's first week: no series is flagged in a steady week;
    in the surge's week all errors are (the surging type may be too, nothing else)."""
    members = fleet.make_fleet(SURGE_FLEET, weeks=100)
    steady = _records(members, 0, 100)
    surge = _records(members, 99, 100)  # the last weeks of 100 are the surge's
    url = f"sqlite:///{tmp_path / 'noise.db'}"
    _publish_weeks(url, [steady] * STEADY_WEEKS + [surge])
    engine = sa.create_engine(url)
    try:
        end = fleet.week_start(STEADY_WEEKS + 1)
        rows = queries.run_panel(engine, _panel("anomalies"), fleet.week_start(0), end).rows
    finally:
        engine.dispose()
    flagged = {(_as_time(row[0]), row[1]) for row in rows}
    surge_week = fleet.week_start(STEADY_WEEKS)
    assert {week for week, _series in flagged} <= {surge_week}
    assert (surge_week, "all errors") in flagged
    assert {series for _week, series in flagged} <= {"all errors", fleet.SURGE_TYPE[1]}


def test_the_alert_ignores_a_week_not_yet_published(sqlite_store: sa.Engine,
                                                    tmp_path: Path) -> None:
    """Reports of an open week are stored but not in the views: the alert still judges the
    last published week (the views hold closed weeks only)."""
    url = f"sqlite:///{tmp_path / 'copy.db'}"
    with sqlite_store.connect() as conn:
        conn.exec_driver_sql(f"VACUUM INTO '{tmp_path / 'copy.db'}'")
    before = _alert(sqlite_store)
    fleet.load_open_week(url)
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            stored = conn.exec_driver_sql("SELECT MAX(week_start) FROM weekly_reports").scalar()
            published = conn.exec_driver_sql(
                "SELECT MAX(week_start) FROM usage_active_installations").scalar()
        assert _as_time(stored) == fleet.week_start(fleet.WEEKS)
        assert _as_time(published) == fleet.week_start(fleet.WEEKS - 1)
        assert _alert(engine) == before
    finally:
        engine.dispose()


def _published_error_series(store: sa.Engine) -> set[str]:
    sql = ("SELECT CASE WHEN attribute = '' THEN 'all errors' ELSE value END FROM usage_metrics "
           "WHERE metric = 'printernizer.errors' AND attribute IN ('', 'error.type') AND "
           "week_start = (SELECT MAX(week_start) FROM usage_active_installations)")
    with store.connect() as conn:
        return {row[0] for row in conn.exec_driver_sql(sql)}


def test_release_annotations_mark_each_new_version(store: sa.Engine) -> None:
    """The first published week of 2.6.0 and 2.7.0 (2.5.0 was there from the start)."""
    sql = expand(release_sql(dialect(store.dialect.name)),
                         store.dialect.name, *fleet.time_range())  # type: ignore[arg-type]
    with store.connect() as conn:
        rows = conn.exec_driver_sql(sql).all()
    texts = [row[1] for row in rows]
    assert texts == ["Printernizer 2.6.0 reaches the fleet", "Printernizer 2.7.0 reaches the fleet"]
    times = [_as_time(row[0]) for row in rows]
    assert fleet.week_start(4) <= times[0] < times[1] and times[1] >= fleet.week_start(9)
    assert {row[2] for row in rows} == {"release"}


def test_distributions_show_true_ranges(store: sa.Engine) -> None:
    """Buckets are labelled with the range they hold ("3-5"), never "3+" for 3 to 5."""
    result = queries.run_panel(store, _panel("fleet_sizes"), *fleet.time_range())
    labels = _column(result, "printers")
    assert labels and set(labels) <= {"0", "1", "2", "3-5", "6-10", "11-20", "21-50", "51-100",
                                      "101-500", "501-1000", "1001-10000", "10001+"}
    assert "3-5" in labels


def test_a_time_range_before_any_data_returns_nothing(store: sa.Engine) -> None:
    """$__timeFilter really filters: the year before the fleet has no rows."""
    before = (datetime(2024, 1, 1, tzinfo=UTC), datetime(2024, 12, 1, tzinfo=UTC))
    assert not queries.run_panel(store, _panel("active_installations"), *before).rows


def test_run_panel_accepts_a_url(sqlite_store: sa.Engine) -> None:
    """The demo passes a URL; the engine is made and disposed of inside."""
    url = sqlite_store.url.render_as_string(hide_password=False)
    result = queries.run_panel(url, _panel("active_latest"), *fleet.time_range())
    assert result.columns == ("active installations", MARGIN) and len(result.rows) == 1


def _tables(sql: str, read: str) -> set[str]:
    tree = sqlglot.parse_one(sql, read=read)
    ctes = {cte.alias for cte in tree.find_all(exp.CTE)}
    return {t.name for t in tree.find_all(exp.Table)} - ctes


@pytest.mark.parametrize("panel", PANELS, ids=[p.key for p in PANELS])
def test_tsql_variant_is_valid_tsql_without_limit_or_concat_bars(panel: queries.Panel) -> None:
    """Each panel's SQL Server query parses as T-SQL, reads only views, has no LIMIT or ||."""
    sql = expand(panel.sql("mssql"), "mssql", *fleet.time_range())
    sqlglot.parse_one(sql, read="tsql")  # raises on anything T-SQL cannot parse
    assert re.search(r"\bLIMIT\b", sql, re.IGNORECASE) is None
    assert "||" not in sql
    assert _tables(sql, "tsql") <= set(VIEWS)


@pytest.mark.parametrize("name", DIALECT_NAMES)
def test_every_dialect_reads_views_only(name: str) -> None:
    """No panel, nor the alert, names a raw table in any dialect."""
    read = {"mssql": "tsql", "postgresql": "postgres", "sqlite": "sqlite"}[name]
    sqls = [expand(p.sql(name), name, *fleet.time_range()) for p in PANELS]
    sqls.append(alert_sql(dialect(name)))
    sqls.append(expand(release_sql(dialect(name)), name, *fleet.time_range()))
    for sql in sqls:
        assert _tables(sql, read) <= set(VIEWS), sql


def test_top_n_panels_use_top_on_sql_server_and_limit_elsewhere() -> None:
    """The dialect differences are real: TOP on SQL Server, LIMIT on the others."""
    panel = _panel("top_errors")
    assert "SELECT TOP 10 " in panel.sql("mssql")
    assert panel.sql("postgresql").endswith("LIMIT 10") and "TOP" not in panel.sql("sqlite")
    assert "WHEN 3 THEN '3-5'" in _panel("fleet_sizes").sql("mssql")
    assert " + value + " in release_sql(dialect("mssql"))
    assert " || value || " in release_sql(dialect("postgresql"))
