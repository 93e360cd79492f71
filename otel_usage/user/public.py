"""The public statistics, fetched for the user's comparison: when, from where, read how.

The published weeks are served at the endpoint's origin plus the catalog's ``[public] path``
(``https://stats.printernizer.com/stats/``): ``index.json`` lists them, and one JSON document
per week holds its numbers (format: ``otel_usage/public.schema.json``). This module decides
whether they may be fetched now (:func:`refusal`, :func:`due`), fetches the index and the one
week the comparison needs through the transport the facade hands it (the same TLS rules as
reports, nothing about the installation in the request), reads them defensively (fields it does
not know are ignored; bad JSON, a format it does not know or a field of the wrong kind is
refused, and nothing is kept then), and keeps them in the local store.

The rule: fetched automatically only in mode ``on``; in ``local`` only when the user asks (the
page's button, ``otel-usage compare --fetch``); never in ``off`` or under ``DO_NOT_TRACK``, not
even when asked. At most once per published week: while the cached index already holds the
newest week that can be published (a week is published ``publish_after_days`` after it ends),
nothing is fetched; while a newer one is due but not there yet, an automatic fetch is tried at
most once a day.

The facade's :meth:`~otel_usage.UsageTelemetry.fetch_public_statistics` and
:meth:`~otel_usage.UsageTelemetry.public_statistics_status` are :func:`fetch_for` and
:func:`status_for` (here, so that a host that never shows them does not load them).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from threading import Lock
from typing import Any
from urllib.parse import urljoin, urlsplit

from .. import weeks
from ..catalog import Catalog
from ..consent import ModeState
from ..errors import PublicStatisticsError, TransportError
from ..log import ProblemLog
from ..store import Store
from ..store.public import PublicDocument, PublicTx
from ..weeks import Week, from_epoch_day

__all__ = ["DEADLINE_S", "MAX_DOCUMENT_BYTES", "RETRY_AFTER", "Cached", "Fetch", "base_url",
           "cached", "due", "fetch_for", "newest_publishable", "read_index", "read_week",
           "refresh", "refusal", "status_for"]

# Longest wait for one document (the page's request waits for it).
DEADLINE_S = 5.0
# Largest document accepted: a week is a few dozen kilobytes, an index of ten years about 150.
MAX_DOCUMENT_BYTES = 1 << 20
# While a newer week is due but not published yet, an automatic fetch waits this long.
RETRY_AFTER = timedelta(days=1)
_CHECKED_KEY = "public_checked_at"

# Fetches one URL: (url, max_bytes) -> body; TransportError when it cannot.
Getter = Callable[[str, int], bytes]


@dataclass(frozen=True)
class Fetch:
    """What one attempt did: `fetched` the documents (their newest week `week`), or not, and
    why (`detail`, a sentence for people)."""

    fetched: bool
    detail: str
    week: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"fetched": self.fetched, "detail": self.detail, "week": self.week}


def base_url(endpoint: str, catalog: Catalog) -> str:
    """The public statistics' address: the endpoint's origin plus ``[public] path``."""
    parts = urlsplit(endpoint)
    return f"{parts.scheme}://{parts.netloc}{catalog.public.path}"


def refusal(state: ModeState, do_not_track: bool, asked: bool) -> str | None:
    """Why the public statistics may not be fetched now (None: they may): automatically only
    in mode on, when the user asks also in mode local, never in off or under DO_NOT_TRACK."""
    if do_not_track:
        return "DO_NOT_TRACK is set: the public statistics are never fetched"
    if state.mode == "off":
        how = " (set by the environment)" if state.forced_by_environment else ""
        return f"mode is off{how}: the public statistics are never fetched"
    if state.mode == "local" and not asked:
        return ("mode is local: the public statistics are fetched only when you ask "
                "(the page's button, or otel-usage compare --fetch)")
    return None


def newest_publishable(now: datetime, catalog: Catalog) -> Week:
    """The newest week that can be published at `now`, by the catalog's window."""
    return weeks.newest_publishable(now, catalog.policy.publish_after_days)


