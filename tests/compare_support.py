"""Helpers for the comparison's tests: a published week written by hand as the public JSON
format describes it (checked against otel_usage/public.schema.json), a real HTTPS server on
loopback (a trustme CA the client is told to trust, as reports are) that serves the public
statistics and records every request, and an installation with a known week of history."""

from __future__ import annotations

import json
import math
import ssl
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import trustme

from ingest.views import DISTRIBUTION_BUCKETS
from otel_usage import ManualClock, UsageTelemetry
from otel_usage.catalog import PUBLIC_SCHEMA_PATH, load_catalog
from otel_usage.weeks import Week

CATALOG = load_catalog()
SCHEMA = json.loads(PUBLIC_SCHEMA_PATH.read_text(encoding="utf-8"))
PATH = CATALOG.public.path  # /stats/


def newest_publishable(now: datetime) -> Week:
    """The newest week whose reporting window has ended at `now` (what a server has published)."""
    return Week.of(now - timedelta(days=CATALOG.policy.publish_after_days)).previous()


def _buckets(metric: str, counts: dict[int, tuple[int, float]]) -> list[dict[str, Any]]:
    """A metric's distribution rows: each bucket's count from `counts` (bucket_min -> (count,
    margin)), 0 ± 4 where none is given."""
    bounds = DISTRIBUTION_BUCKETS
    return [{"metric": metric, "bucket_min": low,
             "bucket_max": bounds[i + 1] - 1 if i + 1 < len(bounds) else None,
             "installations": counts.get(low, (0, 4.0))[0],
             "margin": counts.get(low, (0, 4.0))[1]}
            for i, low in enumerate(bounds)]


def week_document(week: Week, published_on: datetime) -> dict[str, Any]:
    """A published week: 1,000 ± 5.5 active installations; 180 ± 9.1 with 3-5 printers; 250
    with 11-20 jobs and 7,200 ± 310 jobs in all; timelapse on at 400, library at -3 (noise
    around nothing); docker at 350, version 2.7.0 at 200; and rows this client does not know
    of, which it must ignore."""
    return {
        "format": 1, "week": week.label, "week_start": week.monday.isoformat(),
        "published_on": published_on.date().isoformat(),
        "privacy": {"epsilon": 2.0, "delta": 1e-7, "yearly_epsilon": 19.1},
        "active_installations": {"installations": 1000, "margin": 5.5},
        "resource_attributes": [
            {"attribute": "printernizer.deployment.mode", "value": v, "installations": n,
             "margin": 5.0}
            for v, n in (("homeassistant", 300), ("docker", 350), ("pi", 150),
                         ("standalone", 200), ("other", 1))
        ] + [
            {"attribute": "service.version", "value": v, "installations": n, "margin": 5.0}
            for v, n in (("2.5.0", 100), ("2.6.0", 300), ("2.6.3", 390), ("2.7.0", 200),
                         ("other", 10))
        ],
        "metrics": [
            {"metric": "printernizer.features.enabled", "attribute": "feature.name",
             "value": v, "installations": n, "margin": 7.0}
            for v, n in (("library", -3), ("library_search", 120), ("timelapse", 400),
                         ("auto_job_creation", 90), ("german_business", 30),
                         ("watch_folders", 60), ("other", 2))
        ],
        "totals": [{"metric": "printernizer.jobs", "total": 7200, "margin": 310.0},
                   {"metric": "printernizer.errors", "total": 900, "margin": 250.0}],
        "distributions": _buckets("printernizer.printers", {3: (180, 9.1), 1: (500, 9.1)})
        + _buckets("printernizer.jobs", {11: (250, 9.1)}),
        "a_field_of_a_later_version": {"ignored": True},
    }


def index_document(weeks: list[Week], published_on: datetime) -> dict[str, Any]:
    return {
        "format": 1, "generated_on": published_on.date().isoformat(),
        "catalog_version": CATALOG.version,
        "weeks": [{"week": w.label, "week_start": w.monday.isoformat(),
                   "published_on": published_on.date().isoformat(),
                   "file": f"weeks/{w.label}.json"} for w in weeks],
        "active_installations": [{"week": w.label, "installations": 1000, "margin": 5.5}
                                 for w in weeks],
    }


