"""Benchmark of the ingest service (issue 4): throughput, latency, memory, view speed.

Starts `otel-usage-ingest serve` on loopback, drives it with pre-built weekly reports (protobuf,
gzip, as the client sends them) from many distinct installations over keep-alive connections,
then fills a store of installations x weeks and times every reporting view. The last line of
output is one JSON object: reports_per_s, p50_ms, p99_ms, rss_mb, view_ms_max and details.

    python benchmarks/ingest.py --database sqlite:////tmp/bench.db
    python benchmarks/ingest.py --database postgresql+psycopg://user@127.0.0.1:5432/db
"""

from __future__ import annotations

import argparse
import asyncio
import gzip
import json
import os
import random
import secrets
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from datetime import date
from pathlib import Path

import sqlalchemy as sa

ROOT = Path(__file__).resolve().parent.parent
# This file is named like the package it measures: take its folder off the path first.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

import ingest_reports as R  # noqa: E402  (the tests' builder of valid reports)

from ingest import _rollup  # noqa: E402
from ingest._store import ReportJob, Store, create_engine  # noqa: E402
from ingest._validate import Point, Report  # noqa: E402
from ingest.views import VIEWS  # noqa: E402
from otel_usage.clock import default_clock  # noqa: E402
from otel_usage.weeks import Week  # noqa: E402

HEADER = R.CATALOG.protocol.credential_header


def last_week() -> date:
    return Week.of(default_clock().now()).previous().monday


def build_bodies(count: int, week: date) -> list[bytes]:
    """Whole HTTP/1.1 requests, one per distinct (new) installation."""
    requests = []
    for index in range(count):
        installation = str(uuid.uuid4())
        message = R.request(installation, week, seed=index)
        body = gzip.compress(message.SerializeToString())
        head = (f"POST /v1/metrics HTTP/1.1\r\nHost: ingest\r\nContent-Type: application/x-protobuf"
                f"\r\nContent-Encoding: gzip\r\n{HEADER}: {secrets.token_urlsafe(32)}\r\n"
                f"Content-Length: {len(body)}\r\n\r\n")
        requests.append(head.encode() + body)
    return requests


