"""Every panel of the maintainers' dashboard: what it shows and its SQL per dialect.

Panels read the ingest's k-anonymous reporting views only (names from `_names`). Time series
use Grafana's time macros and return a `time` column in ascending order (long format: `time`,
`metric`, value); "latest week" panels show the last week inside the dashboard's time range.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

from . import _names as n
from ._dialects import Dialect, dialect

Kind = Literal["timeseries", "stat", "table", "barchart", "bargauge", "piechart"]
Format = Literal["time_series", "table"]
Thresholds = tuple[tuple[float | None, str], ...]
SQL = Callable[[Dialect], str]

GREEN_ABOVE_95: Thresholds = ((None, "red"), (95.0, "yellow"), (99.0, "green"))
RED_ABOVE_0: Thresholds = ((None, "green"), (1.0, "red"))


@dataclass(frozen=True)
class Panel:
    """One panel: its place, its look and the SQL behind it."""

    key: str
    title: str
    row: str
    kind: Kind
    format: Format
    query: SQL = field(repr=False)
    unit: str = "short"
    description: str = ""
    stacked: bool = False
    thresholds: Thresholds | None = None
    max: float | None = None
    width: int = 12

    def sql(self, dialect_name: str) -> str:
        """The panel's SQL for "mssql", "postgresql" or "sqlite", macros unexpanded."""
        return self.query(dialect(dialect_name))


def _s(text: str) -> str:
    """A SQL string literal."""
    return "'" + text.replace("'", "''") + "'"


def _latest(column: str = n.WEEK) -> str:
    """The last reported week inside the dashboard's range."""
    return (f"{column} = (SELECT MAX({n.WEEK}) FROM {n.ACTIVE} "
            f"WHERE $__timeFilter({n.WEEK}))")


# SQL shapes shared by several panels ------------------------------------------------------

def _per_installation(metric: str, attribute: str, label: str) -> SQL:
    """A metric's weekly total divided by the week's active installations, per value."""
    def sql(d: Dialect) -> str:
        series = f"CASE WHEN m.attribute = '' THEN {_s('all')} ELSE m.value END"
        return (f"SELECT $__time(m.{n.WEEK}), {series} AS metric, "
                f"CAST(m.total AS FLOAT) / a.installations AS {d.q(label)} "
                f"FROM {n.METRICS} m JOIN {n.ACTIVE} a ON a.{n.WEEK} = m.{n.WEEK} "
                f"WHERE m.metric = {_s(metric)} AND m.attribute IN ('', {_s(attribute)}) "
                f"AND $__timeFilter(m.{n.WEEK}) ORDER BY 1, 2")
    return sql


def _share_over_time(table: str, where: str) -> SQL:
    """Percent of the week's active installations in each value, as series."""
    def sql(d: Dialect) -> str:
        return (f"SELECT $__time(r.{n.WEEK}), r.value AS metric, "
                f"100.0 * r.installations / a.installations AS {d.q('installations %')} "
                f"FROM {table} r JOIN {n.ACTIVE} a ON a.{n.WEEK} = r.{n.WEEK} "
                f"WHERE {where} AND $__timeFilter(r.{n.WEEK}) ORDER BY 1, 2")
    return sql


def _resource_share(key: str) -> SQL:
    return _share_over_time(n.RESOURCE, f"r.attribute = {_s(key)}")


def _metric_share(metric: str, attribute: str) -> SQL:
    return _share_over_time(n.METRICS, f"r.metric = {_s(metric)} AND r.attribute = {_s(attribute)}")


def _resource_latest(key: str, label: str, top: int = 20) -> SQL:
    """Installations per value in the latest week, largest first."""
    def sql(d: Dialect) -> str:
        return (f"SELECT {d.top(top)}value AS {d.q(label)}, installations FROM {n.RESOURCE} "
                f"WHERE attribute = {_s(key)} AND {_latest()} "
                f"ORDER BY installations DESC, value{d.limit(top)}")
    return sql


