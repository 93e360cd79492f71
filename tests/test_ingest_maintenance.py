"""Publish, then forget: on a clock moved through real weeks, SQLite and PostgreSQL keep only
what the catalog's windows allow, and on SQLite what is forgotten is in no file."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import httpx
from ingest_reports import CATALOG, encode, new_credential, new_installation, request
from ingest_support import app_client, database_url, query, settings  # noqa: F401  (fixture)

from ingest import Settings, publish
from ingest._store import id_hash
from otel_usage.weeks import Week

POLICY = CATALOG.policy
PROTOCOL = CATALOG.protocol
# A value no other report holds, so that its bytes can be looked for in the database's files.
DISTINCTIVE = 918_273


class _Clock:
    """The service's clock, moved by the test (Unix seconds)."""

    def __init__(self, start: datetime) -> None:
        self.now = start.timestamp()

    def __call__(self) -> float:
        return self.now


class _Timeline:
    """The service on a moved clock: one installation reporting every week on Wednesday, and
    the publication step run at the instants the test moves to."""

    def __init__(self, client: httpx.AsyncClient, config: Settings, clock: _Clock,
                 first: Week) -> None:
        self.client, self.config, self.clock = client, config, clock
        self.active, self.credential = new_installation(), new_credential()
        self.next_week = first  # the next week the active installation reports

    async def send(self, installation: str, credential: str, week: Week,
                   value: int = 3) -> int:
        data = {"printernizer.jobs": [({"job.status": "completed"}, value)]}
        body, headers = encode(request(installation, week.monday, data=data), "protobuf", True)
        answer = await self.client.post(PROTOCOL.metrics_path, content=body,
                                        headers=headers | {PROTOCOL.credential_header: credential})
        return answer.status_code

    async def advance(self, to: datetime) -> None:
        """Move the clock to `to`: the active installation sends each week's report on the
        Wednesday after it on the way, then the publication step runs."""
        assert to.timestamp() >= self.clock.now
        while (sent_at := self.next_week.end + timedelta(days=2)) <= to:
            self.clock.now = sent_at.timestamp()
            assert await self.send(self.active, self.credential, self.next_week) == 200
            self.next_week = self.next_week.next()
        self.clock.now = to.timestamp()
        await asyncio.to_thread(publish, self.config)


def _raw_weeks(url: str) -> list[tuple[str, str]]:
    return sorted((i, str(w)[:10]) for i, w in query(
        url, "SELECT installation_id, week_start FROM weekly_reports"))


def _column(url: str, sql: str) -> list[str]:
    return sorted(str(value) for (value,) in query(url, sql))


def _published(url: str) -> list[str]:
    return sorted(str(week)[:10] for (week,) in query(url, "SELECT week_start FROM published_weeks"))


def _on_disk(url: str, value: str) -> bool:
    """Whether `value` is in the SQLite database file or its write-ahead log, as they are on
    disk (a bool: the files are too large to show in a failure)."""
    path = Path(url.removeprefix("sqlite:///"))
    files = [path, path.with_name(path.name + "-wal")]
    return any(value.encode() in f.read_bytes() for f in files if f.exists())


async def test_after_publication_only_what_the_windows_allow_is_left(database_url: str, now: datetime) -> None:  # noqa: F811
    """Two installations report the week before this one; one stays silent after, one reports
    every week; an installation never seen is erased. Moving the clock on: the week's raw
    reports stay while its reporting window is open, and are gone once it is published;
    the erasure is remembered for `tombstone_days`; the silent installation's id and
    credential hash go once it has been silent for `installation_silent_days` (within the
    week its last report arrived in), the active one's stay. On SQLite the deleted values are
    in neither the database file nor its log."""
    week = Week.of(now).previous()
    sent_at = week.end + timedelta(days=2)
    clock = _Clock(sent_at)
    config = settings(database_url, clock=clock, publish_interval_s=1e9)
    sqlite = database_url.startswith("sqlite")
    silent, silent_credential, erased = new_installation(), new_credential(), new_installation()
    async with app_client(config) as client:
        timeline = _Timeline(client, config, clock, week)
        assert await timeline.send(silent, silent_credential, week, DISTINCTIVE) == 200
        erasure = await client.delete(PROTOCOL.installation_path.format(installation_id=erased),
                                      headers={PROTOCOL.credential_header: new_credential()})
        assert erasure.status_code == 204

        window_ends = week.end + timedelta(days=POLICY.publish_after_days)
        await timeline.advance(window_ends - timedelta(hours=1))
        assert [r for r in _raw_weeks(database_url) if r[1] == week.monday.isoformat()] == sorted(
            [(silent, week.monday.isoformat()), (timeline.active, week.monday.isoformat())])
        if sqlite:  # the search finds what is there
            assert _on_disk(database_url, str(DISTINCTIVE))

        await timeline.advance(window_ends + timedelta(hours=1))
        assert _published(database_url) == [week.monday.isoformat()]
        # left: the next week (still open); the week just ended is reported on Wednesday
        assert _raw_weeks(database_url) == [(timeline.active, week.next().monday.isoformat())]
        if sqlite:
            assert not _on_disk(database_url, str(DISTINCTIVE))

        await timeline.advance(sent_at + timedelta(days=POLICY.tombstone_days - 1))
        assert _column(database_url, "SELECT id_hash FROM erasures") == [id_hash(erased)]
        assert not sqlite or _on_disk(database_url, id_hash(erased))
        await timeline.advance(sent_at + timedelta(days=POLICY.tombstone_days + 1))
        assert _column(database_url, "SELECT id_hash FROM erasures") == []
        if sqlite:
            assert not _on_disk(database_url, id_hash(erased))

        everyone = sorted([silent, timeline.active])
        await timeline.advance(sent_at + timedelta(days=POLICY.installation_silent_days - 1))
        assert _column(database_url, "SELECT installation_id FROM installations") == everyone
        assert not sqlite or _on_disk(database_url, silent)
        await timeline.advance(sent_at + timedelta(days=POLICY.installation_silent_days + 7))
        assert _column(database_url, "SELECT installation_id FROM installations") == [
            timeline.active]
        if sqlite:
            assert not _on_disk(database_url, silent)

        moment = datetime.fromtimestamp(clock.now, UTC)
        left = [Week.of(date.fromisoformat(w)) for _, w in _raw_weeks(database_url)]
        assert left and all(  # the raw weeks left are those whose window is still open
            w.end + timedelta(days=POLICY.publish_after_days) > moment for w in left)
    assert len(_published(database_url)) > 10


async def test_the_service_publishes_and_forgets_on_its_own(database_url: str, now: datetime) -> None:  # noqa: F811
    """The service's maintenance round, at its start, publishes a week whose window has ended
    and forgets its raw reports, with no command run."""
    week = Week.of(now).plus(-3)
    clock = _Clock(week.end + timedelta(days=1))
    config = settings(database_url, clock=clock)
    async with app_client(config) as client:
        timeline = _Timeline(client, config, clock, week)
        assert await timeline.send(timeline.active, timeline.credential, week) == 200
    assert _raw_weeks(database_url) == [(timeline.active, week.monday.isoformat())]
    clock.now = (week.end + timedelta(days=POLICY.publish_after_days, minutes=1)).timestamp()
    async with app_client(replace(config, publish_interval_s=1e9)):
        for _ in range(500):  # the round runs in the service's thread, once it has started
            if not _raw_weeks(database_url):
                break
            await asyncio.sleep(0.01)
    assert _raw_weeks(database_url) == []
    assert _published(database_url) == [week.monday.isoformat()]