def due(store: Store, base: str, now: datetime, catalog: Catalog, asked: bool) -> str | None:
    """Why nothing need be fetched now (None: a fetch is due). The cached index, if it came
    from `base`, holds the newest week there can be; or (unless asked) one was tried today."""
    with store.read(PublicTx) as tx:
        index = tx.public_documents().get("index")
        checked = tx.meta(_CHECKED_KEY)
    if index is not None and index.url == base + "index.json" and index.week is not None:
        kept = Week.parse(index.week)
        if kept >= newest_publishable(now, catalog):
            later = kept.next().end + timedelta(days=catalog.policy.publish_after_days)
            return (f"the public statistics are up to date: {index.week} is the newest week "
                    f"published, and the next is published from {later:%Y-%m-%d} on")
    if not asked and checked is not None and now - datetime.fromisoformat(checked) < RETRY_AFTER:
        return "the public statistics were looked for less than a day ago"
    return None


def refresh(store: Store, catalog: Catalog, base: str, now: datetime, get: Getter) -> Fetch:
    """Fetch the index and the week the comparison needs (the newest published week the local
    history also has, else the newest), read them, and keep them. Raises TransportError or
    PublicStatisticsError, keeping nothing new (the attempt's time excepted)."""
    with store.transaction(PublicTx) as tx:
        tx.set_meta(_CHECKED_KEY, now.isoformat())
        recorded = {Week.of(from_epoch_day(day)).label for day in tx.recorded_days()}
        kept = tx.public_documents().get("week")
    index_url = base + "index.json"
    index_body = get(index_url, MAX_DOCUMENT_BYTES)
    index = read_index(index_body, catalog)
    weeks = [w["week"] for w in index["weeks"]]
    documents = [PublicDocument("index", weeks[-1] if weeks else None, index_url, now,
                                _text(index_body))]
    if weeks:
        wanted = max((w for w in weeks if w in recorded), default=weeks[-1])
        entry = next(w for w in index["weeks"] if w["week"] == wanted)
        week_url = _week_url(index_url, base, entry["file"])
        if kept is not None and (kept.week, kept.url) == (wanted, week_url):
            documents.append(kept)  # a published week never changes: not fetched again
        else:
            week_body = get(week_url, MAX_DOCUMENT_BYTES)
            read_week(week_body, catalog, wanted)
            documents.append(PublicDocument("week", wanted, week_url, now, _text(week_body)))
    with store.transaction(PublicTx) as tx:
        tx.put_public_documents(documents)
    if not weeks:
        return Fetch(True, "fetched: nothing is published yet")
    return Fetch(True, f"fetched the public statistics up to {weeks[-1]}", weeks[-1])


def fetch_for(store: Store, catalog: Catalog, endpoint: str, state: ModeState, *,
              do_not_track: bool, now: datetime, problems: ProblemLog, lock: Lock,
              transport: Callable[[], Getter], asked: bool) -> dict[str, Any]:
    """:meth:`~otel_usage.UsageTelemetry.fetch_public_statistics`, one fetch at a time
    (`lock`): the rule, then the documents if they are due, through the getter `transport`
    gives (it raises TransportError for an endpoint reports could not go to)."""
    base, answer, refused = _rule(catalog, endpoint, state, do_not_track, asked)
    if refused is not None:
        return {**answer, "refused": True, "detail": refused}
    if not lock.acquire(blocking=False):  # another request is fetching
        return {**answer, "detail": "the public statistics are being fetched already"}
    try:
        not_due = due(store, base, now, catalog, asked)
        if not_due is not None:
            return {**answer, "detail": not_due}
        return {**answer, **_fetch(store, catalog, base, now, problems, transport)}
    finally:
        lock.release()


