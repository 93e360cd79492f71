"""Grafana's SQL macros, expanded exactly as Grafana's SQL data sources expand them.

Grafana (pkg/tsdb/sqleng, then the data source's macro engine) first replaces `$__interval_ms`,
`$__interval`, `$__unixEpochFrom()` and `$__unixEpochTo()` as plain text, then every
`$name(args)` matching `\\$([_a-zA-Z0-9]+)\\(([^\\)]*)\\)`, splitting args on "," and trimming
spaces; an unknown name is an error. The engines differ in details we reproduce:

- mssql (pkg/tsdb/mssql/macros.go): times formatted RFC 3339 without fractions; `$__time` is
  `col AS time`; `$__timeGroup` is `FLOOR(DATEDIFF(second, '1970-01-01', col)/N)*N` with N
  printed "%.0f"; aliases are `AS [time]`.
- postgresql (pkg/tsdb/grafana-postgresql-datasource/macros.go, TimescaleDB off): times
  RFC 3339 with nanoseconds trimmed; `floor(extract(epoch from col)/N)*N` with N printed "%v";
  aliases `AS "time"`; and, for pre-5.3 dashboards, a `$__timeGroup(...)` directly followed by
  "," (at the first place that text occurs) becomes `$__timeGroupAlias`.
- sqlite has no Grafana data source: ours mirrors postgresql's meaning for the ingest's
  embedded store, with times in the text form SQLAlchemy stores (`YYYY-MM-DD HH:MM:SS.ffffff`),
  so that text comparison is time comparison.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from ._dialects import DialectName

__all__ = ["MacroError", "expand"]

_MACRO = re.compile(r"\$([_a-zA-Z0-9]+)\(([^\)]*)\)")
_INTERVAL = re.compile(r"^(\d+)(ms|s|m|h|d|w)$")
_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class MacroError(ValueError):
    """A macro Grafana would refuse: unknown, or missing its arguments."""


def expand(sql: str, dialect: DialectName, time_from: datetime, time_to: datetime,
           interval: timedelta = timedelta(days=7)) -> str:
    """`sql` with every Grafana macro replaced for the time range [time_from, time_to]."""
    start, end = _utc(time_from), _utc(time_to)
    sql = _global(sql, start, end, interval)
    original = sql

    def replace(match: re.Match[str]) -> str:
        name = match.group(1)
        if dialect == "postgresql" and name == "__timeGroup":
            at = original.find(match.group(0)) + len(match.group(0))
            if at < len(original) and original[at] == ",":
                name = "__timeGroupAlias"
        args = [arg.strip(" ") for arg in match.group(2).split(",")]
        return _evaluate(dialect, name, args, start, end)

    return _MACRO.sub(replace, sql)


def _utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _global(sql: str, start: datetime, end: datetime, interval: timedelta) -> str:
    """sqleng.Interpolate: the substitutions shared by every SQL data source."""
    sql = sql.replace("$__interval_ms", str(int(interval.total_seconds() * 1000)))
    sql = sql.replace("$__interval", _format_interval(interval))
    sql = sql.replace("$__unixEpochFrom()", str(_seconds(start)))
    return sql.replace("$__unixEpochTo()", str(_seconds(end)))


def _format_interval(interval: timedelta) -> str:
    """gtime.FormatInterval."""
    ms = int(interval.total_seconds() * 1000)
    for unit, size in (("y", 365 * 86_400_000), ("d", 86_400_000), ("h", 3_600_000),
                       ("m", 60_000), ("s", 1000), ("ms", 1)):
        if ms >= size:
            return f"{ms // size}{unit}"
    return "1ms"


def _seconds(moment: datetime) -> int:
    return int((moment - _EPOCH) // timedelta(seconds=1))


def _nanos(moment: datetime) -> int:
    return (moment - _EPOCH) // timedelta(microseconds=1) * 1000


def _literal(dialect: DialectName, moment: datetime) -> str:
    if dialect == "sqlite":
        return f"'{moment.strftime('%Y-%m-%d %H:%M:%S.%f')}'"
    text = moment.strftime("%Y-%m-%dT%H:%M:%S")
    if dialect == "postgresql" and moment.microsecond:  # RFC3339Nano drops trailing zeros
        text += "." + f"{moment.microsecond:06d}".rstrip("0")
    return f"'{text}Z'"


def _interval_seconds(arg: str) -> float:
    """gtime.ParseInterval for the units a dashboard uses (calendar months and years excluded)."""
    match = _INTERVAL.match(arg.strip("'\""))
    if match is None:
        raise MacroError(f"error parsing interval {arg}")
    return int(match.group(1)) * _UNITS[match.group(2)]


def _number(dialect: DialectName, seconds: float) -> str:
    if dialect == "mssql":
        return f"{seconds:.0f}"
    return str(int(seconds)) if seconds == int(seconds) else repr(seconds)  # Go's %v


def _epoch(dialect: DialectName, column: str) -> str:
    if dialect == "mssql":
        return f"DATEDIFF(second, '1970-01-01', {column})"
    if dialect == "postgresql":
        return f"extract(epoch from {column})"
    return f"CAST(strftime('%s', {column}) AS INTEGER)"


def _alias(dialect: DialectName) -> str:
    return " AS [time]" if dialect == "mssql" else ' AS "time"'


def _evaluate(dialect: DialectName, name: str, args: list[str], start: datetime,
              end: datetime) -> str:
    handler = _HANDLERS.get(name)
    if handler is None:
        raise MacroError(f"unknown macro {name!r}")
    needed = 2 if "Group" in name else 1 if name in _COLUMN_MACROS else 0
    if len([a for a in args if a]) < needed:
        raise MacroError(f"macro {name} needs {needed} argument(s)")
    return handler(dialect, args, start, end)


def _time(d: DialectName, a: list[str], s: datetime, e: datetime) -> str:
    return f"{a[0]} AS time" if d == "mssql" else f'{a[0]} AS "time"'


def _time_epoch(d: DialectName, a: list[str], s: datetime, e: datetime) -> str:
    alias = " AS time" if d == "mssql" else ' as "time"'
    return _epoch(d, a[0]) + alias


def _time_filter(d: DialectName, a: list[str], s: datetime, e: datetime) -> str:
    return f"{a[0]} BETWEEN {_literal(d, s)} AND {_literal(d, e)}"


def _time_group(d: DialectName, a: list[str], s: datetime, e: datetime) -> str:
    n = _number(d, _interval_seconds(a[1]))
    template = "FLOOR({}/{})*{}" if d == "mssql" else "floor({}/{})*{}"
    if d == "sqlite":  # integer division of a non-negative epoch is floor
        template = "({} / {}) * {}"
    return template.format(_epoch(d, a[0]), n, n)


def _epoch_group(d: DialectName, a: list[str], s: datetime, e: datetime) -> str:
    n = _number(d, _interval_seconds(a[1]))
    return f"FLOOR({a[0]}/{n})*{n}" if d == "mssql" else f"floor(({a[0]})/{n})*{n}"


def _epoch_filter(d: DialectName, a: list[str], s: datetime, e: datetime) -> str:
    return f"{a[0]} >= {_seconds(s)} AND {a[0]} <= {_seconds(e)}"


def _nano_filter(d: DialectName, a: list[str], s: datetime, e: datetime) -> str:
    return f"{a[0]} >= {_nanos(s)} AND {a[0]} <= {_nanos(e)}"


Handler = Callable[[DialectName, list[str], datetime, datetime], str]
_HANDLERS: dict[str, Handler] = {
    "__time": _time,
    "__timeEpoch": _time_epoch,
    "__timeFilter": _time_filter,
    "__timeFrom": lambda d, a, s, e: _literal(d, s),
    "__timeTo": lambda d, a, s, e: _literal(d, e),
    "__timeGroup": _time_group,
    "__timeGroupAlias": lambda d, a, s, e: _time_group(d, a, s, e) + _alias(d),
    "__unixEpochFilter": _epoch_filter,
    "__unixEpochNanoFilter": _nano_filter,
    "__unixEpochNanoFrom": lambda d, a, s, e: str(_nanos(s)),
    "__unixEpochNanoTo": lambda d, a, s, e: str(_nanos(e)),
    "__unixEpochGroup": _epoch_group,
    "__unixEpochGroupAlias": lambda d, a, s, e: _epoch_group(d, a, s, e) + _alias(d),
}
_COLUMN_MACROS = frozenset({"__time", "__timeEpoch", "__timeFilter", "__unixEpochFilter",
                            "__unixEpochNanoFilter"})
