"""Fixtures shared by every test module: a data directory, "now", PostgreSQL.

Tests take every date from `now` (the one clock hook, moved by OTEL_USAGE_NOW when the suite
runs at another date) or from a fixed instant they pin the hook to, never from the calendar.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from otel_usage.clock import NOW_ENV, default_clock
from otel_usage.weeks import Week

ROOT = Path(__file__).resolve().parent.parent


def pytest_configure(config: pytest.Config) -> None:
    """Anchor a moved "now" (OTEL_USAGE_NOW) once, before any test starts a process, so this
    process and every process its tests start share one timeline."""
    default_clock()


def pytest_report_header(config: pytest.Config) -> str:
    moved = os.environ.get(NOW_ENV)
    return f"now: {default_clock().now().isoformat()}" + (
        f" (moved by {NOW_ENV}={moved})" if moved else " (the machine's clock)")


@pytest.fixture(autouse=True)
def _unbind_global_meter_provider() -> Iterator[None]:
    """Each test starts with the process's global provider bound to nothing, whatever the last
    test left running (the global is set once per process, as in Printernizer: re-binding it
    is what the library does at each start)."""
    from otel_usage.record.rebind import GLOBAL

    yield
    GLOBAL.bind(None)


@pytest.fixture(autouse=True)
def _reset_structlog() -> Iterator[None]:
    """The CLI configures structlog for the terminal; later tests get the defaults back."""
    import structlog

    yield
    structlog.reset_defaults()


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """The host's environment must not leak into tests (DO_NOT_TRACK, modes, deployment)."""
    for name in ("DO_NOT_TRACK", "OTEL_USAGE_MODE", "DEPLOYMENT_MODE", "SUPERVISOR_TOKEN",
                 "OTEL_USAGE_DATA_DIR", "HA_INGRESS"):
        monkeypatch.delenv(name, raising=False)
    # Tests that do not name an endpoint must never reach the real one: port 9 (discard) on
    # loopback refuses at once.
    monkeypatch.setenv("OTEL_USAGE_ENDPOINT", "http://127.0.0.1:9")


@pytest.fixture
def now() -> datetime:
    """The suite's "now": the one clock hook's time when the test starts."""
    return default_clock().now()


@pytest.fixture
def midweek(now: datetime, monkeypatch: pytest.MonkeyPatch) -> datetime:
    """Wednesday 12:00 UTC of the current week, with the clock hook pinned there for this test
    (the processes it starts too), so no test crosses a midnight or a Monday while it runs."""
    instant = Week.of(now).start + timedelta(days=2, hours=12)
    monkeypatch.setenv(NOW_ENV, instant.isoformat())
    return instant


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    path = tmp_path / "usage"
    path.mkdir()
    return path


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A real PostgreSQL server: the one scripts/test started, or one started here."""
    url = os.environ.get("OTEL_USAGE_TEST_POSTGRES_URL")
    if url:
        yield url
        return
    pgdir = tempfile.mkdtemp(prefix="otel-usage-pg.")
    script = ROOT / "scripts" / "postgres"
    result = subprocess.run([script, "start", pgdir], capture_output=True, text=True)
    if result.returncode != 0:
        pytest.fail(f"could not start PostgreSQL: {result.stderr.strip()}")
    try:
        yield result.stdout.strip()
    finally:
        subprocess.run([script, "stop", pgdir], check=False)
