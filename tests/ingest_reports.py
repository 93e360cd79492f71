"""Valid weekly reports for the ingest's tests (`ingest.testing`), parsed as the ingest parses
them, and the tests' fixed "now"."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
)

from ingest import _decode, testing
from ingest.testing import (  # noqa: F401  (re-exported for the tests)
    CATALOG,
    Data,
    add_week,
    encode,
    new_credential,
    new_installation,
    points,
    resource,
    week_ns,
)
from otel_usage.catalog import Catalog
from otel_usage.clock import default_clock
from otel_usage.weeks import Week

# The "now" of tests that inject it into an app in this process: Wednesday 2025-06-18 12:00
# UTC; the last complete week began 2025-06-09. A server in another process takes the clock
# hook's now instead: send it `last_week()`.
NOW = datetime(2025, 6, 18, 12, tzinfo=UTC).timestamp()
WEEK = date(2025, 6, 9)


def last_week() -> date:
    """Monday of the last complete week by the clock hook (what a running server expects)."""
    return Week.of(default_clock().now()).previous().monday


def request(installation_id: str, week: date = WEEK, *, res: dict[str, str] | None = None,
            data: Data | None = None, seed: int = 0,
            catalog: Catalog = CATALOG) -> ExportMetricsServiceRequest:
    """`ingest.testing.request`, for the tests' week unless told otherwise."""
    return testing.request(installation_id, week, res=res, data=data, seed=seed, catalog=catalog)


def parsed(message: ExportMetricsServiceRequest) -> Any:
    """`message` as the ingest has it once it came off the wire (`_decode.parse`)."""
    return _decode.parse(message.SerializeToString())


def varint(value: int) -> bytes:
    """`value` as a protobuf varint: for bytes a client crafts by hand."""
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)
