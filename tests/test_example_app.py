"""The README's switch-over guide, applied to the Printernizer stand-in (examples/printernizer/,
its shape before the switch-over): the guide's blocks apply literally, the result imports and
starts, the old front end's six calls keep their status codes, the replacement tests pass in its
tree, and each mismatch the guide once had fails here. The switched-over stand-in, started on a
database of today, migrates the old usage tables, counts errors in all its central handlers,
serves its old front end beside the privacy page, and runs its lifespan twice in one process."""

from __future__ import annotations

import json
import re
import shutil
import sqlite3
import subprocess
import sys
import warnings
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from standin_support import OLD_ID, printernizer_main, printernizer_of_today
from starlette.exceptions import StarletteDeprecationWarning

from examples.switch_over import README, STANDIN, GuideError, apply_guide, switched_over
from otel_usage.printernizer import UsageStatisticsService

with warnings.catch_warnings():
    # Printernizer's tests use Starlette's TestClient, which now asks for httpx2 (not a
    # dependency here): with httpx it works, and says so once, at import.
    warnings.simplefilter("ignore", StarletteDeprecationWarning)
    from starlette.testclient import TestClient

OLD = "/api/v1/usage-stats"
# Its privacy tab's six calls, all without a body.
SIX_CALLS = [("GET", "/status"), ("GET", "/local"), ("POST", "/opt-in"), ("POST", "/opt-out"),
             ("GET", "/export"), ("DELETE", "")]


# The host app started whole, the guide applied, its tests run: an end-to-end layer, at the
# end-to-end date (the consent and migration rules it exercises run at every date in their
# own tests).
pytestmark = pytest.mark.end_to_end

def before(tmp_path: Path) -> Path:
    """A copy of the stand-in as it is before the switch-over."""
    return Path(shutil.copytree(STANDIN, tmp_path / "before",
                                ignore=shutil.ignore_patterns("__pycache__")))


def store_totals(database: Path, metric: str) -> dict[str, int]:
    """`metric`'s totals in the local store beside `database`, by attribute set."""
    with sqlite3.connect(database.parent / "usage.sqlite3") as conn:
        return dict(conn.execute(
            "SELECT s.attributes, sum(d.total) FROM daily d JOIN series s "
            "ON s.id = d.series_id WHERE s.metric = ? AND d.total IS NOT NULL "
            "GROUP BY s.id", (metric,)).fetchall())


def test_the_guide_applies_literally_and_the_old_front_ends_six_calls_keep_their_status(
    tmp_path: Path, midweek: datetime,
) -> None:
    statuses: dict[str, list[tuple[str, int]]] = {}
    for name, root in (("before", before(tmp_path)),
                       ("after", switched_over(tmp_path / "after"))):
        database = printernizer_of_today(tmp_path / f"{name}-data" / "p.db", midweek, "enabled")
        with printernizer_main(root, database) as main, TestClient(main.app) as client:
            statuses[name] = [(f"{method} {path}", client.request(method, OLD + path).status_code)
                              for method, path in SIX_CALLS]
    assert statuses["after"] == statuses["before"] == [
        (f"{method} {path}", 200) for method, path in SIX_CALLS]
    assert not (tmp_path / "after" / "src" / "services" / "usage_statistics_service.py").exists()


# Each way the guide once failed Printernizer, made again in the README's text (a pattern and
# its replacement): the stand-in has the shape that makes each fail.
MISMATCHES: dict[str, tuple[str, str, type[Exception], str]] = {
    "step 2 binds `settings`, shadowing create_application()'s own": (
        r"\busage_settings(?= =|\.)", "settings", AttributeError, "get_cors_origins"),
    "step 2 takes get_settings() from where main.py does not import it": (
        r" *\+    from src\.utils\.config import get_settings\n", "", NameError, "get_settings"),
    "step 3 leaves the scheduler's app.state line": (
        r" *@@ lifespan\(\) @@\n *-    app\.state\.usage_statistics_scheduler = .*\n", "",
        NameError, "usage_statistics_scheduler"),
    "step 4 names main.py's alias of the handler": (
        r'(@@ printernizer_exception_handler\(\) @@\n) *""".*"""\n',
        r"\1    async def new_printernizer_exception_handler(request, exc):\n",
        GuideError, "occur 0 times"),
    "step 5 leaves the repositories' package re-exporting the deleted one": (
        r" *@@ the imports @@\n *-from \.usage_statistics_repository import \w+\n", "",
        ModuleNotFoundError, "usage_statistics_repository"),
}


@pytest.mark.parametrize("mismatch", list(MISMATCHES))
def test_each_mismatch_the_guide_once_had_fails_on_the_standin(
    mismatch: str, tmp_path: Path, midweek: datetime,
) -> None:
    pattern, replacement, error, message = MISMATCHES[mismatch]
    guide, made = re.subn(pattern, replacement, README.read_text(encoding="utf-8"))
    assert made >= 1
    root = before(tmp_path)
    database = printernizer_of_today(tmp_path / "data" / "p.db", midweek, "enabled")
    with pytest.raises(error, match=message):
        apply_guide(root, guide)
        with printernizer_main(root, database) as main:
            try:
                with TestClient(main.app):
                    pass
            finally:  # a start that failed half-way leaves the statistics' reader running
                main.app.state.usage_statistics_service.usage.shutdown()


