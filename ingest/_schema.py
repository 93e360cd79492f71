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

An upgrade (a store of an earlier version) runs that version's steps and replaces the views in
place, all in one transaction; `ddl` prints the same statements for a DBA.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.dialects import mssql
from sqlalchemy.engine import Connection, Dialect
from sqlalchemy.schema import CreateIndex, CreateTable, CreateView, DropView, ExecutableDDLElement
from sqlalchemy.sql.dml import UpdateBase

from ._errors import SchemaChangeRefused, SchemaTooNew
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


# What a step may run: DDL, a data change (INSERT, UPDATE, DELETE) or SQL text.
Statement = ExecutableDDLElement | UpdateBase | sa.TextClause


@dataclass(frozen=True)
class Schema:
    """One version of the store's schema: the tables and indexes a first install creates, the
    steps that bring each earlier version to this one (`steps[n]` takes version n - 1 to n),
    and the views' SELECTs, re-created in place after the steps. The ingest's is `CURRENT`;
    tests put a later version in its place to exercise an upgrade."""

    version: int
    tables: tuple[sa.Table, ...]
    indexes: tuple[sa.Index, ...]
    steps: Mapping[int, Sequence[Statement]]
    views: Callable[[], Mapping[str, sa.Select[tuple[object, ...]]]]

    def __post_init__(self) -> None:
        if sorted(self.steps) != list(range(2, self.version + 1)):
            raise ValueError(f"schema version {self.version} needs one step per version from 2 "
                             f"on, not {sorted(self.steps)}")


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


# Version 1 is what a first install creates: the tables above, as they are. Until the first
# release a schema change edits version 1 in place; after it, each change is a new version
# whose step (its statements) goes into `steps`, append only (a released step never changes).
# A view's columns may only be appended to (see `_check_view_columns`).
CURRENT = Schema(version=1, tables=TABLES, indexes=INDEXES, steps={}, views=view_selects)
# Each database as the driver the ingest connects with speaks it (pyodbc, psycopg, sqlite3).
DIALECTS: dict[str, Dialect] = {
    name: sa.make_url(f"{name}://").get_dialect()() for name in ("mssql", "postgresql", "sqlite")}
_VERSION = "schema_version"  # schema_info's row of the version


def statements(from_version: int, dialect_name: str) -> list[Statement]:
    """What brings a store of `from_version` to `CURRENT`, in order, to run in one
    transaction: on an empty store (0) the tables, indexes and views and the version's row;
    on an older one its steps, the views replaced in place and the version's row updated;
    nothing on a store of the current version."""
    schema = CURRENT
    if from_version == schema.version:
        return []
    stamp = str(schema.version)
    if from_version == 0:
        return [*(CreateTable(t) for t in schema.tables),
                *(CreateIndex(i) for i in schema.indexes),
                *(CreateView(select, name) for name, select in schema.views().items()),
                sa.insert(schema_info).values(name=_VERSION, value=stamp)]
    steps = [s for number in range(from_version + 1, schema.version + 1)
             for s in schema.steps[number]]
    return [*steps, *_replace_views(schema, dialect_name),
            sa.update(schema_info).where(schema_info.c.name == _VERSION).values(value=stamp)]


def _replace_views(schema: Schema, dialect_name: str) -> list[ExecutableDDLElement]:
    """Each view re-created in place: PostgreSQL's CREATE OR REPLACE VIEW and SQL Server's
    CREATE OR ALTER VIEW keep the grants on it (the dashboards' login reads nothing else);
    SQLite, which has no grants, has neither, and drops and creates it."""
    if dialect_name != "sqlite":
        return [CreateView(select, name, or_replace=True)
                for name, select in schema.views().items()]
    return [element for name, select in schema.views().items()
            for element in (DropView(sa.Table(name, sa.MetaData()), if_exists=True),
                            CreateView(select, name))]


def ddl(dialect_name: str, upgrade_from: int = 0) -> str:
    """The SQL a DBA reviews and runs, in one transaction, as `migrate` would: the whole
    current schema on an empty database, or the upgrade of a store at version `upgrade_from`
    (1 up to the current version: at the current one, a comment that there is nothing to
    upgrade). SQL Server's batches end with GO."""
    version = CURRENT.version
    if not 0 <= upgrade_from <= version:
        raise ValueError(f"this ingest's schema is version {version}; a store to upgrade "
                         f"is at version 1 to {version}, not {upgrade_from}")
    if upgrade_from == version:
        return f"-- the schema is already version {version}: nothing to upgrade\n"
    dialect = DIALECTS[dialect_name]
    begin, commit = _TRANSACTION[dialect_name]
    what = f"upgrade from version {upgrade_from}" if upgrade_from else "a new store"
    lines = [f"-- otel-usage ingest schema version {version}: {what}\n{begin}",
             *(str(s.compile(dialect=dialect, compile_kwargs={"literal_binds": True})).strip()
               for s in statements(upgrade_from, dialect_name)),
             commit]
    separator = "\nGO\n\n" if dialect_name == "mssql" else ";\n\n"
    return separator.join(lines) + separator.rstrip("\n") + "\n"


# How each dialect's DDL opens and ends its one transaction. On SQL Server XACT_ABORT rolls
# the whole transaction back at the first error (run it with `sqlcmd -b`, which stops there).
_TRANSACTION = {
    "mssql": ("SET XACT_ABORT ON;\nBEGIN TRANSACTION", "COMMIT TRANSACTION"),
    "postgresql": ("BEGIN", "COMMIT"),
    "sqlite": ("BEGIN", "COMMIT"),
}


def migrate(conn: Connection) -> int:
    """Bring the store to the current version (an empty one is created whole, an older one
    upgraded with its views replaced in place), within the caller's transaction; the new
    version. A store of a later version than this ingest knows is refused unchanged
    (SchemaTooNew), and so is an upgrade that would change a view's columns other than by
    appending to them (SchemaChangeRefused)."""
    current = _version(conn)
    if current > CURRENT.version:
        raise SchemaTooNew(f"the store's schema is version {current}; this ingest knows "
                           f"versions up to {CURRENT.version}: run a newer ingest")
    if 0 < current < CURRENT.version:
        _check_view_columns(conn)
    for statement in statements(current, conn.dialect.name):
        conn.execute(statement)
    return CURRENT.version


def _check_view_columns(conn: Connection) -> None:
    """Refuse an upgrade that would drop, rename or reorder a view's columns, before anything
    changes. PostgreSQL replaces a view in place (keeping its grants) only if its columns stay
    as they were, new ones appended; and a dashboard made for the older columns keeps working
    only then. A view whose columns must change otherwise gets a new name, and its own grant."""
    inspector = sa.inspect(conn)
    existing = set(inspector.get_view_names())
    problems = []
    for name, select in CURRENT.views().items():
        if name not in existing:
            continue
        old = [column["name"] for column in inspector.get_columns(name)]
        new = list(select.selected_columns.keys())
        if new[:len(old)] != old:
            problems.append(f"{name} ({', '.join(old)} -> {', '.join(new)})")
    if problems:
        raise SchemaChangeRefused(
            f"version {CURRENT.version} changes the columns of views other than by appending "
            f"to them: {'; '.join(problems)}; a changed view needs a new name")


def _version(conn: Connection) -> int:
    if not sa.inspect(conn).has_table(schema_info.name):
        return 0
    value = _get(conn, _VERSION)
    return int(value) if value is not None else 0


def _get(conn: Connection, name: str) -> str | None:
    query = sa.select(schema_info.c.value).where(schema_info.c.name == name)
    return conn.execute(query).scalar_one_or_none()
