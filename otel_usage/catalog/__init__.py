"""The catalog: the one contract of what may leave a machine.

`catalog.toml` beside this package is the reviewed source, read and checked by
:mod:`.source`, which also compiles it to `catalog.json` beside it: the checked catalog's
values, which a start loads with the JSON module the host already has, and neither a TOML
parser nor the checks (about 0.15 MiB of the host's memory between them). This module holds
the values and answers the questions every part asks of them (is this metric known, is this
value allowed, what does it become when scrubbed). The ingest and the dashboards read it too.
"""

from __future__ import annotations

import functools
import inspect
import re
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

# Beside the package, in the client's folder: otel_usage/catalog.toml, otel_usage/catalog.json.
CATALOG_PATH = Path(__file__).parent.with_name("catalog.toml")
COMPILED_PATH = CATALOG_PATH.with_name("catalog.json")
PUBLIC_SCHEMA_PATH = CATALOG_PATH.with_name("public.schema.json")

Instrument = Literal["counter", "observable_counter", "gauge", "observable_gauge"]
Weekly = Literal["sum", "max", "days"]
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
    """The catalog (cached). A `path` is a catalog TOML file, read and checked. The default is
    the packaged catalog: its compiled form when that was compiled from the `catalog.toml`
    beside it (its `source_crc32`), else that file, read and checked (an edited catalog is
    never outrun by a stale compiled one)."""
    if path is None:
        compiled = _load_compiled()
        if compiled is not None:
            return compiled
    from .source import read

    return read(path or CATALOG_PATH)


def _load_compiled() -> Catalog | None:
    import json
    import zlib  # hashlib would load OpenSSL into a host that has not (3.7 MiB)

    try:
        with open(COMPILED_PATH, encoding="utf-8") as fh:
            document = json.load(fh)
        source = zlib.crc32(CATALOG_PATH.read_bytes())
        if not isinstance(document, dict) or document.get("source_crc32") != source:
            return None
        catalog = _decode(document["catalog"])
    except Exception:  # unreadable, or not a compiled catalog: the TOML is read instead
        return None
    return catalog if isinstance(catalog, Catalog) else None


_KINDS: dict[str, type[_Value]] = {kind.__name__: kind for kind in (
    Text, Attribute, Metric, Role, ResourceRelease, Breakdown, MetricRelease, Privacy, Policy,
    Protocol, Public, Catalog)}


def _decode(value: Any, metrics: Mapping[str, Metric] | None = None) -> Any:
    """A value of the compiled catalog (:func:`.source.compiled` wrote it): a value
    class's fields by name (defaults left out), lists for tuples, and tagged mappings, patterns,
    files beside the catalog and a role's metric (the catalog's own, by name)."""
    if isinstance(value, list):
        return tuple(_decode(item, metrics) for item in value)
    if not isinstance(value, dict):
        return value
    if "$map" in value:
        return {key: _decode(item, metrics) for key, item in value["$map"].items()}
    if "$re" in value:
        return re.compile(value["$re"])
    if "$file" in value:
        return CATALOG_PATH.with_name(value["$file"])
    if "$metric" in value:
        assert metrics is not None
        return metrics[value["$metric"]]
    fields: dict[str, Any] = {}
    for name, item in value.items():
        if name != "$":
            fields[name] = _decode(item, fields.get("metrics", metrics))
    return _KINDS[value["$"]](**fields)
