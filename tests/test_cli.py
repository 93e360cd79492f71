"""The otel-usage command: clear messages, JSON where asked, non-zero exit on errors."""

from __future__ import annotations

import json
import math
import shutil
import subprocess
import sys
from datetime import datetime
from pathlib import Path

import pytest
from compare_support import PATH, live_week, make, newest_publishable, public_server, site

from otel_usage import ManualClock, UsageTelemetry
from otel_usage.cli import main


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def record(data_dir: Path, at: datetime) -> None:
    usage = UsageTelemetry(data_dir, export_interval_s=math.inf, clock=ManualClock(at))
    usage.meter().create_counter("printernizer.jobs").add(
        3, {"job.status": "completed", "printer.type": "prusa_core"})
    usage.shutdown()


def test_status_of_a_new_data_dir(now: datetime, capsys: pytest.CaptureFixture[str], data_dir: Path) -> None:
    code, out, err = run(capsys, "--data-dir", str(data_dir), "status", "--json")
    assert (code, err) == (0, "")
    assert json.loads(out) == {
        "mode": "local", "mode_forced_by_environment": False, "data_dir": str(data_dir),
        "database_bytes": 0, "installation_id": None, "first_used": None, "days_active": 0}


def test_mode_show_export_and_delete(capsys: pytest.CaptureFixture[str], data_dir: Path,
                                     tmp_path: Path, midweek: datetime) -> None:
    """Counted this week, shown by the CLI as this week's (both on the pinned clock hook)."""
    record(data_dir, midweek)
    assert run(capsys, "--data-dir", str(data_dir), "mode", "on") == (0, "Mode set to on.\n", "")
    code, out, _ = run(capsys, "--data-dir", str(data_dir), "show")
    assert code == 0
    assert "  Jobs completed:     3\n" in out
    assert "Mode:            on\n" in out
    target = tmp_path / "export.json"
    code, out, err = run(capsys, "--data-dir", str(data_dir), "export", "-o", str(target))
    assert (code, out, err) == (0, "", f"Exported to {target}\n")
    exported = json.loads(target.read_text())
    assert [s["metric"] for s in exported["series"] if s["metric"] == "printernizer.jobs"] == [
        "printernizer.jobs"]
    code, out, err = run(capsys, "--data-dir", str(data_dir), "delete")
    assert code == 2
    assert "run again with --yes to confirm" in err
    assert run(capsys, "--data-dir", str(data_dir), "delete", "--yes") == (
        0, "All usage statistics on this machine were deleted.\n"
           "Your choice of mode on is kept (change it with `otel-usage mode`).\n", "")
    code, out, _ = run(capsys, "--data-dir", str(data_dir), "status", "--json")
    assert json.loads(out)["installation_id"] is None


def test_an_unknown_mode_exits_2_with_the_choices(capsys: pytest.CaptureFixture[str],
                                                  data_dir: Path) -> None:
    with pytest.raises(SystemExit) as info:
        main(["--data-dir", str(data_dir), "mode", "always"])
    assert info.value.code == 2
    assert "invalid choice: 'always' (choose from 'off', 'local', 'on')" in capsys.readouterr().err


def test_an_unusable_store_exits_1_with_the_reason(capsys: pytest.CaptureFixture[str],
                                                   data_dir: Path) -> None:
    (data_dir / "usage.sqlite3").mkdir()  # there, but no database can be opened
    code, out, err = run(capsys, "--data-dir", str(data_dir), "show")
    assert (code, out) == (1, "")
    assert err == (
        "otel-usage: the local usage database cannot be used: unable to open database file\n")


def test_the_installed_command_runs(now: datetime, data_dir: Path) -> None:
    command = shutil.which("otel-usage", path=str(Path(sys.executable).parent))
    assert command is not None
    done = subprocess.run([command, "--data-dir", str(data_dir), "mode", "off"],
                          capture_output=True, text=True, timeout=60)
    assert (done.returncode, done.stdout, done.stderr) == (0, "Mode set to off.\n", "")


# compare: the user's numbers beside the public statistics.

