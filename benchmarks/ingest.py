"""Benchmark of the ingest's write path: throughput, latency, CPU, memory, overload
and shutdown, for this tree's `otel-usage-ingest serve` and, with `--compare REV`, for the
design at a git revision, started the same way and measured in the same run, round by round.

Each run starts `serve` on loopback on an empty database (a new SQLite file, or a new
PostgreSQL schema) and drives it with pre-built weekly reports (protobuf, gzip, as the client
sends them) of distinct installations over keep-alive connections:
1. throughput: `--reports` reports over `--connections` connections: reports/s, p50, p99,
   server CPU per report (every process of the server), RSS;
2. overload: 256 connections at once: every answer is 200 or 503 with Retry-After, none hangs;
3. SIGTERM while reports are in flight: every report answered 200 is stored (`lost` = 0);
4. this tree only: the publication of the loaded week (`otel-usage-ingest publish`).
The last line is one JSON object: every run, and per design the median and range of each figure,
and `reference_ms`, the CPU time of a fixed Python loop before and after (the core's speed).

    python -m benchmarks.ingest --compare b78a351     # from the checkout's root; SQLite files
    python -m benchmarks.ingest --database postgresql+psycopg://user@127.0.0.1:5432/db
"""

from __future__ import annotations

import argparse
import asyncio
import gzip
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import sqlalchemy as sa

from ingest.testing import CATALOG, free_port, new_credential, new_installation, request
from otel_usage.clock import default_clock
from otel_usage.weeks import Week

HERE = Path(__file__).resolve().parent.parent
HEADER = CATALOG.protocol.credential_header
PATH = CATALOG.protocol.metrics_path
TIMEOUT_S = 30.0


@dataclass
class Design:
    """A tree whose `python -m ingest.cli serve` is measured, and the flags it takes."""

    name: str
    root: Path
    flags: list[str] = field(default_factory=list)


def build_requests(count: int) -> list[bytes]:
    """Whole HTTP/1.1 requests, one per distinct (new) installation, for last week."""
    week = Week.of(default_clock().now()).previous().monday
    requests = []
    for index in range(count):
        body = gzip.compress(request(new_installation(), week, seed=index).SerializeToString())
        head = (f"POST {PATH} HTTP/1.1\r\nHost: ingest\r\nContent-Type: application/x-protobuf"
                f"\r\nContent-Encoding: gzip\r\n{HEADER}: {new_credential()}\r\n"
                f"Content-Length: {len(body)}\r\n\r\n")
        requests.append(head.encode() + body)
    return requests


@dataclass
class Answers:
    latencies_ms: list[float] = field(default_factory=list)
    statuses: dict[str, int] = field(default_factory=dict)
    retry_after_missing: int = 0

    def add(self, status: str, started: float, retry_after: bool = True) -> None:
        self.latencies_ms.append((time.perf_counter() - started) * 1000)
        self.statuses[status] = self.statuses.get(status, 0) + 1
        if status == "503" and not retry_after:
            self.retry_after_missing += 1


async def drive(port: int, requests: list[bytes], connections: int) -> Answers:
    """Send every request once over `connections` keep-alive connections."""
    answers = Answers()
    queue = iter(requests)

    async def worker() -> None:
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            answers.add("refused", time.perf_counter())
            return
        for raw in queue:
            started = time.perf_counter()
            try:
                writer.write(raw)
                async with asyncio.timeout(TIMEOUT_S):
                    head = await reader.readuntil(b"\r\n\r\n")
                    length = _header(head, b"content-length:")
                    await reader.readexactly(int(length or 0))
            except TimeoutError:
                answers.add("hang", started)
                break
            except (OSError, asyncio.IncompleteReadError):
                answers.add("closed", started)
                break
            answers.add(head[9:12].decode(), started, _header(head, b"retry-after:") is not None)
        writer.close()

    await asyncio.gather(*(worker() for _ in range(connections)))
    return answers


def _header(head: bytes, name: bytes) -> bytes | None:
    for line in head.split(b"\r\n"):
        if line[:len(name)].lower() == name:
            return line[len(name):].strip()
    return None


def process_tree(pid: int) -> list[int]:
    """pid and its descendants (a writer process, uvicorn's workers)."""
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


