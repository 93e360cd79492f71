"""Benchmark of the differentially private publication: what the noise costs, and how fast.

Simulates a week of fleets of 200, 1,000 and 10,000 installations (the tests' simulated fleet,
dashboards.testing: deployment modes, versions mid-rollout, features, printers, jobs,
errors), publishes each week `--runs` times with the ingest's mechanism at the catalog's
weekly budget (`ingest._privacy`, as the publication step will call it), and prints per panel
the median and 95th-percentile error against the fleet's true numbers, pooled over the
panel's cells and the runs: shares of the active installations in percentage points, counts
and per-installation averages in percent. The truth is the fleet's own, unclamped and
untruncated, so contribution bounds count as error too.

Then it times the publication of the 10,000-installation week: from its records, the frame,
the one composed measurement and its cells; and apart, the parsing of the rows as the store
keeps them (resource and points as JSON), wall and CPU seconds. The last line is one JSON
object with every figure, the week's loss (epsilon, delta, rho, a year's epsilon), and whether
the goals hold at 1,000 installations (active within 3 %, deployment-mode, version and feature
shares within 4 points, 95th percentile).

    python -m benchmarks.privacy_accuracy [--runs 100] [--sizes 200 1000 10000]
"""

from __future__ import annotations

import argparse
import bisect
import json
import statistics
import time
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence

from dashboards import testing as fleet  # the dashboards' simulated fleet (their testing API)
from ingest import _privacy as privacy

CATALOG = fleet.CATALOG  # the catalog with the simulated fleet's releases listed
WEEK = 10  # mid-rollout in the simulated fleet: two versions side by side
Truth = dict[tuple[str, str, str, str], float]
GOALS = {"active installations": 3.0, "resource printernizer.deployment.mode": 4.0,
         "resource service.version": 4.0, "metric printernizer.features.enabled by feature.name":
         4.0}


def week_records(size: int) -> list[privacy.Record]:
    """One week of a simulated fleet in which every installation reports."""
    population = fleet.make_fleet(size, fleet.WEEKS)
    records: list[privacy.Record] = []
    for inst in population:
        resource = inst.resource | {"service.instance.id": inst.installation_id,
                                    "service.version": fleet.version(inst, WEEK)}
        found = [(name, dict(attributes), value)
                 for name, series in fleet.points(inst, WEEK, fleet.WEEKS).items()
                 for attributes, value in series.items()]
        records.append((resource, found))
    return records


def truth(mechanism: privacy.Mechanism, records: Sequence[privacy.Record]) -> Truth:
    """Every published number as the fleet really has it (no clamp, no truncation)."""
    true: Counter[tuple[str, str, str, str]] = Counter()
    true[("active", "", "", "")] = len(records)
    for resource, found in records:
        totals: Counter[str] = Counter()
        per_value: Counter[tuple[str, str, str]] = Counter()
        for metric, attributes, value in found:
            totals[metric] += value
            for name, text in attributes.items():
                per_value[(metric, name, text)] += value
        for release in mechanism.releases:
            for cell in _truth_keys(release, resource, totals, per_value):
                true[cell] += totals[release.metric] if release.clamp else 1
    return dict(true)


def _truth_keys(release: privacy.Release, resource: Mapping[str, str], totals: Counter[str],
                per_value: Counter[tuple[str, str, str]]) -> Iterable[tuple[str, str, str, str]]:
    """The cells of a release one installation is truly in."""
    where = (release.kind, release.metric, release.attribute)
    if release.kind == "resource" and release.attribute in resource:
        value = resource[release.attribute]
        if release.keys is None:
            value = ".".join(value.split(".")[:2])
        elif value not in release.keys:
            value = CATALOG.policy.other_value
        yield (*where, value)
    elif release.kind == "distribution":
        bounds = [int(k) for k in release.keys or ()]
        yield (*where, str(bounds[bisect.bisect_right(bounds, totals[release.metric]) - 1]))
    elif release.clamp:
        yield (*where, "")
    elif release.values:
        yield from ((*where, value) for (metric, key, value), amount in per_value.items()
                    if metric == release.metric and key == release.attribute and amount > 0)


def panel(release: privacy.Release) -> str:
    if release.kind == "active":
        return "active installations"
    if release.clamp:
        return f"total {release.metric} per installation"
    if release.kind == "resource":
        return f"resource {release.attribute}"
    by = f" by {release.attribute}" if release.attribute else ""
    return f"{release.kind} {release.metric}{by}"


