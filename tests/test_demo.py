"""The main job, small: `otel-usage-demo` runs the whole data path on this machine."""

from __future__ import annotations

import json
import re
import shutil
import sqlite3
import subprocess
import sys
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import jsonschema
import pytest

from dashboards import queries
from dashboards._show import EMPTY
from otel_usage.catalog import load_catalog
from otel_usage.clock import default_clock
from otel_usage.weeks import Week

CATALOG = load_catalog()
# What a fleet of 80 may rightly leave empty: no error rise above the noise, no Python version
# with the 140 or so installations that partition selection needs, no country above twice
# its margin.
MAY_BE_EMPTY = frozenset({"Error anomalies", "Python versions (latest week)",
                          "Countries (latest week, top 20)"})


def _titles() -> list[str]:
    return [p.title for p in queries.panels() if not p.key.startswith("catalog:")]


@pytest.mark.end_to_end
def test_the_demo_simulates_a_fleet_stores_its_reports_and_shows_every_panel(now: datetime,
    tmp_path: Path,
) -> None:
    """Every panel the demo prints has rows, but those a small fleet's noise rightly leaves
    empty (anomalies above the noise, Python versions through partition selection), and
    the ingest counts requests on the simulated days."""
    command = shutil.which("otel-usage-demo", path=str(Path(sys.executable).parent))
    assert command is not None
    work = tmp_path / "demo"
    before = Week.of(default_clock().now())
    done = subprocess.run(
        [command, "--data-dir", str(work), "--installations", "100", "--weeks", "8",
         "--opt-in", "0.8", "--seed", "3"],
        capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    out = done.stdout
    summary = re.search(r"100 installations over 8 weeks simulated, (\d+) weekly reports sent", out)
    assert summary is not None, out
    blocks = {block.split("\n", 1)[0]: block for block in out.split("\n\n")}
    assert [t for t in _titles() if t not in blocks] == []
    assert [t for t in _titles() if EMPTY in blocks[t] and t not in MAY_BE_EMPTY] == []
    with sqlite3.connect(work / "ingest.sqlite3") as db:
        left = db.execute("SELECT count(*) FROM weekly_reports").fetchone()[0]
        published_left = db.execute(
            "SELECT count(*) FROM weekly_reports WHERE week_start IN "
            "(SELECT week_start FROM published_weeks)").fetchone()[0]
        outcomes = dict(db.execute("SELECT outcome, sum(requests) FROM usage_submissions "
                                   "GROUP BY outcome").fetchall())
        days = [row[0][:10] for row in db.execute(
            "SELECT DISTINCT day FROM usage_submissions ORDER BY day")]
    assert int(summary.group(1)) == outcomes["accepted"]
    # Published weeks' raw reports are forgotten; those of a week not yet published stay.
    forgot = re.search(r"Published \d+ weeks; then the ingest forgot (\d+) raw installation-weeks "
                       r"of published weeks, 0 erasures, 0 silent installations\.", out)
    assert forgot is not None, out
    assert (published_left, int(forgot.group(1)) + left) == (0, outcomes["accepted"])
    assert outcomes["rejected"] > 0 and set(outcomes) == {"accepted", "rejected"}
    # Requests are counted on the simulated days (from the week after the first simulated
    # one to the catch-up at the end of the current week), not on the real one.
    match = re.search(r"over 8 weeks from (\d{4}-\d\d-\d\d)\n", out)
    assert match is not None, out
    first = date.fromisoformat(match.group(1))
    assert before.plus(-8).monday <= first <= Week.of(default_clock().now()).plus(-8).monday
    assert len(days) > 20 and first < date.fromisoformat(days[0])
    assert date.fromisoformat(days[-1]) == first + timedelta(weeks=9, days=-1)
    assert blocks["Error anomalies"].startswith("Error anomalies\n===============\n")
    with sqlite3.connect(work / "ingest.sqlite3") as db:
        week, active, margin = db.execute(
            "SELECT week_start, installations, installations_margin FROM published_cells "
            "WHERE kind = 'active' ORDER BY week_start DESC").fetchone()
    # The raw week is forgotten: its truth is the installations whose report of it the ingest
    # accepted, as each installation's own upload history says.
    label = Week.of(datetime.fromisoformat(week).replace(tzinfo=UTC)).label
    true = 0
    for store in sorted((work / "fleet").glob("installation-*/usage.sqlite3")):
        with sqlite3.connect(store) as db:
            true += db.execute("SELECT count(*) > 0 FROM uploads WHERE kind = 'report' AND week = ? "
                               "AND status BETWEEN 200 AND 299", (label,)).fetchone()[0]
    cost = next(b for b in out.split("\n\n") if b.startswith("What privacy costs:"))
    assert f"the week of {week[:10]} as published" in cost
    assert re.search(rf"^active installations +{active} ± {margin:.0f} +{true}$", cost, re.M), cost
    assert re.search(r"^deployment mode docker +-?\d+ ± \d+ +\d+$", cost, re.M), cost
    exported = json.loads((work / "installation-0000-export.json").read_text())
    assert exported["format"] == "otel-usage-export/1"
    assert "credential" not in json.dumps(exported)
    assert "dashboards/provisioning/postgresql/" in out
    # It ends with the public statistics' page, beside the JSON of every published week.
    assert out.splitlines()[-1] == str(work / "site" / "index.html")
    assert (work / "site" / "index.html").is_file()
    index = json.loads((work / "site" / "index.json").read_text(encoding="utf-8"))
    with sqlite3.connect(work / "ingest.sqlite3") as db:
        published = [Week.of(date.fromisoformat(w[:10])).label for (w,) in db.execute(
            "SELECT week_start FROM published_weeks ORDER BY week_start")]
    assert [w["week"] for w in index["weeks"]] == published
    assert index["active_installations"][-1] == {"week": label, "installations": active,
                                                 "margin": margin}
    schema = json.loads(CATALOG.public.schema.read_text(encoding="utf-8"))
    for document in [index, *(json.loads((work / "site" / w["file"]).read_text(encoding="utf-8"))
                              for w in index["weeks"])]:
        jsonschema.Draft202012Validator(schema).validate(document)


def test_the_demo_refuses_bad_arguments(tmp_path: Path) -> None:
    command = shutil.which("otel-usage-demo", path=str(Path(sys.executable).parent))
    assert command is not None
    done = subprocess.run([command, "--data-dir", str(tmp_path), "--opt-in", "2"],
                          capture_output=True, text=True, timeout=60)
    assert (done.returncode, done.stdout) == (2, "")
    assert "--opt-in between 0 and 1" in done.stderr
