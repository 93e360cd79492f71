"""Every statement the store runs, built once with SQLAlchemy Core (compiled per dialect).

Kept in one place so tests compile each of them for SQL Server, PostgreSQL and SQLite.
"""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa

from ._schema import (
    daily_stats,
    erasures,
    installations,
    published_cells,
    published_weeks,
    weekly_reports,
)

ds = daily_stats.c
er = erasures.c
ins = installations.c
pc = published_cells.c
pw = published_weeks.c
wr = weekly_reports.c


def credentials(ids: list[str]) -> sa.Select[tuple[str, str]]:
    return sa.select(ins.installation_id, ins.credential_hash).where(ins.installation_id.in_(ids))


def erased(id_hashes: list[str]) -> sa.Select[tuple[str]]:
    return sa.select(er.id_hash).where(er.id_hash.in_(id_hashes))


def register() -> sa.Insert:
    return sa.insert(installations)


def delete_report() -> sa.Delete:
    """One installation-week, before its replacement is inserted (executed per row)."""
    return sa.delete(weekly_reports).where(
        wr.installation_id == sa.bindparam("b_installation_id"),
        wr.week_start == sa.bindparam("b_week_start"),
    )


def insert_report() -> sa.Insert:
    return sa.insert(weekly_reports)


def erase_reports(installation_id: str) -> sa.Delete:
    return sa.delete(weekly_reports).where(wr.installation_id == installation_id)


def erase_installation(installation_id: str) -> sa.Delete:
    return sa.delete(installations).where(ins.installation_id == installation_id)


def remember_erasure() -> sa.Insert:
    return sa.insert(erasures)


def add_to_daily_stats() -> sa.Update:
    return sa.update(daily_stats).where(
        ds.day == sa.bindparam("b_day"), ds.outcome == sa.bindparam("b_outcome"),
        ds.reason == sa.bindparam("b_reason"),
    ).values(requests=ds.requests + sa.bindparam("b_requests", type_=sa.BigInteger))


def insert_daily_stats() -> sa.Insert:
    return sa.insert(daily_stats)


def unpublished_weeks(oldest: datetime, newest: datetime) -> sa.Select[tuple[datetime]]:
    """Weeks with reports, from `oldest` to `newest`, that have not been published."""
    published = sa.exists().where(pw.week_start == wr.week_start)
    return (sa.select(wr.week_start).distinct()
            .where(wr.week_start >= oldest, wr.week_start <= newest, ~published)
            .order_by(wr.week_start))


def week_reports(week: datetime) -> sa.Select[tuple[str, str, str]]:
    """A week's reports, for the publication step."""
    return (sa.select(wr.installation_id, wr.resource, wr.points)
            .where(wr.week_start == week).order_by(wr.installation_id))


def insert_published_week() -> sa.Insert:
    return sa.insert(published_weeks)


def insert_published_cells() -> sa.Insert:
    return sa.insert(published_cells)


def prune(cutoff: datetime) -> list[sa.Delete]:
    """Weeks, days and erasure records before `cutoff`, then the installations left without
    any week; the first statement counts the installation-weeks deleted."""
    orphan = ~sa.exists().where(wr.installation_id == ins.installation_id)
    return [
        sa.delete(weekly_reports).where(wr.week_start < cutoff),
        sa.delete(published_cells).where(pc.week_start < cutoff),
        sa.delete(published_weeks).where(pw.week_start < cutoff),
        sa.delete(daily_stats).where(ds.day < cutoff),
        sa.delete(erasures).where(er.erased_on < cutoff),
        sa.delete(installations).where(orphan),
    ]


def ping() -> sa.Select[tuple[int]]:
    return sa.select(sa.literal(1))