def bucket_label(d: Dialect) -> str:
    """A distribution bucket's true range ("3-5", "10001+"), from the views' bucket bounds."""
    bounds = n.BUCKETS
    cases = [f"WHEN {low} THEN {_s(_range(low, high))}"
             for low, high in zip(bounds, (*bounds[1:], None), strict=True)]
    return f"CASE bucket_min {' '.join(cases)} ELSE {d.text('bucket_min')} END"


def _range(low: int, high: int | None) -> str:
    if high is None:
        return f"{low}+"
    return str(low) if high == low + 1 else f"{low}-{high - 1}"


def _distribution(metric: str, label: str) -> SQL:
    """Installations per bucket of a metric's weekly total, latest week."""
    def sql(d: Dialect) -> str:
        return (f"SELECT {bucket_label(d)} AS {d.q(label)}, installations "
                f"FROM {n.DISTRIBUTIONS} WHERE metric = {_s(metric)} AND {_latest()} "
                f"ORDER BY bucket_min")
    return sql


# Panels with their own SQL ----------------------------------------------------------------

def _active(d: Dialect) -> str:
    return (f"SELECT $__time({n.WEEK}), installations AS {d.q('active installations')} "
            f"FROM {n.ACTIVE} WHERE $__timeFilter({n.WEEK}) ORDER BY {n.WEEK}")


def _active_latest(d: Dialect) -> str:
    return (f"SELECT {d.top(1)}installations AS {d.q('active installations')} FROM {n.ACTIVE} "
            f"WHERE $__timeFilter({n.WEEK}) ORDER BY {n.WEEK} DESC{d.limit(1)}")


def _submissions_weekly(d: Dialect) -> str:
    week = d.week("day")
    return (f"SELECT {week} AS {d.q('time')}, outcome AS metric, SUM(requests) AS requests "
            f"FROM {n.SUBMISSIONS} WHERE $__timeFilter(day) "
            f"GROUP BY {week}, outcome ORDER BY 1, 2")


_ACCEPTED = "SUM(CASE WHEN outcome = 'accepted' THEN requests ELSE 0 END)"


def _success_daily(d: Dialect) -> str:
    return (f"SELECT $__timeGroupAlias(day, '1d'), "
            f"100.0 * {_ACCEPTED} / SUM(requests) AS {d.q('accepted %')} "
            f"FROM {n.SUBMISSIONS} WHERE $__timeFilter(day) "
            f"GROUP BY $__timeGroup(day, '1d') ORDER BY 1")


def _success_total(d: Dialect) -> str:
    return (f"SELECT 100.0 * {_ACCEPTED} / SUM(requests) AS {d.q('accepted %')} "
            f"FROM {n.SUBMISSIONS} WHERE $__timeFilter(day)")


def _refusals(d: Dialect) -> str:
    return (f"SELECT outcome, reason, SUM(requests) AS requests FROM {n.SUBMISSIONS} "
            f"WHERE outcome <> 'accepted' AND $__timeFilter(day) "
            f"GROUP BY outcome, reason ORDER BY SUM(requests) DESC")


def _printer_types(d: Dialect) -> str:
    return (f"SELECT value AS {d.q('printer type')}, installations, total AS printers "
            f"FROM {n.METRICS} WHERE metric = {_s(n.PRINTERS)} "
            f"AND attribute = {_s(n.PRINTER_TYPE)} AND {_latest()} ORDER BY printers DESC")


def _top_errors(d: Dialect) -> str:
    return (f"SELECT {d.top(10)}value AS {d.q('error type')}, SUM(total) AS errors "
            f"FROM {n.METRICS} WHERE metric = {_s(n.ERRORS)} AND attribute = {_s(n.ERROR_TYPE)} "
            f"AND $__timeFilter({n.WEEK}) GROUP BY value ORDER BY SUM(total) DESC, value"
            f"{d.limit(10)}")


def _feature_adoption(d: Dialect) -> str:
    return (f"SELECT m.value AS feature, 100.0 * m.installations / a.installations AS "
            f"{d.q('installations %')} FROM {n.METRICS} m "
            f"JOIN {n.ACTIVE} a ON a.{n.WEEK} = m.{n.WEEK} "
            f"WHERE m.metric = {_s(n.FEATURES_ENABLED)} AND m.attribute = {_s(n.FEATURE)} "
            f"AND {_latest('m.' + n.WEEK)} ORDER BY 2 DESC")


