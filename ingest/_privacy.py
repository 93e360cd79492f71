"""A closed week's publication, differentially private: one composed OpenDP measurement.

Given the week's installation-weeks as the store keeps them (each installation's resource
attributes and its points) and the catalog, `Mechanism.publish` returns every number the week
publishes, each drawn once with noise from OpenDP, beside the scale of that noise; and
`Mechanism.loss` states what the week costs each installation in privacy, by the library's own
accounting.

- The unit of privacy is one installation-week. The records become one Polars frame of
  (installation, group, value, amount) rows: an installation has a row among the active ones,
  one per resource attribute (its value mapped onto the published partitions), one per
  metric's weekly total (its bucket and itself), and one per value with a positive weekly
  amount in each breakdown. The installation's number is the identifier by which OpenDP
  bounds what one installation contributes.
- Each release of the catalog's `[policy.privacy]` is a private LazyFrame measurement with
  discrete Gaussian noise under zero-concentrated DP. The library's own truncation keeps one
  row per installation and group, and at most the policy's number of values per breakdown (its
  largest); its clamp bounds each total. Partitions are the catalog's (its enums, the values
  it lists), joined as public keys, or the library's partition selection where the catalog
  says `select`. Each release's noise is calibrated by the library's privacy map to its
  weight's share of the week's budget.
- The releases are composed into one measurement (an adaptive composition whose every query is
  fixed up front) and invoked once on the week's frame: that is when the noise is drawn.
  Its privacy map is the week's loss (rho, and the δ of partition selection); the library
  converts it to (ε, δ), and composes it over a year of weeks.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import opendp.prelude as dp
import polars as pl
from opendp.extras.polars import DPExpr, Margin, dp_len

from otel_usage.catalog import Catalog, Metric, Privacy

from .views import DISTRIBUTION_BUCKETS

__all__ = ["Cell", "Loss", "Mechanism", "Publication", "Record", "margin", "mechanism"]

dp.enable_features("contrib")  # OpenDP's mechanisms; "floating-point" stays off: counts only

# The points of one installation-week: (metric, attributes, weekly value).
Points = Iterable[tuple[str, Mapping[str, str], int]]
# One installation-week: its resource attributes and its points, as `weekly_reports` has them.
Record = tuple[Mapping[str, str], Points]

WEEKS_PER_YEAR = 52
# A loose public bound on the rows of one group, which OpenDP needs to rule out overflowing
# integer sums (Casacuberta et al., "Widespread underestimation of sensitivity").
MAX_ROWS = 10**9
_ZCDP = dp.zero_concentrated_divergence()
_MEASURE = dp.approximate(_ZCDP)


@dataclass(frozen=True)
class Cell:
    """One published number (or two): a group of one week and its noisy installations and
    total, each with the standard deviation of its noise (None where not published).

    `kind` is "active", "resource" (installations per value of a resource attribute),
    "distribution" (installations by the bucket of a metric's weekly total, `value` its lower
    bound), or "metric" (per value of an attribute: installations with a positive weekly value;
    with attribute and value empty: the clamped total of the whole metric)."""

    kind: str
    metric: str
    attribute: str
    value: str
    installations: int | None
    installations_scale: float | None
    total: int | None = None
    total_scale: float | None = None


@dataclass(frozen=True)
class Loss:
    """The privacy loss of one week's publication for one installation-week, and of a year
    of weekly publications composed, by the library's accounting: rho (zCDP), and (ε, δ) of
    which the partition selection spends `selection_delta` per week."""

    rho: float
    selection_delta: float
    epsilon: float
    delta: float
    yearly_epsilon: float


@dataclass(frozen=True)
class Publication:
    """A week's cells, drawn once, and the loss that drawing cost."""

    cells: tuple[Cell, ...]
    loss: Loss


def margin(scale: float, alpha: float = 0.05) -> float:
    """Half the width of the interval that holds the true value with probability 1 - alpha
    (95 % by default), for discrete Gaussian noise of this scale (the library's figure)."""
    return float(dp.discrete_gaussian_scale_to_accuracy(scale, alpha))


