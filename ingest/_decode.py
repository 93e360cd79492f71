"""Turns an OTLP/HTTP body into an `ExportMetricsServiceRequest`, and encodes the answers.

OTLP/HTTP (opentelemetry-proto, docs/specification.md) allows protobuf or JSON, optionally
gzip. The ingest takes protobuf only: the client and the gateway send nothing else, and
converting JSON (protobuf's pure-Python `json_format`) cost a refused body up to 19 times a
valid report's CPU. A JSON body, like any other content type, is refused (415) before it is
read. An export is answered in protobuf, errors included; the erasure route answers in JSON.

A request is parsed with the OTLP schema changed in one place: a number data point's
attributes are kept as the bytes of each `KeyValue` (the wire format is the same), and
`attribute_pairs` reads them through a cache. A report's points repeat a few dozen
attribute pairs that the catalog allows; reading each from its message was a fifth of a
report's validation.
"""

from __future__ import annotations

import json
import zlib
from collections.abc import Iterable, Sequence
from typing import Any, Literal, Protocol

# protobuf ships no type information, and googleapis-common-protos ships .pyi files without
# the py.typed marker that lets a type checker read them: both import untyped, as in the client.
from google.protobuf import (  # type: ignore[import-untyped]
    descriptor_pb2,
    descriptor_pool,
    json_format,
    message_factory,
)
from google.protobuf.message import DecodeError, Message  # type: ignore[import-untyped]
from google.rpc.status_pb2 import Status  # type: ignore[import-untyped]
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
    ExportMetricsServiceResponse,
)
from opentelemetry.proto.common.v1 import common_pb2
from opentelemetry.proto.common.v1.common_pb2 import KeyValue
from opentelemetry.proto.metrics.v1 import metrics_pb2
from opentelemetry.proto.resource.v1 import resource_pb2

from ._errors import BodyTooLarge, MalformedBody, UnsupportedMediaType

# The formats of answers: an export's (protobuf, its only request format) and an erasure's.
Format = Literal["protobuf", "json"]
CONTENT_TYPES: dict[Format, str] = {"protobuf": "application/x-protobuf",
                                    "json": "application/json"}
_GZIP_WBITS = 16 + zlib.MAX_WBITS


def body_format(content_type: str | None) -> Format:
    """The body's format from its Content-Type: protobuf, the only one taken; 415 for any
    other, JSON included (checked before the body is read)."""
    media = (content_type or "").split(";", 1)[0].strip().lower()
    if media != CONTENT_TYPES["protobuf"]:
        raise UnsupportedMediaType("send application/x-protobuf (OTLP/HTTP JSON is not taken)")
    return "protobuf"


def decompress(body: bytes, encoding: str | None, limit: int) -> bytes:
    """The body without its Content-Encoding, refused (413) once it passes `limit` bytes."""
    coding = (encoding or "identity").strip().lower()
    if coding == "identity":
        if len(body) > limit:
            raise BodyTooLarge(f"body is over {limit} bytes")
        return body
    if coding != "gzip":
        raise UnsupportedMediaType("send gzip or identity encoding")
    inflater = zlib.decompressobj(_GZIP_WBITS)
    try:
        data = inflater.decompress(body, limit + 1)
    except zlib.error as exc:
        raise MalformedBody(f"gzip body does not inflate: {exc}") from exc
    if len(data) > limit or inflater.unconsumed_tail:
        raise BodyTooLarge(f"body is over {limit} bytes after decompression")
    if not inflater.eof:
        raise MalformedBody("gzip body is truncated")
    if inflater.unused_data:  # nothing may hide after the one gzip member
        raise MalformedBody("data follows the gzip member")
    return data


def _with_raw_point_attributes() -> Any:
    """The ExportMetricsServiceRequest class of the OTLP schema in which
    `NumberDataPoint.attributes` is `repeated bytes` (in a pool of its own)."""
    pool = descriptor_pool.DescriptorPool()
    for module in (common_pb2, resource_pb2, metrics_pb2, metrics_service_pb2):
        file = descriptor_pb2.FileDescriptorProto()
        module.DESCRIPTOR.CopyToProto(file)
        for message in file.message_type:
            for field in message.field:
                if (message.name, field.name) == ("NumberDataPoint", "attributes"):
                    field.type = descriptor_pb2.FieldDescriptorProto.TYPE_BYTES
                    field.ClearField("type_name")
        pool.Add(file)
    return message_factory.GetMessageClass(
        pool.FindMessageTypeByName(ExportMetricsServiceRequest.DESCRIPTOR.full_name))


Request = _with_raw_point_attributes()


class RawPoint(Protocol):
    """A `NumberDataPoint` of a request `parse` made: its attributes are the bytes of each
    `KeyValue` (`attribute_pairs` reads them), the rest as in the OTLP schema."""

    start_time_unix_nano: int
    time_unix_nano: int
    as_int: int

    @property
    def attributes(self) -> Sequence[bytes]: ...

    def HasField(self, field_name: str) -> bool: ...

    def WhichOneof(self, oneof_group: str) -> str | None: ...


def parse(data: bytes) -> Any:
    """Parse a protobuf ExportMetricsServiceRequest (as `Request`); 400 when it is not one."""
    try:
        return Request.FromString(data)
    except (DecodeError, ValueError, RecursionError) as exc:
        raise MalformedBody(f"body is not an ExportMetricsServiceRequest: {exc}") from exc


_PAIRS: dict[bytes, tuple[str, str]] = {}
_MAX_PAIRS = 10_000
# A KeyValue the catalog allows takes a few dozen bytes. A longer one (a client's padding with
# fields the schema does not know) is read each time and never kept, so what the client
# chooses holds at most _MAX_PAIRS * MAX_KEPT_BYTES here.
MAX_KEPT_BYTES = 256


def attribute_pairs(raw: Iterable[bytes]) -> list[tuple[str, str]]:
    """A data point's attributes as (key, string value) pairs (a value that is not a string
    reads as ""), as parsing them as `KeyValue` messages gives; 400 when one is not."""
    pairs = []
    for encoded in raw:
        pair = _PAIRS.get(encoded)
        if pair is None:
            try:
                attribute = KeyValue.FromString(encoded)
            except DecodeError as exc:
                raise MalformedBody(f"body is not an ExportMetricsServiceRequest: {exc}") from exc
            pair = (attribute.key, attribute.value.string_value)
            if len(encoded) <= MAX_KEPT_BYTES:
                if len(_PAIRS) >= _MAX_PAIRS:  # the bytes are the client's: bounded
                    _PAIRS.clear()
                _PAIRS[encoded] = pair
        pairs.append(pair)
    return pairs


def encode(message: Message, fmt: Format) -> bytes:
    if fmt == "protobuf":
        encoded: bytes = message.SerializeToString()
        return encoded
    as_dict = json_format.MessageToDict(message)
    return json.dumps(as_dict, separators=(",", ":")).encode()


def success(rejected_points: int = 0, error_message: str = "") -> ExportMetricsServiceResponse:
    response = ExportMetricsServiceResponse()
    if rejected_points or error_message:
        response.partial_success.rejected_data_points = rejected_points
        response.partial_success.error_message = error_message
    return response


def status(code: int, message: str) -> Status:
    """A google.rpc.Status, the body of every OTLP/HTTP error answer."""
    return Status(code=code, message=message)
