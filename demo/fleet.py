"""A simulated fleet of Printernizer installations, for the demo: real client code throughout.

Each installation has its own data directory, its own injected clock, and counts its days with
the ordinary OTel API through :class:`UsageTelemetry`; those that opt in send their real weekly
reports over OTLP/HTTP. Only what happens in a day is made up here, from a profile drawn once:
deployment mode, platform, country (by time zone), printers, features, habits and errors.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from multiprocessing.connection import Connection
from pathlib import Path

from otel_usage import Environment, ManualClock, UsageTelemetry, detect_environment
from otel_usage.catalog import load_catalog

__all__ = ["Installation", "Simulation", "draw_fleet", "finish_time", "run_worker",
           "send_time"]

# (value, weight) tables: a plausible mix, not data.
DEPLOYMENTS = (("homeassistant", 40), ("docker", 28), ("pi", 14), ("standalone", 18))
ZONES = (("Europe/Berlin", 34), ("America/New_York", 12), ("Europe/London", 8),
         ("Europe/Paris", 6), ("Europe/Vienna", 5), ("Europe/Zurich", 5),
         ("Europe/Amsterdam", 5), ("America/Chicago", 5), ("Europe/Warsaw", 4),
         ("America/Toronto", 4), ("Australia/Sydney", 3), ("Europe/Stockholm", 3),
         ("Asia/Tokyo", 2), ("Europe/Madrid", 2), ("Europe/Rome", 2))
# Names come from the catalog; the weights and shares are the demo's (1 and 0.3 otherwise).
PRINTER_WEIGHTS = {"bambu_lab": 55, "prusa_core": 30, "octoprint": 13, "unknown": 2}
FEATURE_SHARES = {"library": 0.8, "library_search": 0.5, "timelapse": 0.3,
                  "auto_job_creation": 0.6, "german_business": 0.15, "watch_folders": 0.4}
FLEET_SIZES = ((1, 35), (2, 25), (3, 12), (4, 8), (5, 5), (6, 4), (8, 4), (10, 4), (15, 2),
               (20, 1))
PYTHONS = (("3.11.9", 30), ("3.12.7", 45), ("3.13.1", 25))
ERRORS = (("network", "connection_timeout", 0.25), ("network", "connection_refused", 0.1),
          ("printer", "printer_disconnected", 0.2), ("printer", "printer_busy", 0.08),
          ("file_operation", "download_failed", 0.12), ("database", "database_locked", 0.02),
          ("validation", "invalid_file_type", 0.05), ("authentication",
                                                      "authentication_failed", 0.01))
# Builds before and after an upgrade. The catalog publishes only the releases it lists (those
# that carry this client; none yet), so the demo's versions are published as "other".
VERSIONS = ("2.6.3", "2.7.0")
MORNING_HOUR = 7  # a simulated day starts at 07:00 UTC
SEND_HOUR = 19  # and sends what is due at 19:00
CLOCK_AHEAD_DAYS = 15


def _catalog_values(metric: str, key: str) -> tuple[str, ...]:
    return load_catalog().metrics[metric].attributes[key].values or ()


def _check_errors() -> None:
    """The simulated errors must be ones the catalog knows (else they would be sent as other)."""
    attributes = load_catalog().metrics["printernizer.errors"].attributes
    for category, error_type, _ in ERRORS:
        if not (attributes["error.category"].allows(category)
                and attributes["error.type"].allows(error_type)):
            raise ValueError(f"not in the catalog: {category}/{error_type}")


@dataclass(frozen=True)
class Installation:
    """Everything drawn once about one simulated installation."""

    number: int
    data_dir: Path
    environment: Environment
    printers: dict[str, int]
    features: dict[str, bool]
    jobs_per_printer: float
    opt_in_day: int | None
    upgrade_day: int
    seed: int
    first_day: int = 0
    last_day: int | None = None
    restart_every: int = 7
    errors_scale: float = 1.0
    # A machine whose clock runs ahead: its reports are for weeks the server has not reached
    # yet, and are rejected (the demo's refusals).
    clock_ahead_days: int = 0


def _country(zone: str) -> str | None:
    """The country the client derives from a time zone (its own detector, given $TZ)."""
    return detect_environment({"TZ": zone}).country_code


def _pick(rng: random.Random, table: tuple[tuple[object, int], ...]) -> object:
    values, weights = zip(*table, strict=True)
    return rng.choices(values, weights)[0]


def draw_fleet(root: Path, count: int, weeks: int, seed: int,
               opt_in_share: float = 0.4) -> list[Installation]:
    """`count` installations; about `opt_in_share` of them opt in within the first weeks."""
    _check_errors()
    rng = random.Random(seed)
    fleet = [_draw(rng, root / f"installation-{n:04d}", n, weeks, opt_in_share)
             for n in range(count)]
    if count > 1 and opt_in_share > 0:  # one opted-in machine with its clock ahead
        fleet[1] = replace(fleet[1], clock_ahead_days=CLOCK_AHEAD_DAYS,
                           opt_in_day=fleet[1].first_day)
    return fleet


def _draw(rng: random.Random, data_dir: Path, number: int, weeks: int,
          opt_in_share: float) -> Installation:
    mode = str(_pick(rng, DEPLOYMENTS))
    zone = str(_pick(rng, ZONES))
    arch = {"pi": "arm64" if rng.random() < 0.85 else "arm32",
            "homeassistant": "amd64" if rng.random() < 0.6 else "arm64",
            "docker": "amd64" if rng.random() < 0.85 else "arm64"}.get(mode, "amd64")
    os_type = "linux" if mode != "standalone" else str(
        _pick(rng, (("windows", 45), ("linux", 30), ("darwin", 25))))
    python = "3.13.1" if mode == "homeassistant" else str(_pick(rng, PYTHONS))
    environment = Environment(mode, os_type, arch, python, _country(zone))
    size = int(_pick(rng, FLEET_SIZES))  # type: ignore[call-overload]
    printers: dict[str, int] = {}
    kinds = _catalog_values("printernizer.printers", "printer.type")
    for _ in range(size):
        kind = rng.choices(kinds, [PRINTER_WEIGHTS.get(k, 1) for k in kinds])[0]
        printers[kind] = printers.get(kind, 0) + 1
    german = environment.country_code in ("DE", "AT", "CH")
    features = {
        name: rng.random() < (0.45 if name == "german_business" and german
                              else FEATURE_SHARES.get(name, 0.3))
        for name in _catalog_values("printernizer.features.enabled", "feature.name")}
    days = weeks * 7
    opted = rng.random() < opt_in_share
    # Most installations were there from the start; some arrive later, a few stop.
    first_day = 0 if rng.random() < 0.75 else rng.randrange(0, days - 6)
    last_day = rng.randrange(first_day + 7, days + 7) if rng.random() < 0.08 else None
    return Installation(
        number=number, data_dir=data_dir, environment=environment, printers=printers,
        features=features, jobs_per_printer=rng.choice((0.6, 1.0, 1.5, 3.0)),
        opt_in_day=first_day + rng.randrange(0, 21) if opted else None,
        upgrade_day=days // 2 + rng.randrange(0, 14 if mode == "homeassistant" else 35),
        seed=rng.randrange(2**32), restart_every=rng.choice((3, 7, 14)),
        # About a fifth never see an error, as in a real fleet.
        errors_scale=rng.choice((0.0, 0.3, 1.0, 1.0, 2.5)),
        first_day=first_day, last_day=last_day,
    )


class Simulation:
    """One installation lived day by day from `start` (a Monday): the demo moves every
    installation through the same day, so the ingest's clock can follow theirs."""

    def __init__(self, installation: Installation, start: datetime, weeks: int, endpoint: str,
                 anomaly_week: int | None = None) -> None:
        self.installation, self.start, self.weeks = installation, start, weeks
        self.endpoint, self.anomaly_week = endpoint, anomaly_week
        self.rng = random.Random(installation.seed)
        self.clock = ManualClock(self._morning(installation.first_day))
        self.usage: UsageTelemetry | None = None
        self.last_day = min(installation.last_day or weeks * 7, weeks * 7)

    def _morning(self, day: int) -> datetime:
        ahead = timedelta(days=self.installation.clock_ahead_days)
        return self.start + timedelta(days=day, hours=MORNING_HOUR) + ahead

    def day(self, day: int) -> int:
        """Live `day` (07:00 to the next morning, sending at 19:00); reports sent."""
        inst = self.installation
        if not inst.first_day <= day < self.last_day:
            if self.usage is not None and day >= self.last_day:  # it left the fleet
                self.usage.shutdown()
                self.usage = None
            return 0
        self.clock.set(self._morning(day))
        version = VERSIONS[day >= inst.upgrade_day]
        if self.usage is None or day % inst.restart_every == 0 or (
                self.usage.service_version != version):
            if self.usage is not None:
                self.usage.shutdown()
            self.usage = _start(inst, self.clock, self.endpoint, version)
        if day == inst.opt_in_day:
            self.usage.set_mode("on")
        spike = self.anomaly_week is not None and day // 7 == self.anomaly_week
        _one_day(self.usage, inst, self.rng, spike)
        self.clock.advance(timedelta(hours=SEND_HOUR - MORNING_HOUR))
        self.usage.flush()
        sent = 0
        if inst.opt_in_day is not None and day >= inst.opt_in_day:
            sent = len(self.usage.send_now()["sent"])
        return sent

    def finish(self, at: datetime) -> int:
        """Send, at `at`, what is still due (the last week's latest slot has come); stop."""
        sent = 0
        if self.installation.opt_in_day is not None and self.installation.first_day < self.last_day:
            self.clock.set(at + timedelta(days=self.installation.clock_ahead_days))
            usage = self.usage or _start(self.installation, self.clock, self.endpoint,
                                         VERSIONS[self.last_day > self.installation.upgrade_day])
            sent = len(usage.send_now()["sent"])
            self.usage = usage
        if self.usage is not None:
            self.usage.shutdown()
            self.usage = None
        return sent


