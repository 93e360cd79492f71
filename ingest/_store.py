"""The database behind the ingest: one transaction per batch of reports (group commit).

Only the writer thread calls the write methods, so within one process writes are serialised;
across processes (several ingest replicas on PostgreSQL or SQL Server) a conflicting insert
rolls the batch back and it is retried once against what the other process committed.
"""

from __future__ import annotations

import hmac
import json
from collections import OrderedDict
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
import structlog
from sqlalchemy.engine import Connection, Engine

from otel_usage.catalog import Catalog

from . import _rollup
from . import _statements as sql
from ._errors import CredentialRejected, StoreUnavailable, WriteFailed
from ._schema import migrate
from ._validate import Point, Report

log = structlog.get_logger("ingest.store")
_CACHED_WEEKS = 16
# Errors that say "the database cannot answer now" rather than "this statement is wrong".
_UNAVAILABLE = (sa.exc.OperationalError, sa.exc.InterfaceError, sa.exc.TimeoutError)
LOCK_TIMEOUT_MS = 5000
# Wait for a lock at most LOCK_TIMEOUT_MS, so a stuck database gives errors, not a stall.
_SESSION_SETUP = {
    "postgresql": [f"SET lock_timeout = {LOCK_TIMEOUT_MS}"],
    "mssql": [f"SET LOCK_TIMEOUT {LOCK_TIMEOUT_MS}"],
}


@dataclass(frozen=True)
class ReportJob:
    """One request's reports, with what each adds to the rollups."""

    installation_id: str
    credential_hash: str
    reports: tuple[tuple[Report, _rollup.Delta], ...]


def create_engine(url: str) -> Engine:
    """An engine tuned per dialect: WAL and immediate transactions on SQLite."""
    backend = sa.make_url(url).get_backend_name()
    if backend == "sqlite":
        engine = sa.create_engine(url, connect_args={"timeout": 5.0, "isolation_level": None})
        sa.event.listen(engine, "connect", _sqlite_pragmas)
        sa.event.listen(engine, "begin", lambda conn: conn.exec_driver_sql("BEGIN IMMEDIATE"))
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


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    for pragma in ("journal_mode=WAL", "synchronous=NORMAL", f"busy_timeout={LOCK_TIMEOUT_MS}"):
        cursor.execute(f"PRAGMA {pragma}")
    cursor.close()


