"""``otel-usage-demo``: the whole data path on this machine, on embedded defaults.

1. The ingest service starts on loopback with an embedded SQLite store, in this process, on
   the simulated clock (so the requests it counts per day fall on the simulated days).
2. A fleet of installations is simulated with real client code, each in its own data
   directory, over several past weeks, with injected clocks (nothing waits), in worker
   processes (the clients never import the server) that live the same day together. Those
   that opt in send their real weekly reports over OTLP/HTTP; one machine's clock runs ahead,
   and its reports are rejected.
3. What the maintainers' dashboards would show is printed, computed with the dashboards' own
   queries (``otel-usage-dashboards show``); then what privacy costs, the last published
   week's noisy numbers with their 95 % margins beside the simulated fleet's true ones
   (``demo.truth``); and one installation's local JSON export is written.
4. Last, the public statistics of the published weeks are written as a static site
   (``otel-usage-ingest site``), and the demo ends with the path of its page.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import multiprocessing
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime, timedelta
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any, TextIO

from otel_usage import UsageTelemetry
from otel_usage.clock import default_clock
from otel_usage.weeks import Week

from .truth import privacy_cost, true_counts

__all__ = ["main"]

PROG = "otel-usage-demo"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG, description="Run the whole data path on this machine: a simulated fleet, "
                               "the ingest, and what the dashboards show.")
    parser.add_argument("--data-dir", type=Path, default=None,
                        help="where the demo keeps its files (default: a new temporary folder)")
    parser.add_argument("--installations", type=int, default=200,
                        help="installations to simulate (default 200)")
    parser.add_argument("--weeks", type=int, default=12,
                        help="past weeks to simulate (default 12)")
    parser.add_argument("--opt-in", type=float, default=0.4,
                        help="share of installations that opt in (default 0.4)")
    parser.add_argument("--seed", type=int, default=7, help="random seed (default 7)")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1,
                        help="processes simulating installations (default: one per core)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.installations < 1 or args.weeks < 1 or not 0 <= args.opt_in <= 1:
        print(f"{PROG}: --installations and --weeks must be at least 1, "
              "--opt-in between 0 and 1", file=sys.stderr)
        return 2
    _quiet_library_logs()
    work = Path(args.data_dir) if args.data_dir else Path(tempfile.mkdtemp(prefix="otel-usage-"))
    work.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    database = f"sqlite:///{work / 'ingest.sqlite3'}"
    first, _ = _weeks(args.weeks)  # once: the run may cross into another week
    start = datetime(first.year, first.month, first.day, tzinfo=UTC)
    clock = _SimulatedClock(start)
    with _ingest(database, clock) as endpoint:
        sent = _simulate_fleet(work / "fleet", endpoint, clock, start, args)
    elapsed = time.monotonic() - started
    print(f"\n{args.installations} installations over {args.weeks} weeks simulated, "
          f"{sent} weekly reports sent over OTLP/HTTP, in {elapsed:.1f} s.\n")
    truth = true_counts(work / "ingest.sqlite3")  # before the publication forgets the raw weeks
    _publish(database)
    shown = _show_dashboards(database, first, _last_request_day(start, args.weeks))
    print(f"\n{privacy_cost(work / 'ingest.sqlite3', truth)}")
    export = _export_one(work / "fleet" / "installation-0000", work)
    print(f"\nThe local JSON export of one installation: {export}")
    print(f"The ingest's store: {work / 'ingest.sqlite3'}")
    print("To see these numbers in Grafana, load the ingest's data into PostgreSQL or SQL "
          "Server and mount dashboards/provisioning/postgresql/ (or mssql/) as Grafana's "
          "provisioning directory: see dashboards/README.md.")
    page = _write_site(database, work / "site")
    print("\nThe public statistics of the published weeks, as any static host (or the ingest, "
          "at /stats/) serves them; open the page in a browser:")
    print(page)
    return shown


def _quiet_library_logs() -> None:
    """The fleet's clients would each log their uploads: the demo shows a progress bar."""
    import structlog

    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING),
                        logger_factory=structlog.PrintLoggerFactory(sys.stderr))


def _weeks(weeks: int) -> tuple[date, date]:
    """The first simulated week's Monday and the current week's Monday (UTC), from the one
    clock hook (OTEL_USAGE_NOW moves the demo to another date)."""
    this_week = Week.of(default_clock().now())
    return this_week.plus(-weeks).monday, this_week.monday


def _command(name: str) -> str:
    """A console script of this distribution, beside the running interpreter if possible."""
    found = shutil.which(name, path=str(Path(sys.executable).parent)) or shutil.which(name)
    if found is None:
        raise SystemExit(f"{PROG}: {name} is not installed "
                         "(pip install otel-usage-server)")
    return found


class _SimulatedClock:
    """The ingest's clock (Unix seconds): set by the demo to the fleet's simulated moment."""

    def __init__(self, start: datetime) -> None:
        self.now = start.timestamp()

    def __call__(self) -> float:
        return self.now

    def set(self, moment: datetime) -> None:
        self.now = moment.timestamp()


