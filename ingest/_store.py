"""The database behind the ingest: the only module of the service that connects to it, and
every statement it runs.

Each statement is built once with SQLAlchemy Core, at module level, so that the tests compile
each for SQL Server, PostgreSQL and SQLite (the DDL and the schema version are `_schema`'s).
A batch of reports is checked and written in one transaction: the credentials, the erased ids,
the limits of new installations and of reports per installation (`Admission`), the rows.

Reports, erasures and request counts are written by one thread per process (the writer), a
batch of reports per transaction; publications and forgetting by the maintenance thread
(`_publication`). On SQLite a deleted row's bytes are overwritten (`secure_delete`), and
forgetting ends with a checkpoint that empties the write-ahead log, so what is forgotten is in
neither file. Across processes (several replicas on PostgreSQL or SQL Server) a conflicting
insert rolls the batch back, and it is retried once against what the other process committed.
Database errors leave this module as `StoreUnavailable` (cannot answer now) or `WriteFailed`
(this statement).
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, NamedTuple

import sqlalchemy as sa
import structlog
from sqlalchemy.engine import Connection, Engine

from ._errors import CredentialRejected, Erased, IngestError, StoreUnavailable, WriteFailed
from ._ratelimit import Admission
from ._schema import (
    daily_stats,
    erasures,
    installations,
    migrate,
    published_cells,
    published_weeks,
    weekly_reports,
)
from ._validate import Report

if TYPE_CHECKING:  # _publication reads and writes through the store
    from ._publication import Publication

log = structlog.get_logger("ingest.store")
# Errors that say "the database cannot answer now" rather than "this statement is wrong".
_UNAVAILABLE = (sa.exc.OperationalError, sa.exc.InterfaceError, sa.exc.TimeoutError)
LOCK_TIMEOUT_MS = 5000
_READ_ONLY = "otel_usage_read_only"
_STREAM_ROWS = 1000
# Wait for a lock at most LOCK_TIMEOUT_MS, so a stuck database gives errors, not a stall.
_SESSION_SETUP = {
    "postgresql": [f"SET lock_timeout = {LOCK_TIMEOUT_MS}"],
    "mssql": [f"SET LOCK_TIMEOUT {LOCK_TIMEOUT_MS}"],
}


# The statements, with named parameters (compiled per dialect and cached by SQLAlchemy) ------

ds = daily_stats.c
er = erasures.c
ins = installations.c
pw = published_weeks.c
wr = weekly_reports.c


def _param(name: str) -> sa.BindParameter[object]:
    return sa.bindparam(name)


def _many(name: str) -> sa.BindParameter[object]:
    return sa.bindparam(name, expanding=True)


# Reports: which installations are known (with which credential, and the week of their last
# report), which were erased, register the new ones, note the week a known one was last seen,
# replace a stored week (delete it, then insert it again).
CREDENTIALS = sa.select(ins.installation_id, ins.credential_hash, ins.last_seen).where(
    ins.installation_id.in_(_many("ids")))
ERASED = sa.select(er.id_hash).where(er.id_hash.in_(_many("id_hashes")))
REGISTER = sa.insert(installations)
SEEN = sa.update(installations).where(
    ins.installation_id == _param("b_installation_id")).values(last_seen=_param("b_last_seen"))
DELETE_REPORT = sa.delete(weekly_reports).where(
    wr.installation_id == _param("b_installation_id"), wr.week_start == _param("b_week_start"))
INSERT_REPORT = sa.insert(weekly_reports)
# Erasure: every row naming the installation, then a record of it (a hash of its id).
ERASE_REPORTS = sa.delete(weekly_reports).where(wr.installation_id == _param("installation_id"))
ERASE_INSTALLATION = sa.delete(installations).where(
    ins.installation_id == _param("installation_id"))
REMEMBER_ERASURE = sa.insert(erasures)

# Requests per day, outcome and reason.
ADD_TO_DAILY_STATS = sa.update(daily_stats).where(
    ds.day == _param("b_day"), ds.outcome == _param("b_outcome"),
    ds.reason == _param("b_reason"),
).values(requests=ds.requests + sa.bindparam("b_requests", type_=sa.BigInteger))
INSERT_DAILY_STATS = sa.insert(daily_stats)

# Publication: weeks with reports in a range that are not published yet, a week's reports,
# and what the publication step made of a week.
UNPUBLISHED_WEEKS = (
    sa.select(wr.week_start).distinct()
    .where(wr.week_start <= _param("newest"), ~sa.exists().where(pw.week_start == wr.week_start))
    .order_by(wr.week_start))
WEEK_REPORTS = (sa.select(wr.installation_id, wr.resource, wr.points)
                .where(wr.week_start == _param("week")).order_by(wr.installation_id))
INSERT_PUBLISHED_WEEK = sa.insert(published_weeks)
INSERT_PUBLISHED_CELLS = sa.insert(published_cells)

# Forgetting what publication no longer needs: the raw weeks of published weeks up to the
# newest one whose raw reports may go, the erasures remembered since before a day, and the
# installations last seen before a week that have no raw week left (their credential guards
# its erasure). Published cells and request counts name no installation and stay.
FORGET_REPORTS = sa.delete(weekly_reports).where(
    wr.week_start <= _param("newest"), sa.exists().where(pw.week_start == wr.week_start))
FORGET_ERASURES = sa.delete(erasures).where(er.erased_on < _param("before"))
FORGET_INSTALLATIONS = sa.delete(installations).where(
    ins.last_seen < _param("before"), ~sa.exists().where(wr.installation_id == ins.installation_id))
PING = sa.select(sa.literal(1))


@dataclass(frozen=True)
class ReportJob:
    """One request's validated weeks of one installation, the week they arrived in, and the
    key of the client's address (for the limit of new installations; never stored), and
    whether it came through a trusted proxy (whose refusals must not be retried)."""

    installation_id: str
    credential_hash: str
    reports: tuple[Report, ...]
    received: datetime
    address: str = ""
    proxied: bool = False


def id_hash(installation_id: str) -> str:
    """How an erased installation is remembered: its random id, hashed."""
    return hashlib.sha256(installation_id.encode()).hexdigest()


def create_engine(url: str) -> Engine:
    """An engine tuned per dialect: WAL and immediate transactions on SQLite."""
    backend = sa.make_url(url).get_backend_name()
    if backend == "sqlite":
        engine = sa.create_engine(url, connect_args={"timeout": 5.0, "isolation_level": None})
        sa.event.listen(engine, "connect", _sqlite_pragmas)
        sa.event.listen(engine, "begin", _sqlite_begin)
        return engine
    options: dict[str, Any] = {"pool_size": 3, "max_overflow": 2, "pool_timeout": 5.0,
                               "pool_pre_ping": True}
    if backend == "mssql":
        options["fast_executemany"] = True
    engine = sa.create_engine(url, **options)
    setup = _SESSION_SETUP.get(backend, [])
    sa.event.listen(engine, "connect", lambda dbapi_conn, _record: _run(dbapi_conn, setup))
    return engine


def _run(dbapi_connection: Any, statements: list[str]) -> None:
    cursor = dbapi_connection.cursor()
    for statement in statements:
        cursor.execute(statement)
    cursor.close()
    dbapi_connection.commit()


def _sqlite_begin(conn: Connection) -> None:
    """Writes take the lock at once (no upgrade deadlocks); reads take none."""
    if not conn.get_execution_options().get(_READ_ONLY, False):
        conn.exec_driver_sql("BEGIN IMMEDIATE")


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    for pragma in ("journal_mode=WAL", "synchronous=NORMAL", f"busy_timeout={LOCK_TIMEOUT_MS}",
                   "secure_delete=ON"):
        cursor.execute(f"PRAGMA {pragma}")
    cursor.close()


Outcome = IngestError | None  # None: stored


class Forgotten(NamedTuple):
    """What one round of forgetting deleted."""

    reports: int
    erasures: int
    installations: int


class Store:
    """Reports, erasure, forgetting, request counts and publication in one SQL database."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        # Which database this is, for what is kept per store (no password).
        self.name = engine.url.render_as_string(hide_password=True)

    @contextmanager
    def transaction(self) -> Iterator[Connection]:
        """One transaction; database errors mapped to the ingest's own."""
        try:
            with self.engine.begin() as conn:
                yield conn
        except sa.exc.SQLAlchemyError as exc:
            unavailable = (isinstance(exc, _UNAVAILABLE)
                           or getattr(exc, "connection_invalidated", False))
            error = StoreUnavailable if unavailable else WriteFailed
            raise error(f"database error: {type(exc).__name__}") from exc

    def migrate(self) -> int:
        with self.transaction() as conn:
            return migrate(conn)

    def ping(self) -> None:
        with self.transaction() as conn:
            conn.execute(PING).scalar_one()

    def dispose(self) -> None:
        self.engine.dispose()

    # Reports ------------------------------------------------------------------------------

    def write_reports(self, jobs: Sequence[ReportJob],
                      admission: Admission | None = None) -> list[Outcome]:
        """Store every job that may be stored, in one transaction; each job's outcome.
        `admission` limits new installations and reports per installation (None: no limits)."""
        try:
            with self.transaction() as conn:
                return _write(conn, jobs, admission)
        except WriteFailed as exc:
            if not isinstance(exc.__cause__, sa.exc.IntegrityError):
                raise
            log.info("store.retry_after_conflict", jobs=len(jobs))
            with self.transaction() as conn:
                return _write(conn, jobs, admission)

    # Publication ----------------------------------------------------------------------------

    def unpublished_weeks(self, newest: datetime) -> list[datetime]:
        """The weeks up to `newest` with stored reports that are not published yet."""
        with self.transaction() as conn:
            return list(conn.execute(UNPUBLISHED_WEEKS, {"newest": newest}).scalars())

    def week_reports(self, week: datetime) -> Iterator[tuple[str, str]]:
        """A week's stored reports (resource and points JSON), one per installation, streamed,
        holding no lock."""
        try:
            with self.engine.connect() as conn:
                conn.execution_options(**{_READ_ONLY: True}, stream_results=True,
                                       yield_per=_STREAM_ROWS)
                rows = conn.execute(WEEK_REPORTS, {"week": week})
                for _installation, resource, points in rows:
                    yield resource, points
        except sa.exc.SQLAlchemyError as exc:
            raise StoreUnavailable(f"database error: {type(exc).__name__}") from exc

    def save_publication(self, publication: Publication, published_on: datetime) -> bool:
        """Store a week's loss and cells in one transaction; False if it was published
        already (by another replica meanwhile)."""
        try:
            with self.transaction() as conn:
                conn.execute(INSERT_PUBLISHED_WEEK, publication.week_row(published_on))
                rows = publication.cell_rows()
                if rows:
                    conn.execute(INSERT_PUBLISHED_CELLS, rows)
        except WriteFailed as exc:
            if isinstance(exc.__cause__, sa.exc.IntegrityError):
                return False
            raise
        return True

    # Erasure, forgetting, counts ----------------------------------------------------------

    def erase(self, installation_id: str, credential_hash: str, today: datetime,
              register: Callable[[], IngestError | None] | None = None) -> int:
        """Remove every row naming the installation and remember it as erased; the number of
        weeks it had. A stored installation is erased only with its credential. One never
        stored is remembered too (a report of it may still be on its way), which costs a
        new installation of the sender's address: `register` says whether one more may be
        (None: no limit), and its refusal is raised with nothing stored."""
        with self.transaction() as conn:
            known = {i: h for i, h, _ in conn.execute(CREDENTIALS, {"ids": [installation_id]})}
            stored = known.get(installation_id)
            if stored is not None and not hmac.compare_digest(stored, credential_hash):
                raise CredentialRejected("credential does not match this installation")
            hashed = id_hash(installation_id)
            remembered = conn.execute(ERASED, {"id_hashes": [hashed]}).first() is not None
            refused = register() if stored is None and not remembered and register else None
            if refused is not None:
                raise refused
            key = {"installation_id": installation_id}
            weeks = conn.execute(ERASE_REPORTS, key).rowcount
            conn.execute(ERASE_INSTALLATION, key)
            if not remembered:
                conn.execute(REMEMBER_ERASURE, {"id_hash": hashed, "erased_on": today})
            return int(weeks)

    def forget(self, newest: datetime, erased_before: datetime,
               silent_before: datetime) -> Forgotten:
        """Delete the raw weeks of published weeks up to `newest`, the erasures remembered
        since before `erased_before`, and the installations last seen before `silent_before`
        that have no raw week left; what was deleted."""
        with self.transaction() as conn:
            forgotten = Forgotten(
                int(conn.execute(FORGET_REPORTS, {"newest": newest}).rowcount),
                int(conn.execute(FORGET_ERASURES, {"before": erased_before}).rowcount),
                int(conn.execute(FORGET_INSTALLATIONS, {"before": silent_before}).rowcount))
        if any(forgotten) and self.engine.dialect.name == "sqlite":
            self._empty_write_ahead_log()
        return forgotten

    def _empty_write_ahead_log(self) -> None:
        """Copy every page into the database file and truncate the log: the deleted rows'
        older pages (which `secure_delete` cannot reach) leave with it. If a reader holds the
        log meanwhile, the next forgetting does it."""
        try:
            with self.engine.connect() as conn:
                conn.execution_options(**{_READ_ONLY: True})
                busy, _, _ = conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)").one()
        except sa.exc.SQLAlchemyError as exc:
            raise StoreUnavailable(f"database error: {type(exc).__name__}") from exc
        if busy:
            log.info("store.checkpoint_busy")

    def add_counts(self, counts: Mapping[tuple[datetime, str, str], int]) -> None:
        """Add request counts per (day, outcome, reason) to `daily_stats`."""
        with self.transaction() as conn:
            for (day, outcome, reason), requests in counts.items():
                key = {"b_day": day, "b_outcome": outcome, "b_reason": reason}
                updated = conn.execute(ADD_TO_DAILY_STATS, key | {"b_requests": requests})
                if updated.rowcount == 0:
                    conn.execute(INSERT_DAILY_STATS, {
                        "day": day, "outcome": outcome, "reason": reason, "requests": requests})