def run_its_tests(root: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                           "tests"], cwd=root, capture_output=True, text=True, timeout=120)


def test_the_replacement_tests_pass_in_the_switched_over_tree_and_the_old_ones_would_not(
    tmp_path: Path, midweek: datetime,
) -> None:
    """Step 6 in the stand-in's own tree: the old feature's tests go, the replacement module
    (examples/printernizer_tests/) runs there, as Printernizer runs it, and passes."""
    root = switched_over(tmp_path / "switched")
    done = run_its_tests(root)
    assert (done.returncode, done.stdout.splitlines()[-1].split(" in ")[0]) == (0, "9 passed")
    kept = before(tmp_path)
    guide = README.read_text(encoding="utf-8")
    rm_old = re.search(r"\n *git rm tests/services/\S+ \S+\n", guide)
    assert rm_old is not None
    apply_guide(kept, guide.replace(rm_old.group(0), "\n"))
    done = run_its_tests(kept)
    assert done.returncode == 2 and "ModuleNotFoundError" in done.stdout


def test_the_switched_over_standin_migrates_counts_errors_and_serves_the_old_tab_and_the_page(
    tmp_path: Path, midweek: datetime,
) -> None:
    root = switched_over(tmp_path / "switched")
    database = printernizer_of_today(tmp_path / "data" / "printernizer.db", midweek, "enabled")
    with printernizer_main(root, database) as main, TestClient(
            main.app, raise_server_exceptions=False) as client:
        stats: UsageStatisticsService = main.app.state.usage_statistics_service
        assert client.get(f"{OLD}/status").json() == {
            "service_available": True, "opted_in": True, "total_events": 3,
            "collection_active": True}
        # The front end's static mount catches every other path, and ours still answer.
        assert "Printernizer" in client.get("/").text
        assert 'href="usage/"' in client.get("/").text
        assert client.get("/no/such/page").status_code == 404
        page = client.get("/usage/")
        assert page.status_code == 200 and "<html" in page.text
        # Its middleware's CSP is the one in force: the page runs under it (scripts from
        # 'self' only, nothing inline to execute).
        assert "script-src 'self'" in page.headers["content-security-policy"]
        scripts = re.findall(r"<script[^>]*>", page.text)
        assert scripts and all("src=" in s or 'type="application/json"' in s for s in scripts)
        assert client.get("/usage/api/mode").json()["mode"] == "on"
        # Its own API, through its services' old record_event calls.
        printer = client.post("/api/v1/printers", json={"name": "P1S", "type": "bambu_lab"})
        job = client.post("/api/v1/jobs", json={"printer_id": printer.json()["id"],
                                                "file_name": "secret-prototype.3mf"}).json()
        done = client.put(f"/api/v1/jobs/{job['id']}/status", json={"status": "completed"})
        assert done.json() == {"id": job["id"], "status": "completed"}
        # An error of each of its central handlers, each counted once.
        answers: list[tuple[Callable[..., Any], str, dict[str, Any]]] = [
            (client.put, f"/api/v1/jobs/{job['id']}/status", {"json": {"status": "printing"}}),
            (client.post, "/api/v1/jobs", {"json": {"printer_id": "nope"}}),
            (client.put, "/api/v1/jobs/nope/status", {"json": {"status": "failed"}}),
            (client.post, "/api/v1/jobs", {"json": ["not", "an", "object"]}),
            (client.put, f"/api/v1/jobs/{job['id']}/status", {"json": {"status": "crash"}}),
        ]
        assert [call(path, **kwargs).status_code for call, path, kwargs in answers] == [
            409, 404, 404, 422, 500]
        stats.usage.flush()
        assert store_totals(database, "printernizer.errors") == {
            '{"error.category":"printer","error.type":"printer_busy"}': 1,
            '{"error.category":"printer","error.type":"printer_not_found"}': 1,
            '{"error.category":"api","error.type":"not_found"}': 1,
            '{"error.category":"validation","error.type":"invalid_input"}': 1,
            '{"error.category":"unknown","error.type":"unknown"}': 1}  # the RuntimeError
        # The old front end's calls.
        out = client.post(f"{OLD}/opt-out").json()
        assert out == {"success": True, "installation_id": None,
                       "message": "Usage statistics disabled. Your data will remain local."}
        stats.usage.flush()
        local = client.get(f"{OLD}/local").json()
        assert local == {"installation_id": OLD_ID, "first_seen": local["first_seen"],
                         "opt_in_status": "disabled", "total_events": local["total_events"],
                         "this_week": {"job_count": 1, "file_count": 0, "error_count": 5},
                         "last_submission": None}
        exported = client.get(f"{OLD}/export")
        assert exported.headers["content-type"] == "application/json"
        assert "secret-prototype" not in exported.text and "old-secret" not in exported.text
        deleted = client.delete(OLD).json()
        assert deleted == {"success": True, "deleted_events": local["total_events"],
                           "message": f"Deleted {local['total_events']} usage statistics events."}
        assert store_totals(database, "printernizer.errors") == {}  # deleted with the rest
    with sqlite3.connect(database) as conn:
        assert conn.execute("SELECT count(*) FROM usage_events").fetchone() == (0,)
        assert conn.execute("SELECT key, value FROM usage_settings").fetchall() == [
            ("migrated_to", "otel-usage")]


