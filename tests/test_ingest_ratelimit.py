"""Limits in memory: token buckets (a burst, a refill rate, a bounded number of keys), the
client's address (trusted proxies only), new installations per address per day."""

from __future__ import annotations

import pytest

from ingest._errors import LimitRefused, Throttled
from ingest._ratelimit import Admission, ClientAddress, RateLimiter


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_burst_is_allowed_then_refused_until_tokens_refill() -> None:
    clock = Clock()
    limiter = RateLimiter(rate=0.5, burst=3, max_entries=10, clock=clock)
    assert [limiter.allow("a") for _ in range(4)] == [True, True, True, False]
    clock.now += 1.0
    assert limiter.allow("a") is False
    clock.now += 1.0
    assert [limiter.allow("a"), limiter.allow("a")] == [True, False]
    assert limiter.retry_after() == 2


def test_keys_have_their_own_buckets() -> None:
    limiter = RateLimiter(rate=1, burst=1, max_entries=10, clock=Clock())
    assert [limiter.allow("a"), limiter.allow("b"), limiter.allow("a")] == [True, True, False]


def test_memory_is_bounded_by_forgetting_the_least_recent_key() -> None:
    limiter = RateLimiter(rate=0.001, burst=1, max_entries=2, clock=Clock())
    assert [limiter.allow(k) for k in ("a", "b", "c")] == [True, True, True]
    assert limiter.allow("a") is True  # forgotten, so a full bucket again
    assert limiter.allow("c") is False  # remembered: the two most recent keys are c and a


def test_a_burst_of_zero_disables_the_limit() -> None:
    """Every request is allowed, and no key is kept (`--no-address-limit` holds no address)."""
    import tracemalloc

    limiter = RateLimiter(rate=0, burst=0, max_entries=100_000, clock=Clock())
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    allowed = all(limiter.allow(f"198.51.100.{index % 256}#{index}") for index in range(10_000))
    grown = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()
    assert (allowed, grown < 10_000) == (True, True)


def test_a_flood_of_keys_keeps_the_limiter_at_its_bound() -> None:
    """200,000 distinct keys (addresses an attacker controls, say) hold 1,000 buckets: the
    memory they take does not grow with the keys beyond that."""
    import tracemalloc

    limiter = RateLimiter(rate=1, burst=1, max_entries=1_000, clock=Clock())
    for index in range(1_000):
        limiter.allow(f"warm-{index}")
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    for index in range(200_000):
        limiter.allow(f"2001:db8:{index:x}::/64")
    grown = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()
    assert grown < 500_000


PROXY = "10.0.0.2"


def test_the_peer_is_the_client_unless_it_is_a_trusted_proxy() -> None:
    """X-Forwarded-For from anyone else, loopback included, is ignored."""
    address = ClientAddress([PROXY, "192.0.2.0/24"])
    assert address("198.51.100.7", "203.0.113.1") == "198.51.100.7"
    assert address("127.0.0.1", "203.0.113.1") == "127.0.0.1"
    assert address(PROXY, "203.0.113.1") == "203.0.113.1"
    assert address(PROXY, None) == PROXY


def test_the_client_is_the_right_most_forwarded_address_that_is_not_a_proxy() -> None:
    """What a client writes into its own X-Forwarded-For (the left part) never counts."""
    address = ClientAddress([PROXY, "192.0.2.0/24"])
    assert address(PROXY, "6.6.6.6, 203.0.113.1, 192.0.2.9") == "203.0.113.1"
    assert address(PROXY, "6.6.6.6, not-an-address") == PROXY
    assert address(PROXY, "192.0.2.9, 192.0.2.10") == "192.0.2.9"


def test_ipv6_clients_are_keyed_by_their_64_and_mapped_ipv4_as_ipv4() -> None:
    address = ClientAddress([])
    assert address("2001:db8:1:2:aaaa::1", None) == "2001:db8:1:2::/64"
    assert address("2001:db8:1:2:bbbb::9", None) == "2001:db8:1:2::/64"
    assert address("::ffff:198.51.100.7", None) == "198.51.100.7"


def test_admission_limits_new_installations_per_address_per_day() -> None:
    clock = Clock()
    admission = Admission(3, installation_rate=1, installation_burst=1, max_entries=100,
                          clock=clock, unlimited=["127.0.0.1"])
    assert [admission.register("198.51.100.7") for _ in range(4)][:3] == [None] * 3
    refused = admission.register("198.51.100.7")
    assert isinstance(refused, Throttled) and refused.retry_after == 28_800
    assert admission.register("198.51.100.8") is None
    assert all(admission.register("127.0.0.1") is None for _ in range(10))
    clock.now += 86_400
    assert admission.register("198.51.100.7") is None


PSEUDONYM = "0123456789abcdef0123456789abcdef"


def test_a_trusted_proxys_pseudonym_is_the_client_and_outranks_x_forwarded_for() -> None:
    address = ClientAddress([PROXY])
    assert address(PROXY, "203.0.113.1", PSEUDONYM) == f"pseudonym:{PSEUDONYM}"
    assert address(PROXY, None, PSEUDONYM) == f"pseudonym:{PSEUDONYM}"


def test_a_pseudonym_from_anyone_else_is_ignored() -> None:
    address = ClientAddress([PROXY])
    assert address("198.51.100.7", None, PSEUDONYM) == "198.51.100.7"
    assert address("127.0.0.1", "203.0.113.1", PSEUDONYM) == "127.0.0.1"


@pytest.mark.parametrize("malformed", [
    "", PSEUDONYM[:-1], PSEUDONYM + "0", PSEUDONYM.upper(), "g" + PSEUDONYM[1:],
    "0123456789abcdef 123456789abcdef", "198.51.100.7",
])
def test_a_malformed_pseudonym_falls_back_to_the_forwarded_address(malformed: str) -> None:
    address = ClientAddress([PROXY])
    assert address(PROXY, "203.0.113.1", malformed) == "203.0.113.1"
    assert address(PROXY, None, malformed) == PROXY


def test_through_proxy_is_true_for_trusted_peers_only() -> None:
    address = ClientAddress([PROXY, "192.0.2.0/24"])
    assert [address.through_proxy(p) for p in (PROXY, "192.0.2.77", "::ffff:10.0.0.2",
                                               "198.51.100.7", "127.0.0.1", "not-an-address")
            ] == [True, True, True, False, False, False]


def test_over_the_limit_a_proxied_registration_gets_a_refusal_that_is_not_retried() -> None:
    """Through the gateway a 429 would be retried from its disk queue forever: 403 instead."""
    admission = Admission(1, installation_rate=1, installation_burst=1, max_entries=100,
                          clock=Clock())
    key = f"pseudonym:{PSEUDONYM}"
    assert admission.register(key, proxied=True) is None
    refused = admission.register(key, proxied=True)
    assert isinstance(refused, LimitRefused)
    assert (refused.status, refused.reason, str(refused)) == (
        403, "registration_limit",
        "too many new installations from this address: refused, not to be retried")
    direct = admission.register(key)
    assert isinstance(direct, Throttled) and direct.status == 429