def cpu_s(pid: int) -> float:
    seconds = 0.0
    for member in process_tree(pid):
        fields = Path(f"/proc/{member}/stat").read_text().rsplit(")", 1)[1].split()
        seconds += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return seconds


def start_server(design: Design, database: str, port: int) -> subprocess.Popen[bytes]:
    command = [sys.executable, "-m", "ingest.cli", "serve", "--database", database,
               "--port", str(port), "--log-level", "warning", *design.flags]
    server = subprocess.Popen(command, cwd=design.root)
    for _ in range(600):
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=1) as answer:
                if answer.status == 200:
                    return server
        except OSError:
            time.sleep(0.1)
    server.kill()
    raise SystemExit(f"the {design.name} ingest did not become ready")


def stop(server: subprocess.Popen[bytes]) -> None:
    if server.poll() is None:
        server.send_signal(signal.SIGTERM)
    server.wait(60)


class Databases:
    """A fresh, empty database per run: a SQLite file, or a PostgreSQL schema."""

    def __init__(self, url: str) -> None:
        self.base = url
        self.tmp = Path(tempfile.mkdtemp(prefix="ingest-bench."))
        self.made: list[str] = []

    def fresh(self) -> str:
        name = f"b_{uuid.uuid4().hex[:12]}"
        if self.base == "sqlite":
            return f"sqlite:///{self.tmp / name}.db"
        self._admin(f"CREATE SCHEMA {name}")
        self.made.append(name)
        sep = "&" if "?" in self.base else "?"
        return f"{self.base}{sep}options=-csearch_path%3D{name}"

    def stored(self, url: str) -> int:
        engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
        with engine.connect() as conn:
            count = int(conn.exec_driver_sql("SELECT COUNT(*) FROM weekly_reports").scalar_one())
        engine.dispose()
        return count

    def drop_all(self) -> None:
        for name in self.made:
            self._admin(f"DROP SCHEMA {name} CASCADE")

    def _admin(self, statement: str) -> None:
        engine = sa.create_engine(self.base, poolclass=sa.pool.NullPool)
        with engine.begin() as conn:
            conn.exec_driver_sql(statement)
        engine.dispose()


def throughput(port: int, pid: int, requests: list[bytes], warmup: int,
               connections: int) -> dict[str, object]:
    asyncio.run(drive(port, requests[:warmup], connections))
    rss_start, cpu_start = rss_mb(pid), cpu_s(pid)
    started = time.perf_counter()
    answers = asyncio.run(drive(port, requests[warmup:], connections))
    elapsed = time.perf_counter() - started
    count = len(requests) - warmup
    latencies = sorted(answers.latencies_ms)
    rss_end = rss_mb(pid)
    return {
        "reports_per_s": round(answers.statuses.get("200", 0) / elapsed, 1),
        "p50_ms": round(latencies[len(latencies) // 2], 2),
        "p99_ms": round(latencies[int(len(latencies) * 0.99)], 2),
        "cpu_per_report_ms": round((cpu_s(pid) - cpu_start) / count * 1000, 3),
        "rss_mb": round(rss_end, 1),
        "rss_growth_mb": round(rss_end - rss_start, 1),
        "statuses": answers.statuses,
    }


def overload(port: int, requests: list[bytes]) -> dict[str, object]:
    """256 connections at once: 200 or 503 with Retry-After, and no hang."""
    answers = asyncio.run(drive(port, requests, 256))
    latencies = sorted(answers.latencies_ms)
    return {"statuses_256": answers.statuses, "max_ms_256": round(latencies[-1], 1),
            "p99_ms_256": round(latencies[int(len(latencies) * 0.99)], 1),
            "503_without_retry_after": answers.retry_after_missing}


def sigterm(server: subprocess.Popen[bytes], port: int, requests: list[bytes],
            databases: Databases, url: str, stored_before: int) -> dict[str, object]:
    """SIGTERM while reports are in flight: every 200 must be stored."""

    async def run() -> Answers:
        sending = asyncio.ensure_future(drive(port, requests, 32))
        await asyncio.sleep(0.5)
        server.send_signal(signal.SIGTERM)
        return await sending

    answers = asyncio.run(run())
    server.wait(60)
    stored = databases.stored(url) - stored_before
    return {"sigterm_answered_200": answers.statuses.get("200", 0), "sigterm_stored": stored,
            "sigterm_lost": answers.statuses.get("200", 0) - stored,
            "sigterm_exit": server.returncode}


def publish_s(url: str) -> float:
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "ingest.cli", "publish", "--database", url,
                    "--after-days", "0"], cwd=HERE, check=True, stdout=subprocess.DEVNULL)
    return round(time.perf_counter() - started, 2)


