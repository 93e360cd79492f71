"""A testing API for the dashboards: a simulated Printernizer fleet whose weeks every panel
must show, for the dashboards' tests and `benchmarks/dashboards.py`.

Installations join over the weeks and some leave; versions roll out; a few send invalid
reports or retry too fast (rejected, throttled). In the last weeks `connection_timeout` errors
surge: the anomaly the dashboards must flag where the fleet is large enough for it to stand
out of the noise. Two installations in a rare country and one on a rare version are small
groups, which the published numbers' noise hides.

    fleet = make_fleet()                       # INSTALLATIONS over WEEKS, from a seed
    outcomes = load("sqlite:///store.db")      # sent week by week to the real ingest, published
    start, end = time_range()                  # the dashboard range that covers it

`load` and `load_open_week` send the reports through the ingest's app in this process (OTLP
protobuf over ASGI, with httpx), so they need the ingest's extra and httpx; building the fleet
needs neither. No other module of `dashboards/` imports the ingest beyond its view names.
"""

from __future__ import annotations

import asyncio
import gzip
import random
import secrets
import uuid
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING, Literal

from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
)

from ingest.testing import add_week, listing_releases
from otel_usage.catalog import load_catalog
from otel_usage.weeks import Week

if TYPE_CHECKING:
    import httpx

__all__ = ["CATALOG", "INSTALLATIONS", "RARE_COUNTRY", "RARE_VERSION", "RELEASES", "SURGE_TYPE",
           "SURGE_WEEKS", "WEEKS", "Installation", "Outcomes", "load", "load_open_week",
           "make_fleet", "points", "time_range", "version", "week_start"]

RELEASES = ("2.5.0", "2.6.0", "2.7.0")
# The catalog with the fleet's releases listed, as each release adds its number (the real
# catalog lists only releases that carry this client): the ingest publishes with it. The rare
# version is not listed, and is published as "other".
CATALOG = listing_releases(load_catalog(), RELEASES)
PROTOCOL = CATALOG.protocol
FIRST_WEEK = date(2025, 1, 6)
WEEKS = 14
INSTALLATIONS = 240
SURGE_WEEKS = 2
SURGE_TYPE = ("network", "connection_timeout")
RARE_COUNTRY = "IS"
RARE_VERSION = "1.9.9"
Points = dict[str, dict[tuple[tuple[str, str], ...], int]]


def week_start(index: int) -> datetime:
    """Monday 00:00 UTC of the fleet's week `index` (0: its first)."""
    return Week.of(FIRST_WEEK).plus(index).start


@dataclass
class Installation:
    """One simulated installation: its fixed traits and its random stream."""

    rng: random.Random
    joined: int
    left: int
    resource: dict[str, str]
    enabled: dict[str, int]
    printers: dict[str, int]
    installation_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    credential: str = field(default_factory=lambda: secrets.token_urlsafe(24))

    def active(self, week: int) -> bool:
        return self.joined <= week < self.left


def _pick(rng: random.Random, weights: dict[str, float]) -> str:
    return rng.choices(list(weights), list(weights.values()))[0]


def make_fleet(size: int = INSTALLATIONS, weeks: int = WEEKS, seed: int = 6) -> list[Installation]:
    """`size` installations over `weeks`, drawn from `seed`: the same fleet every time."""
    rng = random.Random(seed)
    features = CATALOG.metrics["printernizer.features.enabled"].attributes["feature.name"].values
    types = CATALOG.metrics["printernizer.printers"].attributes["printer.type"].values
    assert features and types
    fleet = []
    for index in range(size):
        joined = 0 if index < size * 0.6 else rng.randrange(1, weeks - 4)
        left = weeks if rng.random() > 0.08 else rng.randrange(joined + 3, weeks + 1)
        country = RARE_COUNTRY if index in (7, 8) else _pick(
            rng, {"DE": 5, "US": 3, "GB": 2, "NL": 1.5, "FR": 1, "AT": 1, "CH": 0.8})
        resource = {
            "service.name": "printernizer",
            "printernizer.deployment.mode": _pick(
                rng, {"docker": 4.5, "homeassistant": 3, "pi": 1.5, "standalone": 1}),
            "os.type": _pick(rng, {"linux": 8, "darwin": 1, "windows": 1}),
            "host.arch": _pick(rng, {"amd64": 6, "arm64": 3.5, "arm32": 0.5}),
            "process.runtime.version": _pick(rng, {"3.11.9": 3, "3.12.7": 4, "3.13.1": 2}),
            "geo.country.iso_code": country,
            "otel_usage.catalog.version": str(CATALOG.version),
        }
        enabled = {f: int(rng.random() < share) for f, share in
                   zip(features, (0.85, 0.5, 0.35, 0.6, 0.12, 0.4), strict=False)}
        printers = {t: rng.choice((0, 0, 1, 1, 2, 3, 6)) for t in rng.sample(types, 2)}
        fleet.append(Installation(rng, joined, left, resource, enabled, printers))
    return fleet


