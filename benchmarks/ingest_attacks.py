"""The figures of the attacks on the ingest, measured by attacking a running one (not timed
tests):

- `answer_request_ratio_max`: answer bytes / request bytes (headers included) over every kind
  of small refused request (target at most 8);
- `rss_growth_mb`: the server's RSS growth while 300 connections pipeline requests with many
  problems each and never read (target at most 50 MB);
- `healthz_p99_ms`: `/healthz` latency, 99th percentile, while 1,000 idle and 150 slow
  (a header byte a second) connections stay open, reopened as the server closes them
  (target at most 1,000 ms).

What subtraction can still learn from the published numbers (now noisy, one draw of the
differentially private mechanism per week) is measured in tests/test_ingest_privacy.py and
benchmarks/privacy_accuracy.py.

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
import os
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

from ingest.audit import FIRST
from ingest.testing import CATALOG, free_port, new_credential, new_installation, request

PATH = CATALOG.protocol.metrics_path
HEADER = CATALOG.protocol.credential_header
HEALTH = b"GET /healthz HTTP/1.1\r\nHost: ingest\r\n\r\n"


def export(body: bytes, credential: str, **extra: str) -> bytes:
    headers = {"Host": "ingest", "Content-Type": "application/x-protobuf",
               "Content-Encoding": "gzip", HEADER: credential,
               "Content-Length": str(len(body))} | extra
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
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(reader.read(1), 1.0)
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--idle", type=int, default=1000)
    parser.add_argument("--slow", type=int, default=150)
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
        result["healthz_probes"] = len(latencies)
        result["healthz_p50_ms"] = round(latencies[len(latencies) // 2], 1)
        result["healthz_p99_ms"] = round(latencies[int(len(latencies) * 0.99)], 1)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