def one_run(design: Design, databases: Databases, args: argparse.Namespace) -> dict[str, object]:
    url = databases.fresh()
    port = free_port()
    requests = build_requests(args.warmup + args.reports + 2 * args.overload)
    server = start_server(design, url, port)
    try:
        result: dict[str, object] = {"design": design.name}
        result |= throughput(port, server.pid, requests[:args.warmup + args.reports],
                             args.warmup, args.connections)
        rest = requests[args.warmup + args.reports:]
        result |= overload(port, rest[:args.overload])
        result |= sigterm(server, port, rest[args.overload:], databases, url,
                          databases.stored(url))
    finally:
        stop(server)
    if design.root == HERE:
        result["publish_week_s"] = publish_s(url)
    return result


def export_revision(revision: str) -> Path:
    """The tree at a git revision, in a temporary directory (run with this environment)."""
    target = Path(tempfile.mkdtemp(prefix="ingest-design."))
    archive = subprocess.run(["git", "archive", revision], cwd=HERE, check=True,
                             capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(target)], input=archive, check=True)
    return target


def summary(runs: list[dict[str, object]]) -> dict[str, dict[str, object]]:
    """Per design, the median and the range of every numeric figure."""
    out: dict[str, dict[str, object]] = {}
    for name in dict.fromkeys(str(r["design"]) for r in runs):
        mine = [r for r in runs if r["design"] == name]
        figures = {}
        for key, value in mine[0].items():
            if isinstance(value, int | float) and not isinstance(value, bool):
                values = [float(r[key]) for r in mine]  # type: ignore[arg-type]
                figures[key] = {"median": round(statistics.median(values), 3),
                                "min": min(values), "max": max(values)}
        out[name] = figures
    return out


def reference_ms() -> float:
    """CPU time of a fixed pure-Python loop, nothing of this project: how fast this machine's
    core is at the moment, to read figures of runs on different days against each other
    (the machine's speed has varied about threefold between days)."""
    started = time.process_time()
    total = 0
    for i in range(2_000_000):
        total += i * i
    return round((time.process_time() - started) * 1000, 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database", default="sqlite",
                        help="'sqlite' (temporary files) or a PostgreSQL URL")
    parser.add_argument("--compare", metavar="REV", default=None,
                        help="also measure the design at this git revision, in the same run")
    parser.add_argument("--compare-flags", default="--workers 2 --no-address-limit",
                        help="serve flags for the compared design")
    parser.add_argument("--flags", default="--no-address-limit --unlimited-address 127.0.0.1",
                        help="serve flags for this tree")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--reports", type=int, default=20_000)
    parser.add_argument("--warmup", type=int, default=2_000)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--overload", type=int, default=3_000,
                        help="reports sent over 256 connections, and again at SIGTERM")
    args = parser.parse_args()
    designs = [Design("simple", HERE, args.flags.split())]
    if args.compare:
        designs.append(Design(f"present@{args.compare}", export_revision(args.compare),
                              args.compare_flags.split()))
    databases = Databases(args.database)
    reference_before = reference_ms()
    runs = []
    try:
        for _ in range(args.rounds):
            for design in designs:
                runs.append(one_run(design, databases, args))
                print(json.dumps(runs[-1]), flush=True)
    finally:
        databases.drop_all()
    print(json.dumps({"database": "sqlite" if args.database == "sqlite" else "postgresql",
                      "load_before": os.getloadavg()[0],
                      "reference_ms": [reference_before, reference_ms()],
                      "summary": summary(runs),
                      "runs": runs}))


if __name__ == "__main__":
    main()
