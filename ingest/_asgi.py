"""The export's hot path as plain ASGI: no request object, no dependency solving.

A bare FastAPI route costs about four times a plain ASGI handler here (issue 4's throughput
target leaves little room), so `ExportShortcut` answers POSTs to the metrics path directly.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import Any

from ._errors import BodyTooLarge

Answer = tuple[int, list[tuple[str, str]], bytes]
Handler = Callable[[Mapping[str, str], str, Callable[[int], Awaitable[bytes]]], Awaitable[Answer]]
Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]


async def read_body(chunks: AsyncIterator[bytes], limit: int) -> bytes:
    """The whole body, refused (413) as soon as it passes `limit` bytes."""
    parts, size = [], 0
    async for chunk in chunks:
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge(f"body is over {limit} bytes")
        parts.append(chunk)
    return b"".join(parts)


async def _chunks(receive: Receive) -> AsyncIterator[bytes]:
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return
        yield message.get("body", b"")
        if not message.get("more_body", False):
            return


class ExportShortcut:
    """ASGI middleware: POST `path` goes to `handler`, everything else to the app."""

    def __init__(self, app: Callable[[Scope, Receive, Send], Awaitable[None]], path: str,
                 handler: Handler) -> None:
        self.app = app
        self.path = path
        self.handler = handler

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] != self.path or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        client = scope.get("client")
        peer = client[0] if client else ""
        status, answer_headers, body = await self.handler(
            headers, peer, lambda limit: read_body(_chunks(receive), limit))
        raw = [(k.encode(), v.encode()) for k, v in answer_headers]
        raw.append((b"content-length", str(len(body)).encode()))
        await send({"type": "http.response.start", "status": status, "headers": raw})
        await send({"type": "http.response.body", "body": body})