# Anomalies: an error type's (or all errors') rate per installation against its trailing weeks.
TRAILING_WEEKS = 8
_MIN_WEEKS = 4


def _scored(d: Dialect) -> str:
    """CTEs `rates` and `scored`: each week's rate with the mean and mean square before it."""
    window = (f"OVER (PARTITION BY series ORDER BY {n.WEEK} "
              f"ROWS BETWEEN {TRAILING_WEEKS} PRECEDING AND 1 PRECEDING)")
    series = f"CASE WHEN m.attribute = '' THEN {_s('all errors')} ELSE m.value END"
    return (f"WITH rates AS (SELECT m.{n.WEEK}, {series} AS series, "
            f"CAST(m.total AS FLOAT) / a.installations AS rate "
            f"FROM {n.METRICS} m JOIN {n.ACTIVE} a ON a.{n.WEEK} = m.{n.WEEK} "
            f"WHERE m.metric = {_s(n.ERRORS)} AND m.attribute IN ('', {_s(n.ERROR_TYPE)}) "
            f"AND m.{n.WEEK} <= $__timeTo()), "
            f"scored AS (SELECT {n.WEEK}, series, rate, AVG(rate) {window} AS baseline, "
            f"AVG(rate * rate) {window} AS mean_square, COUNT(*) {window} AS weeks FROM rates) ")


# Far outside: at least twice the trailing mean and more than three standard deviations above
# it (squared, so no SQRT is needed: SQLite lacks it).
ANOMALOUS = (f"weeks >= {_MIN_WEEKS} AND rate > 2 * baseline AND "
             f"(rate - baseline) * (rate - baseline) > 9 * (mean_square - baseline * baseline)")


def _anomaly_count(d: Dialect) -> str:
    return (_scored(d) + f"SELECT {n.WEEK} AS {d.q('time')}, "
            f"SUM(CASE WHEN {ANOMALOUS} THEN 1 ELSE 0 END) AS anomalies FROM scored "
            f"WHERE $__timeFilter({n.WEEK}) GROUP BY {n.WEEK} ORDER BY 1")


def _anomaly_list(d: Dialect) -> str:
    return (_scored(d) + f"SELECT {n.WEEK} AS week, series AS {d.q('error type')}, "
            f"rate AS {d.q('errors per installation')}, baseline AS {d.q('trailing mean')} "
            f"FROM scored WHERE {ANOMALOUS} AND $__timeFilter({n.WEEK}) "
            f"ORDER BY {n.WEEK} DESC, rate DESC")


def alert_sql(d: Dialect, week: str | None = None) -> str:
    """The alert's query: per error type (and all errors) of the last published week, 1 when
    anomalous, else 0. A table, so each row is an alert instance labelled with its
    `error_type`. Without Grafana macros, so the provisioning file holds no "$" for Grafana's
    environment-variable expansion. The views hold closed (published) weeks only, so the last
    week in them is the last closed week; `week` (an SQL expression) judges another one."""
    latest = week or f"(SELECT MAX({n.WEEK}) FROM {n.ACTIVE})"
    return (_scored(d).replace("$__timeTo()", latest)
            + f"SELECT series AS error_type, CASE WHEN {ANOMALOUS} THEN 1 ELSE 0 END "
            f"AS anomalous FROM scored WHERE {n.WEEK} = {latest} ORDER BY series")


def release_sql(d: Dialect) -> str:
    """Release annotations: each version's first published week, except the versions of the
    first week any version was published (those were there before). A version shows once
    enough installations run it (k, and no smaller group derivable by subtraction), so the
    marker is when it visibly reached the fleet, not its release date."""
    version = f"attribute = {_s(n.VERSION)}"
    first = (f"SELECT value, MIN({n.WEEK}) AS first_week FROM {n.RESOURCE} "
             f"WHERE {version} GROUP BY value")
    text = d.concat(_s("Printernizer "), "value", _s(" reaches the fleet"))
    return (f"SELECT first_week AS {d.q('time')}, {text} AS {d.q('text')}, "
            f"{_s('release')} AS {d.q('tags')} FROM ({first}) r "
            f"WHERE first_week > (SELECT MIN({n.WEEK}) FROM {n.RESOURCE} WHERE {version}) "
            f"AND $__timeFilter(first_week) ORDER BY 1")


