"""The ingest's and the dashboards' benchmarks are programs a reader runs from a fresh
checkout: they must run.

Run here at a tiny size, their figures are not looked at; what they report must be whole: every
report answered, nothing lost on SIGTERM, the core's reference speed measured twice; every
report stored and every panel timed.
"""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import datetime
from pathlib import Path

import pytest

from dashboards import queries

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.end_to_end
def test_the_ingest_benchmark_runs_and_reports_every_figure(now: datetime) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.ingest", "--rounds", "1", "--reports", "60",
         "--warmup", "20", "--overload", "40"],
        cwd=ROOT, capture_output=True, text=True, timeout=300, check=True)
    result = json.loads(done.stdout.strip().splitlines()[-1])
    [run] = result["runs"]
    assert run["design"] == "simple"
    assert run["statuses"] == {"200": 60}
    assert run["statuses_256"] == {"200": 40}
    assert run["503_without_retry_after"] == 0
    assert run["sigterm_lost"] == 0
    assert run["sigterm_stored"] == run["sigterm_answered_200"]
    assert run["cpu_per_report_ms"] > 0
    assert len(result["reference_ms"]) == 2
    assert all(ms > 0 for ms in result["reference_ms"])
    assert set(result["summary"]["simple"]) >= {
        "reports_per_s", "p50_ms", "p99_ms", "cpu_per_report_ms", "rss_mb"}


@pytest.mark.end_to_end
def test_the_dashboards_benchmark_runs_and_times_every_panel(now: datetime) -> None:
    """Its fleet comes from the dashboards' testing API, not from the tests' folder; it
    stamps its figures with the clock hook's date."""
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.dashboards", "--installations", "100", "--weeks", "14",
         "--repeat", "1"],
        cwd=ROOT, capture_output=True, text=True, timeout=300, check=True)
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert (result["database"], result["installations"], result["weeks"], result["reports"]) == (
        "sqlite", 100, 14, 1400)
    assert list(result["panel_ms"]) == [panel.key for panel in queries.panels()]
    assert result["panel_ms_max"] == max(result["panel_ms"].values()) > 0
