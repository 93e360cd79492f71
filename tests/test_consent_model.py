"""The consent rules, proven by a model: hypothesis drives random sequences of
recording, the user's mode changes, environment overrides at restarts, delete-all, export,
restarts and crashes (the process gone without its last export: what it counted since is lost;
an export is one transaction, which tests/test_exporter.py kills mid-way), clock moves across
weeks and opt-in instants, a catalog version bump, the server's answers (200, 429, 503, a
stalled request) against a loopback capture server that decodes every body, a hostile server
(410 "erased" to everything, answers drip-fed a byte at a time, redirects elsewhere) and
Printernizer's old database, opted in or out long ago, whose migration fails while it is locked
and succeeds at a later start. After each step and at the end it checks:

- no byte leaves that the consent at its recording did not cover: a week that arrives holds
  only counts recorded under mode ``on`` (none recorded under ``local`` in that week), and a
  value a newer catalog added only under a consent to that version made before the week began;
- every report received before an opt-out or a delete-all is erased (an erasure request with its
  installation id and credential, acknowledged) by the end;
- nothing is stored while the mode in force is ``off``;
- counts are never doubled or lost: a week's report holds exactly the jobs recorded in it, and
  every copy of one installation's week that arrives is the same; no week arrives under two
  identities, and a new identity is made at most once a week;
- nothing goes where a redirect points;
- the stored choice changes only by the user's action.

CI runs a short profile (``OTEL_USAGE_MODEL_EXAMPLES``, default 40 sequences of up to 40
steps, ``OTEL_USAGE_MODEL_STEPS``); README gives the longer one.
"""

from __future__ import annotations

import dataclasses
import math
import os
import sqlite3
import tempfile
from collections import Counter
from datetime import datetime, timedelta
from pathlib import Path

from capture_server import DRIP, STALL, CaptureServer, capture_server
from catalog_support import grown_raw, write_catalog
from conftest import dates_of_this_run
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from otel_usage import ManualClock, UsageTelemetry
from otel_usage.catalog import Catalog, load_catalog
from otel_usage.printernizer import migrate_printernizer_database
from otel_usage.weeks import Week

