"""The differentially private publication: its partitions, bounds, noise, stated loss, and
the attacks it must withstand.

Noise cannot be seeded (OpenDP draws it from the system's randomness), so every statistical
test chooses its threshold such that a correct implementation fails it with probability below
one in a million per run; each says how.
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping, Sequence

import opendp.prelude as dp
import polars as pl
import pytest

from ingest import _privacy as privacy
from ingest.testing import listing_releases, new_installation, points, resource
from ingest.views import DISTRIBUTION_BUCKETS
from otel_usage.catalog import Attribute, load_catalog

CATALOG = load_catalog()
POLICY = CATALOG.policy.privacy
JOBS = "printernizer.jobs"
Key = tuple[str, str, str, str]
# One in a million, split over the two sides of a two-sided test.
FAIL = 1e-6


@pytest.fixture(scope="module")
def mechanism() -> privacy.Mechanism:
    return privacy.mechanism(CATALOG)


def fleet(size: int, seed: int) -> list[privacy.Record]:
    """Installation-weeks as the store keeps them: every resource attribute, random points."""
    rng = random.Random(seed)
    return [(resource(new_installation(), rng),
             [(name, attributes, value) for name, series in points(rng).items()
              for attributes, value in series]) for _ in range(size)]


def with_jobs(record: privacy.Record, jobs: int) -> privacy.Record:
    """The record with its week's jobs replaced by `jobs` completed ones."""
    res, found = record
    kept = [p for p in found if p[0] != JOBS]
    return res, [*kept, (JOBS, {"job.status": "completed", "printer.type": "bambu_lab"}, jobs)]


def exact(mechanism: privacy.Mechanism, records: Sequence[privacy.Record],
          ) -> dict[Key, tuple[int | None, int | None]]:
    """Every keyed cell without noise: each release's own plan (its truncation and clamp)
    run by the library at scale 0, outside the composition."""
    frame, selected = mechanism.frame(records)
    empty = pl.LazyFrame(schema=privacy.SCHEMA)
    out: dict[Key, tuple[int | None, int | None]] = {}
    for index, release in enumerate(mechanism.releases):
        if release.keys is None:
            continue  # partition selection's threshold is part of its output
        measurement = dp.m.make_private_lazyframe(
            privacy.domain(), dp.symmetric_id_distance(privacy.ID),
            dp.zero_concentrated_divergence(), release.plan(empty), global_scale=0.0)
        for cell in mechanism.cells(index, measurement(frame.lazy()).collect(), selected):
            out[key(cell)] = (cell.installations, cell.total)
    return out


def key(cell: privacy.Cell) -> Key:
    return cell.kind, cell.metric, cell.attribute, cell.value


def catalog_partitions() -> set[Key]:
    """The keyed cells a week must publish, read from the catalog alone."""
    expected: set[Key] = {("active", "", "", "")}
    for name, spec in POLICY.resource.items():
        attribute = CATALOG.resource[name]
        values = attribute.values if attribute.values is not None else spec.values
        if values is not None:
            expected |= {("resource", "", name, v) for v in (*values, attribute.other)}
    for name, release in POLICY.metrics.items():
        metric = CATALOG.metrics[name]
        if release.distribution:
            expected |= {("distribution", name, "", str(b)) for b in DISTRIBUTION_BUCKETS
                         if b <= metric.max * math.prod(
                             len(a.values or ()) + 1 for a in metric.attributes.values())}
        if release.total:
            expected.add(("metric", name, "", ""))
        for attribute_key in release.by:
            attribute = metric.attributes[attribute_key]
            expected |= {("metric", name, attribute_key, v)
                         for v in (*(attribute.values or ()), attribute.other)}
    return expected


# Partitions -------------------------------------------------------------------------------

def test_a_week_publishes_exactly_the_catalogs_partitions_whatever_its_data(
        mechanism: privacy.Mechanism) -> None:
    """A category's presence never depends on the data: a busy week and an empty one publish
    the same keyed cells, each with its noise; only partition selection (Python's minor
    versions) shows values the data has, and none of an empty week."""
    selected = ("resource", "", "process.runtime.version")
    busy = {key(c) for c in mechanism.publish(fleet(40, seed=1)).cells}
    empty = {key(c) for c in mechanism.publish([]).cells}
    assert {k for k in busy if k[:3] != selected} == catalog_partitions()
    assert empty == catalog_partitions()
    assert {k[3] for k in busy if k[:3] == selected} <= {"3.11"}  # the builders' one version