def status_for(store: Store, catalog: Catalog, endpoint: str, state: ModeState, *,
               do_not_track: bool, now: datetime) -> dict[str, Any]:
    """:meth:`~otel_usage.UsageTelemetry.public_statistics_status`: contacts nothing."""
    base, answer, refused = _rule(catalog, endpoint, state, do_not_track, asked=False)
    if refused is not None:
        return {**answer, "refused": True, "detail": refused}
    not_due = None if not store.exists else due(store, base, now, catalog, asked=False)
    return {**answer, "due": not_due is None,
            "detail": not_due or "the public statistics are due to be fetched"}


def _rule(catalog: Catalog, endpoint: str, state: ModeState, do_not_track: bool,
          asked: bool) -> tuple[str, dict[str, Any], str | None]:
    """The public statistics' address, an answer that did nothing yet, and why the rule
    refuses a fetch now (None: it allows one)."""
    base = base_url(endpoint, catalog)
    answer = {"url": base, "askable": refusal(state, do_not_track, True) is None,
              "refused": False, "failed": False, "fetched": False, "due": False,
              "week": None}
    return base, answer, refusal(state, do_not_track, asked)


def _fetch(store: Store, catalog: Catalog, base: str, now: datetime, problems: ProblemLog,
           transport: Callable[[], Getter]) -> dict[str, Any]:
    try:
        fetched = refresh(store, catalog, base, now, transport())
    except (TransportError, PublicStatisticsError) as exc:
        problems.problem("public:fetch", "the public statistics could not be fetched",
                         error=str(exc))
        return {"failed": True, "detail": f"they could not be fetched: {exc}"}
    problems.resolved("public:fetch", "the public statistics were fetched")
    return fetched.as_dict()


def _week_url(index_url: str, base: str, file: str) -> str:
    """A week's address, relative to the index, which must stay under the statistics' path."""
    url = urljoin(index_url, file)  # resolves "../" too
    if not url.startswith(base):
        raise PublicStatisticsError(f"the index names a week file outside {base}: {file!r}")
    return url


def _text(body: bytes) -> str:
    return body.decode("utf-8")


@dataclass(frozen=True)
class Cached:
    """The public statistics as kept: the index's document, the index and the week compared
    with (None: nothing published, or none fetched yet), read."""

    index_document: PublicDocument
    index: dict[str, Any]
    week: dict[str, Any] | None


def cached(store: Store, base: str, catalog: Catalog) -> Cached | None:
    """What is kept from `base` (None: nothing, or documents this version cannot read). A
    store that does not exist yet is not made."""
    if not store.exists:
        return None
    with store.read(PublicTx) as tx:
        documents = tx.public_documents()
    index, week = documents.get("index"), documents.get("week")
    if index is None or index.url != base + "index.json":
        return None
    try:
        return Cached(index, read_index(index.body.encode(), catalog),
                      None if week is None or week.week is None
                      else read_week(week.body.encode(), catalog, week.week))
    except PublicStatisticsError:  # kept by a version that read another format
        return None


# Reading the documents: only what the comparison uses, each checked for its kind. -----------

