"""Which address a request is counted against, and which buckets it falls in."""

from __future__ import annotations

import ipaddress

import pytest

from medpay.security.limits import Bucket, LimitPolicy, RateLimiter, RouteClasses, source_of

PROXIES = [ipaddress.ip_network("10.0.0.0/8")]


def _scope(peer: str | None, forwarded: str | None = None) -> dict:
    headers = [(b"x-forwarded-for", forwarded.encode())] if forwarded else []
    return {"client": (peer, 5000) if peer else None, "headers": headers}


@pytest.mark.parametrize(
    ("peer", "forwarded", "source"),
    [
        ("203.0.113.7", None, "203.0.113.7"),
        # A client's own X-Forwarded-For means nothing unless a trusted proxy sent it.
        ("203.0.113.7", "198.51.100.1", "203.0.113.7"),
        ("10.1.2.3", "198.51.100.1", "198.51.100.1"),
        # The last address a trusted proxy did not add: a client cannot pick its own.
        ("10.1.2.3", "1.2.3.4, 198.51.100.1, 10.9.9.9", "198.51.100.1"),
        ("10.1.2.3", "not-an-address", "10.1.2.3"),
        ("10.1.2.3", "10.0.0.5", "10.0.0.5"),
        # One IPv6 subscriber has a /64: counted as one source.
        ("2001:db8:1:2:aaaa::1", None, "2001:db8:1:2::/64"),
        ("2001:db8:1:2:bbbb::9", None, "2001:db8:1:2::/64"),
        (None, None, "unknown"),
        ("not-an-ip", None, "unknown"),
    ],
)
def test_the_source_of_a_request(peer: str | None, forwarded: str | None, source: str) -> None:
    assert source_of(_scope(peer, forwarded), PROXIES) == source  # type: ignore[arg-type]


def test_buckets_are_sorted_and_only_those_with_a_limit() -> None:
    limiter = RateLimiter(
        None,  # type: ignore[arg-type]
        LimitPolicy(per_source=10, per_caller=0, per_person=5, estimates_per_person=2),
        RouteClasses(),
    )
    buckets = limiter.buckets("source:1.2.3.4", caller="app:a", person="p1", costly=True)
    assert buckets == [
        Bucket("estimate-caller:app:a", 1200),
        Bucket("estimate-person:p1", 2),
        Bucket("person:p1", 5),
        Bucket("source:1.2.3.4", 10),
    ]
    # Sorted, so that concurrent statements lock the same rows in the same order.
    assert [b.key for b in buckets] == sorted(b.key for b in buckets)