def _installation(data_dir: Path, midweek: datetime, url: str, mode: str) -> None:
    """A week of history in the newest published week, then the user's choice of `mode`."""

    clock = ManualClock(midweek)
    usage = make(data_dir, clock, url)
    live_week(usage, clock, newest_publishable(midweek))
    clock.set(midweek)
    usage.set_mode(mode)
    usage.shutdown()


def test_compare_in_mode_on_fetches_by_itself_and_prints_the_comparison(
        capsys: pytest.CaptureFixture[str], data_dir: Path, midweek: datetime,
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:

    week = newest_publishable(midweek)
    with public_server(monkeypatch, tmp_path, site([week], midweek)) as server:
        monkeypatch.setenv("OTEL_USAGE_ENDPOINT", server.url)
        monkeypatch.setenv("DEPLOYMENT_MODE", "docker")
        _installation(data_dir, midweek, server.url, "on")
        code, out, err = run(capsys, "--data-dir", str(data_dir), "compare")
        again = run(capsys, "--data-dir", str(data_dir), "compare", "--json")
    assert (code, err) == (0, "")
    lines = out.splitlines()
    assert lines[0] == f"Public statistics: fetched the public statistics up to {week.label}."
    assert lines[4] == ("Printers: you had 3; 18.0 ± 1.0 % of installations (180 ± 10 "
                        "installations) had 3-5.")
    assert lines[-2:] == [
        "Deployment: docker, like 35.0 ± 0.6 % of installations (350 ± 5 installations).",
        "Version: 2.7.0, like 20.0 ± 0.6 % of installations (200 ± 5 installations)."]
    assert server.paths() == [f"{PATH}index.json", f"{PATH}weeks/{week.label}.json"]
    data = json.loads(again[1])
    assert (again[0], data["available"], data["week"], data["fetch"]["fetched"]) == (
        0, True, week.label, False)


def test_compare_in_mode_local_fetches_only_with_fetch(
        capsys: pytest.CaptureFixture[str], data_dir: Path, midweek: datetime,
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:

    week = newest_publishable(midweek)
    with public_server(monkeypatch, tmp_path, site([week], midweek)) as server:
        monkeypatch.setenv("OTEL_USAGE_ENDPOINT", server.url)
        _installation(data_dir, midweek, server.url, "local")
        before = run(capsys, "--data-dir", str(data_dir), "compare")
        seen_before = list(server.paths())
        code, out, err = run(capsys, "--data-dir", str(data_dir), "compare", "--fetch")
    assert (before, seen_before) == ((0, (
        "Public statistics: mode is local: the public statistics are fetched only when you "
        "ask (the page's button, or otel-usage compare --fetch).\n"
        "Nothing to compare: the public statistics have not been fetched yet.\n"), ""), [])
    assert (code, err, out.splitlines()[0]) == (
        0, "", f"Public statistics: fetched the public statistics up to {week.label}.")
    assert server.paths() == [f"{PATH}index.json", f"{PATH}weeks/{week.label}.json"]


@pytest.mark.parametrize(("mode", "environ", "why"), [
    ("off", {}, "mode is off"),
    ("on", {"DO_NOT_TRACK": "1"}, "DO_NOT_TRACK is set"),
])
def test_compare_fetch_in_mode_off_or_under_do_not_track_refuses_and_fetches_nothing(
        mode: str, environ: dict[str, str], why: str, capsys: pytest.CaptureFixture[str],
        data_dir: Path, midweek: datetime, monkeypatch: pytest.MonkeyPatch,
        tmp_path: Path) -> None:

    with public_server(monkeypatch, tmp_path, site([newest_publishable(midweek)], midweek)) as server:
        monkeypatch.setenv("OTEL_USAGE_ENDPOINT", server.url)
        _installation(data_dir, midweek, server.url, mode)
        for name, value in environ.items():
            monkeypatch.setenv(name, value)
        result = run(capsys, "--data-dir", str(data_dir), "compare", "--fetch")
    assert result == (1, (
        f"Public statistics: {why}: the public statistics are never fetched.\n"
        "Nothing to compare: the public statistics have not been fetched yet.\n"), "")
    assert server.seen == []
