"""The catalog: the one contract of what may leave a machine.

`catalog.toml` beside this module is the reviewed source; this module loads and checks it and
answers the questions every part asks of it (is this metric known, is this value allowed, what
does it become when scrubbed). The ingest and the dashboards read it too.
"""

from __future__ import annotations

import functools
import inspect
import itertools
import re
import tomllib
from collections.abc import Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Any, ClassVar, Literal, Self, dataclass_transform

__all__ = [
    "Addition",
    "Attribute",
    "Breakdown",
    "Catalog",
    "CatalogError",
    "Metric",
    "MetricRelease",
    "Policy",
    "Privacy",
    "Protocol",
    "ResourceRelease",
    "Role",
    "Text",
    "load_catalog",
]

CATALOG_PATH = Path(__file__).with_name("catalog.toml")
PUBLIC_SCHEMA_PATH = CATALOG_PATH.with_name("public.schema.json")

Instrument = Literal["counter", "observable_counter", "gauge", "observable_gauge"]
Weekly = Literal["sum", "max", "days"]
_INSTRUMENTS = ("counter", "observable_counter", "gauge", "observable_gauge")
_WEEKLY = ("sum", "max", "days")
_NAME = re.compile(r"^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)*$")
# The roles the client library needs (what it records itself, what its viewer sums up).
ROLES = ("app_starts", "uptime", "printers", "features", "jobs_completed", "files_downloaded",
         "errors")


class CatalogError(ValueError):
    """The catalog file is malformed; the message lists every problem found."""


# An empty mapping, the default of the mapping fields (shared: it cannot change).
_EMPTY: Mapping[Any, Any] = MappingProxyType({})


@dataclass_transform(frozen_default=True)
class _Value:
    """A frozen value: its fields (the class's annotations, in order, after its bases'), set
    once by keyword or position, compared, hashed and shown by their values, as a frozen
    dataclass is. A dataclass compiles code of its own for each class (about 9 KiB each, held
    in the memory of every host that loads the catalog); these share the code below."""

    _fields: ClassVar[tuple[str, ...]] = ()
    _defaults: ClassVar[dict[str, Any]] = {}

    def __init_subclass__(cls) -> None:
        own = [name for name, kind in inspect.get_annotations(cls).items()
               if not str(kind).startswith("ClassVar")]
        cls._fields = (*cls._fields, *own)
        cls._defaults = {**cls._defaults, **{n: cls.__dict__[n] for n in own if n in cls.__dict__}}

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        fields = self._fields
        if len(args) > len(fields):
            raise TypeError(f"{type(self).__name__} takes {len(fields)} values, not {len(args)}")
        values = dict(zip(fields, args, strict=False))
        for name, value in kwargs.items():
            if name not in fields or name in values:
                raise TypeError(f"{type(self).__name__}: unexpected or repeated {name!r}")
            values[name] = value
        for name in fields:
            if name not in values and name not in self._defaults:
                raise TypeError(f"{type(self).__name__}: {name!r} is missing")
            object.__setattr__(self, name, values.get(name, self._defaults.get(name)))

    def _values(self) -> tuple[Any, ...]:
        return tuple(getattr(self, name) for name in self._fields)

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        return self._values() == other._values()

    def __hash__(self) -> int:
        return hash(self._values())

    def __repr__(self) -> str:
        shown = ", ".join(f"{n}={getattr(self, n)!r}" for n in self._fields)
        return f"{type(self).__name__}({shown})"

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError(f"{type(self).__name__} is frozen: cannot set {name!r}")

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"{type(self).__name__} is frozen: cannot delete {name!r}")

    def replace(self, **changes: Any) -> Self:
        """A copy with `changes` (as :func:`dataclasses.replace`)."""
        return type(self)(**{n: getattr(self, n) for n in self._fields} | changes)


class Text(_Value):
    """A user-facing sentence in English and German."""

    en: str
    de: str

    def get(self, language: str) -> str:
        return self.de if language == "de" else self.en


