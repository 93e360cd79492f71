"""The catalog's reviewed source, `catalog.toml`: read and checked, and compiled.

:func:`read` parses a catalog TOML file and checks it, naming every problem found
(:class:`~otel_usage.catalog.CatalogError`). :func:`compiled` writes a checked catalog as the
JSON a start loads (:func:`~otel_usage.catalog.load_catalog`), with the checksum of the TOML
it came from. After editing `catalog.toml`, compile it again (a test fails until then)::

    python -m otel_usage.catalog.source        # rewrites otel_usage/catalog.json
"""

from __future__ import annotations

import itertools
import json
import re
import sys
import tomllib
import zlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from . import (
    _NO_PRIVACY,
    CATALOG_PATH,
    COMPILED_PATH,
    ROLES,
    Attribute,
    Breakdown,
    Catalog,
    CatalogError,
    Metric,
    MetricRelease,
    Policy,
    Privacy,
    Protocol,
    Public,
    ResourceRelease,
    Role,
    Text,
    _Value,
)

__all__ = ["compiled", "read"]

_INSTRUMENTS = ("counter", "observable_counter", "gauge", "observable_gauge")
_WEEKLY = ("sum", "max", "days")
_NAME = re.compile(r"^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)*$")


def read(path: Path) -> Catalog:
    """The catalog in the TOML file `path`, checked."""
    with open(path, "rb") as fh:
        return _parse(tomllib.load(fh))


def compiled(catalog: Catalog, source: bytes) -> str:
    """`catalog` (read from the TOML `source`) as the compiled catalog's JSON text."""
    document = {"source_crc32": zlib.crc32(source),
                "catalog": _encode(catalog)}
    return json.dumps(document, ensure_ascii=False, indent=1) + "\n"


def _encode(value: Any, field: str = "") -> Any:
    """The inverse of :func:`~otel_usage.catalog._decode`."""
    if isinstance(value, _Value):
        out: dict[str, Any] = {"$": type(value).__name__}
        for name in value._fields:
            item = getattr(value, name)
            if name in value._defaults and item == value._defaults[name]:
                continue
            if isinstance(value, Role) and name == "metric":
                out[name] = {"$metric": item.name}
            else:
                out[name] = _encode(item, name)
        return out
    if isinstance(value, Mapping):
        assert all(isinstance(key, str) for key in value), field
        return {"$map": {key: _encode(item, field) for key, item in value.items()}}
    if isinstance(value, tuple | list):
        return [_encode(item, field) for item in value]
    if isinstance(value, re.Pattern):
        assert value.flags == re.UNICODE, field
        return {"$re": value.pattern}
    if isinstance(value, Path):
        assert value.parent == CATALOG_PATH.parent, field
        return {"$file": value.name}
    assert value is None or isinstance(value, str | int | float), field
    return value


def main() -> None:
    """Compile the packaged `catalog.toml` into `catalog.json` beside it."""
    source = CATALOG_PATH.read_bytes()
    COMPILED_PATH.write_text(compiled(read(CATALOG_PATH), source), encoding="utf-8")
    sys.stderr.write(f"wrote {COMPILED_PATH}\n")