def finish_time(start: datetime, weeks: int) -> datetime:
    """The last simulated week's latest possible slot (6 days 23 hours after it closed) has
    come, and the week after it is still open: every simulated week is due, none later."""
    return start + timedelta(weeks=weeks + 1) - timedelta(minutes=30)


def send_time(start: datetime, day: int) -> datetime:
    """When the fleet sends on `day`: the ingest's clock for that day's requests."""
    return start + timedelta(days=day, hours=SEND_HOUR)


def run_worker(conn: Connection, installations: list[Installation], start: datetime,
               weeks: int, endpoint: str, anomaly_week: int | None) -> None:
    """A process that lives its share of the fleet, one day per message: a day's number
    (answers the reports sent), "finish" (answers the last reports sent), None (ends)."""
    simulations = [Simulation(i, start, weeks, endpoint, anomaly_week) for i in installations]
    while (message := conn.recv()) is not None:
        if message == "finish":
            conn.send(sum(s.finish(finish_time(start, weeks)) for s in simulations))
        else:
            conn.send(sum(s.day(message) for s in simulations))
    conn.close()


def _start(installation: Installation, clock: ManualClock, endpoint: str,
           version: str) -> UsageTelemetry:
    usage = UsageTelemetry(installation.data_dir, service_version=version, clock=clock,
                           endpoint=endpoint, export_interval_s=math.inf,
                           background_uploads=False, environ={},
                           environment=installation.environment)
    usage.observe_printers(lambda: installation.printers)
    usage.observe_features(lambda: installation.features)
    usage.start()
    return usage