# Sequences in all, shared by the test dates of the run (each date gets its part, at least
# ten): the model runs at every date, and five dates need not cost five times one.
EXAMPLES = int(os.environ.get("OTEL_USAGE_MODEL_EXAMPLES", "40"))
PER_DATE = max(10, -(-EXAMPLES // len(dates_of_this_run())))
STEPS = int(os.environ.get("OTEL_USAGE_MODEL_STEPS", "40"))
MODES = ("off", "local", "on")
OWN = {"printernizer.app.starts", "printernizer.uptime"}
PRINTERS = ("bambu_lab", "creality")  # creality: added by catalog version 2


# The hostile server's answers to everything, while it is hostile.
HOSTILE = {"erased": (410, {}), "drip": (DRIP, {}), "redirect": (307, {})}
# Printernizer's old tables, as its migrations make them.
LEGACY_TABLES = """
CREATE TABLE usage_events (id TEXT PRIMARY KEY, event_type TEXT NOT NULL,
    timestamp DATETIME NOT NULL, metadata TEXT, submitted BOOLEAN DEFAULT 0,
    created_at DATETIME DEFAULT CURRENT_TIMESTAMP);
CREATE TABLE usage_settings (key TEXT PRIMARY KEY, value TEXT NOT NULL,
    updated_at DATETIME DEFAULT CURRENT_TIMESTAMP);
"""


def _legacy_database(path: Path, start: datetime, opt_in: str) -> Path:
    """Printernizer's database of today: opted in (or out) a month ago, events this week."""
    def when(at: datetime) -> str:
        return at.replace(tzinfo=None).isoformat(sep=" ", timespec="seconds")

    with sqlite3.connect(path) as conn:
        conn.executescript(LEGACY_TABLES)
        conn.execute("INSERT INTO usage_settings VALUES ('opt_in_status', ?, ?)",
                     (opt_in, when(start - timedelta(days=30))))
        conn.executemany("INSERT INTO usage_events (id, event_type, timestamp, metadata) "
                         "VALUES (?, 'job_completed', ?, '{\"printer_type\": \"bambu_lab\"}')",
                         [(str(n), when(start - timedelta(hours=n))) for n in (1, 30)])
    return path


def _state_machine(server: CaptureServer, elsewhere: CaptureServer, root: Path,
                   start: datetime, grown: Catalog) -> type[RuleBasedStateMachine]:
    HOSTILE["redirect"] = (307, {"Location": elsewhere.url + "/v1/metrics"})

    class ConsentModel(RuleBasedStateMachine):
        @initialize(first=st.sampled_from(("on", "on", "local", "off", None)),
                    legacy=st.sampled_from((None, None, "enabled", "disabled")),
                    locked=st.booleans())
        def begin(self, first: str | None, legacy: str | None, locked: bool) -> None:
            server.requests.clear()
            server.answers.clear()
            server.always = None
            self.data_dir = Path(tempfile.mkdtemp(dir=root))
            # Printernizer's old database, migrated at the first start it is not locked at.
            self.legacy = legacy and _legacy_database(self.data_dir / "printernizer.db",
                                                      start, legacy)
            self.legacy_status = legacy
            self.clock = ManualClock(start)
            self.stored: str | None = None
            self.forced: str | None = None
            self.catalog = grown.as_of(1)  # a release of version 1; catalog_grows ships 3
            self.memory = 0  # counted, not yet exported
            self.recorded: dict[str, Counter[str]] = {}  # week -> {"on": n, "other": n}
            self.agreements: list[tuple[datetime, int]] = []
            self.environment_since: tuple[datetime, int] | None = None
            self.unerased: set[tuple[str, str]] = set()  # (id, credential) received
            self.to_erase: list[tuple[str, str, int]] = []  # ... and the request index then
            self.checked = 0  # server requests already checked
            self.copies: dict[tuple[str, str], object] = {}  # (id, week) -> points
            self.identities: dict[str, list[datetime]] = {}  # id -> first seen (clock)
            self.usage = self._start(locked)
            if first is not None:
                self.user_chooses(first)

        # The process.

        def _start(self, locked: bool = False) -> UsageTelemetry:
            environ = {} if self.forced is None else {"OTEL_USAGE_MODE": self.forced}
            usage = UsageTelemetry(self.data_dir, clock=self.clock, endpoint=server.url,
                                   service_version="2.7.0", export_interval_s=math.inf,
                                   background_uploads=False, catalog=self.catalog,
                                   environ={"DEPLOYMENT_MODE": "docker", **environ})
            self._migrate(usage, locked)
            usage.start()
            # A stalled or drip-fed request is given up quickly: the exchange's deadline is
            # injected, so no one waits for the real one (start makes the sender anew).
            usage.uploads.settings = dataclasses.replace(usage.uploads.settings,
                                                         deadline_s=0.1)
            with usage.store.transaction() as tx:  # due the moment a week closes
                tx.set_meta("report_weekday", "0")
                tx.set_meta("report_hour", "0")
            effective = self._effective()
            if self.stored != "on" and effective == "on" and self.environment_since is None:
                self.environment_since = (self.clock.now(), self.catalog.version)
            if self.stored != "on" and effective != "on":
                self.environment_since = None
                self._opted_out()
            return usage

        def _migrate(self, usage: UsageTelemetry, locked: bool) -> None:
            """What the drop-in's start does first: move Printernizer's old tables, which
            fails while its database is locked (and is tried again at the next start)."""
            if not self.legacy:
                return
            holder = sqlite3.connect(self.legacy, isolation_level=None)
            try:
                if locked:  # Printernizer holds its database: the move waits 10 ms, fails
                    holder.execute("BEGIN EXCLUSIVE")
                result = migrate_printernizer_database(self.legacy, usage,
                                                       busy_timeout_s=0.01)
            finally:
                holder.close()
            assert result.status == ("failed" if locked else
                                     "deleted" if self.forced == "off" else "done"), result
            if locked:
                return
            self.legacy = None
            if self.forced != "off" and self.stored is None:
                # The old switch's choice, as the user's: a consent to version 1 from now.
                self.stored = "on" if self.legacy_status == "enabled" else "local"
                if self.stored == "on":
                    self.agreements = [(self.clock.now(), 1)]

        def _effective(self) -> str:
            return self.forced or self.stored or "local"

        def _commit(self) -> None:
            """What the library does with the counts in memory at an export."""
            if self.memory and self._effective() != "off":
                kind = "on" if self._effective() == "on" else "other"
                week = Week.of(self.clock.now()).label
                self.recorded.setdefault(week, Counter())[kind] += self.memory
            self.memory = 0

        def _opted_out(self) -> None:
            index = len(server.requests)
            self.to_erase += [(i, c, index) for i, c in self.unerased]
            self.unerased = set()

        def _stored_total(self) -> int:
            if not self.usage.store.path.exists():
                return 0
            with sqlite3.connect(self.usage.store.path) as conn:
                (total,) = conn.execute("SELECT coalesce(sum(total), 0) FROM daily "
                                        "WHERE total IS NOT NULL").fetchone()
            return int(total)

        # Rules.

        @rule(jobs=st.integers(1, 5), printer=st.sampled_from(PRINTERS),
              hours=st.sampled_from((0, 1, 7, 20)))
        def record(self, jobs: int, printer: str, hours: int) -> None:
            """Printernizer counts jobs, some hours apart (not yet exported)."""
            self.usage.meter().create_counter("printernizer.jobs").add(
                jobs, {"job.status": "completed", "printer.type": printer})
            self.memory += jobs
            self.clock.advance(timedelta(hours=hours))

        @rule()
        def export(self) -> None:
            import asyncio

            before = self._stored_total()
            off = self._effective() == "off"
            self.usage.flush()
            self._commit()
            if off:
                assert self._stored_total() == before, "stored while off"
            assert asyncio.run(self.usage.export_json())["mode"] == self._effective()

        @rule(mode=st.sampled_from(MODES))
        def user_chooses(self, mode: str) -> None:
            before = self._stored_total()
            off = self._effective() == "off"
            self.usage.set_mode(mode)
            self._commit()
            if off:
                assert self._stored_total() == before, "stored while off"
            previous, self.stored = self.stored, mode
            if mode == "on" and (previous != "on" or self.catalog.version > max(
                    v for _, v in self.agreements)):
                if previous != "on":
                    self.agreements = []
                self.agreements.append((self.clock.now(), self.catalog.version))
            if mode != "on":
                self.environment_since = None
                if previous == "on" or self.unerased:
                    self._opted_out()

        @rule()
        def delete_all(self) -> None:
            self.usage.delete_all_now()
            self.memory = 0
            self.recorded = {}
            self.environment_since = None
            if self.stored == "on":
                self.agreements = [(self.clock.now(), max(v for _, v in self.agreements))]
            self._opted_out()

        @rule(forced=st.sampled_from((None, None, "off", "local", "on")), crash=st.booleans(),
              locked=st.booleans())
        def restart(self, forced: str | None, crash: bool, locked: bool) -> None:
            """The process ends (or dies: what was counted since the last export is gone)
            and starts again, perhaps under another environment, perhaps while Printernizer
            holds its own database locked."""
            if crash:
                self.usage.store.close()
                self.memory = 0
            else:
                self.usage.shutdown()
                self._commit()
            self.forced = forced
            self.usage = self._start(locked)

        @rule(kind=st.sampled_from((*HOSTILE, None)))
        def the_server_turns(self, kind: str | None) -> None:
            """The server turns hostile (answering every request so: 410 "erased", an answer
            drip-fed a byte at a time, a redirect elsewhere), or behaves again (None)."""
            server.always = HOSTILE[kind] if kind else None

        @precondition(lambda self: self.catalog.version == 1)
        @rule()
        def catalog_grows(self) -> None:
            """A new release ships catalog version 3; the consent stays at its version."""
            self.usage.shutdown()
            self._commit()
            self.catalog = grown
            self.usage = self._start()

        @rule(hours=st.sampled_from((1, 11, 30, 24 * 4, 24 * 8)),
              answer=st.sampled_from(((200, {}), (200, {}), (429, {"Retry-After": "120"}),
                                      (503, {}), (STALL, {}))))
        def time_passes(self, hours: int, answer: tuple[int, dict[str, str]]) -> None:
            """Time moves (across days, weeks and opt-in instants) and the sender wakes; the
            server gives `answer` to the next request."""
            self.export()  # the periodic reader exports as time goes by
            server.answers.append(answer)
            self.clock.advance(timedelta(hours=hours))
            self.usage.send_now()
            self._check_arrivals()

        @rule(answer=st.sampled_from(((200, {}), (503, {}))))
        def a_week_closes(self, answer: tuple[int, dict[str, str]]) -> None:
            """Monday 00:00 UTC passes: the week just closed is due; the sender wakes."""
            self.export()
            server.answers.append(answer)
            self.clock.set(Week.of(self.clock.now()).end + timedelta(minutes=1))
            self.usage.send_now()
            self._check_arrivals()

        def _check_arrivals(self) -> None:
            for request in server.requests[self.checked:]:
                if request.is_erasure:
                    continue
                resource = request.resource()
                installation = resource["service.instance.id"]
                self.unerased.add((installation, request.credential))
                week = Week.of(datetime.fromtimestamp(request.week_start_nanos() / 1e9,
                                                      tz=start.tzinfo))
                points = request.points()
                copy = (installation, week.label)
                assert self.copies.setdefault(copy, points) == points, "a week sent twice"
                assert [i for i, w in self.copies if w == week.label] == [installation], (
                    "a week sent under two identities", week.label)
                self._identity(installation)
                jobs = sum(v for (name, _), v in points.items() if name == "printernizer.jobs")
                counted = self.recorded.get(week.label, Counter())
                assert counted["other"] == 0, f"{week.label}: sent with counts not consented"
                assert jobs == counted["on"], f"{week.label}: sent {jobs}, recorded {counted}"
                version = int(resource["otel_usage.catalog.version"])
                agreed = [v for at, v in self._consents() if at <= week.start]
                assert agreed and version <= max(agreed), (week.label, version, agreed)
                creality = any(dict(a).get("printer.type") == "creality"
                               for (_, a) in points)
                assert not creality or version >= 2
            self.checked = len(server.requests)

        def _identity(self, installation: str) -> None:
            """A new identity is made at most once a week, however the server answers (the
            first of each; one made while the user was not sharing may follow an erasure)."""
            if installation in self.identities:
                return
            now = self.clock.now()
            recent = [i for i, at in self.identities.items() if now - at < timedelta(weeks=1)]
            self.identities[installation] = now
            assert len(recent) <= 1, ("identities churned", recent)

        def _consents(self) -> list[tuple[datetime, int]]:
            return self.agreements + ([self.environment_since]
                                      if self.environment_since else [])

        @invariant()
        def the_choice_is_the_users(self) -> None:
            if hasattr(self, "usage"):
                assert self.usage.mode_state().stored == self.stored

        def teardown(self) -> None:
            if not hasattr(self, "usage"):
                return
            if os.environ.get("OTEL_USAGE_MODEL_STATS"):  # what a sequence exercised
                print("model:", dict(Counter(r.method for r in server.requests)),
                      f"erasures due {len(self.to_erase)}, stored {self.stored}, forced "
                      f"{self.forced}, {self.clock.now() - start} later")
            server.release()
            server.answers.clear()
            server.always = None
            for _ in range(3):  # the erasures go out, answered 200
                self.clock.advance(timedelta(days=2))
                self.usage.send_now()
            self._check_arrivals()
            self.usage.shutdown()
            deletes = [(n, r) for n, r in enumerate(server.requests) if r.is_erasure]
            for installation, credential, index in self.to_erase:
                assert any(n >= index and r.installation_id == installation
                           and r.credential == credential for n, r in deletes), (
                    "a report was not erased", installation)
            assert elsewhere.requests == [], "a redirect was followed"
            server.rearm()

    return ConsentModel


def test_the_consent_rules_hold_in_every_sequence(tmp_path: Path, now: datetime) -> None:
    grown = load_catalog(write_catalog(grown_raw(), tmp_path))
    start = Week.of(now).start + timedelta(days=2, hours=12)
    with capture_server() as server, capture_server() as elsewhere:
        machine = _state_machine(server, elsewhere, tmp_path, start, grown)
        run_state_machine_as_test(machine, settings=settings(
            max_examples=PER_DATE, stateful_step_count=STEPS, deadline=None,
            suppress_health_check=list(HealthCheck)))


def test_a_week_tried_under_an_identity_being_erased_is_not_sent_under_the_next(
        tmp_path: Path, now: datetime) -> None:
    """A sequence the model found, replayed as it was: the user opts out and back in at once
    while the server redirects everything; weeks then go out under the identity whose erasure
    waits; once the server acknowledges the erasure the identity starts over, and no week is
    sent again under the new one."""
    grown = load_catalog(write_catalog(grown_raw(), tmp_path))
    start = Week.of(now).start + timedelta(days=2, hours=12)
    with capture_server() as server, capture_server() as elsewhere:
        state = _state_machine(server, elsewhere, tmp_path, start, grown)()
        state.begin(first="on", legacy=None, locked=False)
        state.a_week_closes(answer=(200, {}))
        state.catalog_grows()
        state.a_week_closes(answer=(200, {}))
        state.export()
        state.the_server_turns(kind="redirect")
        state.user_chooses(mode="off")
        state.user_chooses(mode="on")
        state.a_week_closes(answer=(200, {}))
        state.a_week_closes(answer=(200, {}))
        state.teardown()
