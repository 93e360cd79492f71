"""The public statistics: every published week, for everyone, as JSON and pages.

The site is built from the published views alone (`usage_published_weeks` and the weekly
views of `ingest.views`), never from a raw table, so a database login granted only those views
can build it; every number in it was published already, differentially private, and so is safe
to show to the world. Its JSON is the catalog's `[public]` format (`otel_usage/
public.schema.json`): `index.json` lists the weeks and the active installations of each, and
`weeks/<ISO week>.json` holds one week whole. Beside them lie the catalog the site was computed
under (`catalog.toml`) and the pages `ingest._site_page.pages` renders from the same documents.

`otel-usage-ingest site --out DIR` writes the files (`write_site`) for any static host; the
ingest serves the same at the catalog's `[public] path` (`ingest.app`), built once and kept
(`Served`) until the views hold another published week.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa
import structlog
from sqlalchemy.engine import Connection, Engine

from otel_usage.catalog import CATALOG_PATH, Catalog, load_catalog
from otel_usage.weeks import Week

from ._errors import IngestError, SiteError, StoreUnavailable
from .views import VIEWS

__all__ = ["SITE_VIEWS", "Served", "Site", "Written", "build_site", "latest_publication",
           "read_engine", "site_files", "write_site"]

FORMAT = 1  # the `[public] format` this module writes
INDEX = "index.json"
CATALOG_FILE = "catalog.toml"
WEEKS = "weeks"

Document = dict[str, Any]
log = structlog.get_logger("ingest.site")

# The views as typed tables: the timestamps come back as datetimes from every driver (SQLite
# keeps them as text, which a view passes on untyped).
_TYPES: Mapping[str, sa.types.TypeEngine[Any]] = {
    "week_start": sa.DateTime(), "published_on": sa.DateTime(), "bucket_min": sa.BigInteger(),
    "installations": sa.BigInteger(), "total": sa.BigInteger(), "epsilon": sa.Float(),
    "delta": sa.Float(), "yearly_epsilon": sa.Float(), "installations_margin": sa.Float(),
    "total_margin": sa.Float()}


def _view(name: str) -> sa.TableClause:
    return sa.table(name, *(sa.column(c, _TYPES.get(c, sa.String())) for c in VIEWS[name]))


_PUBLISHED = _view("usage_published_weeks")
_ACTIVE = _view("usage_active_installations")
_RESOURCE = _view("usage_resource_attributes")
_METRICS = _view("usage_metrics")
_DISTRIBUTIONS = _view("usage_distributions")
# Every view the site reads: a database login for it needs SELECT on these and nothing else.
SITE_VIEWS = tuple(v.name for v in (_PUBLISHED, _ACTIVE, _RESOURCE, _METRICS, _DISTRIBUTIONS))


@dataclass(frozen=True)
class Site:
    """The site's JSON: the index document and each week's document by its ISO week."""

    index: Document
    weeks: Mapping[str, Document]


@dataclass(frozen=True)
class Written:
    """What `write_site` did: the published weeks, every file of the site (relative paths),
    and those whose content changed (the others were left as they were)."""

    weeks: tuple[str, ...]
    files: tuple[str, ...]
    changed: tuple[str, ...]


def read_engine(url: str) -> Engine:
    """An engine that only reads: a SQLite file is opened read-only (a missing file is an
    error, not a new empty database); other databases read with the login the URL names."""
    parsed = sa.make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database not in (None, "", ":memory:"):
            parsed = parsed.set(database=f"file:{parsed.database}",
                                query={**parsed.query, "mode": "ro", "uri": "true"})
        return sa.create_engine(parsed, poolclass=sa.pool.NullPool)
    return sa.create_engine(parsed, pool_size=1, max_overflow=1, pool_pre_ping=True)


@contextmanager
def _reading(db: Engine | Connection) -> Iterator[Connection]:
    """One connection for every query; a database error becomes StoreUnavailable. (The
    weeks are read before their rows, and a week is committed with its rows and never changes:
    every week read has all its rows, even where each query sees a newer snapshot.)"""
    try:
        if isinstance(db, Connection):
            yield db
        else:
            with db.connect() as conn:
                yield conn
    except sa.exc.SQLAlchemyError as exc:
        reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
        raise StoreUnavailable(f"cannot read the published views: {reason}") from exc


def latest_publication(db: Engine | Connection) -> tuple[datetime | None, int]:
    """The newest published week and how many there are: a cheap check whether the site
    changed since it was last built."""
    query = sa.select(sa.func.max(_PUBLISHED.c.week_start), sa.func.count())
    with _reading(db) as conn:
        newest, count = conn.execute(query).one()
    return newest, int(count)


def build_site(db: Engine | Connection, catalog: Catalog, today: date) -> Site:
    """The index and week documents of every published week in the views, under `catalog`.
    The index is dated by its data (`generated_on`: the newest week's day of publication), so
    that every replica, and every run of the site command, builds the same bytes from the same
    weeks; `today` (the clock's UTC date) dates only a site with no week yet."""
    if catalog.public.format != FORMAT:
        raise SiteError(f"the catalog's public format is {catalog.public.format}; this ingest "
                        f"writes format {FORMAT}")
    with _reading(db) as conn:
        published = conn.execute(sa.select(_PUBLISHED).order_by(_PUBLISHED.c.week_start)).all()
        rows = {name: _by_week(conn, view) for name, view in (
            ("active", _ACTIVE), ("resource", _RESOURCE), ("metrics", _METRICS),
            ("distributions", _DISTRIBUTIONS))}
    weeks = {Week.of(p.week_start).label: _week_document(p, rows) for p in published}
    index = {
        "format": FORMAT,
        "generated_on": max((doc["published_on"] for doc in weeks.values()),
                            default=today.isoformat()),
        "catalog_version": catalog.version,
        "weeks": [{"week": label, "week_start": doc["week_start"],
                   "published_on": doc["published_on"], "file": _week_file(label)}
                  for label, doc in weeks.items()],
        "active_installations": [{"week": label, **doc["active_installations"]}
                                 for label, doc in weeks.items()],
    }
    return Site(index, weeks)


def _by_week(conn: Connection, view: sa.TableClause) -> dict[datetime, list[sa.Row[Any]]]:
    grouped: dict[datetime, list[sa.Row[Any]]] = {}
    for row in conn.execute(sa.select(view)):
        grouped.setdefault(row.week_start, []).append(row)
    return grouped


def _week_file(label: str) -> str:
    return f"{WEEKS}/{label}.json"


def _week_document(published: sa.Row[Any], rows: Mapping[str, Mapping[datetime, list[sa.Row[Any]]]],
                   ) -> Document:
    """One published week whole, its rows in a stable order."""
    week = published.week_start
    label = Week.of(week).label
    active = rows["active"].get(week, [])
    if len(active) != 1:
        raise SiteError(f"the published week {label} has {len(active)} rows of active "
                        "installations, not one")
    metrics = sorted(rows["metrics"].get(week, []), key=lambda r: (r.metric, r.attribute, r.value))
    return {
        "format": FORMAT, "week": label, "week_start": week.date().isoformat(),
        "published_on": published.published_on.date().isoformat(),
        "privacy": {"epsilon": published.epsilon, "delta": published.delta,
                    "yearly_epsilon": published.yearly_epsilon},
        "active_installations": _count(active[0]),
        "resource_attributes": [
            {"attribute": r.attribute, "value": r.value, **_count(r)}
            for r in sorted(rows["resource"].get(week, []), key=lambda r: (r.attribute, r.value))],
        "metrics": [{"metric": r.metric, "attribute": r.attribute, "value": r.value, **_count(r)}
                    for r in metrics if r.attribute != ""],
        "totals": [{"metric": r.metric, "total": r.total, "margin": r.total_margin}
                   for r in metrics if r.attribute == "" and r.total is not None],
        "distributions": _distributions(rows["distributions"].get(week, [])),
    }


def _count(row: sa.Row[Any]) -> Document:
    return {"installations": row.installations, "margin": row.installations_margin}


def _distributions(rows: list[sa.Row[Any]]) -> list[Document]:
    """Each metric's buckets in order; a bucket ends where the metric's next one starts, and
    its last one is open (`bucket_max` null)."""
    ordered = sorted(rows, key=lambda r: (r.metric, r.bucket_min))
    out = []
    for row, following in zip(ordered, [*ordered[1:], None], strict=False):
        same = following is not None and following.metric == row.metric
        out.append({"metric": row.metric, "bucket_min": row.bucket_min,
                    "bucket_max": following.bucket_min - 1 if same and following else None,
                    **_count(row)})
    return out


def site_files(site: Site, catalog: Catalog, catalog_file: Path = CATALOG_PATH,
               ) -> dict[str, bytes]:
    """Every file of the site by its path relative to the site's root: the week documents,
    the catalog file the site was computed under, the pages, and `index.json`, in the order
    they are best written (the index last, once everything it names is there)."""
    from ._site_page import pages

    text = catalog_file.read_bytes()
    if load_catalog(catalog_file).version != catalog.version:
        raise SiteError(f"{catalog_file} is not catalog version {catalog.version}, the one "
                        "the site was computed under")
    files = {_week_file(label): _json(doc) for label, doc in site.weeks.items()}
    files[CATALOG_FILE] = text
    files |= pages(site.index, site.weeks, catalog)
    files[INDEX] = _json(site.index)
    return files


def _json(document: Document) -> bytes:
    """Compact UTF-8 JSON (a week holds a few hundred rows: indented one space per level,
    the demo's weeks were 30 % larger, 56.6 KB instead of 43.6 KB)."""
    return (json.dumps(document, ensure_ascii=False, separators=(",", ":")) + "\n").encode()


def write_site(out: Path, site: Site, catalog: Catalog, catalog_file: Path = CATALOG_PATH,
               ) -> Written:
    """Write the site into `out` (created if missing), each file through a temporary file
    renamed into place, the index last, so a static host serving `out` never serves a
    half-written file nor an index naming a week file not yet there. `out` must be empty or
    hold a previous site (its `index.json`); anything else is refused before a file is
    written. Week files of a previous site that this one no longer lists are removed."""
    files = site_files(site, catalog, catalog_file)
    previous = _previous_weeks(out)
    out.mkdir(parents=True, exist_ok=True)
    changed = [path for path, content in files.items() if _replace(out, path, content)]
    for stale in previous - set(files):
        (out / stale).unlink(missing_ok=True)
    return Written(tuple(site.weeks), tuple(files), tuple(changed))


def _previous_weeks(out: Path) -> set[str]:
    """The week files a previous site in `out` lists; SiteError unless `out` is missing,
    empty, or a previous site."""
    if not out.exists():
        return set()
    if not out.is_dir():
        raise SiteError(f"{out} is not a directory")
    if not any(out.iterdir()):
        return set()
    try:
        index = json.loads((out / INDEX).read_bytes())
        listed = {str(week["file"]) for week in index["weeks"]}
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise SiteError(f"{out} is neither empty nor a site written before (no readable "
                        f"{INDEX} listing its weeks): nothing was written; choose an empty or "
                        "new directory") from exc
    return {path for path in listed if path.startswith(f"{WEEKS}/") and ".." not in path}


def _replace(out: Path, path: str, content: bytes) -> bool:
    """Put `content` at `out/path` atomically (a temporary file beside it, renamed over
    it); False if the file held that content already (left as it was)."""
    target = out / path
    try:
        if target.read_bytes() == content:
            return False
    except FileNotFoundError:
        pass
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, temporary = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(content)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(temporary, 0o644)  # readable by the web server, as a plain file would be
        os.replace(temporary, target)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return True


# How a served file is labelled, by its name's ending (anything else: bytes to download).
MEDIA_TYPES = {".html": "text/html; charset=utf-8", ".json": "application/json",
               ".css": "text/css; charset=utf-8", ".svg": "image/svg+xml",
               ".toml": "text/plain; charset=utf-8", ".txt": "text/plain; charset=utf-8"}


@dataclass(frozen=True)
class File:
    """One served file: its content, media type and entity tag (a hash of the content)."""

    content: bytes
    media_type: str
    etag: str


# How long the served site is kept before the views are asked again whether another week was
# published: a publication shows within this, and a flood of public requests costs the
# database one small query per interval, not one per request.
RECHECK_S = 60.0


class Served:
    """The site as the ingest serves it: built from the views at the first request and kept
    until the views hold another published week (their newest week and number of weeks, one
    cheap query at most every `RECHECK_S` seconds on the ingest's clock), so a publication
    shows within a minute without the site being rebuilt for every request. A site that
    cannot be read or built raises (StoreUnavailable, SiteError) until the next check, without
    asking the database again meanwhile. It reads with an engine of its own that only reads."""

    def __init__(self, database_url: str, catalog: Catalog, now: Callable[[], datetime]) -> None:
        self.engine = read_engine(database_url)
        self.catalog = catalog
        self.now = now
        self._lock = threading.Lock()
        self._key: tuple[datetime | None, int] | None = None
        self._checked: datetime | None = None
        self._failure: IngestError | None = None
        self._files: dict[str, File] = {}

    def files(self) -> dict[str, File]:
        """The current site's files by path (StoreUnavailable if the views cannot be read,
        SiteError if they cannot be made a site)."""
        with self._lock:
            now = self.now()
            if self._checked is None or (now - self._checked).total_seconds() >= RECHECK_S:
                self._checked = now
                self._failure = None
                try:
                    self._refresh(now.date())
                except IngestError as exc:
                    self._failure = exc
                    log.warning("site.unavailable", error=str(exc))
            if self._failure is not None:  # a new exception each time: no traceback grows
                raise type(self._failure)(str(self._failure))
            return self._files

    def _refresh(self, today: date) -> None:
        key = latest_publication(self.engine)
        if key != self._key:
            site = build_site(self.engine, self.catalog, today)
            self._files = {path: File(content, _media_type(path), _etag(content))
                           for path, content in site_files(site, self.catalog).items()}
            self._key = key
            log.info("site.built", weeks=len(site.weeks), files=len(self._files))

    def close(self) -> None:
        self.engine.dispose()


def _media_type(path: str) -> str:
    return MEDIA_TYPES.get(Path(path).suffix, "application/octet-stream")


def _etag(content: bytes) -> str:
    return '"' + hashlib.sha256(content).hexdigest()[:32] + '"'
