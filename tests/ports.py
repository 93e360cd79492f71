"""Loopback ports for the servers the tests start (the ingest, the gateway, receivers)."""

from __future__ import annotations

import random
import socket
from pathlib import Path

_RANGE_FILE = Path("/proc/sys/net/ipv4/ip_local_port_range")
_SPAN = 8000


def free_port() -> int:
    """A loopback port nothing listens on, below the kernel's ephemeral range.

    Every outgoing connection of every process takes its local port from the ephemeral range,
    so a port found free there can be taken before the server binds it (a gateway once failed
    to start with "address already in use"); below the range only another server can."""
    low = int(_RANGE_FILE.read_text().split()[0]) if _RANGE_FILE.exists() else 32768
    first = max(1024, low - _SPAN)
    for port in random.sample(range(first, low), low - first):
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise OSError(f"no free loopback port in {first}-{low - 1}")