# The dashboard ------------------------------------------------------------------------------

FLEET, SUBMIT, PRINT, FEAT, ERR, PLAT, CAT = (
    "Fleet", "Submissions", "Printers and jobs", "Features", "Errors and anomalies",
    "Platforms and countries", "Every metric in the catalog")
_PUBLISHED = (" Published weeks only: a week appears once its reporting window has ended, and a "
              "group of fewer than k installations never shows.")
_LATEST = " The last published week inside the dashboard's time range."


def _curated() -> list[Panel]:
    return [
        Panel("active_installations", "Active installations per week", FLEET, "timeseries",
              "time_series", _active, width=18,
              description="Established installations that sent a report for the week."
                          + _PUBLISHED),
        Panel("active_latest", "Active installations (latest week)", FLEET, "stat", "table",
              _active_latest, width=6,
              description="Established installations that reported in the last published "
                          "week inside the time range."),
        Panel("version_adoption", "Version adoption", FLEET, "timeseries", "time_series",
              _resource_share(n.VERSION), unit="percent", stacked=True, max=100.0,
              description="Share of active installations on each Printernizer version; the "
                          "release annotations mark the first week a version shows."
                          + _PUBLISHED),
        Panel("deployment_modes", "Deployment modes", FLEET, "timeseries", "time_series",
              _resource_share(n.DEPLOYMENT), unit="percent", stacked=True, max=100.0,
              description="Share of active installations per deployment mode (Home Assistant "
                          "add-on, Docker, Raspberry Pi, standalone)." + _PUBLISHED),
        Panel("submissions_weekly", "Submissions per week by outcome", SUBMIT, "timeseries",
              "time_series", _submissions_weekly, stacked=True,
              description="Requests to the ingest per week of their arrival: accepted, "
                          "rejected (invalid) and throttled. Counted per day with no "
                          "identifier, so the current week shows too and grows."),
        Panel("success_rate", "Submission success rate per day", SUBMIT, "timeseries",
              "time_series", _success_daily, unit="percent", thresholds=GREEN_ABOVE_95,
              max=100.0, description="Accepted requests per day of arrival, in percent of all "
                                     "requests; the goal is above 95 %."),
        Panel("success_rate_total", "Submission success rate", SUBMIT, "stat", "table",
              _success_total, unit="percent", thresholds=GREEN_ABOVE_95, max=100.0, width=6,
              description="Accepted requests over the whole time range, in percent of all "
                          "requests; red below 95 %, green from 99 %."),
        Panel("refusals", "Rejected and throttled requests by reason", SUBMIT, "table", "table",
              _refusals, width=18,
              description="Requests the ingest refused in the time range, by outcome and "
                          "reason (invalid reports are rejected, too many requests throttled)."),
        Panel("printer_types", "Printer types (latest week)", PRINT, "barchart", "table",
              _printer_types,
              description="Installations with at least one printer of each type, and the "
                          "printers of that type they have." + _LATEST),
        Panel("fleet_sizes", "Printers per installation (latest week)", PRINT, "barchart",
              "table", _distribution(n.PRINTERS, "printers"),
              description="Installations by how many printers they have set up, in ranges."
                          + _LATEST),
        Panel("jobs_per_installation", "Jobs per installation", PRINT, "timeseries",
              "time_series", _per_installation(n.JOBS, "", "jobs per installation"),
              description="Print job events (created, completed, failed, cancelled) in the "
                          "week divided by the week's active installations." + _PUBLISHED),
        Panel("jobs_distribution", "Jobs per installation (latest week)", PRINT, "barchart",
              "table", _distribution(n.JOBS, "jobs"),
              description="Installations by their print job events in the week, in ranges."
                          + _LATEST),
        Panel("feature_adoption", "Feature adoption (latest week)", FEAT, "bargauge", "table",
              _feature_adoption, unit="percent", max=100.0,
              description="Share of active installations with the feature switched on."
                          + _LATEST),
        Panel("feature_adoption_trend", "Feature adoption over time", FEAT, "timeseries",
              "time_series", _metric_share(n.FEATURES_ENABLED, n.FEATURE), unit="percent",
              max=100.0,
              description="Share of active installations with each feature switched on, per "
                          "week." + _PUBLISHED),
        Panel("top_errors", "Top error types", ERR, "bargauge", "table", _top_errors,
              description="The ten error types with the most errors over the time range "
                          "(counts only: no messages ever leave a machine)."),
        Panel("error_rate", "Errors per installation by category", ERR, "timeseries",
              "time_series", _per_installation(n.ERRORS, n.ERROR_CATEGORY,
                                               "errors per installation"),
              description="Errors in the week divided by the week's active installations, per "
                          "error category and in all." + _PUBLISHED),
        Panel("anomaly_count", "Error anomalies per week", ERR, "timeseries", "time_series",
              _anomaly_count, thresholds=RED_ABOVE_0,
              description=f"Error types whose rate per installation is far above its "
                          f"trailing {TRAILING_WEEKS} weeks (also an alert rule)."),
        Panel("anomalies", "Error anomalies", ERR, "table", "table", _anomaly_list,
              description=f"Each week and error type (or all errors) whose rate per "
                          f"installation is at least twice its trailing {TRAILING_WEEKS}-week "
                          f"mean and three standard deviations above it, with that mean."),
        Panel("os_types", "Operating systems (latest week)", PLAT, "piechart", "table",
              _resource_latest(n.OS, "operating system"), width=8,
              description="Active installations per operating system." + _LATEST),
        Panel("architectures", "Architectures (latest week)", PLAT, "piechart", "table",
              _resource_latest(n.ARCH, "architecture"), width=8,
              description="Active installations per CPU architecture." + _LATEST),
        Panel("python_versions", "Python versions (latest week)", PLAT, "bargauge", "table",
              _resource_latest(n.PYTHON, "Python"), width=8,
              description="Active installations per Python version." + _LATEST),
        Panel("countries", "Countries (latest week, top 20)", PLAT, "bargauge", "table",
              _resource_latest(n.COUNTRY, "country"), width=24,
              description="Active installations per country, derived on the machine from its "
                          "time zone (never from an address)." + _LATEST),
    ]