# The releases: what one private query publishes, and its plan on the week's frame. --------

@dataclass(frozen=True)
class Release:
    """One query of the week: the cells it fills (kind, metric, attribute), its share of the
    budget, the rows it reads (`group`), its public values (None: partition selection), and
    its contribution bounds: a total's `clamp`, a breakdown's most `values` per installation."""

    kind: str
    metric: str
    attribute: str
    weight: float
    group: int
    keys: tuple[str, ...] | None
    clamp: int = 0
    values: int = 0

    def plan(self, frame: pl.LazyFrame) -> pl.LazyFrame:
        """The query on the week's frame. Truncation in the library's own form (so that its
        privacy map knows): one row per installation, or per installation and value with at
        most `values` values, its largest."""
        rows = frame.filter(pl.col(GROUP) == self.group)
        if self.values:
            rows = rows.filter(pl.int_range(pl.len()).over(ID, VALUE) < 1)
        else:
            rows = rows.filter(pl.int_range(pl.len()).over(ID) < 1)
        if self.values and self.keys is not None and self.values < len(self.keys):
            # Dense ranks of (amount, value), distinct per value: the `values` largest are kept.
            # The library recognises a rank of a struct holding the grouping column as a bound
            # on groups per identifier (of a plain number it would not, and charge every key).
            # Where every value may count, the public keys are the bound, and no rank is needed.
            largest = pl.struct(AMOUNT, VALUE).rank("dense", descending=True).over(ID)
            rows = rows.filter(largest <= self.values)
        if self.clamp:
            # `pl.col(AMOUNT).dp.sum(...)`, spelt so that mypy sees it: OpenDP's is untyped.
            summed = DPExpr(pl.col(AMOUNT)).sum((0, self.clamp))  # type: ignore[no-untyped-call]
            return rows.select(summed)
        if self.kind == "active":
            return rows.select(dp_len(signed=True))
        counted = rows.group_by(VALUE).agg(dp_len(signed=True))
        if self.keys is None:
            return counted
        public = pl.LazyFrame({VALUE: pl.Series(range(len(self.keys)), dtype=pl.UInt32)})
        return public.join(counted, on=VALUE, how="left", nulls_equal=True)


def _partitions(catalog: Catalog, key: str) -> tuple[str, ...] | None:
    """The published values of a resource attribute: its enum's and "other", the values the
    policy lists and "other", or None (partition selection)."""
    attribute, release = catalog.resource[key], catalog.policy.privacy.resource[key]
    listed = attribute.values if attribute.values is not None else release.values
    return None if listed is None else (*listed, attribute.other)


def buckets(metric: Metric) -> tuple[int, ...]:
    """The buckets a metric's weekly total can fall in: those whose lower bound is within the
    largest total its points allow (the catalog's `max` per attribute combination)."""
    combinations = math.prod(len(a.values) + 1 if a.values is not None else MAX_ROWS
                             for a in metric.attributes.values())
    largest = metric.max * combinations
    return tuple(b for b in DISTRIBUTION_BUCKETS if b <= largest)


def releases(catalog: Catalog) -> list[Release]:
    """Every query of a week with a weight, in the order of `[policy.privacy]`."""
    privacy = catalog.policy.privacy
    out: list[tuple[str, str, str, float, tuple[str, ...] | None, int, int]] = [
        ("active", "", "", privacy.active, (), 0, 0)]
    for key, spec in privacy.resource.items():
        out.append(("resource", "", key, spec.weight, _partitions(catalog, key), 0, 0))
    for name, release in privacy.metrics.items():
        metric = catalog.metrics[name]
        out.append(("distribution", name, "", release.distribution,
                    tuple(str(b) for b in buckets(metric)), 0, 0))
        out.append(("metric", name, "", release.total, (), release.clamp, 0))
        for key, by in release.by.items():
            attribute = metric.attributes[key]
            out.append(("metric", name, key, by.weight, (*(attribute.values or ()),
                                                         attribute.other), 0, by.values))
    groups: dict[tuple[str, str], int] = {}  # a metric's distribution and total share rows
    found = []
    for kind, name, key, weight, keys, clamp, values in out:
        if weight > 0:
            rows = ("weekly total", name) if kind == "distribution" or clamp else (
                f"{kind} {key}", name)
            group = groups.setdefault(rows, len(groups))
            found.append(Release(kind, name, key, weight, group, keys, clamp, values))
    return found


