"""The comparison (otel_usage/user/compare.py): the user's own numbers of the newest published
week the local history has, beside the published ones with their margins, computed locally from
what was fetched; and its plain text for the command."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from compare_support import PATH, live_week, make, newest_publishable, public_server, site

from otel_usage import ManualClock
from otel_usage.user.compare import render_comparison


def compared(data_dir: Path, midweek: datetime, monkeypatch: pytest.MonkeyPatch,
             tmp_path: Path, history: bool = True) -> tuple[dict[str, Any], str]:
    """Fetch (asked, mode local) the public statistics of the newest published week, after a
    week of history in it (or none), and compare; and the server's address."""
    week = newest_publishable(midweek)
    with public_server(monkeypatch, tmp_path, site([week.previous(), week], midweek)) as server:
        clock = ManualClock(midweek)
        usage = make(data_dir, clock, server.url)
        if history:
            live_week(usage, clock, week)
        clock.set(midweek)
        fetch = usage.fetch_public_statistics(asked=True)
        result = usage.compare()
        usage.shutdown()
    assert fetch["fetched"] is True
    return result, f"{server.url}{PATH}"


def _feature(value: str, yours: bool, installations: int, share_margin: float) -> dict[str, Any]:
    return {"topic": "feature", "metric": "printernizer.features.enabled", "value": value,
            "yours": yours, "installations": installations, "margin": 7.0,
            "share": installations / 1000, "share_margin": share_margin}


def test_the_users_week_beside_the_published_one_with_margins(
        data_dir: Path, midweek: datetime, monkeypatch: pytest.MonkeyPatch,
        tmp_path: Path) -> None:
    """3 printers, 12 jobs, timelapse on, Docker, 2.7.0: each beside its bucket or value's
    installations (library's published -3 stays -3: noise around nothing, shown as it is)."""
    result, url = compared(data_dir, midweek, monkeypatch, tmp_path)
    week = newest_publishable(midweek)
    assert result == {
        "source": url, "fetched_at": midweek.isoformat(), "newest_week": week.label,
        "catalog_version": 2, "available": True, "detail": "", "week": week.label,
        "week_start": week.monday.isoformat(), "published_on": midweek.date().isoformat(),
        "privacy": {"epsilon": 2.0, "delta": 1e-7, "yearly_epsilon": 19.1},
        "active_installations": {"installations": 1000, "margin": 5.5},
        "items": [
            {"topic": "printers", "metric": "printernizer.printers", "yours": 3,
             "bucket_min": 3, "bucket_max": 5, "installations": 180, "margin": 9.1,
             "share": 0.18, "share_margin": 0.0092},
            {"topic": "jobs", "metric": "printernizer.jobs", "yours": 12,
             "bucket_min": 11, "bucket_max": 20, "installations": 250, "margin": 9.1,
             "share": 0.25, "share_margin": 0.0092, "mean": 7.2, "mean_margin": 0.31},
            _feature("library", False, -3, 0.007),
            _feature("library_search", False, 120, 0.007),
            _feature("timelapse", True, 400, 0.0073),
            _feature("auto_job_creation", False, 90, 0.007),
            _feature("german_business", False, 30, 0.007),
            _feature("watch_folders", False, 60, 0.007),
            {"topic": "deployment_mode", "attribute": "printernizer.deployment.mode",
             "yours": "docker", "counted_as": "docker", "installations": 350, "margin": 5.0,
             "share": 0.35, "share_margin": 0.0054},
            {"topic": "version", "attribute": "service.version", "yours": "2.7.0",
             "counted_as": "2.7.0", "installations": 200, "margin": 5.0, "share": 0.2,
             "share_margin": 0.0051},
        ]}
    json.dumps(result)  # the page's API and --json print it as it is


def test_the_command_prints_each_number_with_its_margin_rounded_up(
        data_dir: Path, midweek: datetime, monkeypatch: pytest.MonkeyPatch,
        tmp_path: Path) -> None:
    result, url = compared(data_dir, midweek, monkeypatch, tmp_path)
    week = newest_publishable(midweek)
    text = render_comparison(result, {"detail": f"fetched the public statistics up to {week.label}"})
    assert text.splitlines() == [
        f"Public statistics: fetched the public statistics up to {week.label}.",
        f"Week {week.label} (from {week.monday.isoformat()}), published on "
        f"{midweek.date().isoformat()} at {url}:",
        "1,000 ± 6 active installations. Every public number carries noise (± its 95 % "
        "margin); a small one can even be negative.",
        "",
        "Printers: you had 3; 18.0 ± 1.0 % of installations (180 ± 10 installations) had 3-5.",
        "Jobs: you had 12; 25.0 ± 1.0 % of installations (250 ± 10 installations) had 11-20; on "
        "average an installation had 7.2 ± 0.4.",
        "Feature library: off here; on at -0.3 ± 0.7 % of installations (-3 ± 7 installations).",
        "Feature library_search: off here; on at 12.0 ± 0.7 % of installations (120 ± 7 "
        "installations).",
        "Feature timelapse: on here; on at 40.0 ± 0.8 % of installations (400 ± 7 installations).",
        "Feature auto_job_creation: off here; on at 9.0 ± 0.7 % of installations (90 ± 7 "
        "installations).",
        "Feature german_business: off here; on at 3.0 ± 0.7 % of installations (30 ± 7 "
        "installations).",
        "Feature watch_folders: off here; on at 6.0 ± 0.7 % of installations (60 ± 7 "
        "installations).",
        "Deployment: docker, like 35.0 ± 0.6 % of installations (350 ± 5 installations).",
        "Version: 2.7.0, like 20.0 ± 0.6 % of installations (200 ± 5 installations).",
    ]


def test_a_week_the_local_history_does_not_have_is_not_compared(
        data_dir: Path, midweek: datetime, monkeypatch: pytest.MonkeyPatch,
        tmp_path: Path) -> None:
    result, url = compared(data_dir, midweek, monkeypatch, tmp_path, history=False)
    week = newest_publishable(midweek)
    assert result == {
        "source": url, "fetched_at": midweek.isoformat(), "newest_week": week.label,
        "catalog_version": 2, "week": week.label, "available": False, "items": [],
        "detail": f"this machine kept no statistics in {week.label}, the newest week "
                  "published that could be compared"}
