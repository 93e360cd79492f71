"""Every statement the store runs on its tables, built once with SQLAlchemy Core (compiled per
dialect and cached by SQLAlchemy), with named parameters; the schema's own DDL and version are
`_schema`'s.

Kept in one place so tests compile each of them for SQL Server, PostgreSQL and SQLite.
"""

from __future__ import annotations

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