# Grafana's unit ids for the catalog's units (UCUM); a "{...}" annotation is a plain count.
_UNITS = {"d": "d", "s": "s", "ms": "ms", "By": "bytes", "1": "none"}


def grafana_unit(catalog_unit: str) -> str:
    """The Grafana unit of a catalog unit; an unknown one fails the build."""
    if catalog_unit.startswith("{") and catalog_unit.endswith("}"):
        return "short"
    if catalog_unit not in _UNITS:
        raise n.CatalogMismatch(f"no Grafana unit for the catalog's unit {catalog_unit!r}")
    return _UNITS[catalog_unit]


def _catalog_panels() -> list[Panel]:
    """One panel per catalog metric: its weekly total per installation, by its first attribute."""
    panels = []
    for metric in n.CATALOG.metrics.values():
        attribute = next(iter(metric.attributes), "")
        title = f"{metric.name} per installation" + (f" by {attribute}" if attribute else "")
        panels.append(Panel(f"catalog:{metric.name}", title, CAT, "timeseries", "time_series",
                            _per_installation(metric.name, attribute, "per installation"),
                            unit=grafana_unit(metric.unit),
                            description=f"{metric.text.en} Its weekly total divided by the "
                                        f"week's active installations.", width=8))
    return panels


PANELS: tuple[Panel, ...] = (*_curated(), *_catalog_panels())
ROWS: tuple[str, ...] = (FLEET, SUBMIT, PRINT, FEAT, ERR, PLAT, CAT)
