"""Fixtures shared by every test module: a data directory, "now", PostgreSQL; and the order in
which the modules run (the slowest first, so that two workers end together).

Every date a test uses comes from the one clock hook, and a test reads the hook only through the
`now` fixture (or `midweek`, built on it). `now` is parametrized: a test that asks for it runs
at every test date in this one pytest process (the machine's date, a week's last seconds so
that the test crosses Monday 00:00 UTC, the middle of 2027, a 29 February and a new year years
ahead), with the hook moved there (OTEL_USAGE_NOW, which the processes the test starts
inherit). An end-to-end test (marked `end_to_end`, `collector` or `browser`) runs at one date,
the Sunday-to-Monday one. A test that does not ask for `now` runs once, and the hook is closed
to it: reading the clock in the test's process fails the test, and a command it starts refuses
to run (its OTEL_USAGE_NOW names the missing fixture). So no test reads a date, in its own
process or through our commands, and escapes the dates.

    OTEL_USAGE_TEST_DATES="2030-12-30T23:59:00Z real" pytest ...   other dates ("real": the
                                                                    machine's), one run each
    OTEL_USAGE_NOW=2029-03-05T12:00:00Z pytest ...                  every dated test at that date
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import traceback
from collections import Counter
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from ingest import _settings
from otel_usage import clock
from otel_usage.clock import NOW_ENV, SystemClock, default_clock
from otel_usage.weeks import Week

ROOT = Path(__file__).resolve().parent.parent

# The test dates, by name; "real" is the machine's clock.
DATES = {
    "real": "",
    "sunday-night": "2026-12-06T23:59:50Z",  # the test crosses Monday 00:00 UTC
    "mid-2027": "2027-06-16T00:00:00Z",
    "leap-day": "2028-02-29T12:00:00Z",
    "2031": "2031-01-01T00:00:00Z",
}
END_TO_END_DATE = "sunday-night"
END_TO_END_MARKS = ("end_to_end", "collector", "browser")
# What a process started by a test that did not ask for `now` finds in OTEL_USAGE_NOW: not an
# instant, so the clock hook refuses it and says why.
NO_DATE = "none: this test did not ask for the `now` fixture"
_DATED = ("now",)
# Log lines stamped with the clock hook's time (the ingest's JSON logs): a stamp is not a date
# the test depends on.
_LOG_STAMPS = frozenset({_settings._Timestamp.__call__.__code__})


def dates_of_this_run() -> dict[str, str]:
    """The dates dated tests run at: OTEL_USAGE_NOW alone when the caller moved the clock,
    OTEL_USAGE_TEST_DATES when given, else every date of DATES."""
    moved = os.environ.get(NOW_ENV, "").partition("@")[0]
    if moved:
        return {"moved": moved}
    chosen = os.environ.get("OTEL_USAGE_TEST_DATES")
    if chosen is None:
        return dict(DATES)
    return {name: DATES.get(name, name) for name in chosen.split()}


def pytest_configure(config: pytest.Config) -> None:
    """Anchor a moved "now" (OTEL_USAGE_NOW) once, before any test starts a process, so this
    process and every process its tests start share one timeline."""
    default_clock()


@pytest.hookimpl(wrapper=True)
def pytest_collection(session: pytest.Session) -> object:
    """Collecting reads no date: a test module that reads the clock when it is imported
    would fix its dates before any test date is chosen."""
    reads: list[str] = []
    machine_now = SystemClock.now

    def closed(self: SystemClock) -> datetime:
        reads.append("".join(traceback.format_stack(limit=8)[:-1]))
        return machine_now(self)

    SystemClock.now = closed  # type: ignore[method-assign]
    try:
        return (yield)
    finally:
        SystemClock.now = machine_now  # type: ignore[method-assign]
        if reads:
            raise pytest.UsageError("a test module read the clock while it was imported (take "
                                    "dates from the `now` fixture), here:\n" + reads[0])


def pytest_report_header(config: pytest.Config) -> str:
    dates = (f"{name} ({value or 'the machine clock'})" for name, value in dates_of_this_run().items())
    return "test dates: " + ", ".join(dates)


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """A test that asks for `now` runs at every test date; an end-to-end test at one."""
    if "now" not in metafunc.fixturenames:
        return
    dates = dates_of_this_run()
    if any(metafunc.definition.get_closest_marker(m) for m in END_TO_END_MARKS):
        name = END_TO_END_DATE if END_TO_END_DATE in dates else next(iter(dates))
        dates = {name: dates[name]}
    metafunc.parametrize("now", list(dates.values()), ids=list(dates), indirect=True)


# The modules that took longest in a measured run of the whole suite, longest first (each
# several seconds, most of them whole layers: servers, the collector, Chromium, mypy, the
# demo). scripts/test hands whole modules to its two workers in the order collected
# (`--dist loadfile --no-loadscope-reorder`): run first, none of them is left for one worker
# while the other has nothing to do. Only the order depends on this list, never a result.
SLOWEST_MODULES = (
    "test_ingest_publication.py", "test_benchmarks.py", "test_ingest_cli.py",
    "test_collector_ingest.py", "test_site_browser.py", "test_dashboards_queries.py",
    "test_code_quality.py", "test_demo.py", "test_ingest_fuzz.py", "test_user_public.py",
    "test_ingest_attacks.py", "test_web_guard.py", "test_ingest_server.py",
    "test_example_app.py", "test_web_browser.py", "test_upload.py", "test_consent_model.py",
    "test_web_api.py", "test_consent_cases.py",
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Modules in the order the workers should take them: the slowest first, then the others
    by their number of tests, most first (the order xdist would choose); each module's tests
    keep their order."""
    gone = [name for name in SLOWEST_MODULES if not (ROOT / "tests" / name).is_file()]
    if gone:
        raise pytest.UsageError(f"SLOWEST_MODULES names modules that are not there: {gone}")
    tests = Counter(item.path.name for item in items)

    def rank(item: pytest.Item) -> tuple[int, int, str]:
        name = item.path.name
        first = SLOWEST_MODULES.index(name) if name in SLOWEST_MODULES else len(SLOWEST_MODULES)
        return first, -tests[name], name

    items.sort(key=rank)


