"""The figures of the attacks on the ingest, measured by attacking a running one (not timed
tests):

- `answer_request_ratio_max`: answer bytes / request bytes (headers included) over every kind
  of small refused request (target at most 8);
- `rss_growth_mb`: the server's RSS growth while 300 connections pipeline requests with many
  problems each and never read (target at most 50 MB);
- `healthz_p99_ms`: `/healthz` latency, 99th percentile, while 1,000 idle and 150 slow
  (a header byte a second) connections stay open, reopened as the server closes them
  (target at most 1,000 ms);
- `cpu_ms_valid`, `cpu_ms_refused` and `worst_refused_protobuf_to_valid`: the server's CPU
  time per request (its process's user and system time over a few hundred requests on
  keep-alive connections) for a valid report of a new installation, stored, and for each kind
  of refused body a client can make within the body limit (many invalid points, repeated
  points, resource attributes, weeks, metrics, attributes of a point; protobuf and JSON); the
  worst refused one of each format against the valid one (target at most 3;
  `worst_refused_json_to_valid`: the ingest takes protobuf only, and refuses a JSON body with
  415 before it is read);
- `healthz_p99_ms_pipelining_protobuf` (and `_json`): `/healthz` latency, 99th percentile,
  while 300 connections pipeline the worst refused body of that format, reading the answers
  (target at most 1,000 ms).

What subtraction can still learn from the published numbers (now noisy, one draw of the
differentially private mechanism per week) is measured in tests/test_ingest_privacy.py and
`python -m benchmarks.privacy_accuracy`.

    python -m benchmarks.ingest_attacks          # from the checkout's root

`serve` runs as its own process on a temporary SQLite file, with loopback exempt from the
per-address limits (this one process stands for every client). The last line is one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gzip
import json
import multiprocessing
import os
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator
from datetime import date
from pathlib import Path
from typing import Any

from google.protobuf import json_format  # type: ignore[import-untyped]
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue

from ingest.testing import (
    CATALOG,
    FIRST,
    add_week,
    free_port,
    new_credential,
    new_installation,
    request,
    resource,
)
from otel_usage.clock import default_clock
from otel_usage.weeks import Week

PATH = CATALOG.protocol.metrics_path
HEADER = CATALOG.protocol.credential_header
HEALTH = b"GET /healthz HTTP/1.1\r\nHost: ingest\r\n\r\n"


def export(body: bytes, credential: str, **extra: str) -> bytes:
    headers = {"Host": "ingest", "Content-Type": "application/x-protobuf",
               "Content-Encoding": "gzip", HEADER: credential,
               "Content-Length": str(len(body))} | extra
    headers = {k: v for k, v in headers.items() if v != ""}
    return (f"POST {PATH} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers.items())
            + "\r\n").encode() + body


def many_problems() -> bytes:
    data = {"printernizer.errors": [({"error.category": "network",
                                      "error.type": f"no_such_type_{i}"}, 1) for i in range(300)]}
    return gzip.compress(request(new_installation(), FIRST, data=data).SerializeToString(), 9)


def refused_requests() -> dict[str, bytes]:
    valid = gzip.compress(request(new_installation(), FIRST).SerializeToString())
    return {
        "many problems": export(many_problems(), new_credential()),
        "no content type": f"POST {PATH} HTTP/1.1\r\nContent-Length: 0\r\n\r\n".encode(),
        "bare request line": f"POST {PATH} HTTP/1.1\r\n\r\n".encode(),
        "other encoding": export(b"x", new_credential(), **{"Content-Encoding": "br"}),
        "no credential": export(valid, ""),
        "declared too large": export(b"", new_credential(), **{"Content-Length": "99999999"}),
        "a second gzip member": export(valid + gzip.compress(b"more"), new_credential()),
        "not protobuf": export(gzip.compress(b"\xff" * 40), new_credential()),
        "unknown path": b"GET /x HTTP/1.1\r\n\r\n",
        "wrong method": f"GET {PATH} HTTP/1.1\r\n\r\n".encode(),
        "malformed HTTP": b"\x00\x01\x02\r\n\r\n",
    }


async def answer_bytes(port: int, raw: bytes) -> int:
    """Bytes the server answers to one request before it closes or goes quiet."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(raw)
    received = b""
    with contextlib.suppress(TimeoutError):
        while chunk := await asyncio.wait_for(reader.read(65536), 1.0):
            received += chunk
            if _complete(received):
                break
    writer.close()
    return len(received)


def _complete(data: bytes) -> bool:
    head, _, body = data.partition(b"\r\n\r\n")
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            return len(body) >= int(line.split(b":")[1])
    return False


