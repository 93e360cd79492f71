"""The one clock hook: OTEL_USAGE_NOW moves "now" for a process and every process it starts."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from otel_usage import UsageTelemetry
from otel_usage.clock import NOW_ENV, SystemClock, default_clock, parse_now

INSTANT = datetime(2027, 6, 16, tzinfo=UTC)


def test_without_the_variable_it_is_the_machine_clock() -> None:
    assert default_clock({}).offset == timedelta(0)


def test_an_anchored_instant_moves_the_clock_by_a_fixed_offset() -> None:
    anchor = 1_764_648_000.5
    clock = default_clock({NOW_ENV: f"2027-06-16T00:00:00Z@{anchor}"})
    assert clock.offset == INSTANT - datetime.fromtimestamp(anchor, UTC)


def test_a_bare_instant_starts_now_and_is_written_back_anchored(now: datetime) -> None:
    """The first read anchors it, so a later read (or a child process) continues, not restarts."""
    environ = {NOW_ENV: "2027-06-16T00:00:00+00:00"}
    first = default_clock(environ)
    instant, anchor = parse_now(environ[NOW_ENV])
    assert instant == INSTANT and anchor is not None
    assert default_clock(environ).offset == first.offset
    assert timedelta(0) <= first.now() - INSTANT < timedelta(seconds=5)


def test_a_child_process_continues_the_moved_time(now: datetime, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(NOW_ENV, "2031-01-01T00:00:00Z")
    parent = default_clock()
    code = "from otel_usage.clock import default_clock; print(default_clock().now().isoformat())"
    child = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                           check=True)
    seen = datetime.fromisoformat(child.stdout.strip())
    assert parent.now() - timedelta(seconds=30) <= seen <= parent.now()


@pytest.mark.parametrize("value", ["tomorrow", "2027-06-16T00:00:00", "2027-06-16Z@soon"])
def test_a_malformed_value_is_refused_with_the_expected_form(value: str) -> None:
    with pytest.raises(ValueError) as info:
        default_clock({NOW_ENV: value})
    assert str(info.value) == (
        f"{NOW_ENV}={value!r} is not an instant: write it like 2027-06-16T00:00:00Z, "
        "optionally followed by @ and the Unix time at which it held")


def test_the_library_in_a_host_ignores_a_malformed_value(data_dir: Path) -> None:
    """Telemetry never breaks the host: a bad variable is logged, the machine's clock used."""
    usage = UsageTelemetry(data_dir, environ={NOW_ENV: "tomorrow"})
    assert isinstance(usage.clock, SystemClock) and usage.clock.offset == timedelta(0)


# Named by command: the client's own tests (scripts/test's second pass, without the server's
# distribution) deselect the server's two.
@pytest.mark.parametrize("command", [
    pytest.param(["-m", "otel_usage.cli", "status"], id="otel-usage"),
    pytest.param(["-m", "ingest.cli", "schema", "--dialect", "sqlite"], id="otel-usage-ingest"),
    pytest.param(["-m", "dashboards.cli", "show", "--database", "sqlite://"],
                 id="otel-usage-dashboards"),
])
def test_every_command_refuses_a_malformed_value_with_one_line(command: list[str],
                                                               tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, *command], capture_output=True, text=True,
                          env={"PATH": "/usr/bin:/bin", NOW_ENV: "tomorrow",
                               "OTEL_USAGE_DATA_DIR": str(tmp_path)}, timeout=60)
    assert done.returncode == 2
    assert done.stdout == ""
    assert done.stderr.endswith(f"{NOW_ENV}='tomorrow' is not an instant: write it like "
                                "2027-06-16T00:00:00Z, optionally followed by @ and the Unix "
                                "time at which it held\n")
