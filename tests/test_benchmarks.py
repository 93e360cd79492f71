"""The client's, the ingest's and the dashboards' benchmarks are programs a reader runs from a
fresh checkout: they must run.

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


CLIENT_FIGURES = {
    "add_ns", "bare_add_ns", "add_ratio_vs_bare_otel", "per_event_insert_ns",
    "speedup_vs_per_event_sqlite", "export_ms_500_series", "year_db_bytes", "weekly_report_ms",
    "report_gzip_bytes", "import_ms", "rss_mb_delta", "otlp_exporter_imported",
    "idle_cpu_s_per_day", "busy_cpu_s_per_day", "bare_sdk_idle_cpu_s_per_day",
    "bare_sdk_busy_cpu_s_per_day",
    *(f"{name}{host}" for host in ("", "_host_without_sqlite") for name in (
        "host_rss_mb", "host_rss_over_bare_sdk_mb", "host_rss_over_bare_sdk_mb_by_run",
        "host_rss_over_bare_sdk_mb_unpadded", "host_started_rss_over_bare_sdk_mb",
        "host_private_over_bare_sdk_mb", "host_trimmed_rss_mb", "host_trimmed_over_bare_sdk_mb",
        "host_modules_over_bare_sdk")),
}


@pytest.mark.end_to_end
def test_the_client_benchmark_runs_and_reports_every_figure(now: datetime) -> None:
    """At its tiny size: every figure is there, the host is measured in its four variants, and
    the modules otel-usage adds to a host are named (what they cost is not looked at here)."""
    done = subprocess.run(
        [sys.executable, "benchmarks/client.py", "--tiny"],
        cwd=ROOT, capture_output=True, text=True, timeout=300, check=True)
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert set(result) == CLIENT_FIGURES
    for host in ("", "_host_without_sqlite"):
        for figures in ("host_rss_mb", "host_trimmed_rss_mb"):
            assert list(result[f"{figures}{host}"]) == [
                "bare", "bare_sdk", "client", "client_page"]
        modules = result[f"host_modules_over_bare_sdk{host}"]
        assert {"otel_usage", "otel_usage.telemetry", "otel_usage.web"} <= set(modules)
        assert not any(m.startswith(("otel_usage.send", "opentelemetry.exporter")) for m in modules)
    assert ("sqlite3" in result["host_modules_over_bare_sdk_host_without_sqlite"],
            "sqlite3" in result["host_modules_over_bare_sdk"]) == (True, False)
    assert result["otlp_exporter_imported"] is False


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


def test_the_privacy_benchmark_runs_and_reports_every_panel_and_the_loss() -> None:
    """At a tiny size its figures are not looked at: every release of the mechanism has its
    panel with a median and a 95th percentile, and the week's loss and timing are there."""
    from ingest._privacy import mechanism
    from otel_usage.catalog import load_catalog

    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.privacy_accuracy", "--runs", "2", "--sizes", "50",
         "--timing-size", "50", "--repeat", "1"],
        cwd=ROOT, capture_output=True, text=True, timeout=300, check=True)
    result = json.loads(done.stdout.strip().splitlines()[-1])
    releases = mechanism(load_catalog()).releases
    assert len(result["panels"]["50"]) == len(releases)
    assert all(set(figures) == {"median", "p95"} for figures in result["panels"]["50"].values())
    assert result["weekly_epsilon"] <= 2.0 < result["yearly_epsilon"]
    assert result["delta"] == 1e-7
    assert result["publish_wall_s_best"] > 0 and result["parse_cpu_s_median"] > 0
