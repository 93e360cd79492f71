"""The store's tables, its schema version and the reporting views, for every supported dialect.

- `installations`: one row per installation: what authentication needs (its id and its
  credential's hash) and the week its last report arrived (`last_seen`), deleted once it has
  been silent for `[policy] installation_silent_days`.
- `weekly_reports`: each installation-week as received (the last report of that week wins),
  with the week it arrived (`received`): the input of the publication step, deleted once its
  week is published (`[policy] raw_weeks_after_publication`).
- `erasures`: installations erased on request, as a hash of their id and the day, so that a
  late or replayed report cannot bring them back, for `[policy] tombstone_days`.
- `published_weeks` / `published_cells`: what the publication step made of each closed week,
  frozen: the week's privacy loss, and its noisy cells with their noise scales and 95 %
  margins; the views read only these, and `daily_stats` (requests per day, no identifiers).
- `schema_info`: the schema's version, which `migrate` brings the store to.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import sqlalchemy as sa
from sqlalchemy.dialects import mssql
from sqlalchemy.engine import Connection, Dialect
from sqlalchemy.schema import CreateIndex, CreateTable, CreateView, DropView, ExecutableDDLElement
from sqlalchemy.sql.base import Executable

from ._errors import SchemaTooNew
from .views import VIEWS

metadata = sa.MetaData()
# SQLAlchemy leaves DATETIME2.__init__ unannotated (its other types are annotated).
Timestamp = sa.DateTime().with_variant(mssql.DATETIME2(0), "mssql")  # type: ignore[no-untyped-call]
Document = sa.Text().with_variant(mssql.VARCHAR(None), "mssql")  # VARCHAR(max): TEXT is deprecated

installations = sa.Table(
    "installations", metadata,
    sa.Column("installation_id", sa.String(36), primary_key=True),
    sa.Column("credential_hash", sa.String(64), nullable=False),
    sa.Column("last_seen", Timestamp, nullable=False),  # Monday of the week the last arrived
)
weekly_reports = sa.Table(
    "weekly_reports", metadata,
    sa.Column("installation_id", sa.String(36), primary_key=True),
    sa.Column("week_start", Timestamp, primary_key=True),
    sa.Column("resource", Document, nullable=False),
    sa.Column("points", Document, nullable=False),
    sa.Column("received", Timestamp),  # Monday of the week this report arrived
)
erasures = sa.Table(
    "erasures", metadata,
    sa.Column("id_hash", sa.String(64), primary_key=True),
    sa.Column("erased_on", Timestamp, nullable=False),
)
published_weeks = sa.Table(
    "published_weeks", metadata,
    sa.Column("week_start", Timestamp, primary_key=True),
    sa.Column("published_on", Timestamp, nullable=False),
    # What the week's one draw cost each installation, by the mechanism's own accounting:
    # rho (zCDP), (epsilon, delta) of the week, and epsilon of a year of weeks composed.
    sa.Column("rho", sa.Float, nullable=False),
    sa.Column("epsilon", sa.Float, nullable=False),
    sa.Column("delta", sa.Float, nullable=False),
    sa.Column("yearly_epsilon", sa.Float, nullable=False),
)
published_cells = sa.Table(
    "published_cells", metadata,
    sa.Column("week_start", Timestamp, primary_key=True),
    sa.Column("kind", sa.String(16), primary_key=True),
    sa.Column("metric", sa.String(100), primary_key=True),
    sa.Column("attribute", sa.String(100), primary_key=True),
    sa.Column("value", sa.String(64), primary_key=True),
    # Each noisy number with the standard deviation of its noise and the half-width of its
    # 95 % interval; NULL where the cell's release publishes no such number.
    sa.Column("installations", sa.Integer),
    sa.Column("installations_scale", sa.Float),
    sa.Column("installations_margin", sa.Float),
    sa.Column("total", sa.BigInteger),
    sa.Column("total_scale", sa.Float),
    sa.Column("total_margin", sa.Float),
)
daily_stats = sa.Table(
    "daily_stats", metadata,
    sa.Column("day", Timestamp, primary_key=True),
    sa.Column("outcome", sa.String(16), primary_key=True),
    sa.Column("reason", sa.String(64), primary_key=True),
    sa.Column("requests", sa.BigInteger, nullable=False),
)
schema_info = sa.Table(
    "schema_info", metadata,
    sa.Column("name", sa.String(64), primary_key=True),
    sa.Column("value", sa.String(64), nullable=False),
)
weekly_reports_by_week = sa.Index("ix_weekly_reports_week_start", weekly_reports.c.week_start)
TABLES = (installations, weekly_reports, erasures, published_weeks, published_cells, daily_stats,
          schema_info)
INDEXES = (weekly_reports_by_week,)


def _create_all() -> list[ExecutableDDLElement]:
    """An empty database straight to the current version."""
    return [*(CreateTable(t) for t in TABLES), *(CreateIndex(i) for i in INDEXES)]


# Version 1 is what a first install creates: the tables above, as they are. Until the first
# release a schema change edits version 1 in place; after it, each change is a new version
# whose statements go here, append only (a released migration never changes).
MIGRATIONS: dict[int, Callable[[], Sequence[Executable]]] = {}
SCHEMA_VERSION = 1
# Each database as the driver the ingest connects with speaks it (pyodbc, psycopg, sqlite3).
DIALECTS: dict[str, Dialect] = {
    name: sa.make_url(f"{name}://").get_dialect()() for name in ("mssql", "postgresql", "sqlite")}


def view_selects() -> dict[str, sa.Select[tuple[object, ...]]]:
    """The SELECT behind each view in `views.VIEWS`: published cells only, each number with
    the 95 % margin of its noise, and the published weeks with their privacy loss."""
    pc = published_cells.c
    pw = published_weeks.c
    ds = daily_stats.c
    counted = (pc.installations, pc.installations_margin)
    summed = (pc.total, pc.total_margin)

    def kind(name: str) -> sa.Select[tuple[object, ...]]:
        return sa.select().select_from(published_cells).where(
            pc.kind == sa.literal_column(f"'{name}'"))

    selects = {
        "usage_active_installations": kind("active").add_columns(
            pc.week_start, *counted),
        "usage_distributions": kind("distribution").add_columns(
            pc.week_start, pc.metric, sa.cast(pc.value, sa.Integer).label("bucket_min"),
            *counted),
        "usage_metrics": kind("metric").add_columns(
            pc.week_start, pc.metric, pc.attribute, pc.value, *counted, *summed),
        "usage_published_weeks": sa.select(
            pw.week_start, pw.published_on, pw.epsilon, pw.delta, pw.yearly_epsilon),
        "usage_resource_attributes": kind("resource").add_columns(
            pc.week_start, pc.attribute, pc.value, *counted),
        "usage_submissions": sa.select(ds.day, ds.outcome, ds.reason, ds.requests),
    }
    assert list(selects) == list(VIEWS), "views.VIEWS and the view selects must agree"
    return selects


def view_ddl() -> list[ExecutableDDLElement]:
    return [CreateView(select, name) for name, select in view_selects().items()]


def drop_views_ddl() -> list[ExecutableDDLElement]:
    return [DropView(sa.Table(name, sa.MetaData()), if_exists=True) for name in VIEWS]


def ddl(dialect_name: str) -> str:
    """The whole current schema as SQL a DBA can review and run on an empty database (SQL
    Server batches end with GO)."""
    dialect = DIALECTS[dialect_name]
    statements = [str(d.compile(dialect=dialect)).strip() for d in [*_create_all(), *view_ddl()]]
    info = sa.insert(schema_info).values([{"name": "schema_version", "value": str(SCHEMA_VERSION)}])
    statements.append(str(info.compile(dialect=dialect, compile_kwargs={"literal_binds": True})))
    separator = "\nGO\n\n" if dialect_name == "mssql" else ";\n\n"
    return separator.join(statements) + separator.rstrip("\n") + "\n"


def migrate(conn: Connection) -> int:
    """Bring the store to the current version (an empty one is created whole) and (re)create
    the views; the new version. A store of a later version than this ingest knows is refused
    unchanged (SchemaTooNew)."""
    current = _version(conn)
    if current > SCHEMA_VERSION:
        raise SchemaTooNew(f"the store's schema is version {current}; this ingest knows "
                           f"versions up to {SCHEMA_VERSION}: run a newer ingest")
    steps: Sequence[Executable] = _create_all() if current == 0 else [
        s for number in range(current + 1, SCHEMA_VERSION + 1) for s in MIGRATIONS[number]()]
    for statement in steps:
        conn.execute(statement)
    if current < SCHEMA_VERSION:
        for statement in [*drop_views_ddl(), *view_ddl()]:
            conn.execute(statement)
        _set(conn, "schema_version", str(SCHEMA_VERSION), exists=current > 0)
    return SCHEMA_VERSION


def _version(conn: Connection) -> int:
    if not sa.inspect(conn).has_table(schema_info.name):
        return 0
    value = _get(conn, "schema_version")
    return int(value) if value is not None else 0


def _get(conn: Connection, name: str) -> str | None:
    query = sa.select(schema_info.c.value).where(schema_info.c.name == name)
    return conn.execute(query).scalar_one_or_none()


def _set(conn: Connection, name: str, value: str, *, exists: bool) -> None:
    if exists:
        conn.execute(sa.update(schema_info).where(schema_info.c.name == name).values(value=value))
    else:
        conn.execute(sa.insert(schema_info).values(name=name, value=value))