def test_partition_selection_shows_a_common_minor_version_and_hides_a_rare_one(
        mechanism: privacy.Mechanism) -> None:
    """1,000 installations on 3.12 clear the selection's threshold (about 140, at a scale of
    22: missing it takes noise of 39 scales), one on 3.9 does not (clearing it takes 6 scales,
    probability about 1e-9): a correct mechanism fails this far below one in a million."""
    records = [({**res, "process.runtime.version": "3.9.1" if index == 0 else "3.12.4"}, found)
               for index, (res, found) in enumerate(fleet(1001, seed=2))]
    cells = mechanism.publish(records).cells
    shown = {c.value for c in cells if c.attribute == "process.runtime.version"}
    assert shown == {"3.12"}


def test_a_version_outside_the_catalogs_list_is_published_as_other() -> None:
    """service.version publishes only the releases the catalog lists (a release that carries
    the client adds its number): every other version, a build from source, a release before
    the client, one not yet listed, counts in "other", exactly (counted without noise by each
    release's own plan); nothing reveals which versions the data had."""
    listed = listing_releases(CATALOG, ["2.43.0"])
    versions = ["2.43.0", "2.43.0", "2.43.0-dev", "2.42.0", "2.44.0", "other"]
    records = [({**res, "service.version": version}, found)
               for version, (res, found) in zip(versions, fleet(6, seed=5), strict=True)]
    counted = {k[3]: v[0] for k, v in exact(privacy.Mechanism(listed), records).items()
               if k[2] == "service.version"}
    assert counted == {"2.43.0": 2, "other": 4}
    # The real catalog: Printernizer's releases up to 2.42.0 came before the client and never
    # report; none of them is a partition, and a build from source counts as "other" too.
    before = ["2.5.0", "2.6.3", "2.7.0", "2.42.0", "2.42.0-dev", "2.42.0"]
    records = [({**res, "service.version": version}, found)
               for version, (res, found) in zip(before, fleet(6, seed=6), strict=True)]
    real = {k[3]: v[0] for k, v in exact(privacy.Mechanism(CATALOG), records).items()
            if k[2] == "service.version"}
    assert real["other"] == 6
    assert set(real) & set(before) == set()


# Contribution bounds and the stated loss --------------------------------------------------

def test_one_installation_changes_no_cell_by_more_than_its_bound(
        mechanism: privacy.Mechanism) -> None:
    """Added to a week, an installation with extreme values (every value of every attribute,
    each at the metric's max: a thousand printers, counts far over every clamp) moves the
    active count and one cell of each resource attribute and distribution by 1, at most the
    policy's number of values of a breakdown by 1 each, and each total by its clamp."""
    base = fleet(20, seed=3)
    extreme = [(name, dict(zip(metric.attributes, combination, strict=True)), metric.max)
               for name, metric in CATALOG.metrics.items()
               for combination in _combinations(metric.attributes)]
    victim = (resource(new_installation(), random.Random(4)), extreme)
    before, after = exact(mechanism, base), exact(mechanism, [*base, victim])
    assert before.keys() == after.keys()
    for release in mechanism.releases:
        if release.keys is None:
            continue
        column = 1 if release.clamp else 0
        moves = sorted((after[k][column] or 0) - (before[k][column] or 0) for k in before
                       if k[:3] == (release.kind, release.metric, release.attribute))
        keys = len(release.keys) or 1
        kept = min(release.values, keys) if release.values else 1
        assert moves == [0] * (keys - kept) + [release.clamp or 1] * kept, release


def _combinations(attributes: Mapping[str, Attribute]) -> list[tuple[str, ...]]:
    """Every combination of a metric's attribute values (their enums and "other")."""
    combos: list[tuple[str, ...]] = [()]
    for attribute in attributes.values():
        combos = [(*c, v) for c in combos for v in (*(attribute.values or ()), attribute.other)]
    return combos


def test_each_release_costs_what_its_bound_says_by_the_librarys_privacy_map(
        mechanism: privacy.Mechanism) -> None:
    """The library's privacy map of each release, times twice its noise's variance, is the
    square of its sensitivity: 1 for a count, clamp² for a total, and for a breakdown of at
    most L values per installation L + 1 (its rank-based truncation counts one value more than
    it keeps), or the number of values where that is fewer."""
    for release, measurement, scale in zip(mechanism.releases, mechanism.measurements,
                                           mechanism.scales, strict=True):
        sensitivity = 2 * measurement.map(1)[0] * scale**2
        expected = (release.clamp ** 2 if release.clamp else
                    min(release.values + 1, len(release.keys or ())) if release.values else 1)
        assert sensitivity == pytest.approx(expected, rel=1e-6), release