# The week's frame: what the releases read. --------------------------------------------------

ID, GROUP, VALUE, AMOUNT = "installation", "group", "value", "amount"
SCHEMA: dict[str, type[pl.DataType]] = {ID: pl.UInt32, GROUP: pl.UInt32, VALUE: pl.UInt32,
                                        AMOUNT: pl.Int64}


def domain() -> Any:
    """The frame's OpenDP domain, with the loose public bound on its length that sums need."""
    series = [dp.series_domain(name, dp.atom_domain(T=dp.i64 if name == AMOUNT else dp.u32))
              for name in SCHEMA]
    return dp.with_margin(dp.lazyframe_domain(series), Margin(max_length=MAX_ROWS))


class _Layout:
    """How installation-weeks become the frame's rows: (installation, group, value, amount).
    An installation has a row in each group it counts in: the active installations, each
    resource attribute, each metric's weekly total (its bucket as value, itself as amount: the
    distribution and the total read the same rows), and a row per value with a positive weekly
    amount in each breakdown. Values are their index in the release's keys (or, for partition
    selection, in the week's own list of values, which decodes only what it lets through)."""

    def __init__(self, catalog: Catalog, found: list[Release]) -> None:
        by = {(r.kind, r.metric, r.attribute): r for r in found}
        self.active = by[("active", "", "")].group if ("active", "", "") in by else None
        self.resource = [(r.attribute, r.group, _mapper(catalog, r.attribute), _codes(r.keys))
                         for r in found if r.kind == "resource"]
        # A metric's weekly total per installation: its bucket as the value, itself as amount.
        bounds = {r.metric: tuple(int(k) for k in r.keys or ()) for r in found
                  if r.kind == "distribution"}
        self.totals = {r.metric: (r.group, bounds.get(r.metric, ())) for r in found
                       if r.kind == "distribution" or r.clamp}
        self.by: dict[str, list[tuple[str, int, dict[str, int]]]] = {}
        for r in found:
            if r.values:
                entry = (r.attribute, r.group, _codes(r.keys) or {})
                self.by.setdefault(r.metric, []).append(entry)

    def frame(self, records: Iterable[Record]) -> tuple[pl.DataFrame, dict[int, list[str]]]:
        """The week's frame, and the values partition selection may decode, per group."""
        rows: list[tuple[int, int, int, int]] = []
        selected: dict[int, dict[str, int]] = {}
        for index, (resource, points) in enumerate(records):
            self._rows(rows, index, resource, points, selected)
        frame = pl.DataFrame(rows, schema=SCHEMA, orient="row")
        return frame, {group: list(codes) for group, codes in selected.items()}

    def _rows(self, rows: list[tuple[int, int, int, int]], index: int,
              resource: Mapping[str, str], points: Points,
              selected: dict[int, dict[str, int]]) -> None:
        """Append one installation's rows."""
        totals, amounts = self._sums(points)
        if self.active is not None:
            rows.append((index, self.active, 0, 0))
        for key, group, mapped, codes in self.resource:
            value = mapped(resource.get(key))
            if value is not None:
                known = codes if codes is not None else selected.setdefault(group, {})
                rows.append((index, group, known.setdefault(value, len(known)), 0))
        for name, (group, limits) in self.totals.items():
            total = totals.get(name, 0)
            bucket = max(0, bisect.bisect_right(limits, total) - 1) if limits else 0
            rows.append((index, group, bucket, total))
        rows += [(index, group, code, amount) for (group, code), amount in amounts.items()
                 if amount > 0]

    def _sums(self, points: Points) -> tuple[dict[str, int], dict[tuple[int, int], int]]:
        """An installation's weekly total per metric, and per breakdown and value code."""
        totals: dict[str, int] = {}
        amounts: dict[tuple[int, int], int] = {}
        by = self.by
        for metric, attributes, value in points:
            totals[metric] = totals.get(metric, 0) + value
            if metric in by:
                for attribute, group, codes in by[metric]:
                    if (found := attributes.get(attribute)) is not None:
                        key = (group, codes.get(found, len(codes) - 1))  # unknown: "other"
                        amounts[key] = amounts.get(key, 0) + value
        return totals, amounts