def ratios(port: int) -> dict[str, float]:
    return {name: round(asyncio.run(answer_bytes(port, raw)) / len(raw), 2)
            for name, raw in refused_requests().items()}


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


async def pipelining(port: int, pid: int, connections: int = 300, depth: int = 40) -> float:
    """Peak RSS growth while `connections` pipeline `depth` requests each, never reading."""
    raw = export(many_problems(), new_credential()) * depth
    before, writers = rss_mb(pid), []
    for _ in range(connections):
        _, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.transport.set_write_buffer_limits(high=2**23)  # type: ignore[union-attr]
        writer.write(raw)
        writers.append(writer)
    peak = before
    for _ in range(30):
        await asyncio.sleep(0.1)
        peak = max(peak, rss_mb(pid))
    for writer in writers:
        writer.transport.abort()  # type: ignore[union-attr]
    return round(peak - before, 1)


async def health_under_load(port: int, idle: int = 1000, slow: int = 150,
                            seconds: float = 15.0) -> list[float]:
    """/healthz latencies (ms), each on a new connection, while `idle` silent and `slow`
    trickling connections are kept open (reopened whenever the server closes one)."""
    stop = time.monotonic() + seconds

    async def keep(trickle: bool) -> None:
        while time.monotonic() < stop:
            try:
                reader, writer = await asyncio.open_connection("127.0.0.1", port)
            except OSError:
                await asyncio.sleep(0.1)
                continue
            head = f"POST {PATH} HTTP/1.1\r\nHost: ingest\r\n".encode()
            for index in range(1000):
                if reader.at_eof() or time.monotonic() >= stop:
                    break
                if trickle:
                    writer.write(head[index % len(head):index % len(head) + 1])
                try:
                    await asyncio.wait_for(reader.read(1), 1.0)
                except TimeoutError:
                    continue
                except ConnectionError:  # the server reset it: open another
                    break
            writer.close()

    holders = [asyncio.ensure_future(keep(i >= idle)) for i in range(idle + slow)]
    await asyncio.sleep(2.0)
    latencies = []
    while time.monotonic() < stop - 0.5:
        started = time.perf_counter()
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(HEALTH)
        await reader.readuntil(b"\r\n\r\n")
        latencies.append((time.perf_counter() - started) * 1000)
        writer.close()
        await asyncio.sleep(0.05)
    await asyncio.gather(*holders)
    return sorted(latencies)


# CPU per request --------------------------------------------------------------------------

LIMIT = CATALOG.protocol.max_body_bytes
ERRORS = "printernizer.errors"


def _week() -> date:
    """The last closed week by the clock hook: the week a running server accepts."""
    return Week.of(default_clock().now()).previous().monday


def _largest(build: Callable[[int], ExportMetricsServiceRequest], fmt: str = "protobuf") -> bytes:
    """The body of the most items `build` can put in a request within the body limit."""
    count = 4096
    while True:
        message = build(count)
        raw = (message.SerializeToString() if fmt == "protobuf"
               else json_format.MessageToJson(message, indent=None).encode())
        if len(raw) <= LIMIT:
            return raw
        count = count * 9 // 10


def _points(data: Callable[[int], dict[str, list[tuple[dict[str, str], int]]]]
            ) -> Callable[[int], ExportMetricsServiceRequest]:
    return lambda n: request(new_installation(), _week(), data=data(n))


def _resource_attributes(n: int) -> ExportMetricsServiceRequest:
    message = request(new_installation(), _week(), data={"printernizer.uptime": [({}, 3)]})
    message.resource_metrics[0].resource.attributes.extend(
        KeyValue(key=f"k{i}", value=AnyValue(string_value="v")) for i in range(n))
    return message


def _weeks(n: int) -> ExportMetricsServiceRequest:
    message, installation = ExportMetricsServiceRequest(), new_installation()
    for _ in range(n):
        add_week(message, resource(installation), {"printernizer.uptime": [({}, 3)]}, _week())
    return message


def _empty_metrics(n: int) -> ExportMetricsServiceRequest:
    message = request(new_installation(), _week(), data={"printernizer.uptime": [({}, 3)]})
    metrics = message.resource_metrics[0].scope_metrics[0].metrics
    for i in range(n):
        metrics.add().name = f"printernizer.nope{i}"
    return message


def _point_attributes(n: int) -> ExportMetricsServiceRequest:
    data = {"printernizer.app.starts": [({f"k{i}": "v" for i in range(n)}, 1)]}
    return request(new_installation(), _week(), data=data)