def test_the_stated_loss_is_the_librarys_accounting_of_the_composed_measurement(
        mechanism: privacy.Mechanism) -> None:
    """Rho is the composed measurement's privacy map, the sum of its releases'; epsilon at the
    policy's delta is the library's conversion of it, within the weekly budget and spending
    it; a year is the library's composition of 52 weekly measurements."""
    loss = mechanism.loss
    rho, spent = mechanism.measurement.map(1)
    assert (loss.rho, loss.selection_delta, loss.delta) == (rho, spent, POLICY.delta)
    assert rho == pytest.approx(sum(m.map(1)[0] for m in mechanism.measurements), rel=1e-12)
    profile, week_delta = dp.c.make_zCDP_to_approxDP(mechanism.measurement).map(1)
    assert loss.epsilon == pytest.approx(profile.epsilon(POLICY.delta - week_delta), rel=1e-9)
    assert 0.999 * POLICY.weekly_epsilon <= loss.epsilon <= POLICY.weekly_epsilon
    year = dp.c.make_composition([mechanism.measurement] * privacy.WEEKS_PER_YEAR)
    profile, year_delta = dp.c.make_zCDP_to_approxDP(year).map(1)
    assert loss.yearly_epsilon == pytest.approx(profile.epsilon(POLICY.delta - year_delta),
                                                rel=1e-9)
    assert mechanism.epsilon(privacy.WEEKS_PER_YEAR) == loss.yearly_epsilon


def test_the_catalog_states_a_years_loss_as_the_library_accounts_it(
        mechanism: privacy.Mechanism) -> None:
    """The privacy statement, rendered without the library, says what a year costs: the
    catalog's figure is the mechanism's own, rounded up to a tenth."""
    assert POLICY.yearly_epsilon == math.ceil(mechanism.loss.yearly_epsilon * 10) / 10


# The noise --------------------------------------------------------------------------------

def test_the_noise_is_centred_and_as_wide_as_each_cell_states(
        mechanism: privacy.Mechanism) -> None:
    """Over 12 publications of one week, each keyed cell's error divided by its stated scale:
    n = 12 x 470 standardised draws of discrete Gaussian noise, which is sub-Gaussian with its
    scale (Canonne, Kamath, Steinke 2020). Their mean passes |mean| <= sqrt(2 ln(2/p) / n) and
    their mean square the chi-square bounds of Laurent and Massart (2000) at p = 1e-6 each
    side: a correct mechanism fails with probability below one in a million. The noise is
    drawn afresh each time (never seeded): no two publications agree."""
    records = fleet(60, seed=5)
    truth = exact(mechanism, records)
    draws: list[float] = []
    seen: set[tuple[int | None, ...]] = set()
    for _ in range(12):
        cells = [c for c in mechanism.publish(records).cells if key(c) in truth]
        seen.add(tuple(c.installations if c.total is None else c.total for c in cells))
        for c in cells:
            count, total = truth[key(c)]
            noisy, exact_value, scale = ((c.total, total, c.total_scale) if c.total is not None
                                         else (c.installations, count, c.installations_scale))
            assert noisy is not None and exact_value is not None and scale is not None
            draws.append((noisy - exact_value) / scale)
    n, x = len(draws), math.log(2 / FAIL)
    mean, square = sum(draws) / n, sum(d * d for d in draws)
    assert len(seen) == 12
    assert abs(mean) <= math.sqrt(2 * x / n)
    assert n - 2 * math.sqrt(n * x) <= square <= n + 2 * math.sqrt(n * x) + 2 * x


def test_the_95_percent_margin_is_the_librarys_for_the_scale() -> None:
    assert privacy.margin(10.0) == dp.discrete_gaussian_scale_to_accuracy(10.0, 0.05)
    assert 19.0 <= privacy.margin(10.0) <= 21.0


# The attacks, as tests of the guarantee ---------------------------------------------------
#
# An attacker reading publications that are (epsilon, delta)-DP for one installation-week
# guesses that installation's value right no more often than e^epsilon times the best guess
# without them, plus delta. Here the victim's jobs of the week are uniform over 0..clamp (the
# best blind guess is right with probability 1 / (clamp + 1)) and the attacker reads the jobs
# total. Each world is published by the composed measurement, invoked once; the attacker asks
# it for the one release it reads (the others are independent of it). The measured rate may
# exceed the bound only by Hoeffding's margin at one in a million for its number of worlds, so
# a correct mechanism fails with probability below one in a million; the same attacker on the
# same worlds published without noise is right every time.