def _one_day(usage: UsageTelemetry, installation: Installation, rng: random.Random,
             spike: bool) -> None:
    meter = usage.meter()
    jobs = meter.create_counter("printernizer.jobs", unit="{job}")
    downloads = meter.create_counter("printernizer.file.downloads", unit="{file}")
    connections = meter.create_counter("printernizer.printer.connections", unit="{event}")
    uploads = meter.create_counter("printernizer.file.uploads", unit="{file}")
    uses = meter.create_counter("printernizer.feature.uses", unit="{use}")
    errors = meter.create_counter("printernizer.errors", unit="{error}")
    for kind, count in installation.printers.items():
        for _ in range(_poisson(rng, installation.jobs_per_printer * count)):
            jobs.add(1, {"job.status": "created", "printer.type": kind})
            outcome = rng.choices(("completed", "failed", "cancelled"), (90, 7, 3))[0]
            jobs.add(1, {"job.status": outcome, "printer.type": kind})
            downloads.add(1, {"printer.type": kind})
            if rng.random() < 0.5:
                uploads.add(1, {"printer.type": kind})
    for kind in installation.printers:
        for event in ("connected", "disconnected"):
            for _ in range(_poisson(rng, 0.3)):
                connections.add(1, {"printer.type": kind, "connection.event": event})
    for name, enabled in installation.features.items():
        if enabled and rng.random() < 0.7:
            uses.add(rng.randint(1, 6), {"feature.name": name})
    for category, error_type, rate in ERRORS:
        scale = installation.errors_scale
        if spike and error_type == "connection_refused" and "bambu_lab" in installation.printers:
            scale *= 25  # a firmware update that refuses connections: the anomaly to find
        n = _poisson(rng, rate * scale)
        if n:
            errors.add(n, {"error.category": category, "error.type": error_type})


def _poisson(rng: random.Random, mean: float) -> int:
    """Knuth's method: small means only, which is all a day of printing needs."""
    limit, k, p = math.exp(-mean), 0, 1.0
    while True:
        p *= rng.random()
        if p <= limit:
            return k
        k += 1