def version(inst: Installation, week: int) -> str:
    """Releases at weeks 4 and 9, adopted over a few weeks; one installation stays behind."""
    if inst.resource["geo.country.iso_code"] == RARE_COUNTRY and inst.joined == 0:
        return RARE_VERSION if inst.installation_id < "8" else RELEASES[0]
    lag = int(inst.installation_id[:2], 16) % 5
    if week >= 9 + lag:
        return RELEASES[2]
    return RELEASES[1] if week >= 4 + lag else RELEASES[0]


def points(inst: Installation, week: int, weeks: int) -> Points:
    """What the installation counted in its week `week` of `weeks`, per metric and attributes
    (drawn from its random stream: call once per week, in order)."""
    rng = inst.rng
    data: Points = {name: {} for name in CATALOG.metrics}
    fleet_types = [t for t, count in inst.printers.items() if count] or ["unknown"]
    for ptype in fleet_types:
        data["printernizer.printers"][(("printer.type", ptype),)] = inst.printers.get(ptype, 0)
        for status in ("completed", "failed", "cancelled"):
            jobs = rng.randint(0, 12 if status == "completed" else 2)
            data["printernizer.jobs"][(("job.status", status), ("printer.type", ptype))] = jobs
        data["printernizer.file.downloads"][(("printer.type", ptype),)] = rng.randint(0, 9)
        data["printernizer.file.uploads"][(("printer.type", ptype),)] = rng.randint(0, 5)
        data["printernizer.printer.connections"][
            (("connection.event", "connected"), ("printer.type", ptype))] = rng.randint(1, 7)
    for feature, on in inst.enabled.items():
        data["printernizer.features.enabled"][(("feature.name", feature),)] = on
        data["printernizer.feature.uses"][(("feature.name", feature),)] = on * rng.randint(0, 20)
    _errors(data["printernizer.errors"], rng, surge=week >= weeks - SURGE_WEEKS)
    data["printernizer.app.starts"][()] = rng.randint(1, 5)
    data["printernizer.uptime"][()] = rng.randint(3, 7)
    return data


def _errors(errors: dict[tuple[tuple[str, str], ...], int], rng: random.Random,
            surge: bool) -> None:
    """About a quarter of installation-weeks have no error at all, surge or not."""
    quiet = rng.random() < 0.25
    for category, kind in (("printer", "printer_offline"), ("network", "connection_refused"),
                           ("file_operation", "download_failed"), SURGE_TYPE):
        errors[(("error.category", category), ("error.type", kind))] = (
            0 if quiet else rng.choice((0, 0, 1, 2)))
    if surge and not quiet and rng.random() < 0.6:
        errors[(("error.category", SURGE_TYPE[0]), ("error.type", SURGE_TYPE[1]))] = \
            rng.randint(15, 40)


def _report(inst: Installation, week: int, weeks: int = WEEKS) -> ExportMetricsServiceRequest:
    """The installation's report of its week `week`, as the client sends it."""
    message = ExportMetricsServiceRequest()
    resource = inst.resource | {"service.instance.id": inst.installation_id,
                                "service.version": version(inst, week)}
    data = {name: [(dict(attributes), value) for attributes, value in series.items()]
            for name, series in points(inst, week, weeks).items()}
    add_week(message, resource, data, week_start(week).date(), CATALOG)
    return message


class _Clock:
    """The ingest's injected clock: moved to the Wednesday after each simulated week."""

    def __init__(self) -> None:
        self.now = week_start(0).timestamp()

    def __call__(self) -> float:
        return self.now


Outcome = Literal["accepted", "rejected", "throttled"]


@dataclass
class Outcomes:
    """How many of the fleet's requests the ingest accepted, rejected and throttled."""

    accepted: int = 0
    rejected: int = 0
    throttled: int = 0

    def add(self, outcome: Outcome) -> None:
        setattr(self, outcome, getattr(self, outcome) + 1)