def _parse(raw: Mapping[str, Any]) -> Catalog:
    problems: list[str] = []
    policy_raw = raw.get("policy", {})
    other = str(policy_raw.get("other_value", "other"))
    version = int(raw.get("version", 0))

    def since(spec: Mapping[str, Any], where: str) -> int:
        """An item's `since` (default 1), which must lie between 1 and the catalog version."""
        value = spec.get("since", 1)
        if not isinstance(value, int) or not 1 <= value <= version:
            problems.append(f"{where}: since must be between 1 and the catalog version")
            return 1
        return value

    def value_list(items: Any, where: str) -> tuple[tuple[str, int], ...]:
        """An enum's values: each a string (added in version 1) or {value = "...", since = N}."""
        out: list[tuple[str, int]] = []
        for item in items if isinstance(items, list) else ():
            if isinstance(item, str):
                out.append((item, 1))
            elif isinstance(item, dict) and isinstance(item.get("value"), str):
                out.append((item["value"], since(item, f"{where} value {item['value']!r}")))
            else:
                problems.append(f"{where}: {item!r} is neither a value nor "
                                "{ value = ..., since = N }")
        if not isinstance(items, list):
            problems.append(f"{where}: values must be a list")
        return tuple(out)

    enums = {k: value_list(v, f"enum {k!r}") for k, v in raw.get("enums", {}).items()}

    def pattern_list(items: Any, where: str) -> tuple[tuple[int, re.Pattern[str]], ...]:
        """A pattern's forms: one string (as old as version 1), or a list of a string and
        {pattern = "...", since = N} tables, each wider than the last, in version order."""
        out: list[tuple[int, re.Pattern[str]]] = []
        for item in items if isinstance(items, list) else [items]:
            if isinstance(item, str):
                out.append((1, re.compile(item)))
            elif isinstance(item, dict) and isinstance(item.get("pattern"), str):
                out.append((since(item, f"{where} pattern {item['pattern']!r}"),
                            re.compile(item["pattern"])))
            else:
                problems.append(f"{where}: {item!r} is neither a pattern nor "
                                "{ pattern = ..., since = N }")
        if not out or any(a[0] >= b[0] for a, b in itertools.pairwise(out)):
            problems.append(f"{where}: a pattern's forms must be listed oldest first, "
                            "each of a later version")
        return tuple(out)

    def attribute(key: str, spec: Mapping[str, Any], where: str) -> Attribute:
        values: tuple[str, ...] | None = None
        listed: tuple[tuple[str, int], ...] = ()
        pattern = None
        forms: tuple[tuple[int, re.Pattern[str]], ...] = ()
        if "enum" in spec:
            if spec["enum"] not in enums:
                problems.append(f"{where}: unknown enum {spec['enum']!r}")
            listed = enums.get(spec["enum"], ())
            values = tuple(v for v, _ in listed)
        elif "values" in spec:
            listed = value_list(spec["values"], f"{where} attribute {key!r}")
            values = tuple(v for v, _ in listed)
        elif "pattern" in spec:
            forms = pattern_list(spec["pattern"], f"{where} attribute {key!r}")
            pattern = forms[-1][1] if forms else re.compile("(?!)")
        else:
            problems.append(f"{where}: attribute {key!r} needs values, enum or pattern")
            values = ()
        if values is not None and other in values:
            problems.append(f"{where}: {other!r} is implicit and must not be listed")
        text = Text(spec["en"], spec["de"]) if "en" in spec else None
        return Attribute(key, values, pattern, bool(spec.get("required", False)), text, other,
                         since(spec, f"{where} attribute {key!r}"),
                         {v: n for v, n in listed if n > 1}, forms)

    resource = {}
    for item in raw.get("resource", []):
        resource[item["key"]] = attribute(item["key"], item, f"resource {item['key']}")
        if "en" not in item or "de" not in item:
            problems.append(f"resource {item['key']}: needs en and de descriptions")

    metrics: dict[str, Metric] = {}
    proto_max = int(raw.get("protocol", {}).get("max_counter_value", 1_000_000))
    for item in raw.get("metric", []):
        name = item.get("name", "")
        where = f"metric {name!r}"
        if not _NAME.match(name):
            problems.append(f"{where}: not a dotted lower-case name")
        if name in metrics:
            problems.append(f"{where}: listed twice")
        if item.get("instrument") not in _INSTRUMENTS:
            problems.append(f"{where}: instrument must be one of {_INSTRUMENTS}")
        if item.get("weekly") not in _WEEKLY:
            problems.append(f"{where}: weekly must be one of {_WEEKLY}")
        if not item.get("en") or not item.get("de"):
            problems.append(f"{where}: needs en and de descriptions")
        attrs = {k: attribute(k, v, where) for k, v in item.get("attributes", {}).items()}
        maximum = item.get("max", proto_max)
        if not isinstance(maximum, int) or maximum < 0:
            problems.append(f"{where}: max must be a whole number of at least 0")
            maximum = proto_max
        if item.get("out_of_range", "clamp") not in ("clamp", "drop"):
            problems.append(f"{where}: out_of_range must be clamp or drop")
        metrics[name] = Metric(
            name=name,
            instrument=item.get("instrument", "counter"),
            unit=item.get("unit", "1"),
            weekly=item.get("weekly", "sum"),
            since=since(item, where),
            text=Text(item.get("en", ""), item.get("de", "")),
            attributes=attrs,
            max=maximum,
            out_of_range="drop" if item.get("out_of_range") == "drop" else "clamp",
        )
    never = tuple(Text(n["en"], n["de"]) for n in raw.get("never", []))
    roles = _roles(raw.get("roles", {}), metrics, problems)
    privacy = _privacy(policy_raw.get("privacy"), metrics, resource, problems)
    policy = _policy(policy_raw, other, privacy, problems)
    if problems:
        raise CatalogError("invalid catalog:\n- " + "\n- ".join(problems))
    proto = raw.get("protocol", {})
    protocol = Protocol(
        metrics_path=str(proto.get("metrics_path", "/v1/metrics")),
        installation_path=str(
            proto.get("installation_path", "/v1/installations/{installation_id}")),
        credential_header=str(proto.get("credential_header", "X-Otel-Usage-Credential")),
        max_body_bytes=int(proto.get("max_body_bytes", 65536)),
        max_counter_value=int(proto.get("max_counter_value", 1_000_000)),
        erasure_metric=str(proto.get("erasure_metric", "otel_usage.erasure")),
        erased_status=int(proto.get("erased_status", 410)),
        erased_message=str(proto.get("erased_message", "otel_usage.installation_erased")),
        client_pseudonym_header=str(proto.get("client_pseudonym_header", "X-Otel-Usage-Client")),
    )
    return Catalog(version, policy, protocol, metrics, resource, never, roles,
                   _public(raw.get("public", {})))


