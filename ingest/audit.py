"""A testing API for the ingest's publication: a fleet made to tempt differencing, sent week by
week to a running ingest, and what it publishes read back (the attacks module and
`benchmarks/` use it).

The fleet has what subtraction fed on when published numbers were exact: a majority with a
rare remainder (an OS, a country, an architecture some installations do not send), a metric
almost everyone uses, features whose users are nested in those who enabled them, points
without an attribute, rare error types, small buckets. Every published number now comes out
of the differentially private mechanism; the attacks on it (differencing across weeks, k - 1
fakes) are tested at the mechanism over many worlds (tests/test_ingest_privacy.py).
"""

from __future__ import annotations

import random
import urllib.request
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

import sqlalchemy as sa
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
)

from otel_usage.weeks import Week

from .testing import CATALOG, encode, new_credential, new_installation, request

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


Row = tuple[str, str, str, str, int | None, int | None]  # kind, metric, attribute, value,
# installations, total (None where the cell publishes no such number)
Truth = dict[str, tuple[dict[str, str], Points]]  # installation -> its week


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
    """What the fleet sent: per data week, each member's resource and points."""

    weeks: dict[date, Truth]


def send_fleet(base: str, clock: Clock, fleet: list[Member], weeks: int) -> Sent:
    """Each member's weeks to the server at `base`, each week's in the week after it (some
    join late, one reports once), moving `clock` along."""
    sent = Sent({})
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
    "distribution": "SELECT week_start, metric, '', bucket_min, installations, NULL "
                    "FROM usage_distributions",
}


def published_rows(url: str) -> dict[date, list[Row]]:
    """Every row of the weekly views, by week, as (kind, metric, attribute, value,
    installations, total): noisy numbers, None where the view has none."""
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    rows: dict[date, list[Row]] = {}
    with engine.connect() as conn:
        for kind, sql in _VIEWS.items():
            for week, metric, attribute, value, installations, total in conn.exec_driver_sql(sql):
                day = (week if isinstance(week, datetime) else datetime.fromisoformat(week)).date()
                rows.setdefault(day, []).append(
                    (kind, metric, attribute, str(value), _number(installations),
                     _number(total)))
    engine.dispose()
    return rows


def _number(value: object) -> int | None:
    return None if value is None else int(str(value))