def errors(mechanism: privacy.Mechanism, true: Truth,
           cells: Sequence[privacy.Cell]) -> dict[str, list[float]]:
    """Per panel, each cell's error: shares of the active installations (points), the active
    count and per-installation totals (percent)."""
    noisy = {(c.kind, c.metric, c.attribute, c.value): c for c in cells}
    active_true = true[("active", "", "", "")]
    active = noisy[("active", "", "", "")].installations or 0
    out: dict[str, list[float]] = {}
    for release in mechanism.releases:
        where = (release.kind, release.metric, release.attribute)
        keys = {k for k in [*true, *noisy] if k[:3] == where}
        name = panel(release)
        for key in keys:
            cell = noisy.get(key)
            if release.kind == "active":
                error = 100 * abs(active - active_true) / active_true
            elif release.clamp:
                got = (cell.total or 0) / active if cell and active > 0 else 0.0
                expected = true.get(key, 0) / active_true
                error = 100 * abs(got - expected) / expected if expected else 0.0
            else:
                got = (cell.installations or 0) / active if cell and active > 0 else 0.0
                error = 100 * abs(got - true.get(key, 0) / active_true)
            out.setdefault(name, []).append(error)
    return out


def accuracy(mechanism: privacy.Mechanism, size: int, runs: int) -> dict[str, dict[str, float]]:
    records = week_records(size)
    true = truth(mechanism, records)
    pooled: dict[str, list[float]] = {}
    for _ in range(runs):
        for name, found in errors(mechanism, true, mechanism.publish(records).cells).items():
            pooled.setdefault(name, []).extend(found)
    return {name: {"median": round(statistics.median(found), 2),
                   "p95": round(_percentile(found, 0.95), 2)}
            for name, found in pooled.items()}


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def timing(mechanism: privacy.Mechanism, size: int, repeat: int) -> dict[str, float]:
    """Seconds (wall and CPU, best and median) to publish a week of `size` installations from
    its records (the frame, the measurement, the cells), and before that to parse the rows as
    the store keeps them (resource and points as JSON), which any publication does."""
    rows = [(json.dumps(resource), json.dumps([[m, a, v] for m, a, v in found]))
            for resource, found in week_records(size)]
    parse: list[tuple[float, float]] = []
    publish: list[tuple[float, float]] = []
    for _ in range(repeat):
        wall, cpu = time.perf_counter(), time.process_time()
        records = [(json.loads(resource), json.loads(found)) for resource, found in rows]
        parsed = time.perf_counter(), time.process_time()
        mechanism.publish(records)
        parse.append((parsed[0] - wall, parsed[1] - cpu))
        publish.append((time.perf_counter() - parsed[0], time.process_time() - parsed[1]))
    out: dict[str, float] = {}
    for name, runs in (("publish", publish), ("parse", parse)):
        for index, clock in enumerate(("wall", "cpu")):
            seconds = [run[index] for run in runs]
            out[f"{name}_{clock}_s_best"] = round(min(seconds), 3)
            out[f"{name}_{clock}_s_median"] = round(statistics.median(seconds), 3)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=100, help="publications per fleet size")
    parser.add_argument("--sizes", type=int, nargs="+", default=[200, 1000, 10_000])
    parser.add_argument("--timing-size", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=5, help="timed publications")
    args = parser.parse_args()
    began = time.perf_counter()
    mechanism = privacy.mechanism(CATALOG)
    loss = mechanism.loss
    result: dict[str, object] = {
        "weekly_epsilon": round(loss.epsilon, 3), "delta": loss.delta, "rho": round(loss.rho, 4),
        "selection_delta": loss.selection_delta, "yearly_epsilon": round(loss.yearly_epsilon, 2),
        "build_s": round(time.perf_counter() - began, 3), "runs": args.runs}
    panels: dict[str, dict[str, dict[str, float]]] = {}
    for size in args.sizes:
        runs = args.runs if size <= 1000 else max(1, args.runs // 5)
        panels[str(size)] = accuracy(mechanism, size, runs)
        for name, figures in sorted(panels[str(size)].items()):
            print(f"{size:>6} {name:62} median {figures['median']:7.2f}  p95 {figures['p95']:7.2f}")
    result["panels"] = panels
    if "1000" in panels:
        result["goals_at_1000"] = {name: panels["1000"][name]["p95"] <= limit
                                   for name, limit in GOALS.items()}
    result.update(timing(mechanism, args.timing_size, args.repeat))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