class Attribute(_Value):
    """An attribute key with its allowed values (an enum) or a strict pattern."""

    key: str
    values: tuple[str, ...] | None = None
    pattern: re.Pattern[str] | None = None
    required: bool = False
    text: Text | None = None
    other: str = "other"
    # The catalog version that added the key, and that added each value (absent: 1).
    since: int = 1
    value_since: Mapping[str, int] = _EMPTY
    # A pattern's forms, oldest first, each with the catalog version that brought it in (a
    # pattern widened later keeps its older form for the users who agreed to an older
    # version); `pattern` is the newest. Empty for an enum.
    pattern_forms: tuple[tuple[int, re.Pattern[str]], ...] = ()

    def value_version(self, value: str) -> int:
        """The catalog version that added `value` to the enum."""
        return self.value_since.get(value, 1)

    def as_of(self, version: int) -> Attribute:
        """The attribute as catalog `version` has it: the values added later left out, the
        pattern in the form it had then."""
        if self.values is None:
            forms = tuple(f for f in self.pattern_forms if f[0] <= version)
            if forms == self.pattern_forms or not forms:
                return self
            return self.replace(pattern=forms[-1][1], pattern_forms=forms)
        if all(v <= version for v in self.value_since.values()):
            return self
        values = tuple(v for v in self.values if self.value_version(v) <= version)
        since = {k: v for k, v in self.value_since.items() if v <= version}
        return self.replace(values=values, value_since=since)

    def allows(self, value: object) -> bool:
        if not isinstance(value, str):
            return False
        if self.values is not None:
            return value in self.values or value == self.other
        assert self.pattern is not None
        return self.pattern.fullmatch(value) is not None

    def scrub(self, value: object) -> str:
        """The value itself when allowed, else the catalog's "other"."""
        if isinstance(value, str) and self.allows(value):
            return value
        return self.other

    def sendable(self, value: object) -> bool:
        """Whether `value` is one `scrub` can give: an allowed value or "other" (for a
        pattern too: a value outside it, or outside an older catalog's form of it, is sent
        as "other"). What a receiver accepts."""
        return value == self.other or self.allows(value)

    def describe_values(self) -> str:
        if self.values is not None:
            return ", ".join(self.values)
        assert self.pattern is not None
        return f"pattern {self.pattern.pattern}"


class Metric(_Value):
    """A metric that may leave the machine."""

    name: str
    instrument: Instrument
    unit: str
    weekly: Weekly
    since: int
    text: Text
    attributes: Mapping[str, Attribute] = _EMPTY
    # The largest weekly value sent; above it a point is clamped to it or dropped. Negative
    # and non-finite values are always dropped.
    max: int = 1_000_000
    out_of_range: Literal["clamp", "drop"] = "clamp"

    @property
    def is_sum(self) -> bool:
        """Sent as a delta Sum (summed over the week) rather than a Gauge."""
        return self.weekly == "sum"


class Role(_Value):
    """A catalog metric in a part the client library plays: recording starts and days up,
    observing printers and features, summing jobs, downloads and errors in the local viewer.
    `key` is the attribute the metric is broken down by; `where` selects some of its series."""

    name: str
    metric: Metric
    key: str | None = None
    where: Mapping[str, str] = _EMPTY


class ResourceRelease(_Value):
    """How the installations per value of a resource attribute are published: the release's
    `weight` (its share of the week's privacy budget, relative to the other releases), and its
    values: an enum's own (and "other"), the `values` listed for a pattern attribute (anything
    else counts as "other"), or, with `select`, the values the mechanism's own partition
    selection lets through ("minor": a version cut to its first two parts, 3.11.7 as 3.11)."""

    weight: float
    values: tuple[str, ...] | None = None
    select: Literal["exact", "minor"] | None = None


class Breakdown(_Value):
    """Installations per value of one attribute of a metric: the release's weight, and the
    most values one installation counts in per week (its largest ones)."""

    weight: float
    values: int


class MetricRelease(_Value):
    """What is published of a metric, each with its weight (0: not published): installations
    by the bucket of their weekly total (`distribution`), the sum of the weekly totals with each
    installation's clamped to `clamp` (`total`), and installations per attribute value (`by`)."""

    distribution: float = 0.0
    total: float = 0.0
    clamp: int = 0
    by: Mapping[str, Breakdown] = _EMPTY


class Privacy(_Value):
    """The differentially private publication's budget and contribution bounds.

    One installation's report of one week is the unit of privacy. The week's whole
    publication may lose at most `weekly_epsilon` at `delta` (of which the partition selection
    of `select` releases may use `selection_delta`); each release gets a share of it by weight."""

    weekly_epsilon: float
    delta: float
    selection_delta: float
    active: float
    resource: Mapping[str, ResourceRelease] = _EMPTY
    metrics: Mapping[str, MetricRelease] = _EMPTY
    yearly_epsilon: float = 0.0  # stated: a year of weeks by the library's accounting


_NO_PRIVACY = Privacy(0.0, 0.0, 0.0, 0.0)


class Policy(_Value):
    """What the server may show, and how long it keeps what (catalog.toml's `[policy]` says
    why each window is as long as it is)."""

    outbox_max_age_weeks: int
    other_value: str
    # A week's reports are accepted until this many days after it ends; then it is published.
    publish_after_days: int = 14
    privacy: Privacy = _NO_PRIVACY
    # Raw installation-weeks are deleted once their week is published, or this many weeks later.
    raw_weeks_after_publication: int = 0
    # How long an erased installation is remembered.
    tombstone_days: int = 28
    # How long an installation may send nothing before its ID and credential hash are deleted.
    installation_silent_days: int = 90

    @property
    def raw_days(self) -> int:
        """The longest a raw installation-week is kept after the instant it arrived: its week
        may be the one still open (7 days), then its reporting window, then the weeks kept
        after publication."""
        return 7 + self.publish_after_days + 7 * self.raw_weeks_after_publication


class Protocol(_Value):
    """How a report travels between client and server."""

    metrics_path: str
    installation_path: str
    credential_header: str
    max_body_bytes: int
    max_counter_value: int
    erasure_metric: str
    erased_status: int
    erased_message: str = "otel_usage.installation_erased"
    client_pseudonym_header: str = "X-Otel-Usage-Client"


