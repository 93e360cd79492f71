"""A testing API for the ingest's publication: a fleet made to tempt differencing, and the
attacker's arithmetic on what gets published (the attacks module and `benchmarks/` use it).

The fleet has what subtraction feeds on: a majority with a rare remainder (an OS, a country,
an architecture some installations do not send), a metric almost everyone uses, features whose
users are nested in those who enabled them, points without an attribute, rare error types,
small buckets. `derivable_cells` is the attacker: from the published rows of a week and the
truth behind them, every group it can compute by subtraction. It restates the view's grouping
on purpose (`members`): a check written apart from what it checks.
"""

from __future__ import annotations

import bisect
import random
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

import sqlalchemy as sa
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
)

from otel_usage.weeks import Week

from .testing import CATALOG, encode, new_credential, new_installation, request
from .views import DISTRIBUTION_BUCKETS

Points = dict[str, list[tuple[dict[str, str], int]]]
FIRST = date(2025, 5, 5)  # the fleet's first week


@dataclass
class Member:
    """One simulated installation: its traits, and what it reports each week."""

    rng: random.Random
    resource: dict[str, str]
    enabled: dict[str, int]
    installation_id: str = field(default_factory=new_installation)
    credential: str = field(default_factory=new_credential)

    def points(self) -> Points:
        rng, data = self.rng, {}
        status = [({"job.status": "completed", "printer.type": "prusa_core"}, rng.randint(1, 9))]
        if rng.random() < 0.3:
            status.append(({"job.status": "failed", "printer.type": "prusa_core"}, 1))
        if rng.random() < 0.04:
            status.append(({"job.status": "cancelled", "printer.type": "octoprint"}, 2))
        if rng.random() < 0.05:
            status.append(({}, rng.randint(1, 30)))  # no attributes: only in the whole row
        data["printernizer.jobs"] = status
        data["printernizer.features.enabled"] = [({"feature.name": f}, on)
                                                 for f, on in self.enabled.items()]
        data["printernizer.feature.uses"] = [
            ({"feature.name": f}, rng.randint(1, 4) if on and rng.random() < 0.9 else 0)
            for f, on in self.enabled.items()]
        data["printernizer.printers"] = [({"printer.type": "prusa_core"}, rng.choice(
            (1, 1, 1, 2, 2, 3, 7)))]
        if rng.random() < 0.12:
            kind = rng.choice(("connection_timeout", "dns_resolution_failed"))
            data["printernizer.errors"] = [
                ({"error.category": "network", "error.type": kind}, 1)]
        data["printernizer.uptime"] = [({}, rng.choice((7, 7, 7, 7, 6, 3)))]
        return data


def make_fleet(size: int = 64, seed: int = 14) -> list[Member]:
    """The fleet: `size` members drawn from `seed`."""
    rng = random.Random(seed)
    fleet = []
    for index in range(size):
        resource = {
            "service.name": "printernizer", "service.version": "2.7.0",
            "printernizer.deployment.mode": rng.choice(("docker", "homeassistant", "pi")),
            "os.type": "darwin" if index < 3 else "windows" if index == 3 else "linux",
            "process.runtime.version": "3.12.7",
            "geo.country.iso_code": "IS" if index in (10, 11) else "AT" if index < 20 else "DE",
            "otel_usage.catalog.version": str(CATALOG.version),
        }
        if index % 31:  # two installations do not send their architecture
            resource["host.arch"] = "arm32" if index == 5 else "arm64" if index % 3 else "amd64"
        enabled = {"library": int(index % 8 != 0), "timelapse": int(index % 9 == 0)}
        fleet.append(Member(random.Random(rng.random()), resource, enabled))
    return fleet


# The attacker ---------------------------------------------------------------------------

Row = tuple[str, str, str, str, int, int]  # kind, metric, attribute, value, installations, total
Truth = dict[str, tuple[dict[str, str], Points]]  # installation -> its week


def bucket(total: int) -> int:
    """The published bucket (its `bucket_min`) of a weekly total: the views' bounds, which
    anyone reading the views knows."""
    return DISTRIBUTION_BUCKETS[bisect.bisect_right(DISTRIBUTION_BUCKETS, total) - 1]


def _sums(points: Points, metric: str, attribute: str = "", value: str = "") -> int:
    return sum(v for attrs, v in points.get(metric, ())
               if not attribute or attrs.get(attribute) == value)


def members(row: Row, truth: Truth) -> tuple[frozenset[str], int]:
    """Who is behind a published row, and the total they sum to (from the truth)."""
    kind, metric, attribute, value, _, _ = row
    chosen: dict[str, int] = {}
    for installation, (resource, points) in truth.items():
        if kind == "active" or (kind == "resource" and resource.get(attribute) == value):
            chosen[installation] = 0
        elif kind == "metric":
            amount = _sums(points, metric, attribute, value)
            if amount > 0:
                chosen[installation] = amount
        elif kind == "distribution" and bucket(_sums(points, metric)) == int(value):
            chosen[installation] = _sums(points, metric)
    return frozenset(chosen), sum(chosen.values())