def site(weeks: list[Week], published_on: datetime) -> dict[str, bytes]:
    """The public statistics' files by path (under /stats/), each valid against the schema."""
    files = {"index.json": index_document(weeks, published_on),
             **{f"weeks/{w.label}.json": week_document(w, published_on) for w in weeks}}
    for document in files.values():
        jsonschema.validate(document, SCHEMA)
    return {PATH + name: json.dumps(doc).encode() for name, doc in files.items()}


@dataclass
class Seen:
    """One request as the server saw it: method, path and every header (name, value)."""

    method: str
    path: str
    headers: list[tuple[str, str]]
    client_certificate: bool = False  # whether the client presented a TLS certificate


@dataclass
class PublicServer:
    """A loopback HTTPS server: `files` by path answered 200 (gzip when asked), anything else
    404; every request recorded in `seen`."""

    url: str
    files: dict[str, bytes]
    seen: list[Seen] = field(default_factory=list)

    def paths(self) -> list[str]:
        return [s.path for s in self.seen]


@contextmanager
def public_server(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                  files: dict[str, bytes]) -> Iterator[PublicServer]:
    """Serve `files` over HTTPS on loopback, with a certificate the client trusts the way it
    trusts the gateway's in reports (OTEL_EXPORTER_OTLP_CERTIFICATE). The server asks for a
    client certificate without requiring one, and records whether one was presented; a client
    certificate of its CA is written to ``client.pem``/``client-key.pem`` in `tmp_path`."""
    ca = trustme.CA()
    ca_file = tmp_path / "public-ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_CERTIFICATE", str(ca_file))
    client = ca.issue_cert("installation.test")
    client.cert_chain_pems[0].write_to_path(str(tmp_path / "client.pem"))
    client.private_key_pem.write_to_path(str(tmp_path / "client-key.pem"))
    state: dict[str, PublicServer] = {}

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:
            server = state["server"]
            presented = bool(self.connection.getpeercert())  # type: ignore[attr-defined]
            server.seen.append(Seen("GET", self.path, list(self.headers.items()), presented))
            body = server.files.get(self.path)
            if body is None:
                self.send_response(404)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_POST(self) -> None:
            """A report: recorded (with whether a client certificate came), answered 503."""
            server = state["server"]
            presented = bool(self.connection.getpeercert())  # type: ignore[attr-defined]
            server.seen.append(Seen("POST", self.path, list(self.headers.items()), presented))
            self.rfile.read(int(self.headers.get("Content-Length", "0")))
            self.send_response(503)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: object) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(context)
    ca.configure_trust(context)
    context.verify_mode = ssl.CERT_OPTIONAL
    httpd.socket = context.wrap_socket(httpd.socket, server_side=True)
    server = PublicServer(f"https://127.0.0.1:{httpd.server_port}", files)
    state["server"] = server
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield server
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join()


def make(data_dir: Path, clock: ManualClock, endpoint: str,
         environ: dict[str, str] | None = None) -> UsageTelemetry:
    return UsageTelemetry(data_dir, service_version="2.7.0", export_interval_s=math.inf,
                          clock=clock, endpoint=endpoint, background_uploads=False,
                          environ={"DEPLOYMENT_MODE": "docker", **(environ or {})})


def live_week(usage: UsageTelemetry, clock: ManualClock, week: Week) -> None:
    """A Wednesday of `week` at this installation: 3 printers, 12 jobs, timelapse on."""
    clock.set(week.start + timedelta(days=2, hours=12))
    usage.start()
    usage.observe_printers(lambda: {"bambu_lab": 2, "prusa_core": 1})
    usage.observe_features(lambda: {"timelapse": True, "library": False})
    usage.meter().create_counter("printernizer.jobs").add(
        12, {"job.status": "completed", "printer.type": "bambu_lab"})
    usage.flush()


def with_history(data_dir: Path, now: datetime, endpoint: str,
                 week: Week) -> tuple[UsageTelemetry, ManualClock]:
    """An installation (:func:`make`) that lived `week` (:func:`live_week`), its clock back at
    `now`."""
    clock = ManualClock(now)
    usage = make(data_dir, clock, endpoint)
    live_week(usage, clock, week)
    clock.set(now)
    return usage, clock