@pytest.fixture
def now(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> datetime:
    """The test's "now": the one clock hook's time when the test starts, at the test's date
    (moved there for this test and every process it starts)."""
    moved = getattr(request, "param", "")
    if moved:
        monkeypatch.setenv(NOW_ENV, moved)
    elif os.environ.get(NOW_ENV, "").partition("@")[0] == "":
        monkeypatch.delenv(NOW_ENV, raising=False)
    return default_clock().now()


@pytest.fixture(autouse=True)
def _clock_closed_without_now(request: pytest.FixtureRequest,
                              monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """A test that did not ask for `now` reads no date: the clock hook is closed to it."""
    if any(name in request.fixturenames for name in _DATED):
        yield
        return
    reads: list[str] = []
    machine_now = SystemClock.now
    parse_now = clock.parse_now

    def closed(self: SystemClock) -> datetime:
        if sys._getframe(1).f_code not in _LOG_STAMPS:  # a log line's time is no date read
            reads.append("".join(traceback.format_stack(limit=8)[:-1]))
        return machine_now(self)

    def parse_no_date(value: str) -> tuple[datetime, float | None]:
        """In this process a clock may be made (it is its reading that fails the test)."""
        if value.partition("@")[0] != NO_DATE:
            return parse_now(value)
        instant = machine_now(SystemClock())
        return instant, instant.timestamp()

    monkeypatch.setattr(SystemClock, "now", closed)
    monkeypatch.setattr(clock, "parse_now", parse_no_date)
    monkeypatch.setenv(NOW_ENV, NO_DATE)
    yield
    if reads:
        pytest.fail("this test read the clock without asking for the `now` fixture (ask for "
                    "`now` or `midweek`, or inject a ManualClock built from them), here:\n"
                    + reads[0], pytrace=False)


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