def _load(body: bytes, what: str, catalog: Catalog) -> Mapping[str, Any]:
    try:
        data = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise PublicStatisticsError(f"the public statistics' {what} is not JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise PublicStatisticsError(f"the public statistics' {what} is not a JSON object")
    known = catalog.public.format
    if data.get("format") != known:
        raise PublicStatisticsError(
            f"the public statistics' {what} is in format {data.get('format')!r}, and this "
            f"version of otel-usage reads format {known} only: update otel-usage to compare")
    return data


def read_index(body: bytes, catalog: Catalog) -> dict[str, Any]:
    """index.json's weeks (each with its week, week_start, published_on and file), oldest
    first; PublicStatisticsError when it cannot be read."""
    data = _load(body, "index", catalog)
    weeks = _list(data, "weeks", "index")
    read = [{"week": _week(w, "index"), "file": _string(w, "file", "index"),
             "published_on": _string(w, "published_on", "index")}
            for w in weeks]
    if [w["week"] for w in read] != sorted({w["week"] for w in read}):
        raise PublicStatisticsError("the public statistics' index does not list its weeks "
                                    "once each, oldest first")
    return {"weeks": read, "catalog_version": _number(data, "catalog_version", "index")}


def read_week(body: bytes, catalog: Catalog, week: str) -> dict[str, Any]:
    """A week document's numbers, each row checked; PublicStatisticsError when it cannot be
    read or is another week's."""
    what = f"week {week}"
    data = _load(body, what, catalog)
    if _week(data, what) != week:
        raise PublicStatisticsError(f"the public statistics' document for {week} holds "
                                    f"{data.get('week')!r}")
    privacy = _object(data, "privacy", what)
    active = _object(data, "active_installations", what)
    return {
        "week": week,
        "week_start": _string(data, "week_start", what),
        "published_on": _string(data, "published_on", what),
        "privacy": {k: _number(privacy, k, what) for k in ("epsilon", "delta", "yearly_epsilon")},
        "active_installations": _count(active, "installations", what),
        "resource_attributes": [
            {"attribute": _string(r, "attribute", what), "value": _string(r, "value", what),
             **_count(r, "installations", what)}
            for r in _list(data, "resource_attributes", what)],
        "metrics": [
            {"metric": _string(r, "metric", what), "attribute": _string(r, "attribute", what),
             "value": _string(r, "value", what), **_count(r, "installations", what)}
            for r in _list(data, "metrics", what)],
        "totals": [
            {"metric": _string(r, "metric", what), **_count(r, "total", what)}
            for r in _list(data, "totals", what)],
        "distributions": [
            {"metric": _string(r, "metric", what), "bucket_min": _integer(r, "bucket_min", what),
             "bucket_max": None if r.get("bucket_max") is None
             else _integer(r, "bucket_max", what),
             **_count(r, "installations", what)}
            for r in _list(data, "distributions", what)],
    }


def _wrong(what: str, field: str, kind: str) -> PublicStatisticsError:
    return PublicStatisticsError(f"the public statistics' {what} has no {kind} {field!r}")


def _object(data: Any, field: str, what: str) -> Mapping[str, Any]:
    value = data.get(field) if isinstance(data, dict) else None
    if not isinstance(value, dict):
        raise _wrong(what, field, "object")
    return value


def _list(data: Mapping[str, Any], field: str, what: str) -> list[Any]:
    value = data.get(field)
    if not isinstance(value, list):
        raise _wrong(what, field, "list")
    return value


def _string(data: Any, field: str, what: str) -> str:
    value = data.get(field) if isinstance(data, dict) else None
    if not isinstance(value, str):
        raise _wrong(what, field, "text")
    return value


def _week(data: Any, what: str) -> str:
    label = _string(data, "week", what)
    try:
        if Week.parse(label).label == label:
            return label
    except ValueError:
        pass
    raise PublicStatisticsError(f"the public statistics' {what} names no ISO week: {label!r}")


def _number(data: Any, field: str, what: str) -> float:
    value = data.get(field) if isinstance(data, dict) else None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise _wrong(what, field, "number")
    return value


def _integer(data: Any, field: str, what: str) -> int:
    value = data.get(field) if isinstance(data, dict) else None
    if isinstance(value, bool) or not isinstance(value, int):
        raise _wrong(what, field, "whole number")
    return value


def _count(data: Any, field: str, what: str) -> dict[str, Any]:
    """A published count and its margin, as `field` and ``margin``."""
    margin = _number(data, "margin", what)
    if margin < 0:
        raise _wrong(what, "margin", "non-negative")
    return {field: _integer(data, field, what), "margin": margin}
