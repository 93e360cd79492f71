"""What the routes do: take an export or an erasure apart, check it, hand it to the writer;
and whether the service is ready.

An export (protobuf only) is answered in protobuf, an erasure by `DELETE` in JSON;
each answered is counted per day by outcome and reason, without any identifier, and a refusal
is logged without address or installation id. What needs the store (the credential, the
erased ids, the limits of new installations and of reports per installation, the write) is
one job for the writer thread, done in one transaction: a request goes from the event loop to
the store and back once.

An erasure may also come as an OTLP export (contracts: "Erasure travels the same path as
reports"), since the gateway forwards only exports: a single ResourceMetrics naming the
installation (`service.instance.id`, with `service.name` and `otel_usage.catalog.version`;
other resource attributes may be there or not), whose only metric is `[protocol]
erasure_metric`, a Gauge with one `as_int` point of value 1 spanning an ISO week (the
sender's; not checked beyond that shape). The credential travels in its header, as with a
report (`erasure_of`).
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator, Mapping, Sequence

import structlog
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
)
from opentelemetry.proto.metrics.v1.metrics_pb2 import Metric

from otel_usage.catalog import Catalog
from otel_usage.weeks import WEEK_NS, Week

from . import _decode
from ._errors import (
    MESSAGE_CHARS,
    BodyTooLarge,
    CredentialRejected,
    IngestError,
    InvalidReport,
    MalformedBody,
    Problem,
    ServiceError,
    StoreUnavailable,
    shorten,
)
from ._ratelimit import Admission, ClientAddress, RateLimiter, over_limit
from ._settings import Settings
from ._store import ReportJob, Store, create_engine
from ._validate import (
    INSTALLATION_KEY,
    Accepted,
    Limits,
    _resource,
    count_request,
    validate,
)
from ._writer import EraseJob, Writer

log = structlog.get_logger("ingest.app")
_CREDENTIAL_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_=")
_READY_TIMEOUT_S = 2.0
Answer = tuple[int, dict[str, str], bytes]


async def read_body(chunks: AsyncIterator[bytes], limit: int) -> bytes:
    """The whole body, refused (413) as soon as it passes `limit` bytes."""
    parts, size = [], 0
    async for chunk in chunks:
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge(f"body is over {limit} bytes")
        parts.append(chunk)
    return b"".join(parts)


class Service:
    """The state behind the routes: settings, store, writer and rate limiters."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.catalog = settings.catalog
        self.protocol = settings.catalog.protocol
        self.credential_header = self.protocol.credential_header.lower()
        self.pseudonym_header = self.protocol.client_pseudonym_header.lower()
        self._limits_made: Limits | None = None
        self.store: Store | None = None
        self.writer: Writer | None = None
        self.addresses = RateLimiter(settings.address_rate, settings.address_burst,
                                     settings.limiter_entries, settings.clock)
        self.client_address = ClientAddress(settings.trusted_proxies)

    def open(self) -> Store:
        settings = self.settings
        store = Store(create_engine(settings.database_url))
        store.migrate()
        admission = Admission(settings.registrations_per_day, settings.installation_rate,
                              settings.installation_burst, settings.limiter_entries,
                              settings.clock, settings.unlimited_addresses)
        self.store, self.writer = store, Writer(store, settings, admission)
        self.writer.start()
        log.info("ingest.started", trusted_proxies=len(settings.trusted_proxies))
        return store

    def close(self) -> None:
        if self.writer is not None:
            self.writer.stop()
        if self.store is not None:
            self.store.dispose()
        log.info("ingest.stopped")

    # POST {metrics_path} ------------------------------------------------------------------

    async def export(self, headers: Mapping[str, str], peer: str,
                     body: AsyncIterator[bytes]) -> Answer:
        """Handle one export (`headers` with lower-case names): the status, headers and body
        of the answer."""
        fmt: _decode.Format = "protobuf"
        try:
            fmt = _decode.body_format(headers.get("content-type"))
            address = self._address(headers, peer)
            self._check_address(address, peer)
            credential = self._credential_hash(headers.get(self.credential_header, ""))
            data = await self._body(headers, body)
            limits = self._limits()
            request = _decode.parse(data)
            count_request(request, limits)  # before any point is read
            erased = erasure_of(request, self.catalog)
            if erased is not None:
                job = EraseJob(erased, credential, address,
                               self.client_address.through_proxy(peer))
                return await self._erase_through_export(job, fmt)
            accepted = validate(request, limits)
            await self._store_reports(accepted, credential, address,
                                      self.client_address.through_proxy(peer))
        except IngestError as exc:
            return self._refusal(exc, fmt)
        self._count("accepted", "partial" if accepted.rejected_points else "")
        answer = _decode.success(accepted.rejected_points, accepted.error_message)
        return 200, {"content-type": _decode.CONTENT_TYPES[fmt]}, _decode.encode(answer, fmt)

    async def _erase_through_export(self, job: EraseJob, fmt: _decode.Format) -> Answer:
        """The contract's erasure: 200 with an empty response once erased."""
        weeks = await self._writer().submit(job)
        self._count("accepted", "erasure")
        log.info("erasure.done", weeks=weeks)
        return 200, {"content-type": _decode.CONTENT_TYPES[fmt]}, _decode.encode(
            _decode.success(), fmt)

    async def _store_reports(self, accepted: Accepted, credential: str, address: str,
                             proxied: bool) -> None:
        """The writer checks the credential, then the limits (which `address` is for)."""
        job = ReportJob(accepted.installation_id, credential, tuple(accepted.reports),
                        self._limits().this_week, address, proxied)
        await self._writer().submit(job)

    def _address(self, headers: Mapping[str, str], peer: str) -> str:
        """The key of the client's address: the pseudonym or X-Forwarded-For of a trusted
        proxy, else the peer (never stored, never logged)."""
        return self.client_address(peer, headers.get("x-forwarded-for"),
                                   headers.get(self.pseudonym_header))

    async def _body(self, headers: Mapping[str, str], body: AsyncIterator[bytes]) -> bytes:
        """The request's body, decompressed, within the body limit (a declared length over it
        is refused before anything is read)."""
        limit = self.settings.body_limit
        declared = headers.get("content-length", "")
        if declared.isdigit() and int(declared) > limit:
            raise BodyTooLarge(f"body is over {limit} bytes")
        return _decode.decompress(await read_body(body, limit), headers.get("content-encoding"),
                                  limit)

    def _check_address(self, address: str, peer: str) -> None:
        """The request rate per client address: over it, 429 with Retry-After for a direct
        client, 403 through a trusted proxy (the gateway would retry a 429 from its disk
        queue, and a flood would fill it)."""
        if address in self.settings.unlimited_addresses or self.addresses.allow(address):
            return
        raise over_limit("too many requests from this address", self.addresses,
                         self.client_address.through_proxy(peer), "address_rate_limit")

    def _credential_hash(self, value: str) -> str:
        if not 16 <= len(value) <= 128 or not _CREDENTIAL_CHARS.issuperset(value):
            header = self.protocol.credential_header
            raise CredentialRejected(f"header {header} is missing or malformed")
        return hashlib.sha256(value.encode()).hexdigest()

    def _limits(self) -> Limits:
        """The validation limits, made anew once a minute (they change once a week)."""
        now = self.settings.clock()
        if self._limits_made is None or now // 60 != self._limits_made.now_s // 60:
            self._limits_made = Limits(self.catalog, now, self.settings.publish_after,
                                       self.settings.clock_skew_s)
        return self._limits_made

    def _refusal(self, exc: IngestError, fmt: _decode.Format) -> Answer:
        self._count("throttled" if isinstance(exc, ServiceError) else "rejected", exc.reason)
        log.info("export.refused", status=exc.status, reason=exc.reason)
        headers = {"content-type": _decode.CONTENT_TYPES[fmt]}
        if isinstance(exc, ServiceError):
            headers["retry-after"] = str(exc.retry_after)
        message = shorten(str(exc), 6 * MESSAGE_CHARS)
        return exc.status, headers, _decode.encode(_decode.status(exc.grpc_code, message), fmt)

    def _count(self, outcome: str, reason: str) -> None:
        if self.writer is not None:
            self.writer.count(outcome, reason)

    def _writer(self) -> Writer:
        if self.writer is None:
            raise StoreUnavailable("the service is not started")
        return self.writer

    # DELETE {installation_path}, readiness ------------------------------------------------

    async def erase(self, headers: Mapping[str, str], peer: str, installation_id: str) -> Answer:
        """Erase an installation (`DELETE`, direct use; `headers` with lower-case names); 204,
        or a refusal as JSON."""
        try:
            address = self._address(headers, peer)
            self._check_address(address, peer)
            credential_hash = self._credential_hash(headers.get(self.credential_header, ""))
            if not self.catalog.resource[INSTALLATION_KEY].allows(installation_id):
                raise MalformedBody("not an installation id")
            weeks = await self._writer().submit(EraseJob(
                installation_id, credential_hash, address,
                self.client_address.through_proxy(peer)))
        except IngestError as exc:
            return self._refusal(exc, "json")
        self._count("accepted", "erasure")
        log.info("erasure.done", weeks=weeks)
        return 204, {}, b""

    async def ready(self) -> bool:
        """True when the writer runs and the database answers."""
        if self.store is None or self.writer is None or not self.writer.alive:
            return False
        try:
            await asyncio.wait_for(asyncio.to_thread(self.store.ping), _READY_TIMEOUT_S)
        except (IngestError, TimeoutError):
            return False
        return True


