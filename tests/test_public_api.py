"""The public surface is small and deliberate: exactly these names."""

from __future__ import annotations

import otel_usage
import otel_usage.testing
import otel_usage.web


def test_all_is_exactly_the_public_api() -> None:
    assert otel_usage.__all__ == [
        "MODES",
        "Clock",
        "Environment",
        "InvalidModeError",
        "ManualClock",
        "Mode",
        "StoreUnavailableError",
        "SystemClock",
        "TransportError",
        "UsageError",
        "UsageTelemetry",
        "default_data_dir",
        "detect_deployment_mode",
        "detect_environment",
    ]
    assert [name for name in otel_usage.__all__ if not hasattr(otel_usage, name)] == []


def test_the_page_and_the_testing_api_export_exactly_these_names() -> None:
    assert otel_usage.web.__all__ == ["privacy_router"]
    assert otel_usage.testing.__all__ == [
        "LoopbackEndpoint", "ManualClock", "Received", "WeekReport", "loopback_endpoint",
        "report_when_week_closes", "wait_for_uploads", "week_report"]
    for module in (otel_usage.web, otel_usage.testing):
        assert [n for n in module.__all__ if not hasattr(module, n)] == []


def test_every_error_is_a_usage_error() -> None:
    errors = (otel_usage.InvalidModeError, otel_usage.StoreUnavailableError,
              otel_usage.TransportError)
    assert [e.__name__ for e in errors if not issubclass(e, otel_usage.UsageError)] == []