def derivable_cells(rows: list[Row], truth: Truth) -> Iterator[tuple[str, frozenset[str]]]:
    """Every group computable by subtraction from one week's published rows: what a parent
    holds beyond its visible children (partitions, by installations and by the points behind
    a total), and the difference of any two rows where one holds the other."""
    sets = {row: members(row, truth)[0] for row in rows}
    active = next(row for row in rows if row[0] == "active")
    for name, parent, children in _partitions(rows):
        rest = sets[parent] - frozenset().union(*(sets[c] for c in children))
        yield f"{name}: {parent[:4]} minus its visible parts", rest
    for metric, attribute, _whole, children in _metric_partitions(rows):
        shown = {c[3] for c in children}
        rest = frozenset(i for i, (_, points) in truth.items() if any(
            v > 0 and attrs.get(attribute) not in shown for attrs, v in points.get(metric, ())))
        yield f"{metric} total minus its visible {attribute} totals", rest
    for small in rows:
        for large in rows:
            if small != large and sets[small] < sets[large]:
                yield f"{large[:4]} minus {small[:4]}", sets[large] - sets[small]
    assert active in sets


def _partitions(rows: list[Row]) -> Iterator[tuple[str, Row, list[Row]]]:
    active = next(row for row in rows if row[0] == "active")
    for key in CATALOG.resource:
        if key != "service.instance.id":
            yield key, active, [r for r in rows if r[0] == "resource" and r[2] == key]
    for metric in CATALOG.metrics:
        buckets = [r for r in rows if r[0] == "distribution" and r[1] == metric]
        yield f"{metric} buckets", active, buckets
        whole = [r for r in rows if r[:4] == ("metric", metric, "", "")]
        zero = [r for r in buckets if r[3] == "0"]
        yield f"{metric} used or not", active, whole + zero
        if whole:
            yield f"{metric} users by bucket", whole[0], [r for r in buckets if r[3] != "0"]
            for attribute in CATALOG.metrics[metric].attributes:
                yield (f"{metric} users by {attribute}", whole[0],
                       [r for r in rows if r[:3] == ("metric", metric, attribute)])


def _metric_partitions(rows: list[Row]) -> Iterator[tuple[str, str, Row, list[Row]]]:
    for metric, spec in CATALOG.metrics.items():
        whole = [r for r in rows if r[:4] == ("metric", metric, "", "")]
        for attribute in spec.attributes if whole else ():
            yield metric, attribute, whole[0], [r for r in rows
                                                if r[:3] == ("metric", metric, attribute)]


# Sending the fleet, reading what was published ---------------------------------------------

class Clock:
    """A server's clock (`Settings.clock`), moved by whoever sends the fleet."""

    def __init__(self, when: datetime) -> None:
        self.now = when.timestamp()

    def __call__(self) -> float:
        return self.now

    def at(self, week: date, days: float = 2.5) -> None:
        self.now = (Week.of(week).start + timedelta(days=days)).timestamp()


@dataclass
class Sent:
    """What the fleet sent: per data week, each member's resource and points, and the weeks
    in which each member's reports arrived."""

    weeks: dict[date, Truth]
    arrivals: dict[str, list[date]]

    def established(self, week: date) -> Truth:
        """The policy, stated apart from the server: reports arrived in two distinct weeks,
        the first no later than the week."""
        return {i: t for i, t in self.weeks[week].items()
                if len(set(self.arrivals[i])) >= 2 and min(self.arrivals[i]) <= week}


def send_fleet(base: str, clock: Clock, fleet: list[Member], weeks: int) -> Sent:
    """Each member's weeks to the server at `base`, each week's in the week after it (some
    join late, one reports once), moving `clock` along."""
    sent = Sent({}, {m.installation_id: [] for m in fleet})
    for offset in range(weeks):
        week = FIRST + timedelta(weeks=offset)
        clock.at(week + timedelta(weeks=1))
        sent.weeks[week] = {}
        for index, member in enumerate(fleet):
            if (index % 13 == 0 and offset < 2) or (index == 7 and offset > 0):
                continue
            resource = member.resource | {"service.instance.id": member.installation_id}
            points = member.points()
            _post(base, member.credential, request(member.installation_id, week, data=points,
                                                   res=resource))
            sent.weeks[week][member.installation_id] = (resource, points)
            sent.arrivals[member.installation_id].append(week + timedelta(weeks=1))
    return sent


def _post(base: str, credential: str, message: ExportMetricsServiceRequest) -> None:
    body, headers = encode(message, "protobuf", True)
    headers[CATALOG.protocol.credential_header] = credential
    sent = urllib.request.Request(base + CATALOG.protocol.metrics_path, body, headers)
    with urllib.request.urlopen(sent, timeout=30) as answer:
        assert answer.status == 200, answer.read()


_VIEWS = {
    "active": "SELECT week_start, '', '', '', installations, 0 FROM usage_active_installations",
    "resource": "SELECT week_start, '', attribute, value, installations, 0 "
                "FROM usage_resource_attributes",
    "metric": "SELECT week_start, metric, attribute, value, installations, total "
              "FROM usage_metrics",
    "distribution": "SELECT week_start, metric, '', bucket_min, installations, total "
                    "FROM usage_distributions",
}


def published_rows(url: str) -> dict[date, list[Row]]:
    """Every row of the weekly views, by week, as (kind, metric, attribute, value,
    installations, total)."""
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    rows: dict[date, list[Row]] = {}
    with engine.connect() as conn:
        for kind, sql in _VIEWS.items():
            for week, metric, attribute, value, installations, total in conn.exec_driver_sql(sql):
                day = (week if isinstance(week, datetime) else datetime.fromisoformat(week)).date()
                rows.setdefault(day, []).append(
                    (kind, metric, attribute, str(value), int(installations), int(total)))
    engine.dispose()
    return rows
