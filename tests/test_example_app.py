"""The example app stands in for Printernizer: ordinary OTel meters end up in the local store,
errors are counted by the central handler, and the privacy page is mounted."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import httpx
from opentelemetry import metrics

from examples.printernizer_app import create_app
from otel_usage import UsageTelemetry
from otel_usage.record.rebind import GLOBAL


async def test_the_example_app_counts_jobs_downloads_errors_and_features(
    data_dir: Path, midweek: datetime,
) -> None:
    """The app takes its clock from the hook, pinned mid-week: every count lands on one day."""
    app = create_app(str(data_dir))
    async with app.router.lifespan_context(app):
        usage: UsageTelemetry = app.state.usage
        assert (metrics.get_meter_provider(), GLOBAL.target) == (GLOBAL, usage.meter_provider)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://printernizer") as client:
            for _ in range(3):
                answer = await client.post("/api/v1/printers/p1s-workshop/jobs",
                                           params={"file_name": "benchy.3mf"})
                assert answer.status_code == 200
                await client.post("/api/v1/printers/p1s-workshop/jobs/complete")
            await client.post("/api/v1/printers/mk4-garage/files/download")
            offline = await client.post("/api/v1/printers/x1c-office/jobs",
                                        params={"file_name": "secret-prototype.3mf"})
            assert (offline.status_code, offline.json()) == (503, {"error": "connection_timeout"})
            await client.get("/api/v1/library/search", params={"q": "benchy"})
            page = await client.get("/usage/")
            assert page.status_code == 200 and "<html" in page.text
            usage.flush()
            stats = (await client.get("/usage/api/statistics")).json()
        exported = await usage.export_json()
    assert {d["day"] for s in exported["series"] for d in s["days"]} == {
        midweek.date().isoformat()}
    assert stats["this_week"] == {"jobs_completed": 3, "files_downloaded": 1,
                                  "active_printers": 3, "errors": 1}
    assert stats["features"] == {"library": True, "library_search": True, "timelapse": False,
                                 "auto_job_creation": True, "german_business": False,
                                 "watch_folders": False}
    counted = {(s["metric"], tuple(sorted(s["attributes"].items()))): s["days"][0].get("total")
               for s in exported["series"] if s["kind"] == "sum"}
    assert counted == {
        ("printernizer.app.starts", ()): 1,
        ("printernizer.jobs", (("job.status", "created"), ("printer.type", "bambu_lab"))): 3,
        ("printernizer.jobs", (("job.status", "completed"), ("printer.type", "bambu_lab"))): 3,
        ("printernizer.file.downloads", (("printer.type", "prusa_core"),)): 1,
        ("printernizer.errors", (("error.category", "printer"),
                                 ("error.type", "connection_timeout"))): 1,
        ("printernizer.feature.uses", (("feature.name", "library_search"),)): 1,
    }
    assert "secret-prototype" not in repr(exported) and "benchy" not in repr(exported)
