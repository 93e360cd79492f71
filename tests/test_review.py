"""Reviewing reports: the preview, its difference from the last sent one, the CLI commands."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from otel_usage import ManualClock, UsageTelemetry
from otel_usage.cli import main
from otel_usage.clock import NOW_ENV
from otel_usage.user.review import difference

OPT_IN = datetime(2026, 11, 23, 0, 0, tzinfo=UTC)
JOB = {"job.status": "completed", "printer.type": "bambu_lab"}


def make(data_dir: Path, clock: ManualClock) -> UsageTelemetry:
    return UsageTelemetry(data_dir, clock=clock, service_version="2.7.0",
                          endpoint="https://stats.example.invalid", background_uploads=False,
                          export_interval_s=float("inf"), environ={"DEPLOYMENT_MODE": "pi"})


def test_a_local_user_previews_the_current_week_as_a_draft(data_dir: Path) -> None:
    clock = ManualClock(OPT_IN + timedelta(days=2))
    usage = make(data_dir, clock)
    usage.start()
    usage.meter().create_counter("printernizer.jobs").add(4, JOB)
    usage.flush()
    result = usage.preview()
    report = result["report"]
    assert (report["week"], report["state"], report["due"]) == ("2026-W48", "draft", None)
    assert report["readable"]["metrics"][0] == {
        "name": "printernizer.jobs", "unit": "{job}", "type": "sum",
        "points": [{"attributes": JOB, "value": 4}]}
    otlp_metric = report["otlp"]["resourceMetrics"][0]["scopeMetrics"][0]["metrics"][0]
    assert otlp_metric["sum"]["dataPoints"][0]["asInt"] == "4"
    assert result["last_sent"] is None
    resource = {k: [None, v] for k, v in sorted(report["readable"]["resource"].items())}
    assert result["difference"] == {"resource": resource, "points": [
        {"metric": "printernizer.app.starts", "attributes": {}, "last_sent": None, "next": 1},
        {"metric": "printernizer.jobs", "attributes": JOB, "last_sent": None, "next": 4},
        {"metric": "printernizer.uptime", "attributes": {}, "last_sent": None, "next": 1}]}
    assert "opentelemetry.exporter.otlp" not in json.dumps(result)


def test_the_difference_lists_changed_added_and_removed_points() -> None:
    old = {"resource": {"service.version": "2.6.0", "os.type": "linux"}, "metrics": [
        {"name": "a", "points": [{"attributes": {"k": "x"}, "value": 1},
                                 {"attributes": {"k": "y"}, "value": 2}]}]}
    new = {"resource": {"service.version": "2.7.0", "os.type": "linux"}, "metrics": [
        {"name": "a", "points": [{"attributes": {"k": "y"}, "value": 2},
                                 {"attributes": {"k": "z"}, "value": 5}]}]}
    assert difference(old, new) == {
        "points": [{"metric": "a", "attributes": {"k": "x"}, "last_sent": 1, "next": None},
                   {"metric": "a", "attributes": {"k": "z"}, "last_sent": None, "next": 5}],
        "resource": {"service.version": ["2.6.0", "2.7.0"]},
    }


def test_the_cli_previews_and_lists_history(now: datetime, data_dir: Path, capsys: pytest.CaptureFixture[str],
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """The CLI takes "now" from the clock hook: here, the time the counts were recorded."""
    clock = ManualClock(OPT_IN + timedelta(days=1))
    usage = make(data_dir, clock)
    usage.start()
    usage.meter().create_counter("printernizer.jobs").add(2, JOB)
    usage.shutdown()
    monkeypatch.setenv(NOW_ENV, clock.now().isoformat())
    assert main(["--data-dir", str(data_dir), "preview", "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["report"]["readable"]["metrics"][0]["points"] == [
        {"attributes": JOB, "value": 2}]
    assert main(["--data-dir", str(data_dir), "preview"]) == 0
    text = capsys.readouterr().out
    assert "printernizer.jobs{job.status=completed, printer.type=bambu_lab}" in text
    assert "Mode is local: nothing is sent." in text
    assert main(["--data-dir", str(data_dir), "history"]) == 0
    assert capsys.readouterr().out == "Nothing has been sent from this machine.\n"
    assert main(["--data-dir", str(data_dir), "send-now"]) == 0
    assert capsys.readouterr().out == "Mode is local: no report is sent.\nNothing is due.\n"


async def test_there_is_no_report_to_preview_before_first_use_or_after_delete_all(
    data_dir: Path,
) -> None:
    clock = ManualClock(datetime(2026, 11, 25, 12, tzinfo=UTC))
    usage = make(data_dir, clock)
    assert usage.preview() == {"report": None, "last_sent": None, "difference": None}
    usage.meter().create_counter("printernizer.jobs").add(1, {"job.status": "created"})
    usage.flush()
    assert usage.preview()["report"]["state"] == "draft"
    await usage.delete_all()
    assert usage.preview() == {"report": None, "last_sent": None, "difference": None}


def test_the_cli_preview_names_the_version_the_host_started_with(now: datetime,
    data_dir: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The CLI does not know Printernizer's version: it uses the one kept at the host's start."""
    clock = ManualClock(OPT_IN + timedelta(days=1))
    usage = make(data_dir, clock)  # service_version="2.7.0"
    usage.start()
    usage.shutdown()
    monkeypatch.setenv(NOW_ENV, clock.now().isoformat())
    assert main(["--data-dir", str(data_dir), "preview", "--json"]) == 0
    preview = json.loads(capsys.readouterr().out)
    assert preview["report"]["readable"]["resource"]["service.version"] == "2.7.0"
    assert UsageTelemetry(data_dir).service_version == "0.0.0"  # nothing given, nothing claimed
