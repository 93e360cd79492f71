"""The environment's word on the mode: DO_NOT_TRACK wins, OTEL_USAGE_MODE sets it."""

from __future__ import annotations

import pytest
import structlog

from otel_usage import InvalidModeError
from otel_usage.consent import environment_mode, parse_mode


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        ({}, None),
        ({"OTEL_USAGE_MODE": "on"}, "on"),
        ({"OTEL_USAGE_MODE": " LOCAL "}, "local"),
        ({"DO_NOT_TRACK": "1", "OTEL_USAGE_MODE": "on"}, "off"),
        ({"DO_NOT_TRACK": "true"}, "off"),
        ({"DO_NOT_TRACK": "0", "OTEL_USAGE_MODE": "on"}, "on"),
        ({"DO_NOT_TRACK": ""}, None),
    ],
)
def test_environment_mode(environ: dict[str, str], expected: str | None) -> None:
    assert environment_mode(environ) == expected


def test_a_bad_environment_mode_is_ignored_with_a_warning() -> None:
    with structlog.testing.capture_logs() as logs:
        assert environment_mode({"OTEL_USAGE_MODE": "yes please"}) is None
    assert logs == [{"event": "ignoring OTEL_USAGE_MODE", "log_level": "warning",
                     "reason": "unknown mode 'yes please': choose one of off, local, on"}]


def test_parse_mode_refuses_unknown_modes() -> None:
    assert parse_mode("Off") == "off"
    with pytest.raises(InvalidModeError, match="unknown mode 'maybe'"):
        parse_mode("maybe")