class Store:
    """Reports, rollups, erasure, retention and request counts in one SQL database."""

    def __init__(self, engine: Engine, catalog: Catalog) -> None:
        self.engine = engine
        self.catalog = catalog
        self._rollup_keys: OrderedDict[object, set[tuple[str, ...]]] = OrderedDict()
        self._daily_keys: set[tuple[object, ...]] = set()
        dialect = engine.dialect.name
        self._upsert = sql.upsert_rollup(dialect) if dialect in sql.UPSERT_DIALECTS else None
        self._upsert_arrays = sql.upsert_rollup_arrays() if dialect == "postgresql" else None

    @contextmanager
    def _transaction(self) -> Iterator[Connection]:
        try:
            with self.engine.begin() as conn:
                yield conn
        except sa.exc.SQLAlchemyError as exc:
            self._rollup_keys.clear()
            self._daily_keys.clear()
            unavailable = (isinstance(exc, _UNAVAILABLE)
                           or getattr(exc, "connection_invalidated", False))
            error = StoreUnavailable if unavailable else WriteFailed
            raise error(f"database error: {type(exc).__name__}") from exc

    def migrate(self, k: int) -> int:
        with self._transaction() as conn:
            return migrate(conn, k)

    def ping(self) -> None:
        with self._transaction() as conn:
            conn.execute(sql.ping()).scalar_one()

    def dispose(self) -> None:
        self.engine.dispose()

    # Reports ------------------------------------------------------------------------------

    def write_reports(self, jobs: list[ReportJob]) -> list[bool]:
        """Store every job whose credential matches, in one transaction; which were stored."""
        try:
            with self._transaction() as conn:
                return self._write(conn, jobs)
        except WriteFailed as exc:
            if not isinstance(exc.__cause__, sa.exc.IntegrityError):
                raise
            log.info("store.retry_after_conflict", jobs=len(jobs))
            with self._transaction() as conn:
                return self._write(conn, jobs)

    def _write(self, conn: Connection, jobs: list[ReportJob]) -> list[bool]:
        ids = sorted({job.installation_id for job in jobs})
        known: dict[str, str] = dict(conn.execute(sql.credentials(ids)).all())
        outcomes, latest, new = _match_credentials(jobs, known)
        if new:
            conn.execute(sql.register(), new)
        sums: _rollup.WeekSums = {}
        # An installation registered in this batch has no stored week yet (its reports and its
        # row are written and erased together): only the known ones can replace a week.
        registered = {row["installation_id"] for row in new}
        self._replace_stored(conn, {k: v for k, v in latest.items() if k[0] not in registered},
                             sums)
        if latest:
            conn.execute(sql.insert_report(), [_report_row(r) for r, _ in latest.values()])
        for report, delta in latest.values():
            _rollup.add(sums, report.week_start, delta, +1)
        self._apply(conn, _rollup.flatten(sums))
        return outcomes

    def _replace_stored(self, conn: Connection, latest: Mapping[tuple[str, datetime], Any],
                        sums: _rollup.WeekSums) -> None:
        if not latest:
            return
        ids = sorted({i for i, _ in latest})
        weeks = sorted({w for _, w in latest})
        old = [row for row in conn.execute(sql.stored_reports(ids, weeks))
               if (row[0], row[1]) in latest]
        for row in old:
            report = _stored_report(*row)
            _rollup.add(sums, report.week_start, _rollup.contributions(report, self.catalog), -1)
        if old:
            keys = [{"b_installation_id": r[0], "b_week_start": r[1]} for r in old]
            conn.execute(sql.delete_report(), keys)

    def _apply(self, conn: Connection, sums: dict[tuple[object, ...], list[int]]) -> None:
        """Add a batch's rollup sums: an upsert where the database has one, else update the
        rows that exist and insert the others."""
        if self._upsert_arrays is not None:
            kept = [(*key, *row) for key, row in sums.items() if row[0] or row[1]]
            if kept:
                columns = zip(*kept, strict=True)
                conn.execute(self._upsert_arrays,
                             {name: list(values) for name, values
                              in zip(sql.ROLLUP_COLUMNS, columns, strict=True)})
            return
        if self._upsert is not None:
            rows = [{"week_start": week, "kind": kind, "metric": metric, "attribute": attribute,
                     "value": value, "installations": installations, "total": total}
                    for (week, kind, metric, attribute, value), (installations, total)
                    in sums.items() if installations or total]
            if rows:
                conn.execute(self._upsert, rows)
            return
        updates, inserts = [], []
        for (week, *key), (installations, total) in sums.items():
            if installations == 0 and total == 0:
                continue
            known = self._known_keys(conn, week)
            values = dict(zip(("kind", "metric", "attribute", "value"), key, strict=True))
            if tuple(key) in known:
                updates.append({f"b_{k}": v for k, v in values.items()} | {
                    "b_week_start": week, "b_installations": installations, "b_total": total})
            else:
                known.add(tuple(key))
                inserts.append(values | {"week_start": week, "installations": installations,
                                         "total": total})
        if updates:
            conn.execute(sql.add_to_rollup(), updates)
        if inserts:
            conn.execute(sql.insert_rollup(), inserts)

    def _known_keys(self, conn: Connection, week: object) -> set[tuple[str, ...]]:
        keys = self._rollup_keys.get(week)
        if keys is None:
            keys = {tuple(row) for row in conn.execute(sql.rollup_keys(week))}
            self._rollup_keys[week] = keys
            while len(self._rollup_keys) > _CACHED_WEEKS:
                self._rollup_keys.popitem(last=False)
        self._rollup_keys.move_to_end(week)
        return keys

    # Erasure, retention, counts -----------------------------------------------------------

    def erase(self, installation_id: str, credential_hash: str) -> int:
        """Remove every row of an installation; the number of weeks it had."""
        with self._transaction() as conn:
            known = dict(conn.execute(sql.credentials([installation_id])).all())
            stored = known.get(installation_id)
            if stored is None:
                return 0
            if not hmac.compare_digest(stored, credential_hash):
                raise CredentialRejected("credential does not match this installation")
            rows = conn.execute(sql.stored_reports([installation_id], [])).all()
            sums: dict[tuple[object, ...], list[int]] = {}
            for row in rows:
                report = _stored_report(*row)
                delta = _rollup.contributions(report, self.catalog)
                _rollup.merge(sums, report.week_start, delta, -1)
            conn.execute(sql.erase_reports(installation_id))
            conn.execute(sql.erase_installation(installation_id))
            self._apply(conn, sums)
            return len(rows)

    def prune(self, cutoff: datetime) -> int:
        """Delete every week before `cutoff`; the number of installation-weeks deleted."""
        with self._transaction() as conn:
            results = [conn.execute(statement) for statement in sql.prune(cutoff)]
        self._rollup_keys.clear()
        self._daily_keys.clear()
        return int(results[0].rowcount)

    def add_counts(self, counts: Mapping[tuple[datetime, str, str], int]) -> None:
        """Add request counts per (day, outcome, reason) to `daily_stats`."""
        with self._transaction() as conn:
            for (day, outcome, reason), requests in counts.items():
                key = {"b_day": day, "b_outcome": outcome, "b_reason": reason}
                updated = conn.execute(sql.add_to_daily_stats(), key | {"b_requests": requests})
                if updated.rowcount == 0:
                    conn.execute(sql.insert_daily_stats(), {
                        "day": day, "outcome": outcome, "reason": reason, "requests": requests})


_Loaded = tuple[Report, _rollup.Delta]


def _match_credentials(
    jobs: list[ReportJob], known: dict[str, str]
) -> tuple[list[bool], dict[tuple[str, datetime], _Loaded], list[dict[str, Any]]]:
    """Which jobs may write (the first report registers the credential), and their reports;
    a later job for the same installation-week wins, as if it had come second."""
    outcomes, latest, new = [], {}, []
    for job in jobs:
        stored = known.get(job.installation_id)
        if stored is None:
            known[job.installation_id] = job.credential_hash
            first = min(r.week_start for r, _ in job.reports)
            new.append({"installation_id": job.installation_id,
                        "credential_hash": job.credential_hash, "first_week": first})
        elif not hmac.compare_digest(stored, job.credential_hash):
            outcomes.append(False)
            continue
        outcomes.append(True)
        for report, delta in job.reports:
            latest[(job.installation_id, report.week_start)] = (report, delta)
    return outcomes, latest, new


def _report_row(report: Report) -> dict[str, Any]:
    return {"installation_id": report.installation_id, "week_start": report.week_start,
            "resource": report.resource_json(), "points": report.points_json()}


def _stored_report(installation_id: str, week_start: datetime, resource: str,
                   points: str) -> Report:
    rows = json.loads(points)
    parsed = tuple(Point(m, tuple(sorted(a.items())), int(v)) for m, a, v in rows)
    return Report(installation_id, week_start, json.loads(resource), parsed)