WORLDS = 200


def jobs_total(mechanism: privacy.Mechanism) -> int:
    return next(i for i, r in enumerate(mechanism.releases)
                if r.metric == JOBS and r.clamp and not r.attribute)


def read_total(mechanism: privacy.Mechanism, records: Sequence[privacy.Record],
               noise: bool = True) -> int:
    """The jobs total as published (by the composed measurement), or without noise."""
    index = jobs_total(mechanism)
    frame, selected = mechanism.frame(records)
    if noise:
        queryable = mechanism.measurement(frame.lazy())
        result = queryable(mechanism.measurements[index]).collect()
    else:
        plan = mechanism.releases[index].plan(pl.LazyFrame(schema=privacy.SCHEMA))
        exact_total = dp.m.make_private_lazyframe(
            privacy.domain(), dp.symmetric_id_distance(privacy.ID),
            dp.zero_concentrated_divergence(), plan, global_scale=0.0)
        result = exact_total(frame.lazy()).collect()
    total = mechanism.cells(index, result, selected)[0].total
    assert total is not None
    return total


def guess(difference: int, clamp: int) -> int:
    return min(max(difference, 0), clamp)


def bound(mechanism: privacy.Mechanism, weeks: int, clamp: int) -> float:
    return math.exp(mechanism.epsilon(weeks)) / (clamp + 1) + POLICY.delta


def margin_for(worlds: int) -> float:
    return math.sqrt(math.log(1 / FAIL) / (2 * worlds))


def cross_week_worlds(mechanism: privacy.Mechanism, noise: bool, worlds: int) -> float:
    """A stable group of 30 publishes one week with the victim and the next without it (the
    others report the same); the attacker subtracts the second total from the first."""
    clamp, right = mechanism.releases[jobs_total(mechanism)].clamp, 0
    for world in range(worlds):
        rng = random.Random(world)
        group = [with_jobs(r, rng.randint(0, clamp)) for r in fleet(30, seed=world)]
        secret = rng.randint(0, clamp)
        victim = with_jobs(fleet(1, seed=10_000 + world)[0], secret)
        first = read_total(mechanism, [*group, victim], noise)
        second = read_total(mechanism, group, noise)
        right += guess(first - second, clamp) == secret
    return right / worlds


def fakes_worlds(mechanism: privacy.Mechanism, noise: bool, worlds: int) -> float:
    """The attacker runs every installation of the week but the victim (four fakes whose jobs
    it chose) and subtracts their jobs from the published total."""
    clamp, right = mechanism.releases[jobs_total(mechanism)].clamp, 0
    for world in range(worlds):
        rng = random.Random(world)
        fakes = [with_jobs(r, rng.randint(0, clamp)) for r in fleet(4, seed=world)]
        known = sum(p[2] for _, found in fakes for p in found if p[0] == JOBS)
        secret = rng.randint(0, clamp)
        victim = with_jobs(fleet(1, seed=10_000 + world)[0], secret)
        right += guess(read_total(mechanism, [*fakes, victim], noise) - known, clamp) == secret
    return right / worlds


def test_cross_week_differencing_learns_no_more_than_two_weeks_allow(
        mechanism: privacy.Mechanism) -> None:
    clamp = mechanism.releases[jobs_total(mechanism)].clamp
    rate = cross_week_worlds(mechanism, noise=True, worlds=WORLDS)
    allowed = bound(mechanism, weeks=2, clamp=clamp)
    print(f"cross-week differencing: right in {rate:.3f} of {WORLDS} worlds, "
          f"allowed {allowed:.3f} (epsilon {mechanism.epsilon(2):.2f} over two weeks)")
    assert rate <= allowed + margin_for(WORLDS)
    assert cross_week_worlds(mechanism, noise=False, worlds=20) == 1.0


def test_k_minus_1_fakes_learn_no_more_than_one_week_allows(
        mechanism: privacy.Mechanism) -> None:
    clamp = mechanism.releases[jobs_total(mechanism)].clamp
    rate = fakes_worlds(mechanism, noise=True, worlds=WORLDS)
    allowed = bound(mechanism, weeks=1, clamp=clamp)
    print(f"k - 1 fakes: right in {rate:.3f} of {WORLDS} worlds, allowed {allowed:.3f} "
          f"(epsilon {mechanism.epsilon(1):.2f})")
    assert rate <= allowed + margin_for(WORLDS)
    assert fakes_worlds(mechanism, noise=False, worlds=20) == 1.0
