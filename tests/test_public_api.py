"""The public surface is small and deliberate."""

from __future__ import annotations

import otel_usage


def test_all_is_what_it_should_be() -> None:
    assert otel_usage.__all__ == sorted(otel_usage.__all__, key=lambda n: (not n.isupper(), n))
    for name in otel_usage.__all__:
        assert hasattr(otel_usage, name), name
    assert "UsageTelemetry" in otel_usage.__all__
    assert not [n for n in otel_usage.__all__ if n.startswith("_")]
