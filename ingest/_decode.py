"""Turns an OTLP/HTTP body into an `ExportMetricsServiceRequest`, and answers in its format.

OTLP/HTTP (opentelemetry-proto, docs/specification.md): protobuf or JSON, optionally gzip, and
every answer, errors included, encoded in the request's content type.
"""

from __future__ import annotations

import json
import zlib
from typing import Literal

from google.protobuf import json_format
from google.protobuf.message import DecodeError, Message
from google.rpc.status_pb2 import Status
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
    ExportMetricsServiceResponse,
)

from ._errors import BodyTooLarge, MalformedBody, UnsupportedMediaType

Format = Literal["protobuf", "json"]
MEDIA_TYPES: dict[str, Format] = {"application/x-protobuf": "protobuf", "application/json": "json"}
CONTENT_TYPES: dict[Format, str] = {v: k for k, v in MEDIA_TYPES.items()}
_GZIP_WBITS = 16 + zlib.MAX_WBITS


def body_format(content_type: str | None) -> Format:
    """The body's format from its Content-Type; 415 for anything else."""
    media = (content_type or "").split(";", 1)[0].strip().lower()
    fmt = MEDIA_TYPES.get(media)
    if fmt is None:
        raise UnsupportedMediaType("send application/x-protobuf or application/json")
    return fmt


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
    if inflater.unused_data:  # issue 14: nothing may hide after the one gzip member
        raise MalformedBody("data follows the gzip member")
    return data


def parse(data: bytes, fmt: Format) -> ExportMetricsServiceRequest:
    """Parse an ExportMetricsServiceRequest; 400 when it is not one."""
    request = ExportMetricsServiceRequest()
    try:
        if fmt == "protobuf":
            request.ParseFromString(data)
        else:
            document = json.loads(data.decode("utf-8"))
            if not isinstance(document, dict):
                raise ValueError("a JSON body must be an object")
            json_format.ParseDict(document, request, ignore_unknown_fields=True)
    except (DecodeError, json_format.ParseError, UnicodeDecodeError, ValueError,
            TypeError, RecursionError) as exc:
        raise MalformedBody(f"body is not an ExportMetricsServiceRequest: {exc}") from exc
    return request


def encode(message: Message, fmt: Format) -> bytes:
    if fmt == "protobuf":
        return message.SerializeToString()
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
