"""Grafana's SQL macros expand as Grafana's mssql and PostgreSQL data sources expand them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from dashboards._macros import MacroError, expand

FROM = datetime(2017, 4, 21, 5, 1, 17, tzinfo=UTC)
TO = datetime(2017, 4, 21, 5, 6, 17, 500000, tzinfo=UTC)


@pytest.mark.parametrize(("sql", "mssql", "postgresql"), [
    ("$__time(t)", "t AS time", 't AS "time"'),
    ("$__timeEpoch(t)", "DATEDIFF(second, '1970-01-01', t) AS time",
     'extract(epoch from t) as "time"'),
    ("$__timeFilter(t)", "t BETWEEN '2017-04-21T05:01:17Z' AND '2017-04-21T05:06:17Z'",
     "t BETWEEN '2017-04-21T05:01:17Z' AND '2017-04-21T05:06:17.5Z'"),
    ("$__timeFrom()", "'2017-04-21T05:01:17Z'", "'2017-04-21T05:01:17Z'"),
    ("$__timeTo()", "'2017-04-21T05:06:17Z'", "'2017-04-21T05:06:17.5Z'"),
    ("$__timeGroup(t, '5m')", "FLOOR(DATEDIFF(second, '1970-01-01', t)/300)*300",
     "floor(extract(epoch from t)/300)*300"),
    ("$__timeGroupAlias(t,'1d')", "FLOOR(DATEDIFF(second, '1970-01-01', t)/86400)*86400 AS [time]",
     'floor(extract(epoch from t)/86400)*86400 AS "time"'),
    ("$__unixEpochFilter(t)", "t >= 1492750877 AND t <= 1492751177",
     "t >= 1492750877 AND t <= 1492751177"),
    ("$__unixEpochGroupAlias(t, '1h')", "FLOOR(t/3600)*3600 AS [time]",
     'floor((t)/3600)*3600 AS "time"'),
    ("$__unixEpochFrom() $__unixEpochTo()", "1492750877 1492751177", "1492750877 1492751177"),
    ("$__unixEpochNanoFrom()", "1492750877000000000", "1492750877000000000"),
    ("$__interval $__interval_ms", "7d 604800000", "7d 604800000"),
])
def test_macro_expands_like_grafana(sql: str, mssql: str, postgresql: str) -> None:
    """Outputs as pkg/tsdb/mssql/macros.go and grafana-postgresql-datasource/macros.go give."""
    assert expand(sql, "mssql", FROM, TO) == mssql
    assert expand(sql, "postgresql", FROM, TO) == postgresql


def test_postgres_turns_a_time_group_before_a_comma_into_an_alias() -> None:
    """Grafana's pre-5.3 compatibility: `$__timeGroup(...)` followed by "," gets `AS "time"`."""
    sql = "SELECT $__timeGroup(t, '1h'), v FROM x GROUP BY $__timeGroup(t, '1h') ORDER BY 1"
    assert expand(sql, "postgresql", FROM, TO) == (
        'SELECT floor(extract(epoch from t)/3600)*3600 AS "time", v FROM x '
        "GROUP BY floor(extract(epoch from t)/3600)*3600 AS \"time\" ORDER BY 1")
    assert "AS [time]" not in expand(sql, "mssql", FROM, TO)


def test_sqlite_uses_the_text_form_sqlalchemy_stores() -> None:
    """Text comparison equals time comparison for `YYYY-MM-DD HH:MM:SS.ffffff`."""
    assert expand("$__timeFilter(t)", "sqlite", FROM, TO) == (
        "t BETWEEN '2017-04-21 05:01:17.000000' AND '2017-04-21 05:06:17.500000'")
    assert expand("$__timeGroup(t, '1d')", "sqlite", FROM, TO) == (
        "(CAST(strftime('%s', t) AS INTEGER) / 86400) * 86400")


def test_naive_times_are_utc_and_aware_times_are_converted() -> None:
    naive = expand("$__timeFrom()", "mssql", datetime(2025, 1, 6), TO)
    aware = expand("$__timeFrom()", "mssql",
                   datetime(2025, 1, 6, 1, tzinfo=UTC) .astimezone(
                       __import__("datetime").timezone(timedelta(hours=1))), TO)
    assert naive == "'2025-01-06T00:00:00Z'" and aware == "'2025-01-06T01:00:00Z'"


@pytest.mark.parametrize("sql", ["$__nope(t)", "$__timeFilter()", "$__timeGroup(t)",
                                 "$__timeGroup(t, 'soon')"])
def test_macros_grafana_refuses_are_refused(sql: str) -> None:
    with pytest.raises(MacroError):
        expand(sql, "postgresql", FROM, TO)
