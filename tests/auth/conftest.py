"""A local authoritative DNS server serving the authentication test zones."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from peers.dns_server import DNSServer

from .auth_zones import Keys, build_zone, make_keys

# Short time-outs: the "time-out" names never answer, and nothing else is slow.
TIMEOUT = 0.5
LIFETIME = 1.0


@pytest.fixture(scope="session")
def keys() -> Keys:
    """The DKIM keys published in the zones, generated once per session."""
    return make_keys()


@pytest.fixture(scope="session")
def dns_server(keys: Keys) -> Iterator[DNSServer]:
    """The DNS server on a free loopback port (UDP and TCP)."""
    with DNSServer(build_zone(keys)) as server:
        yield server


@pytest.fixture
def ns(dns_server: DNSServer) -> str:
    """The server as ``host:port``, the form ``resolver=`` and ``--nameserver`` take."""
    return dns_server.nameserver


@pytest.fixture
def opts(ns: str) -> dict[str, object]:
    """Keyword arguments pointing a check at the local server with short time-outs."""
    return {"resolver": ns, "timeout": TIMEOUT, "lifetime": LIFETIME}