async def drive(port: int, requests: list[bytes],
                connections: int) -> tuple[list[float], dict[int, int]]:
    """Send every request once over `connections` keep-alive connections; latencies in ms."""
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    queue = iter(requests)

    async def worker() -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        for raw in queue:
            started = time.perf_counter()
            writer.write(raw)
            head = await reader.readuntil(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n"):
                if line[:15].lower() == b"content-length:":
                    length = int(line[15:])
            if length:
                await reader.readexactly(length)
            latencies.append((time.perf_counter() - started) * 1000)
            status = int(head[9:12])
            statuses[status] = statuses.get(status, 0) + 1
        writer.close()

    await asyncio.gather(*(worker() for _ in range(connections)))
    return latencies, statuses


def process_tree(pid: int) -> list[int]:
    """pid and its descendants (uvicorn's workers under the supervisor)."""
    parents = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text().rsplit(")", 1)[1].split()
                parents[int(entry.name)] = int(stat[1])
            except OSError:
                continue
    tree, frontier = [pid], [pid]
    while frontier:
        frontier = [child for child, parent in parents.items() if parent in frontier]
        tree += frontier
    return tree


def rss_mb(pid: int) -> float:
    total = 0.0
    for member in process_tree(pid):
        for line in Path(f"/proc/{member}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                total += int(line.split()[1]) / 1024
    return total


def cpu_by_process(pid: int) -> dict[int, float]:
    seconds = {}
    for member in process_tree(pid):
        fields = Path(f"/proc/{member}/stat").read_text().rsplit(")", 1)[1].split()
        seconds[member] = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return seconds


def server_cpu_s(pid: int) -> float:
    return sum(cpu_by_process(pid).values())


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_server(database: str, port: int, workers: int) -> subprocess.Popen[bytes]:
    command = [sys.executable, "-m", "ingest.cli", "serve", "--database", database,
               "--port", str(port), "--no-address-limit", "--log-level", "warning",
               "--workers", str(workers)]
    server = subprocess.Popen(command, cwd=ROOT)
    for _ in range(300):
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=1) as answer:
                if answer.status == 200:
                    return server
        except OSError:
            time.sleep(0.1)
    server.kill()
    raise SystemExit("the ingest did not become ready")


def throughput(database: str, count: int, connections: int, warmup: int,
               workers: int) -> dict[str, object]:
    port = free_port()
    week = last_week()
    requests = build_bodies(count + warmup, week)
    server = start_server(database, port, workers)
    try:
        asyncio.run(drive(port, requests[:warmup], connections))
        rss_start = rss_mb(server.pid)
        cpu_start = server_cpu_s(server.pid), time.process_time()
        by_process = cpu_by_process(server.pid)
        started = time.perf_counter()
        latencies, statuses = asyncio.run(drive(port, requests[warmup:], connections))
        elapsed = time.perf_counter() - started
        rss_end = rss_mb(server.pid)
        cpu = server_cpu_s(server.pid) - cpu_start[0], time.process_time() - cpu_start[1]
        by_process = {p: s - by_process.get(p, 0.0) for p, s in cpu_by_process(server.pid).items()}
    finally:
        server.terminate()
        server.wait(30)
    latencies.sort()
    return {
        "reports_per_s": round(count / elapsed, 1),
        "p50_ms": round(latencies[len(latencies) // 2], 2),
        "p99_ms": round(latencies[int(len(latencies) * 0.99)], 2),
        "rss_mb": round(rss_end, 1),
        "rss_growth_mb": round(rss_end - rss_start, 1),
        "server_cpu_per_report_ms": round(cpu[0] / count * 1000, 3),
        "client_cpu_per_report_ms": round(cpu[1] / count * 1000, 3),
        "cpu_per_report_ms_by_process": sorted(round(s / count * 1000, 3)
                                               for s in by_process.values()),
        "statuses": {str(k): v for k, v in sorted(statuses.items())},
    }


def fill_store(database: str, installations: int, weeks: int) -> float:
    """Load installations x weeks reports through the store's own write path; seconds taken."""
    store = Store(create_engine(database), R.CATALOG)
    store.migrate(R.CATALOG.policy.k_anonymity)
    rng = random.Random(7)
    ids = [str(uuid.UUID(int=rng.getrandbits(128), version=4)) for _ in range(installations)]
    shapes = [_shape(rng, f"{i}") for i in range(200)]
    first = Week.of(default_clock().now()).plus(-weeks)
    started = time.perf_counter()
    for offset in range(weeks):
        week = first.plus(offset).naive_start
        for chunk in range(0, installations, 500):
            jobs = []
            for installation in ids[chunk:chunk + 500]:
                resource, points = shapes[rng.randrange(len(shapes))]
                own = resource | {"service.instance.id": installation}
                report = Report(installation, week, own, points)
                jobs.append(ReportJob(installation, "0" * 64,
                                      ((report, _rollup.contributions(report, R.CATALOG)),)))
            store.write_reports(jobs)
    store.dispose()
    return time.perf_counter() - started


def _shape(rng: random.Random, seed: str) -> tuple[dict[str, str], tuple[Point, ...]]:
    resource = R.resource("00000000-0000-4000-8000-000000000000", rng)
    resource["service.version"] = f"2.{rng.randint(0, 9)}.{rng.randint(0, 3)}"
    resource["geo.country.iso_code"] = rng.choice(["DE", "AT", "CH", "US", "GB", "FR", "NL", "PL"])
    points = tuple(Point(name, tuple(sorted(attrs.items())), value)
                   for name, series in R.points(rng).items() for attrs, value in series)
    return resource, points


def time_views(database: str) -> dict[str, float]:
    engine = sa.create_engine(database, poolclass=sa.pool.NullPool)
    timings = {}
    with engine.connect() as conn:
        for name in VIEWS:
            started = time.perf_counter()
            rows = conn.execute(sa.text(f"SELECT * FROM {name}")).fetchall()
            timings[name] = round((time.perf_counter() - started) * 1000, 1)
            timings[f"{name}_rows"] = len(rows)
    engine.dispose()
    return timings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database", default=None, help="SQLAlchemy URL (default: a temp SQLite)")
    parser.add_argument("--reports", type=int, default=20_000)
    parser.add_argument("--warmup", type=int, default=2_000)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--workers", type=int, default=2, help="serve --workers")
    parser.add_argument("--view-installations", type=int, default=10_000)
    parser.add_argument("--view-weeks", type=int, default=52)
    parser.add_argument("--view-database", default=None,
                        help="a second, empty database for the view store (default: --database)")
    args = parser.parse_args()
    tmp = tempfile.mkdtemp(prefix="ingest-bench.")
    database = args.database or f"sqlite:///{tmp}/bench.db"
    result: dict[str, object] = {"database": sa.make_url(database).get_backend_name()}
    result["workers"] = args.workers
    result.update(throughput(database, args.reports, args.connections, args.warmup, args.workers))
    view_db = args.view_database or database
    if args.view_installations:
        result["fill_s"] = round(fill_store(view_db, args.view_installations, args.view_weeks), 1)
        views = time_views(view_db)
        result["view_ms_max"] = max(v for k, v in views.items() if not k.endswith("_rows"))
        result["views"] = views
    print(json.dumps(result))


if __name__ == "__main__":
    os.environ.setdefault("PYTHONHASHSEED", "0")
    main()