def refused_bodies() -> dict[str, tuple[str, bytes]]:
    """Each kind of refused body a client can make within the body limit: its format and its
    uncompressed bytes."""
    builders: dict[str, Callable[[int], ExportMetricsServiceRequest]] = {
        "unknown metric": _points(lambda n: {"printernizer.nope": [({}, 1)] * n}),
        "value out of range": _points(lambda n: {"printernizer.uptime": [({}, 9)] * n}),
        "repeated point": _points(lambda n: {"printernizer.app.starts": [({}, 1)] * n}),
        "value not allowed": _points(lambda n: {ERRORS: [(
            {"error.category": "network", "error.type": "nope"}, 1)] * n}),
        "distinct values not allowed": _points(lambda n: {ERRORS: [(
            {"error.category": "network", "error.type": f"nope{i}"}, 1) for i in range(n)]}),
        "resource attributes": _resource_attributes,
        "weeks": _weeks,
        "empty metrics": _empty_metrics,
        "attributes of a point": _point_attributes,
    }
    bodies = {name: ("protobuf", _largest(build)) for name, build in builders.items()}
    for name in ("unknown metric", "value not allowed"):
        bodies[f"{name} (JSON)"] = ("json", _largest(builders[name], "json"))
    return bodies


def post(raw: bytes, fmt: str, credential: str) -> bytes:
    """One export request as bytes on the wire, gzip-compressed."""
    body = gzip.compress(raw)
    media = "application/x-protobuf" if fmt == "protobuf" else "application/json"
    return export(body, credential, **{"Content-Type": media})


def cpu_seconds(pid: int) -> float:
    """The process's user and system time so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def _answer(reader: asyncio.StreamReader) -> bytes:
    """One HTTP answer's status line (the body read and dropped)."""
    head = await reader.readuntil(b"\r\n\r\n")
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            await reader.readexactly(int(line.split(b":")[1]))
    return head.split(b" ", 2)[1]


async def cpu_per_request(port: int, pid: int, requests: list[bytes],
                          connections: int = 8) -> tuple[float, dict[str, int]]:
    """The server's CPU milliseconds per request over `requests`, sent one at a time on each
    of `connections` keep-alive connections, and the answers' statuses."""
    statuses: dict[str, int] = {}

    async def one(share: list[bytes]) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        for raw in share:
            writer.write(raw)
            status = (await _answer(reader)).decode()
            statuses[status] = statuses.get(status, 0) + 1
        writer.close()

    before = cpu_seconds(pid)
    await asyncio.gather(*(one(requests[i::connections]) for i in range(connections)))
    return round((cpu_seconds(pid) - before) * 1000 / len(requests), 3), statuses