# An erasure sent as an export --------------------------------------------------------------

_NAMED = ("service.name", INSTALLATION_KEY, "otel_usage.catalog.version")


def erasure_of(request: ExportMetricsServiceRequest, catalog: Catalog) -> str | None:
    """The installation an erasure request names; None when the request asks for no erasure;
    InvalidReport when it holds the erasure metric in another shape than the contract's (a
    request as `_decode.parse` gives it)."""
    name = catalog.protocol.erasure_metric
    metrics = [(rm, m) for rm in request.resource_metrics for sm in rm.scope_metrics
               for m in sm.metrics]
    if not any(m.name == name for _, m in metrics):
        return None
    if len(request.resource_metrics) != 1 or len(metrics) != 1:
        raise InvalidReport([Problem("erasure_shape", f"{name} must be the request's only "
                                                      "metric, of one resource")])
    rm, metric = metrics[0]
    resource, problems = _resource(rm.resource.attributes, catalog)
    problems = [p for p in problems if p.code != "missing_resource_attribute"]
    problems += [Problem("missing_resource_attribute",
                         f"resource attribute {key!r} is required")
                 for key in _NAMED if key not in resource
                 and not any(f"{key!r}" in p.message for p in problems)]
    if not _one_point_of_one(metric):
        problems.append(Problem("erasure_shape", f"{name} must be a Gauge with one as_int point "
                                                 "of value 1 spanning an ISO week"))
    if problems:
        raise InvalidReport(problems)
    return resource[INSTALLATION_KEY]


def _one_point_of_one(metric: Metric) -> bool:
    if metric.WhichOneof("data") != "gauge":
        return False
    points: Sequence[_decode.RawPoint] = metric.gauge.data_points
    if len(points) != 1:
        return False
    point = points[0]
    _decode.attribute_pairs(point.attributes[:1])  # a body that does not parse is refused whole
    return (point.WhichOneof("value") == "as_int" and point.as_int == 1
            and Week.from_start_ns(point.start_time_unix_nano) is not None
            and point.time_unix_nano - point.start_time_unix_nano == WEEK_NS)
