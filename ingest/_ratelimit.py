"""Rate limits, in memory only: token buckets, and the client address they key on.

Addresses are never written to the database or the logs. A client's address is the peer of
its connection, unless that peer is a configured trusted proxy (the gateway): then it is the
client's pseudonym the proxy passes (the catalog's `[protocol] client_pseudonym_header`: a keyed
hash of the client's address, `PSEUDONYM_HEX` lower-case hex digits, keyed as
`pseudonym:<hex>`), or, without a well-formed one, the right-most `X-Forwarded-For` entry that is
not itself a trusted proxy. Anyone else's pseudonym and `X-Forwarded-For` are ignored. IPv6
addresses are keyed by their /64 (what one household or server gets), IPv4 by the address. Each
limiter holds at most `max_entries` buckets and forgets the least recently seen one beyond
that, so a flood of keys costs bounded memory.
"""

from __future__ import annotations

import ipaddress
from collections import OrderedDict
from collections.abc import Callable, Iterable

from ._errors import LimitRefused, Throttled

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
# The gateway's pseudonym of a client address: 16 bytes of an HMAC-SHA256, in lower-case hex.
PSEUDONYM_HEX = 32
_HEX = frozenset("0123456789abcdef")


class RateLimiter:
    """`allow(key)` takes a token from key's bucket; a burst of 0 disables the limit."""

    def __init__(self, rate: float, burst: int, max_entries: int,
                 clock: Callable[[], float]) -> None:
        self._rate = rate
        self._burst = float(burst)
        self._max_entries = max_entries
        self._clock = clock
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()

    def allow(self, key: str) -> bool:
        if self._burst <= 0:
            return True
        now = self._clock()
        tokens, then = self._buckets.pop(key, (self._burst, now))
        tokens = min(self._burst, tokens + max(0.0, now - then) * self._rate)
        allowed = tokens >= 1.0
        self._buckets[key] = (tokens - 1.0 if allowed else tokens, now)
        if len(self._buckets) > self._max_entries:
            self._buckets.popitem(last=False)
        return allowed

    def retry_after(self) -> int:
        """Seconds until a drained bucket holds a token again."""
        return max(1, round(1 / self._rate)) if self._rate > 0 else 60


class ClientAddress:
    """Finds the client's address of a request, trusting a pseudonym or `X-Forwarded-For` only
    from proxies."""

    def __init__(self, trusted_proxies: Iterable[str]) -> None:
        self._trusted: tuple[Network, ...] = tuple(
            ipaddress.ip_network(p, strict=False) for p in trusted_proxies)

    def __call__(self, peer: str, forwarded_for: str | None, pseudonym: str | None = None) -> str:
        """The key of the client's address: `pseudonym:<hex>` for a well-formed pseudonym from
        a trusted proxy, else its /64 for IPv6, the address for IPv4."""
        address = _parse(peer)
        if address is None:
            return peer
        if pseudonym is not None and _is_pseudonym(pseudonym) and self._is_trusted(address):
            return f"pseudonym:{pseudonym}"
        if forwarded_for and self._is_trusted(address):
            for hop in reversed(forwarded_for.split(",")):
                forwarded = _parse(hop.strip())
                if forwarded is None:  # a malformed entry ends the walk at the last proxy
                    break
                address = forwarded
                if not self._is_trusted(forwarded):
                    break
        return address_key(address)

    def through_proxy(self, peer: str) -> bool:
        """True when the request's peer is a trusted proxy (the gateway)."""
        address = _parse(peer)
        return address is not None and self._is_trusted(address)

    def _is_trusted(self, address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
        return any(address in network for network in self._trusted)


def _is_pseudonym(text: str) -> bool:
    return len(text) == PSEUDONYM_HEX and _HEX.issuperset(text)


def _parse(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def address_key(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> str:
    if isinstance(address, ipaddress.IPv6Address):
        return str(ipaddress.ip_network(f"{address}/64", strict=False))
    return str(address)


class Admission:
    """The limits the writer applies once it knows who an installation is: new installations
    per client address per day, and reports per installation, charged only after the
    credential matched (a wrong credential must not spend the owner's limit). Used by the
    writer thread alone."""

    def __init__(self, registrations_per_day: int, installation_rate: float,
                 installation_burst: int, max_entries: int, clock: Callable[[], float],
                 unlimited: Iterable[str] = ()) -> None:
        self._registrations = RateLimiter(registrations_per_day / 86_400, registrations_per_day,
                                          max_entries, clock)
        self._reports = RateLimiter(installation_rate, installation_burst, max_entries, clock)
        self._unlimited = frozenset(unlimited)

    def register(self, address: str, proxied: bool = False) -> Throttled | LimitRefused | None:
        """None if one more installation may be registered from `address` (see `over_limit`)."""
        if address in self._unlimited or self._registrations.allow(address):
            return None
        return over_limit("too many new installations from this address", self._registrations,
                          proxied, "registration_limit")

    def report(self, installation_id: str,
               proxied: bool = False) -> Throttled | LimitRefused | None:
        """None if the installation may store one more report now (see `over_limit`)."""
        if self._reports.allow(installation_id):
            return None
        return over_limit("too many reports from this installation", self._reports, proxied,
                          "installation_rate_limit")


def over_limit(message: str, limiter: RateLimiter, proxied: bool,
               reason: str) -> Throttled | LimitRefused:
    """The answer beyond a limit: 429 with Retry-After for a direct client; through a trusted
    proxy (`proxied`: the gateway), a 403 it drops instead of retrying it from its disk queue."""
    if proxied:
        return LimitRefused(f"{message}: refused, not to be retried", reason)
    return Throttled(message, retry_after=limiter.retry_after())