def request_costs(port: int, pid: int, count: int = 600) -> dict[str, object]:
    """CPU per valid report (each a new installation, stored) and per refused request of
    each kind, and the worst refused kind of each format against the valid one."""
    week = _week()
    valid = [post(request(new_installation(), week, seed=i).SerializeToString(), "protobuf",
                  new_credential()) for i in range(count)]
    asyncio.run(cpu_per_request(port, pid, valid[:100]))  # warm up
    valid_ms, statuses = asyncio.run(cpu_per_request(port, pid, valid[100:]))
    result: dict[str, object] = {"cpu_ms_valid": valid_ms, "valid_statuses": statuses}
    refused: dict[str, float] = {}
    answers: dict[str, dict[str, int]] = {}
    for name, (fmt, raw) in refused_bodies().items():
        wire = post(raw, fmt, new_credential())
        asyncio.run(cpu_per_request(port, pid, [wire] * 20))  # warm up
        refused[name], answers[name] = asyncio.run(
            cpu_per_request(port, pid, [wire] * (count // 2)))
    result |= {"cpu_ms_refused": refused, "refused_statuses": answers}
    for fmt in ("protobuf", "json"):
        worst = max((name for name in refused if ("(JSON)" in name) == (fmt == "json")),
                    key=refused.__getitem__)
        result |= {f"worst_refused_{fmt}": worst, f"cpu_ms_worst_refused_{fmt}": refused[worst],
                   f"worst_refused_{fmt}_to_valid": round(refused[worst] / valid_ms, 2)}
    return result


def health_under_pipelining(port: int, raw: bytes, connections: int = 300,
                            depth: int = 4, seconds: float = 15.0,
                            processes: int = 2) -> list[float]:
    """/healthz latencies (ms), each on a new connection, while `connections` (spread over
    `processes` processes of their own, so that the flood's own work does not delay the
    probe) each keep `depth` requests of `raw` pipelined, reading the answers as they come.
    Probing starts once every flooding connection is open, and ends before they stop."""
    context = multiprocessing.get_context("spawn")
    ready = context.Barrier(processes + 1)
    floods = [context.Process(target=_flood,
                              args=(port, raw, connections // processes, depth, seconds, ready))
              for _ in range(processes)]
    for process in floods:
        process.start()
    try:
        ready.wait(120)
        return asyncio.run(_probe_health(port, seconds - 1.0))
    finally:
        for process in floods:
            process.join(seconds + 60)


async def _probe_health(port: int, seconds: float) -> list[float]:
    stop = time.monotonic() + seconds
    latencies = []
    while time.monotonic() < stop:
        started = time.perf_counter()
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(HEALTH)
        await reader.readuntil(b"\r\n\r\n")
        latencies.append((time.perf_counter() - started) * 1000)
        writer.close()
        await asyncio.sleep(0.05)
    return sorted(latencies)


def _flood(port: int, raw: bytes, connections: int, depth: int, seconds: float,
           ready: Any) -> None:
    """In a process of its own: open `connections`, wait at `ready` for the other processes
    and the probe, then pipeline `raw` on each for `seconds`."""
    asyncio.run(_pipelining(port, raw, connections, depth, seconds, ready))


async def _pipelining(port: int, raw: bytes, connections: int, depth: int, seconds: float,
                      ready: Any) -> None:
    opened = [await asyncio.open_connection("127.0.0.1", port) for _ in range(connections)]
    await asyncio.to_thread(ready.wait, 120)
    stop = time.monotonic() + seconds
    await asyncio.gather(*(_keep_pipelining(port, raw, depth, stop, reader, writer)
                           for reader, writer in opened))


async def _keep_pipelining(port: int, raw: bytes, depth: int, stop: float,
                           reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """`depth` requests written at once, their answers read, until `stop`; a connection the
    server closed (idle while the others opened) is opened again."""
    while time.monotonic() < stop:
        try:
            writer.write(raw * depth)
            for _ in range(depth):
                await _answer(reader)
        except (OSError, asyncio.IncompleteReadError):
            writer.close()
            await asyncio.sleep(0.1)
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.close()


@contextlib.contextmanager
def serve(database: str) -> Iterator[subprocess.Popen[bytes]]:
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "ingest.cli", "serve", "--database", database, "--port",
         str(port), "--unlimited-address", "127.0.0.1", "--log-level", "error"])
    for _ in range(300):
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=1):
                break
        except OSError:
            time.sleep(0.1)
    process.port = port  # type: ignore[attr-defined]
    try:
        yield process
    finally:
        process.terminate()
        process.wait(60)


def _percentiles(name: str, latencies: list[float], suffix: str = "") -> dict[str, object]:
    return {f"{name}_probes{suffix}": len(latencies),
            f"{name}_p50_ms{suffix}": round(latencies[len(latencies) // 2], 1),
            f"{name}_p99_ms{suffix}": round(latencies[int(len(latencies) * 0.99)], 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--idle", type=int, default=1000)
    parser.add_argument("--slow", type=int, default=150)
    parser.add_argument("--requests", type=int, default=600,
                        help="requests per kind for the CPU per request (half for refused kinds)")
    parser.add_argument("--pipelining", type=int, default=300,
                        help="connections pipelining the worst refused body")
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="ingest-attacks."))
    result: dict[str, object] = {"load_before": os.getloadavg()[0]}
    with serve(f"sqlite:///{tmp}/serve.db") as server:
        port = server.port  # type: ignore[attr-defined]
        result["answer_request_ratios"] = ratios(port)
        result["answer_request_ratio_max"] = max(result["answer_request_ratios"].values())  # type: ignore[attr-defined]
        result["rss_mb_before"] = round(rss_mb(server.pid), 1)
        result["rss_growth_mb"] = asyncio.run(pipelining(port, server.pid))
        latencies = asyncio.run(health_under_load(port, args.idle, args.slow))
        result |= _percentiles("healthz", latencies)
        costs = request_costs(port, server.pid, args.requests)
        result |= costs
        bodies = refused_bodies()
        for fmt in ("protobuf", "json"):
            worst = str(costs[f"worst_refused_{fmt}"])
            flood = post(bodies[worst][1], fmt, new_credential())
            before, began = cpu_seconds(server.pid), time.monotonic()
            latencies = health_under_pipelining(port, flood, args.pipelining)
            result |= _percentiles("healthz", latencies, f"_pipelining_{fmt}")
            # How much of a core the server had meanwhile: on a machine shared with the flood
            # (and anything else), the latency is as much the scheduler's as the server's.
            result[f"server_cores_pipelining_{fmt}"] = round(
                (cpu_seconds(server.pid) - before) / (time.monotonic() - began), 2)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
