"""Every panel of the maintainers' dashboard: what it shows and its SQL per dialect.

Panels read the ingest's reporting views only (names from `_names`): every weekly number in
them is differentially private, the true number plus noise drawn once, with its 95 % margin.
Every count, rate and share shows with its interval (a table's margin column, or a series'
`95 % low` and `95 % high` beside it: so no share panel is stacked, whose bounds would stack
too), and the anomaly rule judges by it; a noisy count below zero shows as 0 (post-processing,
which costs no privacy). Time series use Grafana's time macros and return a `time` column in
ascending order (long format: `time`, `metric`, values; or one column per line); "latest
week" panels show the last week inside the dashboard's time range.
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

MARGIN = "± 95 %"  # the column of a number's 95 % margin
LOW, HIGH = "95 % low", "95 % high"  # the columns of a series' 95 % interval
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

def _per_installation(metric: str, label: str) -> SQL:
    """A metric's clamped weekly total divided by the week's active installations, with the
    95 % interval of the total's noise divided likewise (the count's noise is far smaller)."""
    def sql(d: Dialect) -> str:
        rate = "CAST(m.total AS FLOAT) / a.installations"
        spread = "CAST(m.total_margin AS FLOAT) / a.installations"
        return (f"SELECT $__time(m.{n.WEEK}), {rate} AS {d.q(label)}, "
                f"{rate} - {spread} AS {d.q(LOW)}, {rate} + {spread} AS {d.q(HIGH)} "
                f"FROM {n.METRICS} m JOIN {n.ACTIVE} a ON a.{n.WEEK} = m.{n.WEEK} "
                f"WHERE m.metric = {_s(metric)} AND m.attribute = '' AND m.total IS NOT NULL "
                f"AND a.installations > 0 AND $__timeFilter(m.{n.WEEK}) ORDER BY 1")
    return sql


def _positive(column: str) -> str:
    """A noisy count as shown: below zero shows as 0 (post-processing)."""
    return f"CASE WHEN {column} < 0 THEN 0 ELSE {column} END"


def _share_columns(d: Dialect, count: str, margin: str) -> str:
    """A noisy count as a share of the week's active installations `a`, in percent, with its
    95 % interval: the count's margin over the active installations (their own noise is far
    smaller). Post-processing, knowing no count is below zero: the share and both bounds show
    as at least 0, so the interval still holds the true share whenever the raw one does."""
    share = f"100.0 * ({count}) / a.installations"
    spread = f"100.0 * ({margin}) / a.installations"
    return (f"{_positive(share)} AS {d.q('installations %')}, "
            f"{_positive(f'{share} - {spread}')} AS {d.q(LOW)}, "
            f"{_positive(f'{share} + {spread}')} AS {d.q(HIGH)}")


def _share_over_time(table: str, where: str) -> SQL:
    """Percent of the week's active installations in each value, as series, each with its
    95 % interval."""
    def sql(d: Dialect) -> str:
        return (f"SELECT $__time(r.{n.WEEK}), r.value AS metric, "
                f"{_share_columns(d, 'r.installations', 'r.installations_margin')} "
                f"FROM {table} r JOIN {n.ACTIVE} a ON a.{n.WEEK} = r.{n.WEEK} "
                f"WHERE {where} AND a.installations > 0 AND $__timeFilter(r.{n.WEEK}) "
                f"ORDER BY 1, 2")
    return sql


def _positive_share(metric: str) -> SQL:
    """Percent of the week's active installations whose weekly total is above 0 (all but the
    distribution's bucket 0), with its 95 % interval: both counts are noisy, and the sum of
    their margins bounds the margin of their difference."""
    def sql(d: Dialect) -> str:
        count = "a.installations - z.installations"
        margin = "a.installations_margin + z.installations_margin"
        return (f"SELECT $__time(z.{n.WEEK}), {_share_columns(d, count, margin)} "
                f"FROM {n.DISTRIBUTIONS} z JOIN {n.ACTIVE} a ON a.{n.WEEK} = z.{n.WEEK} "
                f"WHERE z.metric = {_s(metric)} AND z.bucket_min = 0 AND a.installations > 0 "
                f"AND $__timeFilter(z.{n.WEEK}) ORDER BY 1")
    return sql


def _resource_share(key: str) -> SQL:
    return _share_over_time(n.RESOURCE, f"r.attribute = {_s(key)}")


def _metric_share(metric: str, attribute: str) -> SQL:
    return _share_over_time(n.METRICS, f"r.metric = {_s(metric)} AND r.attribute = {_s(attribute)}")


def _resource_latest(key: str, label: str, top: int = 20, margins: int = 0) -> SQL:
    """Installations per value in the latest week, largest first; with `margins`, only the
    values whose count is above that many of its 95 % margins (post-processing: for an
    attribute of many values, most of them held by nobody, so that noise alone rarely shows)."""
    def sql(d: Dialect) -> str:
        shown = f" AND installations > {margins} * installations_margin" if margins else ""
        return (f"SELECT {d.top(top)}value AS {d.q(label)}, "
                f"{_positive('installations')} AS installations, "
                f"installations_margin AS {d.q(MARGIN)} FROM {n.RESOURCE} "
                f"WHERE attribute = {_s(key)} AND {_latest()}{shown} "
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
        return (f"SELECT {bucket_label(d)} AS {d.q(label)}, "
                f"{_positive('installations')} AS installations, "
                f"installations_margin AS {d.q(MARGIN)} "
                f"FROM {n.DISTRIBUTIONS} WHERE metric = {_s(metric)} AND {_latest()} "
                f"ORDER BY bucket_min")
    return sql


# Panels with their own SQL ----------------------------------------------------------------

def _active(d: Dialect) -> str:
    return (f"SELECT $__time({n.WEEK}), installations AS {d.q('active installations')}, "
            f"installations - installations_margin AS {d.q(LOW)}, "
            f"installations + installations_margin AS {d.q(HIGH)} "
            f"FROM {n.ACTIVE} WHERE $__timeFilter({n.WEEK}) ORDER BY {n.WEEK}")


def _active_latest(d: Dialect) -> str:
    return (f"SELECT {d.top(1)}installations AS {d.q('active installations')}, "
            f"installations_margin AS {d.q(MARGIN)} FROM {n.ACTIVE} "
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
    return (f"SELECT value AS {d.q('printer type')}, {_positive('installations')} "
            f"AS installations, installations_margin AS {d.q(MARGIN)} "
            f"FROM {n.METRICS} WHERE metric = {_s(n.PRINTERS)} "
            f"AND attribute = {_s(n.PRINTER_TYPE)} AND {_latest()} "
            f"ORDER BY installations DESC, value")


def _top_errors(d: Dialect) -> str:
    weeks = f"SUM({_positive('installations')})"
    return (f"SELECT {d.top(10)}value AS {d.q('error type')}, {weeks} "
            f"AS {d.q('installation-weeks')} "
            f"FROM {n.METRICS} WHERE metric = {_s(n.ERRORS)} AND attribute = {_s(n.ERROR_TYPE)} "
            f"AND $__timeFilter({n.WEEK}) GROUP BY value ORDER BY {weeks} DESC, value"
            f"{d.limit(10)}")


def _feature_adoption(d: Dialect) -> str:
    return (f"SELECT m.value AS feature, 100.0 * {_positive('m.installations')} / a.installations "
            f"AS {d.q('installations %')}, 100.0 * m.installations_margin / a.installations "
            f"AS {d.q(MARGIN + ' points')} FROM {n.METRICS} m "
            f"JOIN {n.ACTIVE} a ON a.{n.WEEK} = m.{n.WEEK} "
            f"WHERE m.metric = {_s(n.FEATURES_ENABLED)} AND m.attribute = {_s(n.FEATURE)} "
            f"AND a.installations > 0 AND {_latest('m.' + n.WEEK)} ORDER BY 2 DESC, 1")


# Anomalies: each week's errors against its trailing weeks. All errors: the week's clamped
# total of errors; per error type: the installations that had it (what is published).
TRAILING_WEEKS = 8
_MIN_WEEKS = 4
# A week is flagged when it is above its trailing mean by more than 3 of its noise's 95 %
# margins: a margin is at least 1.96 standard deviations of the noise, and the trailing mean
# adds its own noise (a variance of sd²/weeks), so the rise must exceed 5.88 standard
# deviations of the difference, which noise alone does with probability below 2.1e-9 a week
# and series. The rise must also exceed three standard deviations of the trailing weeks
# themselves, so that a series that moves a lot does not fire on its own spread.
NOISE_MARGINS = 3


def _scored(d: Dialect) -> str:
    """CTEs `counts` and `scored`: each week's count and margin with the mean and mean square
    of the weeks before it."""
    window = (f"OVER (PARTITION BY series ORDER BY {n.WEEK} "
              f"ROWS BETWEEN {TRAILING_WEEKS} PRECEDING AND 1 PRECEDING)")
    series = f"CASE WHEN attribute = '' THEN {_s('all errors')} ELSE value END"
    return (f"WITH counts AS (SELECT {n.WEEK}, {series} AS series, "
            f"CAST(COALESCE(total, installations) AS FLOAT) AS errors, "
            f"CAST(COALESCE(total_margin, installations_margin) AS FLOAT) AS margin "
            f"FROM {n.METRICS} WHERE metric = {_s(n.ERRORS)} "
            f"AND ((attribute = '' AND total IS NOT NULL) OR attribute = {_s(n.ERROR_TYPE)}) "
            f"AND {n.WEEK} <= $__timeTo()), "
            f"scored AS (SELECT {n.WEEK}, series, errors, margin, "
            f"AVG(errors) {window} AS baseline, AVG(errors * errors) {window} AS mean_square, "
            f"COUNT(*) {window} AS weeks FROM counts) ")


# Squared, so no SQRT is needed (SQLite lacks it).
ANOMALOUS = (f"weeks >= {_MIN_WEEKS} AND errors > baseline AND "
             f"(errors - baseline) * (errors - baseline) > "
             f"{NOISE_MARGINS * NOISE_MARGINS} * margin * margin * (1.0 + 1.0 / weeks) AND "
             f"(errors - baseline) * (errors - baseline) > 9 * (mean_square - baseline * baseline)")


def _anomaly_count(d: Dialect) -> str:
    return (_scored(d) + f"SELECT {n.WEEK} AS {d.q('time')}, "
            f"SUM(CASE WHEN {ANOMALOUS} THEN 1 ELSE 0 END) AS anomalies FROM scored "
            f"WHERE $__timeFilter({n.WEEK}) GROUP BY {n.WEEK} ORDER BY 1")


def _anomaly_list(d: Dialect) -> str:
    return (_scored(d) + f"SELECT {n.WEEK} AS week, series AS {d.q('error type')}, "
            f"errors AS {d.q('errors or installations')}, margin AS {d.q(MARGIN)}, "
            f"baseline AS {d.q('trailing mean')} "
            f"FROM scored WHERE {ANOMALOUS} AND $__timeFilter({n.WEEK}) "
            f"ORDER BY {n.WEEK} DESC, errors DESC")


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
    """Release annotations: the first week each version's noisy count is above 3 of its 95 %
    margins (noise alone gets there with probability below 1e-9), except the versions there
    in the first such week (they were there before) and "other" (every version the catalog
    does not list). So the marker is when a release visibly reached the fleet, not its
    release date."""
    version = (f"attribute = {_s(n.VERSION)} AND value <> {_s(n.CATALOG.policy.other_value)} "
               f"AND installations > {NOISE_MARGINS} * installations_margin")
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
_PUBLISHED = (" Published weeks only: a week appears once its reporting window has ended. "
              "Each number is differentially private: the true one plus noise, within its "
              "95 % margin of it.")
_LATEST = " The last published week inside the dashboard's time range."


def _curated() -> list[Panel]:
    return [
        Panel("active_installations", "Active installations per week", FLEET, "timeseries",
              "time_series", _active, width=18,
              description="Installations that sent a report for the week, with the 95 % "
                          "interval of the noise." + _PUBLISHED),
        Panel("active_latest", "Active installations (latest week)", FLEET, "stat", "table",
              _active_latest, width=6,
              description="Installations that reported in the last published week inside "
                          "the time range, and the 95 % margin of the noise."),
        Panel("version_adoption", "Version adoption", FLEET, "timeseries", "time_series",
              _resource_share(n.VERSION), unit="percent", max=100.0,
              description="Share of active installations on each Printernizer release the "
                          "catalog lists (any other version as \"other\"), each with its 95 % "
                          "interval (dashed); the release annotations mark the first week a "
                          "release stands out of the noise." + _PUBLISHED),
        Panel("deployment_modes", "Deployment modes", FLEET, "timeseries", "time_series",
              _resource_share(n.DEPLOYMENT), unit="percent", max=100.0,
              description="Share of active installations per deployment mode (Home Assistant "
                          "add-on, Docker, Raspberry Pi, standalone), each with its 95 % "
                          "interval (dashed)." + _PUBLISHED),
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
              description="Installations with at least one printer of each type, with the "
                          "95 % margin of the noise." + _LATEST),
        Panel("fleet_sizes", "Printers per installation (latest week)", PRINT, "barchart",
              "table", _distribution(n.PRINTERS, "printers"),
              description="Installations by how many printers they have set up, in ranges."
                          + _LATEST),
        Panel("jobs_per_installation", "Jobs per installation", PRINT, "timeseries",
              "time_series", _per_installation(n.JOBS, "jobs per installation"),
              description="Print job events in the week (each installation's counted up to "
                          "the policy's bound) divided by the week's active installations, "
                          "with the 95 % interval." + _PUBLISHED),
        Panel("jobs_distribution", "Jobs per installation (latest week)", PRINT, "barchart",
              "table", _distribution(n.JOBS, "jobs"),
              description="Installations by their print job events in the week, in ranges."
                          + _LATEST),
        Panel("feature_adoption", "Feature adoption (latest week)", FEAT, "bargauge", "table",
              _feature_adoption, unit="percent", max=100.0,
              description="Share of active installations with the feature switched on, "
                          "with its 95 % margin in points." + _LATEST),
        Panel("feature_adoption_trend", "Feature adoption over time", FEAT, "timeseries",
              "time_series", _metric_share(n.FEATURES_ENABLED, n.FEATURE), unit="percent",
              max=100.0,
              description="Share of active installations with each feature switched on, per "
                          "week, with its 95 % interval (dashed)." + _PUBLISHED),
        Panel("top_errors", "Top error types", ERR, "bargauge", "table", _top_errors,
              description="The ten error types most installations had, summed over the weeks "
                          "of the time range (counts only: no messages ever leave a machine)."),
        Panel("error_rate", "Errors per installation", ERR, "timeseries",
              "time_series", _per_installation(n.ERRORS, "errors per installation"),
              description="Errors in the week (each installation's counted up to the "
                          "policy's bound) divided by the week's active installations, with "
                          "the 95 % interval." + _PUBLISHED),
        Panel("error_categories", "Installations with errors by category", ERR, "timeseries",
              "time_series", _metric_share(n.ERRORS, n.ERROR_CATEGORY), unit="percent",
              description="Share of active installations with errors of each category, with "
                          "its 95 % interval (dashed)." + _PUBLISHED),
        Panel("anomaly_count", "Error anomalies per week", ERR, "timeseries", "time_series",
              _anomaly_count, thresholds=RED_ABOVE_0,
              description=f"Error types (and all errors) far above their trailing "
                          f"{TRAILING_WEEKS} weeks, by more than the noise (also an alert "
                          f"rule)."),
        Panel("anomalies", "Error anomalies", ERR, "table", "table", _anomaly_list,
              description=f"Each week and error type (installations with it) or all errors "
                          f"(their clamped total) above its trailing {TRAILING_WEEKS}-week "
                          f"mean by more than {NOISE_MARGINS} of its 95 % noise margins and "
                          f"three standard deviations of those weeks, with that mean."),
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
              _resource_latest(n.COUNTRY, "country", margins=2), width=24,
              description="Active installations per country, derived on the machine from its "
                          "time zone (never from an address). Of some 250 countries most have "
                          "no installation, so only those above twice their 95 % margin show "
                          "(noise alone gets there with probability about 3e-5 a country): "
                          "a small fleet may show none." + _LATEST),
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
    """One panel per catalog metric, from what the privacy policy publishes of it: its weekly
    total per installation where a total is published, else the share of installations with
    a weekly total above 0, else the share per value of its first breakdown."""
    panels = []
    for metric in n.CATALOG.metrics.values():
        release = n.CATALOG.policy.privacy.metrics[metric.name]
        if release.total:
            title, unit = f"{metric.name} per installation", grafana_unit(metric.unit)
            query, what = (_per_installation(metric.name, "per installation"),
                           "Its weekly total divided by the week's active installations, with "
                           "its 95 % interval.")
        elif release.distribution:
            title, unit = f"{metric.name}: installations with any", "percent"
            query, what = (_positive_share(metric.name),
                           "Share of active installations whose weekly total is above 0, "
                           "with its 95 % interval.")
        else:
            attribute = next(iter(release.by))
            title, unit = f"{metric.name} by {attribute}", "percent"
            query, what = (_metric_share(metric.name, attribute),
                           f"Share of active installations per {attribute}, with its 95 % "
                           "interval.")
        panels.append(Panel(f"catalog:{metric.name}", title, CAT, "timeseries", "time_series",
                            query, unit=unit, description=f"{metric.text.en} {what}", width=8))
    return panels


PANELS: tuple[Panel, ...] = (*_curated(), *_catalog_panels())
ROWS: tuple[str, ...] = (FLEET, SUBMIT, PRINT, FEAT, ERR, PLAT, CAT)
