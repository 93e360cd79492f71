"""Every panel's SQL, run as Grafana would run it, on a fleet loaded through the real ingest."""

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
from dashboards._panels import alert_sql, release_sql
from ingest.views import VIEWS
from otel_usage.catalog import load_catalog

K = load_catalog().policy.k_anonymity
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


@pytest.mark.parametrize("panel", PANELS, ids=[p.key for p in PANELS])
def test_every_panel_answers_with_the_columns_its_type_needs(store: sa.Engine,
                                                             panel: queries.Panel) -> None:
    """Macros expanded as Grafana would; rows non-empty, shaped for the panel type, no group < k."""
    result = queries.run_panel(store, panel, *fleet.time_range())
    assert result.rows, f"{panel.key} returned no rows"
    _check_shape(panel, result)
    if "installations" in result.columns:
        assert min(_column(result, "installations")) >= K


def test_small_groups_never_reach_a_panel(store: sa.Engine) -> None:
    """Two installations in one country and one on an old version: no panel shows them."""
    for panel in PANELS:
        rows = queries.run_panel(store, panel, *fleet.time_range()).rows
        shown = {value for row in rows for value in row}
        assert fleet.RARE_COUNTRY not in shown and fleet.RARE_VERSION not in shown, panel.key


def test_the_timeout_surge_is_flagged_as_an_anomaly(store: sa.Engine) -> None:
    """The injected surge is the only error type flagged, with all errors, in its first week."""
    result = queries.run_panel(store, _panel("anomalies"), *fleet.time_range())
    flagged = {(_as_time(row[0]), row[1]) for row in result.rows}
    surge = fleet.week_start(fleet.WEEKS - fleet.SURGE_WEEKS)
    assert flagged == {(surge, "connection_timeout"), (surge, "all errors")}
    counts = queries.run_panel(store, _panel("anomaly_count"), *fleet.time_range())
    assert dict(zip(map(_as_time, _column(counts, "time")), _column(counts, "anomalies"),
                    strict=True))[surge] == 2


def _alert(store: sa.Engine, week: str | None = None) -> dict[str, Any]:
    with store.connect() as conn:
        rows = conn.exec_driver_sql(alert_sql(dialect(store.dialect.name), week)).all()
    assert [type(value) for row in rows for value in row] == [str, int] * len(rows)
    return dict(rows)  # type: ignore[arg-type]


def test_the_alert_judges_the_last_published_week_per_error_type(store: sa.Engine) -> None:
    """One row per error type (and all errors) of the last published week: a table whose
    string column Grafana makes the `error_type` label. The surge's second week is within
    its own trailing weeks' spread: nothing fires."""
    rows = _alert(store)
    assert rows == {series: 0 for series in _published_error_series(store)}
    assert {"all errors", fleet.SURGE_TYPE[1]} <= set(rows)


def test_the_alert_fires_for_the_surging_error_type_only(store: sa.Engine) -> None:
    """Judged on the surge's first week, the surging type and all errors fire, labelled."""
    surge = fleet.week_start(fleet.WEEKS - fleet.SURGE_WEEKS).replace(tzinfo=None)
    week = f"(SELECT MIN(week_start) FROM usage_active_installations WHERE week_start >= " \
           f"'{surge.isoformat(sep=' ')}')"
    rows = _alert(store, week)
    assert {series for series, anomalous in rows.items() if anomalous} == {
        fleet.SURGE_TYPE[1], "all errors"}


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
    assert result.columns == ("active installations",) and result.rows[0][0] >= K


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