def _write(conn: Connection, jobs: Sequence[ReportJob],
           admission: Admission | None) -> list[Outcome]:
    ids = sorted({job.installation_id for job in jobs})
    known: dict[str, str] = {}
    last_seen: dict[str, datetime] = {}
    for installation_id, credential_hash, seen in conn.execute(CREDENTIALS, {"ids": ids}):
        known[installation_id], last_seen[installation_id] = credential_hash, seen
    hashes = {i: id_hash(i) for i in ids}
    erased = set(conn.execute(ERASED, {"id_hashes": list(hashes.values())}).scalars())
    outcomes: list[Outcome] = []
    new: dict[str, dict[str, Any]] = {}
    seen_now: dict[str, datetime] = {}
    latest: dict[tuple[str, datetime], dict[str, Any]] = {}
    for job in jobs:
        outcome = _admit(job, known, hashes[job.installation_id] in erased, new, admission)
        if outcome is None:  # a later report of the same week wins, as if it came second
            for report in job.reports:
                latest[(job.installation_id, report.week_start)] = _row(report, job.received)
            if job.installation_id in last_seen and job.received > last_seen[job.installation_id]:
                seen_now[job.installation_id] = job.received
        outcomes.append(outcome)
    if new:
        conn.execute(REGISTER, list(new.values()))
    if seen_now:  # once a week per installation: its first report of a week
        conn.execute(SEEN, [{"b_installation_id": i, "b_last_seen": w}
                                for i, w in seen_now.items()])
    # An installation registered in this batch has no stored week to replace.
    replaced = [{"b_installation_id": i, "b_week_start": w} for i, w in latest if i not in new]
    if replaced:
        conn.execute(DELETE_REPORT, replaced)
    if latest:
        conn.execute(INSERT_REPORT, list(latest.values()))
    return outcomes


def _admit(job: ReportJob, known: dict[str, str], erased: bool, new: dict[str, dict[str, Any]],
           admission: Admission | None) -> Outcome:
    """May this job be stored? The first report of an installation registers its credential
    (within the limit of new installations per address); a later one must carry it, and only
    then is the installation's own limit charged."""
    if erased:
        return Erased()
    stored = known.get(job.installation_id)
    if stored is not None and not hmac.compare_digest(stored, job.credential_hash):
        return CredentialRejected("credential does not match this installation")
    if admission is not None:
        refused = (admission.register(job.address, job.proxied) if stored is None else None) or (
            admission.report(job.installation_id, job.proxied))
        if refused is not None:
            return refused
    if stored is None:
        known[job.installation_id] = job.credential_hash
        new[job.installation_id] = {"installation_id": job.installation_id,
                                    "credential_hash": job.credential_hash,
                                    "last_seen": job.received}
    return None


def _row(report: Report, received: datetime) -> dict[str, Any]:
    return {"installation_id": report.installation_id, "week_start": report.week_start,
            "resource": report.resource_json(), "points": report.points_json(),
            "received": received}