def _codes(keys: tuple[str, ...] | None) -> dict[str, int] | None:
    return None if keys is None else {key: code for code, key in enumerate(keys)}


def _mapper(catalog: Catalog, key: str) -> Callable[[str | None], str | None]:
    """A resource value as published: one of its partitions ("other" for the rest), or for
    partition selection the value itself (its minor version with select = "minor")."""
    keys = _partitions(catalog, key)
    other = catalog.resource[key].other
    if keys is not None:
        known = frozenset(keys)
        return lambda value: value if value is None or value in known else other
    if catalog.policy.privacy.resource[key].select == "minor":
        return lambda value: None if value is None else ".".join(value.split(".")[:2])
    return lambda value: value


# The composed measurement. ------------------------------------------------------------------

class Mechanism:
    """The week's publication as one composed measurement, built once per catalog from its
    `[policy.privacy]` (it depends on no data)."""

    def __init__(self, catalog: Catalog) -> None:
        self.catalog = catalog
        self.releases = releases(catalog)
        self._layout = _Layout(catalog, self.releases)
        self._domain = domain()
        self._metric = dp.symmetric_id_distance(ID)
        self._empty = pl.LazyFrame(schema=SCHEMA)
        privacy = catalog.policy.privacy
        rho = self._budget(privacy)
        weights = sum(r.weight for r in self.releases)
        selections = sum(r.keys is None for r in self.releases) or 1
        built = [self._calibrate(r, rho * r.weight / weights, privacy.selection_delta / selections)
                 for r in self.releases]
        self.measurements = [measurement for measurement, _ in built]
        self.scales = [scale for _, scale in built]
        self.measurement: Any = dp.c.make_adaptive_composition(
            self._domain, self._metric, _MEASURE, 1, [m.map(1) for m in self.measurements])
        self.loss = self._loss(privacy)

    def publish(self, records: Iterable[Record]) -> Publication:
        """The week's cells from its installation-weeks (one record per installation): the
        composed measurement is invoked once, and each release's noise drawn once."""
        frame, selected = self.frame(records)
        queryable = self.measurement(frame.lazy())
        cells: list[Cell] = []
        for index, measurement in enumerate(self.measurements):
            cells += self.cells(index, queryable(measurement).collect(), selected)
        cells.sort(key=lambda c: (c.kind, c.metric, c.attribute, c.value))
        return Publication(tuple(cells), self.loss)

    def frame(self, records: Iterable[Record]) -> tuple[pl.DataFrame, dict[int, list[str]]]:
        """What the measurement reads: the week's rows, and per partition selection the values
        its codes stand for."""
        return self._layout.frame(records)

    def cells(self, index: int, result: pl.DataFrame,
              selected: Mapping[int, Sequence[str]]) -> list[Cell]:
        """Release `index`'s result as cells, its values decoded (partition selection: those
        it let through)."""
        release, scale = self.releases[index], self.scales[index]
        if release.clamp:
            total = int(result[AMOUNT][0])
            return [Cell(release.kind, release.metric, "", "", None, None, total, scale)]
        if release.kind == "active":
            return [Cell("active", "", "", "", int(result["len"][0]), scale)]
        keys = release.keys if release.keys is not None else selected.get(release.group, ())
        return [Cell(release.kind, release.metric, release.attribute, keys[code], int(count),
                     scale) for code, count in zip(result[VALUE], result["len"], strict=True)]

    def epsilon(self, weeks: int = 1) -> float:
        """Epsilon at the policy's delta of `weeks` weekly publications composed (what an
        attacker reading that many weeks can learn of one installation at most)."""
        return self._epsilon([self.measurement.map(1)] * weeks, self.catalog.policy.privacy)

    def _make(self, release: Release, scale: float, threshold: int | None = None) -> Any:
        selection = release.keys is None
        made = dp.m.make_private_lazyframe(
            self._domain, self._metric, _MEASURE if selection else _ZCDP,
            release.plan(self._empty), global_scale=scale, threshold=threshold)
        return made if selection else dp.c.make_approximate(made)

    def _calibrate(self, release: Release, rho: float, delta: float) -> tuple[Any, float]:
        """The release's measurement at the least noise its share `rho` allows (the library's
        privacy map at unit scale, which falls with the square of the scale), and with the
        smallest threshold whose δ stays within `delta` for partition selection; and the
        standard deviation of its noise, as the library summarises it."""
        unit = self._make(release, 1.0, _NO_THRESHOLD if release.keys is None else None)
        scale = math.sqrt(unit.map(1)[0] / rho) * (1 + 1e-9)
        threshold = None
        if release.keys is None:
            threshold = int(dp.binary_search(
                lambda t: bool(self._make(release, scale, int(t)).map(1)[1] <= delta),
                bounds=(2, 2**31 - 1), T=int))
        measurement = self._make(release, scale, threshold)
        plain = dp.m.make_private_lazyframe(
            self._domain, self._metric, _MEASURE if release.keys is None else _ZCDP,
            release.plan(self._empty), global_scale=scale, threshold=threshold)
        summary = dp.summarize_polars_measurement(plain)
        return measurement, float(summary["scale"][0])

    def _budget(self, privacy: Privacy) -> float:
        """The largest weekly rho whose (ε, δ) stays within the policy's, by the library's
        conversion (the selection's δ set aside)."""
        def fits(rho: float) -> bool:
            return self._epsilon([(rho, privacy.selection_delta)], privacy) <= (
                privacy.weekly_epsilon)
        return float(dp.binary_search(fits, bounds=(1e-9, 100.0), T=float))

    def _epsilon(self, losses: list[tuple[float, float]], privacy: Privacy) -> float:
        """ε at the policy's δ of these weekly losses (rho, δ) composed, by the library."""
        composed = dp.c.make_adaptive_composition(self._domain, self._metric, _MEASURE, 1,
                                                  losses)
        converted: Any = dp.c.make_zCDP_to_approxDP(composed)
        profile, spent = converted.map(1)
        return float(profile.epsilon(privacy.delta - spent))

    def _loss(self, privacy: Privacy) -> Loss:
        rho, spent = self.measurement.map(1)
        week = (rho, spent)
        return Loss(rho=float(rho), selection_delta=float(spent),
                    epsilon=self._epsilon([week], privacy), delta=privacy.delta,
                    yearly_epsilon=self._epsilon([week] * WEEKS_PER_YEAR, privacy))


_NO_THRESHOLD = 2**32 - 1  # the library's own "no threshold yet" while it searches a scale


_MECHANISMS: dict[int, tuple[Catalog, Mechanism]] = {}


def mechanism(catalog: Catalog) -> Mechanism:
    """The mechanism of a catalog, built on first use and kept (with the catalog, so that its
    identity stays unique)."""
    kept = _MECHANISMS.get(id(catalog))
    if kept is None:
        kept = _MECHANISMS[id(catalog)] = (catalog, Mechanism(catalog))
    return kept[1]
