"""OTLP/HTTP bodies: content types, gzip within the size limit, parsing, answers."""

from __future__ import annotations

import gzip

import pytest
from google.protobuf import json_format
from ingest_reports import encode, new_installation, request, varint
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
    ExportMetricsServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue

from ingest import _decode
from ingest._errors import BodyTooLarge, MalformedBody, UnsupportedMediaType


@pytest.mark.parametrize("header", ["application/x-protobuf", "Application/X-Protobuf; x=1"])
def test_protobuf_is_the_accepted_type(header: str) -> None:
    """OTLP's protobuf encoding is recognised, whatever the case or parameters."""
    assert _decode.body_format(header) == "protobuf"


@pytest.mark.parametrize("header", [None, "", "text/plain", "application/octet-stream",
                                    "application/json", "Application/JSON; charset=utf-8"])
def test_other_content_types_json_included_are_unsupported(header: str | None) -> None:
    """Anything but protobuf is a 415: OTLP's JSON encoding too (nothing that reports sends
    it, and converting it costs far more than protobuf)."""
    with pytest.raises(UnsupportedMediaType) as caught:
        _decode.body_format(header)
    assert str(caught.value) == "send application/x-protobuf (OTLP/HTTP JSON is not taken)"


def test_gzip_body_inflates_to_the_original() -> None:
    """A gzip body comes back byte for byte."""
    body, _ = encode(request(new_installation()))
    assert _decode.decompress(gzip.compress(body), "gzip", 65536) == body


def test_gzip_bomb_is_refused_before_it_is_inflated() -> None:
    """A small gzip that inflates past the limit is a 413, checked after decompression."""
    bomb = gzip.compress(b"\0" * 10_000_000)
    assert len(bomb) < 65536
    with pytest.raises(BodyTooLarge):
        _decode.decompress(bomb, "gzip", 65536)


def test_identity_body_over_the_limit_is_too_large() -> None:
    with pytest.raises(BodyTooLarge):
        _decode.decompress(b"x" * 65537, None, 65536)


@pytest.mark.parametrize("body", [b"not gzip", gzip.compress(b"abc" * 100, mtime=0)[:-12]])
def test_broken_gzip_is_malformed(body: bytes) -> None:
    """Garbage and truncated gzip are 400s, not 500s."""
    with pytest.raises(MalformedBody):
        _decode.decompress(body, "gzip", 65536)


def test_unknown_content_encoding_is_unsupported() -> None:
    with pytest.raises(UnsupportedMediaType):
        _decode.decompress(b"x", "br", 65536)


def test_a_report_parses_back_to_the_same_message() -> None:
    """Parsed with the points' attributes as bytes, it still holds the whole message."""
    message = request(new_installation())
    body, _ = encode(message)
    parsed = _decode.parse(body)
    assert ExportMetricsServiceRequest.FromString(parsed.SerializeToString()) == message
    point = parsed.resource_metrics[0].scope_metrics[0].metrics[1].sum.data_points[0]
    original = message.resource_metrics[0].scope_metrics[0].metrics[1].sum.data_points[0]
    assert list(point.attributes) == [kv.SerializeToString() for kv in original.attributes]


def test_attribute_pairs_read_any_encoding_of_a_key_value_as_its_message_does() -> None:
    canonical = KeyValue(key="job.status", value=AnyValue(string_value="failed"))
    # A field the schema does not know, after the value: the same attribute to a parser.
    padded = canonical.SerializeToString() + b"\x78\x01"
    not_a_string = KeyValue(key="job.status", value=AnyValue(int_value=3)).SerializeToString()
    assert _decode.attribute_pairs([canonical.SerializeToString(), padded, not_a_string]) == [
        ("job.status", "failed"), ("job.status", "failed"), ("job.status", "")]


@pytest.mark.parametrize("raw", [b"\xff\xff\xff", b"\x0a\x02\xc3\x28"])  # garbage; bad UTF-8
def test_an_attribute_that_is_not_a_key_value_is_malformed(raw: bytes) -> None:
    with pytest.raises(MalformedBody):
        _decode.attribute_pairs([raw])


def test_the_cache_of_attributes_is_bounded_whatever_the_client_sends() -> None:
    """Who chooses the key: the client. Distinct encodings of one attribute never hold more
    than the bound."""
    base = KeyValue(key="k", value=AnyValue(string_value="v")).SerializeToString()
    for index in range(_decode._MAX_PAIRS + 500):
        assert _decode.attribute_pairs([base + b"\x78" + varint(index)]) == [("k", "v")]
        assert len(_decode._PAIRS) <= _decode._MAX_PAIRS


def test_the_cache_of_attributes_keeps_no_long_encoding() -> None:
    """Who chooses the size: the client, padding an attribute with fields the schema does not
    know. A padded attribute reads as itself and is never kept, so the cache's bytes stay
    within its bound in number times `MAX_KEPT_BYTES`."""
    base = KeyValue(key="k", value=AnyValue(string_value="v")).SerializeToString()
    padding = b"\x7a" + varint(4000) + b"p" * 4000  # field 15, bytes: a parser skips it
    for index in range(200):
        padded = base + padding + b"\x78" + varint(index)
        assert _decode.attribute_pairs([padded]) == [("k", "v")]
        assert padded not in _decode._PAIRS
    assert max(map(len, _decode._PAIRS), default=0) <= _decode.MAX_KEPT_BYTES



@pytest.mark.parametrize("body", [b"\xff\xff\xff", b"\x0a\x05ab", b'{"resourceMetrics": []}'])
def test_bodies_that_are_not_requests_are_malformed(body: bytes) -> None:
    """Garbage, a truncated field, and a JSON document: none is a protobuf request."""
    with pytest.raises(MalformedBody):
        _decode.parse(body)


def test_partial_success_is_encoded_in_either_answer_format() -> None:
    """An export's answer is protobuf; the JSON encoding (the erasure route's) carries OTLP's
    partialSuccess field names."""
    answer = _decode.encode(_decode.success(3, "metric 'x' is not in the catalog"), "json")
    assert answer == (b'{"partialSuccess":{"rejectedDataPoints":"3",'
                      b'"errorMessage":"metric \'x\' is not in the catalog"}}')
    parsed = ExportMetricsServiceResponse.FromString(
        _decode.encode(_decode.success(3, "m"), "protobuf"))
    assert json_format.MessageToDict(parsed) == {
        "partialSuccess": {"rejectedDataPoints": "3", "errorMessage": "m"}}


def test_full_success_is_an_empty_response() -> None:
    assert _decode.encode(_decode.success(), "json") == b"{}"
    assert _decode.encode(_decode.success(), "protobuf") == b""
