"""The main job, small: `otel-usage-demo` runs the whole data path on this machine."""

from __future__ import annotations

import json
import re
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path


def test_the_demo_simulates_a_fleet_stores_its_reports_and_shows_the_dashboards(
    tmp_path: Path,
) -> None:
    command = shutil.which("otel-usage-demo", path=str(Path(sys.executable).parent))
    assert command is not None
    work = tmp_path / "demo"
    done = subprocess.run(
        [command, "--data-dir", str(work), "--installations", "16", "--weeks", "3",
         "--opt-in", "0.5", "--seed", "3"],
        capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    out = done.stdout
    summary = re.search(r"16 installations over 3 weeks simulated, (\d+) weekly reports sent", out)
    assert summary is not None, out
    with sqlite3.connect(work / "ingest.sqlite3") as db:
        stored = db.execute("SELECT count(*) FROM weekly_reports").fetchone()[0]
        accepted = db.execute("SELECT sum(requests) FROM usage_submissions "
                              "WHERE outcome = 'accepted'").fetchone()[0]
    assert int(summary.group(1)) == stored == accepted > 0
    for title in ("Active installations per week", "Version adoption", "Deployment modes",
                  "Feature adoption (latest week)", "Top error types",
                  "Countries (latest week, top 20)"):
        assert f"\n{title}\n" in out
    exported = json.loads((work / "installation-0000-export.json").read_text())
    assert exported["format"] == "otel-usage-export/1"
    assert "credential" not in json.dumps(exported)
    assert "dashboards/provisioning/" in out


def test_the_demo_refuses_bad_arguments(tmp_path: Path) -> None:
    command = shutil.which("otel-usage-demo", path=str(Path(sys.executable).parent))
    assert command is not None
    done = subprocess.run([command, "--data-dir", str(tmp_path), "--opt-in", "2"],
                          capture_output=True, text=True, timeout=60)
    assert (done.returncode, done.stdout) == (2, "")
    assert "--opt-in between 0 and 1" in done.stderr