@contextmanager
def _ingest(database: str, clock: _SimulatedClock) -> Iterator[str]:
    """The ingest service on a free loopback port, in a thread of this process, until the
    block ends. Publication is left to the end (`_publish`): the fleet lives weeks in seconds."""
    import uvicorn

    from ingest import Settings, create_app

    # The socket is bound here and handed to uvicorn: no other process can take the port
    # between choosing it and listening on it.
    listening = socket.socket()
    listening.bind(("127.0.0.1", 0))
    port = listening.getsockname()[1]
    # The whole simulated fleet sends from this machine: loopback is exempt from the limits per
    # client address (an explicit setting; a real ingest trusts only its gateway).
    settings = Settings(database_url=database, clock=clock, publish_interval_s=_NEVER_S,
                        unlimited_addresses=frozenset({"127.0.0.1"}))
    server = uvicorn.Server(uvicorn.Config(create_app(settings), host="127.0.0.1", port=port,
                                           log_level="warning", access_log=False))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [listening]}, name="ingest",
                              daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_ready(url, thread)
        print(f"Ingest service listening on {url}, storing into {database}")
        yield url
    finally:
        server.should_exit = True
        thread.join(timeout=30)
        listening.close()


_NEVER_S = 10.0 * 365 * 86400


def _wait_ready(url: str, thread: threading.Thread) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if not thread.is_alive():
            raise SystemExit(f"{PROG}: the ingest service stopped")
        try:
            with urllib.request.urlopen(f"{url}/readyz", timeout=1) as answer:
                if answer.status == 200:
                    return
        except OSError:
            time.sleep(0.1)
    raise SystemExit(f"{PROG}: the ingest service did not become ready in 30 s")


def _simulate_fleet(root: Path, endpoint: str, clock: _SimulatedClock, start: datetime,
                    args: argparse.Namespace) -> int:
    """Every installation lives day 0, then day 1, ...: the ingest's clock is set to each
    day's sending hour first, so it counts the requests on the simulated day."""
    from .fleet import draw_fleet, finish_time, send_time

    fleet = draw_fleet(root, args.installations, args.weeks, args.seed, args.opt_in)
    opted = sum(1 for i in fleet if i.opt_in_day is not None)
    print(f"Simulating {len(fleet)} installations ({opted} opt in) over {args.weeks} weeks "
          f"from {start.date().isoformat()}")
    anomaly = max(args.weeks - 2, 0)  # a surge of refused connections, then a normal week
    context = multiprocessing.get_context("spawn")  # this process runs the server's threads
    count = min(max(args.workers, 1), len(fleet))
    shares = [fleet[i::count] for i in range(count)]
    pipes, workers = [], []
    for share in shares:
        mine, theirs = context.Pipe()
        worker = context.Process(target=_work, args=(theirs, share, start, args.weeks,
                                                     endpoint, anomaly), daemon=True)
        worker.start()
        pipes.append(mine)
        workers.append(worker)
    days = args.weeks * 7
    bar = _Progress(days + 1, sys.stderr)
    sent = 0
    try:
        for day in [*range(days), "finish"]:
            clock.set(finish_time(start, args.weeks) if day == "finish" else send_time(start, day))
            for pipe in pipes:
                pipe.send(day)
            sent += sum(pipe.recv() for pipe in pipes)
            bar.step(f"{sent} reports sent")
        for pipe in pipes:
            pipe.send(None)
    finally:
        bar.close()
        for worker in workers:
            worker.join(timeout=60)
    if any(worker.exitcode != 0 for worker in workers):
        raise SystemExit(f"{PROG}: a simulating process failed")
    return sent


def _work(conn: Connection, *args: Any) -> None:
    from .fleet import run_worker

    _quiet_library_logs()
    run_worker(conn, *args)


def _last_request_day(start: datetime, weeks: int) -> date:
    """The day after the fleet's last requests (the catch-up at the end of the week after the
    last simulated one): the submissions panels end there."""
    from .fleet import finish_time

    return finish_time(start, weeks).date() + timedelta(days=1)


class _Progress:
    """A one-line progress bar on a terminal (plain lines when not a terminal)."""

    def __init__(self, total: int, out: TextIO, width: int = 30) -> None:
        self.total, self.done, self.out, self.width = total, 0, out, width
        self.tty = out.isatty()

    def step(self, note: str) -> None:
        self.done += 1
        filled = self.width * self.done // self.total
        line = f"[{'#' * filled}{'.' * (self.width - filled)}] {self.done}/{self.total} {note}"
        if self.tty:
            self.out.write("\r" + line)
        elif self.done == self.total or self.done % max(self.total // 10, 1) == 0:
            self.out.write(line + "\n")
        self.out.flush()

    def close(self) -> None:
        if self.tty:
            self.out.write("\n")


def _publish(database: str) -> None:
    """The whole simulated fleet has reported, within seconds: publish every week that has
    ended (a real week is published two weeks after it ends); then the ingest forgets the
    published weeks' raw reports, as it does after every publication, and the demo says how
    many."""
    command = [_command("otel-usage-ingest"), "publish", "--database", database,
               "--after-days", "0"]
    lines = subprocess.run(command, check=True, capture_output=True,
                           text=True).stdout.splitlines()
    weeks = sum(line.startswith("published the week of") for line in lines)
    print(f"Published {weeks} weeks; then the ingest {lines[-1]}.\n")


def _write_site(database: str, out: Path) -> Path:
    """The site of the published weeks in `out`, as a static host serves it; its page."""
    command = [_command("otel-usage-ingest"), "site", "--database", database, "--out", str(out)]
    subprocess.run(command, check=True, capture_output=True, text=True)
    return out / "index.html"


def _show_dashboards(database: str, first: date, last: date) -> int:
    command = [_command("otel-usage-dashboards"), "show", "--database", database,
               "--from", first.isoformat(), "--to", last.isoformat()]
    return subprocess.run(command, check=False).returncode


def _export_one(data_dir: Path, work: Path) -> Path:
    usage = UsageTelemetry(data_dir)
    target = work / "installation-0000-export.json"
    target.write_text(json.dumps(asyncio.run(usage.export_json()), indent=2) + "\n",
                      encoding="utf-8")
    return target


if __name__ == "__main__":
    sys.exit(main())