class Public(_Value):
    """The public statistics (`[public]`): where the site is served on the gateway's origin,
    the format of its JSON, and the JSON Schema that describes it (a file beside the catalog)."""

    path: str = "/stats/"
    format: int = 1
    schema: Path = PUBLIC_SCHEMA_PATH


_PUBLIC = Public()


class Catalog(_Value):
    version: int
    policy: Policy
    protocol: Protocol
    metrics: Mapping[str, Metric]
    resource: Mapping[str, Attribute]
    never: tuple[Text, ...]
    roles: Mapping[str, Role] = _EMPTY
    public: Public = _PUBLIC

    def metric(self, name: str) -> Metric | None:
        return self.metrics.get(name)

    def as_of(self, version: int) -> Catalog:
        """Exactly what catalog `version` lets leave: the metrics, attribute keys, enum values
        and resource attributes added up to it (its `version` is `version`). A user's consent
        to a version covers this view and nothing added after it."""
        if version >= self.version:
            return self
        metrics = {
            name: m.replace(attributes={
                k: a.as_of(version) for k, a in m.attributes.items() if a.since <= version})
            for name, m in self.metrics.items() if m.since <= version
        }
        resource = {k: a.as_of(version) for k, a in self.resource.items() if a.since <= version}
        return self.replace(version=version, metrics=metrics, resource=resource)

    def additions(self, since_version: int) -> tuple[Addition, ...]:
        """What this catalog lets leave that version `since_version` did not, in catalog order:
        new metrics (with their keys and values), new keys of older metrics, new values of
        older keys, new resource attributes and new values of older ones."""
        out: list[Addition] = []
        for metric in self.metrics.values():
            if metric.since > since_version:
                out.append(Addition(metric.since, "metric", metric.name, None, None,
                                    metric.text))
                continue
            for attribute in metric.attributes.values():
                if attribute.since > since_version:
                    out.append(Addition(attribute.since, "attribute", metric.name,
                                        attribute.key, None, None))
                else:
                    out += _new_values(attribute, metric.name, since_version)
        for attribute in self.resource.values():
            if attribute.since > since_version:
                out.append(Addition(attribute.since, "resource", None, attribute.key, None,
                                    attribute.text))
            else:
                out += _new_values(attribute, None, since_version)
        return tuple(out)

    def role(self, name: str) -> Role:
        """The metric playing `name` (one of ``ROLES``; the loader checks they are all there)."""
        return self.roles[name]

    @property
    def required_resource_keys(self) -> tuple[str, ...]:
        return tuple(k for k, a in self.resource.items() if a.required)


AdditionKind = Literal["metric", "attribute", "value", "pattern", "resource"]

_ADDITION_TEXT = {
    "metric": Text("New metric {metric}: {text}", "Neuer Messwert {metric}: {text}"),
    "attribute": Text("{metric}: now also by {key}", "{metric}: jetzt auch nach {key}"),
    "value": Text("{where}: new value {value!r}", "{where}: neuer Wert {value!r}"),
    "pattern": Text("{where}: now also values of the form {value}",
                    "{where}: jetzt auch Werte der Form {value}"),
    "resource": Text("New report detail {key}: {text}", "Neue Berichtsangabe {key}: {text}"),
}


class Addition(_Value):
    """One thing a catalog version added: a metric, an attribute key of an older metric, a
    value of an older key (of a metric, or of a resource attribute when `metric` is None), a
    wider form of an older key's pattern (`value` holds it), or a resource attribute."""

    version: int
    kind: AdditionKind
    metric: str | None
    key: str | None
    value: str | None
    text: Text | None

    def describe(self, language: str = "en") -> str:
        """One line for the user, in `language` ("en" or "de")."""
        where = f"{self.metric}, {self.key}" if self.metric else str(self.key)
        return _ADDITION_TEXT[self.kind].get(language).format(
            metric=self.metric, key=self.key, value=self.value, where=where,
            text=self.text.get(language) if self.text else "")

    def as_json(self) -> dict[str, Any]:
        return {"version": self.version, "kind": self.kind, "metric": self.metric,
                "key": self.key, "value": self.value, "text": self.describe("en")}


def _new_values(attribute: Attribute, metric: str | None,
                since_version: int) -> list[Addition]:
    """The values, and the wider forms of a pattern, added to an older key after
    `since_version`."""
    return [Addition(attribute.value_version(v), "value", metric, attribute.key, v, None)
            for v in attribute.values or () if attribute.value_version(v) > since_version] + [
        Addition(since, "pattern", metric, attribute.key, form.pattern, None)
        for since, form in attribute.pattern_forms if since > since_version]


@functools.cache
def load_catalog(path: Path | None = None) -> Catalog:
    """Load and check the catalog (cached; the default is the packaged `catalog.toml`)."""
    source = path or CATALOG_PATH
    with open(source, "rb") as fh:
        raw = tomllib.load(fh)
    return _parse(raw)


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
