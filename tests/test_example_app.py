"""The example stands in for today's Printernizer (its tables, its service calls, its API paths,
a static mount at "/", its CSP middleware): started on a database of today, it migrates the
old usage tables, its old front end's calls answer from the new router beside the privacy page,
and its lifespan runs twice in one process."""

from __future__ import annotations

import json
import re
import sqlite3
import uuid
import warnings
from datetime import datetime, timedelta
from pathlib import Path

from starlette.exceptions import StarletteDeprecationWarning

from examples.printernizer_app import MIGRATIONS, Settings, create_application
from otel_usage.printernizer import UsageStatisticsService

with warnings.catch_warnings():
    # Printernizer's tests use Starlette's TestClient, which now asks for httpx2 (not a
    # dependency here): with httpx it works, and says so once, at import.
    warnings.simplefilter("ignore", StarletteDeprecationWarning)
    from starlette.testclient import TestClient

OLD_ID = str(uuid.UUID(int=0xC0FFEE, version=4))


def printernizer_of_today(path: Path, midweek: datetime, opt_in: str | None) -> Settings:
    """Its database as an installed Printernizer has it: an opted-in (or not) user's events."""
    path.parent.mkdir(parents=True)
    with sqlite3.connect(path) as conn:
        conn.executescript(MIGRATIONS)
        opted = (midweek - timedelta(days=20)).replace(tzinfo=None)
        settings = [("installation_id", OLD_ID, opted.isoformat(sep=" "))]
        if opt_in is not None:
            settings.append(("opt_in_status", opt_in, opted.isoformat(sep=" ")))
        conn.executemany("INSERT INTO usage_settings VALUES (?, ?, ?)", settings)
        last_week = (midweek - timedelta(days=7)).replace(tzinfo=None).isoformat(sep=" ")
        conn.executemany(
            "INSERT INTO usage_events (id, event_type, timestamp, metadata) VALUES (?, ?, ?, ?)",
            [(str(uuid.uuid4()), kind, last_week, json.dumps(meta)) for kind, meta in [
                ("job_completed", {"printer_type": "bambu_lab", "file_name": "old-secret.3mf"}),
                ("job_completed", {"printer_type": "bambu_lab"}),
                ("file_downloaded", {"printer_type": "prusa_core"})]])
    return Settings(database_path=str(path))


def test_todays_printernizer_migrates_and_its_old_front_end_works_beside_the_privacy_page(
    tmp_path: Path, midweek: datetime,
) -> None:
    settings = printernizer_of_today(tmp_path / "data" / "printernizer.db", midweek, "enabled")
    app = create_application(settings)
    with TestClient(app) as client:
        stats: UsageStatisticsService = app.state.usage_statistics_service
        assert client.get("/api/v1/usage-stats/status").json() == {
            "service_available": True, "opted_in": True, "total_events": 3,
            "collection_active": True}
        # The front end's static mount catches every other path, and ours still answer.
        assert "Printernizer" in client.get("/").text
        assert client.get("/usage-statistics.js").status_code == 200
        assert client.get("/no/such/page").status_code == 404
        page = client.get("/usage/")
        assert page.status_code == 200 and "<html" in page.text
        # Its middleware's CSP is the one in force: the page runs under it (scripts from
        # 'self' only, nothing inline to execute), and so do its static files and its API.
        assert "script-src 'self'" in page.headers["content-security-policy"]
        scripts = re.findall(r"<script[^>]*>", page.text)
        assert scripts and all("src=" in s or 'type="application/json"' in s for s in scripts)
        assert client.get("/usage/static/app.js").status_code == 200
        assert client.get("/usage/api/mode").json()["mode"] == "on"
        # Its own API, counted through its old service and its modules' meters.
        printer = client.post("/api/v1/printers", json={"name": "P1S", "type": "bambu_lab"})
        job = client.post("/api/v1/jobs", json={"printer_id": printer.json()["id"],
                                                "file_name": "secret-prototype.3mf"}).json()
        done = client.put(f"/api/v1/jobs/{job['id']}/status", json={"status": "completed"})
        assert done.json() == {"id": job["id"], "status": "completed"}
        busy = client.put(f"/api/v1/jobs/{job['id']}/status", json={"status": "printing"})
        assert (busy.status_code, busy.json()["error_code"]) == (409, "PRINTER_BUSY")
        missing = client.post("/api/v1/jobs", json={"printer_id": "nope"})
        assert (missing.status_code, missing.json()["error_code"]) == (404, "PRINTER_NOT_FOUND")
        # The old front end's calls.
        out = client.post("/api/v1/usage-stats/opt-out").json()
        assert out == {"success": True, "installation_id": OLD_ID,
                       "message": "Usage statistics disabled. Your data will remain local."}
        assert client.get("/usage/api/mode").json()["mode"] == "local"
        stats.usage.flush()
        local = client.get("/api/v1/usage-stats/local").json()
        assert local == {"installation_id": OLD_ID, "first_seen": local["first_seen"],
                         "opt_in_status": "disabled", "total_events": 9,
                         "this_week": {"job_count": 1, "file_count": 0, "error_count": 2},
                         "last_submission": None}
        viewer = client.get("/usage/api/statistics").json()
        assert (viewer["this_week"]["active_printers"], viewer["features"]["library"]) == (
            1, True)
        exported = client.get("/api/v1/usage-stats/export")
        assert exported.headers["content-type"] == "application/json"
        assert "secret-prototype" not in exported.text and "old-secret" not in exported.text
        deleted = client.delete("/api/v1/usage-stats").json()
        assert deleted == {"success": True, "deleted_events": 9,
                           "message": "Deleted 9 usage statistics events."}
    with sqlite3.connect(settings.database_path) as conn:
        assert conn.execute("SELECT count(*) FROM usage_events").fetchone() == (0,)
        assert conn.execute("SELECT key, value FROM usage_settings").fetchall() == [
            ("migrated_to", "otel-usage")]


def test_two_lifespans_in_one_process_count_into_the_live_store(
    tmp_path: Path, midweek: datetime,
) -> None:
    """Its modules' counters, made at import, count into whichever lifespan is running."""
    settings = printernizer_of_today(tmp_path / "data" / "printernizer.db", midweek, None)
    app = create_application(settings)
    for _ in range(2):
        with TestClient(app) as client:
            printer = client.post("/api/v1/printers", json={"name": "MK4", "type": "prusa_core"})
            job = client.post("/api/v1/jobs", json={"printer_id": printer.json()["id"]}).json()
            client.put(f"/api/v1/jobs/{job['id']}/status", json={"status": "failed"})
    with sqlite3.connect(Path(settings.database_path).parent / "usage.sqlite3") as conn:
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
    }