def load(database_url: str, fleet: list[Installation] | None = None, weeks: int = WEEKS,
         seed: int = 6) -> Outcomes:
    """Send every installation-week to the real ingest app (in process, over ASGI)."""
    return asyncio.run(_load(database_url, fleet or make_fleet(weeks=weeks, seed=seed), weeks))


async def _load(database_url: str, fleet: list[Installation], weeks: int) -> Outcomes:
    import httpx

    from ingest import Settings, create_app, publish

    clock = _Clock()
    # One test process sends for the whole fleet: its address is exempt from the limits per
    # client address (new installations per day, requests per second).
    settings = Settings(database_url=database_url, clock=clock, catalog=CATALOG,
                        installation_burst=1, write_timeout_s=30.0,
                        unlimited_addresses=frozenset({"127.0.0.1"}))
    app = create_app(settings)
    transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 40000))
    outcomes = Outcomes()
    async with app.router.lifespan_context(app), httpx.AsyncClient(
            transport=transport, base_url="http://ingest") as client:
        for week in range(weeks):
            clock.now = (week_start(week + 1) + timedelta(days=2, hours=12)).timestamp()
            await _round(client, fleet, week, weeks, outcomes)
    # Every simulated week's reporting window has ended: each is published, as the service
    # does on its own.
    after = timedelta(days=CATALOG.policy.publish_after_days, hours=1)
    clock.now = (week_start(weeks) + after).timestamp()
    publish(settings)
    return outcomes


def load_open_week(database_url: str, size: int = 40) -> None:
    """Reports of the week after the fleet's last, sent while that week's reporting window is
    still open (then publication runs, as the service does on its clock): stored, unpublished."""
    asyncio.run(_load_open_week(database_url, make_fleet(size, WEEKS + 1, seed=9)))


async def _load_open_week(database_url: str, fleet: list[Installation]) -> None:
    import httpx

    from ingest import Settings, create_app, publish

    clock = _Clock()
    clock.now = (week_start(WEEKS + 1) + timedelta(days=2)).timestamp()
    settings = Settings(database_url=database_url, clock=clock, catalog=CATALOG,
                        write_timeout_s=30.0, unlimited_addresses=frozenset({"127.0.0.1"}))
    app = create_app(settings)
    transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 40000))
    async with app.router.lifespan_context(app), httpx.AsyncClient(
            transport=transport, base_url="http://ingest") as client:
        for inst in fleet:
            body = gzip.compress(_report(inst, WEEKS, WEEKS + 1).SerializeToString())
            assert await _post(client, inst.credential, body) == "accepted"
    publish(settings)


async def _round(client: httpx.AsyncClient, fleet: list[Installation], week: int, weeks: int,
                 outcomes: Outcomes) -> None:
    active = [inst for inst in fleet if inst.active(week)]
    bodies = {inst.installation_id: gzip.compress(_report(inst, week, weeks).SerializeToString())
              for inst in active}
    gate = asyncio.Semaphore(32)

    async def send(inst: Installation, body: bytes) -> None:
        async with gate:
            outcomes.add(await _post(client, inst.credential, body))

    await asyncio.gather(*(send(i, bodies[i.installation_id]) for i in active))
    retries = active[week % 7::25]  # retried too fast: throttled
    broken = active[week % 5::60]  # a bad version string: rejected
    await asyncio.gather(*(send(i, bodies[i.installation_id]) for i in retries),
                         *(send(i, _broken(i, week, weeks)) for i in broken))


def _broken(inst: Installation, week: int, weeks: int) -> bytes:
    message = _report(inst, week, weeks)
    for kv in message.resource_metrics[0].resource.attributes:
        if kv.key == "service.version":
            kv.value.string_value = "latest"
    return gzip.compress(message.SerializeToString())


async def _post(client: httpx.AsyncClient, credential: str, body: bytes) -> Outcome:
    headers = {"content-type": "application/x-protobuf", "content-encoding": "gzip",
               PROTOCOL.credential_header: credential}
    response = await client.post(PROTOCOL.metrics_path, content=body, headers=headers)
    if response.status_code == 200:
        return "accepted"
    return "throttled" if response.status_code in (429, 503) else "rejected"


def time_range(weeks: int = WEEKS) -> tuple[datetime, datetime]:
    """The dashboard range covering the fleet: its first Monday to the last report's arrival."""
    return week_start(0), week_start(weeks) + timedelta(days=3)

