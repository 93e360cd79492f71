"""Every statement the store runs, built once with SQLAlchemy Core (compiled per dialect).

Kept in one place so tests compile each of them for SQL Server, PostgreSQL and SQLite.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from ._schema import daily_stats, events_summary, installations, weekly_reports

es = events_summary.c
ds = daily_stats.c
ins = installations.c
wr = weekly_reports.c


def credentials(ids: list[str]) -> sa.Select[tuple[str, str]]:
    return sa.select(ins.installation_id, ins.credential_hash).where(ins.installation_id.in_(ids))


def register() -> sa.Insert:
    return sa.insert(installations)


def stored_reports(ids: list[str], weeks: list[object]) -> sa.Select[tuple[str, object, str, str]]:
    query = sa.select(wr.installation_id, wr.week_start, wr.resource, wr.points)
    query = query.where(wr.installation_id.in_(ids))
    return query.where(wr.week_start.in_(weeks)) if weeks else query


def delete_report() -> sa.Delete:
    return sa.delete(weekly_reports).where(
        wr.installation_id == sa.bindparam("b_installation_id"),
        wr.week_start == sa.bindparam("b_week_start"),
    )


def insert_report() -> sa.Insert:
    return sa.insert(weekly_reports)


def rollup_keys(week: object) -> sa.Select[tuple[str, str, str, str]]:
    return sa.select(es.kind, es.metric, es.attribute, es.value).where(es.week_start == week)


def add_to_rollup() -> sa.Update:
    return sa.update(events_summary).where(
        es.week_start == sa.bindparam("b_week_start"), es.kind == sa.bindparam("b_kind"),
        es.metric == sa.bindparam("b_metric"), es.attribute == sa.bindparam("b_attribute"),
        es.value == sa.bindparam("b_value"),
    ).values(
        installations=es.installations + sa.bindparam("b_installations", type_=sa.Integer),
        total=es.total + sa.bindparam("b_total", type_=sa.BigInteger),
    )


def insert_rollup() -> sa.Insert:
    return sa.insert(events_summary)


def upsert_rollup(dialect: str) -> sa.Insert:
    """PostgreSQL and SQLite: add to a rollup row or create it, in one multi-row statement.
    (SQL Server takes `add_to_rollup` then `insert_rollup` for the rows that are new.)"""
    insert = {"postgresql": postgresql.insert, "sqlite": sqlite.insert}[dialect]
    statement = insert(events_summary)
    return statement.on_conflict_do_update(
        index_elements=[es.week_start, es.kind, es.metric, es.attribute, es.value],
        set_={"installations": es.installations + statement.excluded.installations,
              "total": es.total + statement.excluded.total},
    )


UPSERT_DIALECTS = ("postgresql", "sqlite")
ROLLUP_COLUMNS = ("week_start", "kind", "metric", "attribute", "value", "installations", "total")


def upsert_rollup_arrays() -> sa.Insert:
    """PostgreSQL: `upsert_rollup` for a whole batch in one statement and one round trip,
    the rows passed as one array per column (`unnest`) rather than one execution per row.
    The batch's keys are distinct, as ON CONFLICT DO UPDATE requires."""
    types = [c.type for c in (es.week_start, es.kind, es.metric, es.attribute, es.value,
                              es.installations, es.total)]
    arrays = [sa.bindparam(name, type_=postgresql.ARRAY(type_))
              for name, type_ in zip(ROLLUP_COLUMNS, types, strict=True)]
    rows = sa.func.unnest(*arrays).table_valued(*ROLLUP_COLUMNS).render_derived(name="batch")
    statement = postgresql.insert(events_summary).from_select(
        list(ROLLUP_COLUMNS), sa.select(*(rows.c[name] for name in ROLLUP_COLUMNS)))
    return statement.on_conflict_do_update(
        index_elements=[es.week_start, es.kind, es.metric, es.attribute, es.value],
        set_={"installations": es.installations + statement.excluded.installations,
              "total": es.total + statement.excluded.total},
    )


def erase_reports(installation_id: str) -> sa.Delete:
    return sa.delete(weekly_reports).where(wr.installation_id == installation_id)


def erase_installation(installation_id: str) -> sa.Delete:
    return sa.delete(installations).where(ins.installation_id == installation_id)


def add_to_daily_stats() -> sa.Update:
    return sa.update(daily_stats).where(
        ds.day == sa.bindparam("b_day"), ds.outcome == sa.bindparam("b_outcome"),
        ds.reason == sa.bindparam("b_reason"),
    ).values(requests=ds.requests + sa.bindparam("b_requests", type_=sa.BigInteger))


def insert_daily_stats() -> sa.Insert:
    return sa.insert(daily_stats)


def prune(cutoff: object) -> list[sa.Delete]:
    """Weeks (and days) before `cutoff`, then the installations left without any week."""
    orphan = ~sa.exists().where(wr.installation_id == ins.installation_id)
    return [
        sa.delete(weekly_reports).where(wr.week_start < cutoff),
        sa.delete(events_summary).where(es.week_start < cutoff),
        sa.delete(daily_stats).where(ds.day < cutoff),
        sa.delete(installations).where(orphan),
    ]


def ping() -> sa.Select[tuple[int]]:
    return sa.select(sa.literal(1))