def test_two_lifespans_in_one_process_count_into_the_live_store(
    tmp_path: Path, midweek: datetime,
) -> None:
    """Its errors module's counter, made at import, counts into whichever lifespan runs."""
    root = switched_over(tmp_path / "switched")
    database = printernizer_of_today(tmp_path / "data" / "printernizer.db", midweek, None)
    with printernizer_main(root, database) as main:
        for _ in range(2):
            with TestClient(main.app) as client:
                printer = client.post("/api/v1/printers", json={"name": "MK4",
                                                                "type": "prusa_core"})
                job = client.post("/api/v1/jobs", json={"printer_id": printer.json()["id"]})
                path = f"/api/v1/jobs/{job.json()['id']}/status"
                client.put(path, json={"status": "failed"})
                assert client.put(path, json={"status": "printing"}).status_code == 409
    with sqlite3.connect(database.parent / "usage.sqlite3") as conn:
        totals = dict(conn.execute(
            "SELECT s.metric || ' ' || s.attributes, sum(d.total) FROM daily d JOIN series s "
            "ON s.id = d.series_id WHERE s.local_only = 0 AND d.total IS NOT NULL "
            "GROUP BY s.id").fetchall())
    assert totals == {
        "printernizer.app.starts {}": 2,
        'printernizer.printer.connections {"connection.event":"connected",'
        '"printer.type":"prusa_core"}': 2,
        'printernizer.jobs {"job.status":"created","printer.type":"prusa_core"}': 2,
        'printernizer.jobs {"job.status":"failed","printer.type":"prusa_core"}': 2,
        'printernizer.errors {"error.category":"printer","error.type":"printer_busy"}': 2,
    }


def what_users_see(client: TestClient) -> dict[str, Any]:
    """The old tab's answers where the guide says they differ: the id before opting in, the
    opt-out's id, the export's version and events, and whether delete kept the id."""
    id_before = client.get(f"{OLD}/local").json()["installation_id"]
    opted = client.post(f"{OLD}/opt-in").json()["installation_id"]
    client.post("/api/v1/printers", json={"name": "MK4", "type": "prusa_core"})
    out = client.post(f"{OLD}/opt-out").json()["installation_id"]
    exported = json.loads(client.get(f"{OLD}/export").text)
    client.delete(OLD)
    after_delete = client.get(f"{OLD}/local").json()["installation_id"]
    return {"id before opting in": id_before is not None, "opt-out's id": out,
            "export_version": exported["export_version"],
            "exported events": len(exported["events"]),
            "delete keeps the id": after_delete == opted}


def test_what_users_see_differently_is_what_the_guide_says(
    tmp_path: Path, midweek: datetime,
) -> None:
    """The README's "What users see" list, checked against the stand-in before and after."""
    seen = {}
    for name, root in (("before", before(tmp_path)),
                       ("after", switched_over(tmp_path / "after"))):
        with printernizer_main(root, tmp_path / f"{name}-data" / "p.db") as main, TestClient(
                main.app) as client:
            seen[name] = what_users_see(client)
    assert seen == {
        "before": {"id before opting in": False, "opt-out's id": None, "export_version": "1.0",
                   "exported events": 2, "delete keeps the id": True},
        "after": {"id before opting in": True, "opt-out's id": None, "export_version": "2.0",
                  "exported events": 0, "delete keeps the id": False},
    }


@pytest.mark.parametrize(("block", "message"), [
    ("```sh\nrm -rf src\n```", "a command the guide may not use"),
    ("```diff\n-import asyncio\n```", "a diff block without its file"),
    ("```diff\n--- a/src/main.py\n+++ b/src/main.py\n@@ x @@\n+\n```", "nothing to find"),
    ("```diff\n--- a/src/main.py\n+++ b/src/main.py\n@@ x @@\n-from src.utils.errors import (\n```",
     "occur 2 times"),
])
def test_a_guide_block_the_applier_cannot_apply_exactly_is_refused(
    block: str, message: str, tmp_path: Path,
) -> None:
    root = before(tmp_path)
    with pytest.raises(GuideError, match=message):
        apply_guide(root, f"## Switching Printernizer over\n\n{block}\n")
    assert (root / "src" / "main.py").read_text() == (STANDIN / "src" / "main.py").read_text()
