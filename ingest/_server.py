"""How uvicorn serves the ingest: one process, the settings every server of it shares.

`serve` and the tests both start uvicorn through `config`, so a test server is the server.
uvicorn's proxy-headers handling is off: it would take `X-Forwarded-For` from any peer on
loopback as the client's address.
"""

from __future__ import annotations

from typing import Any

import uvicorn

GRACEFUL_SHUTDOWN_S = 20


def config(app: Any, host: str, port: int, **overrides: Any) -> uvicorn.Config:
    """The uvicorn configuration of an ingest server for `app`."""
    options: dict[str, Any] = {
        "host": host, "port": port, "access_log": False, "log_config": None,
        "proxy_headers": False, "server_header": False,
        # No Date header: it would be the machine's time, not the one clock hook's.
        "date_header": False, "timeout_graceful_shutdown": GRACEFUL_SHUTDOWN_S,
    }
    return uvicorn.Config(app, **(options | overrides))
