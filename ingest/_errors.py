"""Every error the ingest raises while it runs, under one root (settings it cannot run with are
a ValueError when the app is made).

    IngestError
    ├── RequestError            the request is wrong: the client must change it (4xx)
    │   ├── UnsupportedMediaType    415: not protobuf or JSON, or an unknown encoding
    │   ├── BodyTooLarge            413: over the catalog's limit after decompression
    │   ├── MalformedBody           400: not an ExportMetricsServiceRequest
    │   ├── InvalidReport           400: decodes, but breaks the catalog's rules
    │   ├── CredentialRejected      403: missing or wrong installation credential
    │   ├── Erased                  410: the installation was erased; start over with a new id
    │   └── LimitRefused            403: over a limit, through a trusted proxy (which must not
    │                                    queue it for a retry)
    ├── ServiceError            the service cannot take it now: try again later (429/503)
    │   ├── Throttled               429: a rate limit was hit
    │   ├── Overloaded              503: the write queue is full or too slow
    │   └── StoreUnavailable        503: the database is unreachable, locked or timed out
    │       └── WriteFailed             503: a statement failed (a constraint, a value)
    ├── SchemaTooNew            the store was made by a later version of the ingest: left as is
    └── SiteError               the public statistics cannot be built or written where asked
                                (ingest/site.py): nothing was written

Database errors (SQLAlchemy, sqlite3, psycopg, pyodbc) are mapped to `StoreUnavailable` or
`WriteFailed` where they are caught, with `raise ... from exc`, so no driver exception leaves
the store.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Problem:
    """One reason a report or a point was refused: a stable code and a sentence for people."""

    code: str
    message: str


SHOWN_PROBLEMS = 5
MESSAGE_CHARS = 160


def shorten(text: str, limit: int = MESSAGE_CHARS) -> str:
    """A sentence cut to `limit` characters (a sender chooses the names it quotes)."""
    return text if len(text) <= limit else text[:limit - 3] + "..."


def summary(problems: list[Problem]) -> str:
    """The first problems and how many more: an answer stays well under a kilobyte, however
    many problems a small request can cause (a few hundred bytes once got a 948 KB answer)."""
    text = "; ".join(shorten(p.message) for p in problems[:SHOWN_PROBLEMS])
    more = len(problems) - SHOWN_PROBLEMS
    return f"{text}; and {more} more" if more > 0 else text


class IngestError(Exception):
    """Root of the ingest's errors."""

    status = 500
    reason = "internal"
    grpc_code = 13  # INTERNAL


class RequestError(IngestError):
    status = 400
    reason = "bad_request"
    grpc_code = 3  # INVALID_ARGUMENT


class UnsupportedMediaType(RequestError):
    status = 415
    reason = "unsupported_media_type"


class BodyTooLarge(RequestError):
    status = 413
    reason = "too_large"
    grpc_code = 8  # RESOURCE_EXHAUSTED


class MalformedBody(RequestError):
    reason = "malformed"


class InvalidReport(RequestError):
    """The report breaks the catalog's rules; `problems` lists every one found, and the first
    names the reason."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        self.reason = problems[0].code if problems else "invalid"
        super().__init__(summary(problems))


class CredentialRejected(RequestError):
    status = 403
    reason = "credential"
    grpc_code = 7  # PERMISSION_DENIED


class Erased(RequestError):
    """A report for an installation erased on request (contracts: `[protocol] erased_status`)."""

    status = 410
    reason = "erased"
    grpc_code = 9  # FAILED_PRECONDITION

    def __init__(self) -> None:
        super().__init__("this installation was erased: start over with a new installation id")


class LimitRefused(RequestError):
    """A request over one of the limits (new installations per address, requests per address,
    reports per installation) arriving through a trusted proxy (the gateway): refused for good.
    The gateway retries a 429 from its disk queue until delivered, so a flood from one address
    or with one credential would fill it; it drops a 403. No client that reports weekly comes
    near the limits. A direct client gets `Throttled` instead. `reason` names the limit."""

    status = 403
    grpc_code = 7  # PERMISSION_DENIED

    def __init__(self, message: str, reason: str) -> None:
        super().__init__(message)
        self.reason = reason


class SchemaTooNew(IngestError):
    """The store's schema version is later than this ingest knows: it is not touched."""

    reason = "schema_too_new"


class SiteError(IngestError):
    """The public statistics cannot be built or written where asked (an output directory
    holding something other than a previous site, a week without its rows): nothing was
    written."""

    reason = "site"


class ServiceError(IngestError):
    status = 503
    reason = "unavailable"
    grpc_code = 14  # UNAVAILABLE

    def __init__(self, message: str, retry_after: int = 1) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class Throttled(ServiceError):
    status = 429
    reason = "rate_limited"
    grpc_code = 8  # RESOURCE_EXHAUSTED


class Overloaded(ServiceError):
    reason = "overloaded"


class StoreUnavailable(ServiceError):
    reason = "store_unavailable"


class WriteFailed(StoreUnavailable):
    """A statement of a batch failed: retried job by job, so one job cannot fail the others."""

    reason = "write_failed"
