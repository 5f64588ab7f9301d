"""The MX transport's route cache is bounded: recipient domains may be chosen by an attacker."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from mailscale.transports import mx
from mailscale.transports.mx import MXTransport
from peers.dns_server import DNSServer, Zone

DOMAINS = 60
WIDE_HOSTS = 40


def _zone_text() -> str:
    lines = []
    for i in range(DOMAINS):
        lines.append(f"d{i}.test. 300 IN MX 10 mx.d{i}.test.")
        lines.append(f"mx.d{i}.test. 300 IN A 127.0.0.1")
    for i in range(WIDE_HOSTS):
        lines.append(f"wide.test. 300 IN MX 10 host{i}.wide.test.")
        lines.append(f"host{i}.wide.test. 300 IN A 127.0.1.{i + 1}")
    return "\n".join(lines) + "\n"


@pytest.fixture(scope="module")
def dns_zone() -> Iterator[DNSServer]:
    server = DNSServer(Zone.from_text(_zone_text())).start()
    yield server
    server.stop()


class TestRouteCacheBounds:
    def test_many_domains_stay_within_the_bounds(
        self, dns_zone: DNSServer, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """Looking up many distinct domains keeps at most _ROUTES_MAX entries and
        _ROUTES_MAX_BYTES accounted bytes; the routes found are still right."""
        monkeypatch.setattr(mx, "_ROUTES_MAX", 16)
        monkeypatch.setattr(mx, "_ROUTES_MAX_BYTES", 6_000)
        t = MXTransport(resolver=dns_zone.client())
        try:
            for i in range(DOMAINS):
                [route] = t.routes(f"d{i}.test")  # type: ignore[misc]
                assert (f"mx.d{i}.test", ("127.0.0.1",)) == (route.host, route.addresses)
                assert len(t._routes) <= 16
                assert t._routes_bytes <= 6_000
                assert t._routes_bytes == sum(v[2] for v in t._routes.values())
        finally:
            t.close()
        assert t._routes

    def test_a_domain_with_too_many_exchangers_is_not_kept(
        self, dns_zone: DNSServer, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """Routes larger than _ROUTE_MAX_BYTES are looked up each time, not cached."""
        monkeypatch.setattr(mx, "_ROUTE_MAX_BYTES", 4_000)
        t = MXTransport(resolver=dns_zone.client())
        dns_zone.queries.clear()

        def mx_queries() -> int:
            return [q[:2] for q in dns_zone.queries].count(("wide.test", "MX"))

        try:
            first = t.routes("wide.test")
            once = mx_queries()
            second = t.routes("wide.test")
        finally:
            t.close()
        assert WIDE_HOSTS == len(first) == len(second)  # type: ignore[arg-type]
        assert (True, 2 * once) == (once > 0, mx_queries())
        assert "wide.test" not in t._routes

    def test_down_addresses_are_forgotten_when_their_time_is_up(
        self, dns_zone: DNSServer, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """Addresses marked down stay in memory only while they are down."""
        monkeypatch.setattr(mx, "_DOWN_PRUNE", 4)
        now = [1000.0]
        t = MXTransport(resolver=dns_zone.client(), clock=lambda: now[0])
        try:
            t._down.update({f"192.0.2.{i}": 1010.0 for i in range(10)})
            t._down["192.0.2.200"] = 2000.0
            now[0] = 1500.0
            t.routes("d0.test")
        finally:
            t.close()
        assert {"192.0.2.200": 2000.0} == t._down
