"""HTTP/1.1 on raw sockets for the ingest's tests: a client cheap enough that timings measure
the server, and one that can misbehave (pipeline, never read, send slowly) like an attacker."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

from ingest_reports import CATALOG

HEADER = CATALOG.protocol.credential_header
PATH = CATALOG.protocol.metrics_path


def export_request(body: bytes, credential: str, *, gzip: bool = True,
                   content_type: str = "application/x-protobuf",
                   extra: dict[str, str] | None = None) -> bytes:
    """A whole POST of an export, as bytes on the wire."""
    headers = {"Host": "ingest", "Content-Type": content_type, HEADER: credential,
               "Content-Length": str(len(body))}
    if gzip:
        headers["Content-Encoding"] = "gzip"
    headers |= extra or {}
    head = f"POST {PATH} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    return (head + "\r\n").encode() + body


@dataclass(frozen=True)
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes
    wire_bytes: int  # status line, headers and body as received
    seconds: float  # from the request's last byte sent to the answer's last byte


async def read_answer(reader: asyncio.StreamReader, started: float) -> Answer:
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in lines[1:]:
        if ":" in line:
            name, value = line.split(":", 1)
            headers[name.strip().lower()] = value.strip()
    body = await reader.readexactly(int(headers.get("content-length", "0")))
    return Answer(int(lines[0].split()[1]), headers, body, len(head) + len(body),
                  time.monotonic() - started)


async def send_all(port: int, requests: list[bytes], connections: int,
                   timeout: float = 30.0) -> list[Answer]:
    """Each request once, over `connections` keep-alive connections, answers in order sent."""
    answers: list[Answer | None] = [None] * len(requests)
    pending = iter(enumerate(requests))

    async def worker() -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            for index, raw in pending:
                writer.write(raw)
                await writer.drain()
                answers[index] = await asyncio.wait_for(read_answer(reader, time.monotonic()),
                                                        timeout)
                if answers[index].headers.get("connection") == "close":  # type: ignore[union-attr]
                    break
        finally:
            writer.close()

    await asyncio.gather(*(worker() for _ in range(connections)))
    return [a for a in answers if a is not None]


async def one(port: int, raw: bytes, timeout: float = 30.0) -> Answer:
    """One request on a connection of its own."""
    return (await send_all(port, [raw], 1, timeout))[0]