def _public(raw: Mapping[str, Any]) -> Public:
    """`[public]`; its schema is named relative to the packaged catalog's folder."""
    path = str(raw.get("path", "/stats/"))
    if not (path.startswith("/") and path.endswith("/")):
        raise CatalogError(f"invalid catalog:\n- public: path {path!r} must start and end with /")
    return Public(path, int(raw.get("format", 1)),
                  CATALOG_PATH.with_name(str(raw.get("schema", "public.schema.json"))))


_WINDOWS = ("publish_after_days", "raw_weeks_after_publication", "tombstone_days",
            "installation_silent_days")
# A tombstone must outlive the acceptance of any report sent before its erasure: the week
# still open at the erasure (7 days), that week's reporting window, and a day for the erasure
# being dated by its day and for the clock skew the ingest allows.
_TOMBSTONE_MARGIN_DAYS = 8


def _policy(raw: Mapping[str, Any], other: str, privacy: Privacy,
            problems: list[str]) -> Policy:
    """`[policy]`, with its windows checked against each other."""
    defaults = Policy(outbox_max_age_weeks=8, other_value=other)
    names = ("outbox_max_age_weeks", *_WINDOWS)
    values = {name: raw.get(name, getattr(defaults, name)) for name in names}
    for name, value in values.items():
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            problems.append(f"policy: {name} must be a whole number of at least 0")
            values[name] = getattr(defaults, name)
    policy = Policy(other_value=other, privacy=privacy, **values)
    if policy.tombstone_days < policy.publish_after_days + _TOMBSTONE_MARGIN_DAYS:
        problems.append("policy: tombstone_days must be at least publish_after_days + "
                        f"{_TOMBSTONE_MARGIN_DAYS}: a report sent before an erasure may "
                        "arrive that late")
    if policy.installation_silent_days <= policy.raw_days:
        problems.append("policy: installation_silent_days must be more than the days a raw "
                        f"week is kept ({policy.raw_days}): the credential guards its erasure")
    return policy


def _roles(raw: Mapping[str, Any], metrics: Mapping[str, Metric],
           problems: list[str]) -> dict[str, Role]:
    """`[roles]`: each names a catalog metric, its breakdown key, and allowed `where` values."""
    roles: dict[str, Role] = {}
    for name in ROLES:
        if name not in raw:
            problems.append(f"roles: {name!r} is missing")
    for name, spec in raw.items():
        metric = metrics.get(str(spec.get("metric", "")))
        if metric is None:
            problems.append(f"role {name!r}: unknown metric {spec.get('metric')!r}")
            continue
        key, where = spec.get("key"), dict(spec.get("where", {}))
        for k in ([key] if key else []) + list(where):
            if k not in metric.attributes:
                problems.append(f"role {name!r}: {metric.name} has no attribute {k!r}")
        for k, v in where.items():
            if k in metric.attributes and not metric.attributes[k].allows(v):
                problems.append(f"role {name!r}: {v!r} is not a value of {k!r}")
        roles[name] = Role(name, metric, key, where)
    return roles


def _privacy(raw: Any, metrics: Mapping[str, Metric], resource: Mapping[str, Attribute],
             problems: list[str]) -> Privacy:
    """`[policy.privacy]`: the budget, and a release per resource attribute and metric, each
    naming only what the catalog has."""
    if not isinstance(raw, dict):
        problems.append("policy: privacy (the publication's budget and bounds) is missing")
        return _NO_PRIVACY
    epsilon, delta = _number(raw, "weekly_epsilon", "policy.privacy", problems), _number(
        raw, "delta", "policy.privacy", problems)
    selection = _number(raw, "selection_delta", "policy.privacy", problems)
    if epsilon <= 0 or not 0 < delta < 1 or not 0 <= selection * 52 < delta:
        problems.append("policy.privacy: needs weekly_epsilon > 0, 0 < delta < 1 and "
                        "selection_delta below delta for a year of weeks (52)")
    yearly = _number(raw, "yearly_epsilon", "policy.privacy", problems)
    if yearly < epsilon:
        problems.append("policy.privacy: yearly_epsilon (a year of weeks) is below "
                        "weekly_epsilon")
    releases = {key: _resource_release(spec, resource.get(key), f"policy.privacy.resource {key!r}",
                                       problems)
                for key, spec in dict(raw.get("resource", {})).items()}
    published = {name: _metric_release(spec, metrics.get(name),
                                       f"policy.privacy.metrics {name!r}", problems)
                 for name, spec in dict(raw.get("metrics", {})).items()}
    return Privacy(epsilon, delta, selection, _number(raw, "active", "policy.privacy", problems),
                   releases, published, yearly)


def _number(spec: Mapping[str, Any], key: str, where: str, problems: list[str]) -> float:
    """A weight or budget figure: a number of at least 0 (absent: 0)."""
    value = spec.get(key, 0)
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        problems.append(f"{where}: {key} must be a number of at least 0")
        return 0.0
    return float(value)


def _resource_release(spec: Any, attribute: Attribute | None, where: str,
                      problems: list[str]) -> ResourceRelease:
    if attribute is None or not isinstance(spec, dict):
        problems.append(f"{where}: not a resource attribute of the catalog")
        return ResourceRelease(0.0)
    values, select = spec.get("values"), spec.get("select")
    if select not in (None, "exact", "minor"):
        problems.append(f"{where}: select must be exact or minor")
        select = None
    if attribute.values is not None and (values is not None or select is not None):
        problems.append(f"{where}: an enum is published by its own values")
    if attribute.values is None and (values is None) == (select is None):
        problems.append(f"{where}: a pattern attribute needs either values or select")
    listed = tuple(values) if isinstance(values, list) else None
    if listed is not None and (len(set(listed)) != len(listed)
                               or not all(attribute.allows(v) for v in listed)):
        problems.append(f"{where}: values must be distinct values of {attribute.key}")
    return ResourceRelease(_number(spec, "weight", where, problems), listed, select)


def _metric_release(spec: Any, metric: Metric | None, where: str,
                    problems: list[str]) -> MetricRelease:
    if metric is None or not isinstance(spec, dict):
        problems.append(f"{where}: not a metric of the catalog")
        return MetricRelease()
    total = dict(spec.get("total", {}))
    clamp = total.get("clamp", 0)
    weight = _number(total, "weight", where + " total", problems)
    if weight and not (isinstance(clamp, int) and 1 <= clamp <= metric.max):
        problems.append(f"{where}: a total needs a clamp from 1 to the metric's max")
    by = {}
    for key, item in dict(spec.get("by", {})).items():
        attribute = metric.attributes.get(key)
        values = dict(item).get("values") if isinstance(item, dict) else None
        if attribute is None or attribute.values is None:
            problems.append(f"{where}: {key!r} is not an enum attribute of the metric")
        elif not isinstance(values, int) or not 1 <= values <= len(attribute.values) + 1:
            problems.append(f"{where}: {key!r} needs values from 1 to its number of values")
        else:
            by[key] = Breakdown(_number(item, "weight", f"{where} {key!r}", problems), values)
    return MetricRelease(_number(spec, "distribution", where, problems), weight,
                         clamp if isinstance(clamp, int) else 0, by)


if __name__ == "__main__":
    main()
