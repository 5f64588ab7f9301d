"""DNS fan-out: hostile zones cannot make a check send more than its documented budget.

Each attack is served by its own local DNS server, which counts the queries it
receives (a lookup whose UDP answer is truncated is asked again over TCP: two
queries at the server, one lookup for the budget).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from mailscale.auth import AuthReport, DNSBudget, check_domain
from mailscale.auth._dns import DNSClient, make_resolver
from mailscale.auth.spf import analyze_spf_async
from mailscale.errors import AuthCheckError
from peers.dns_server import DNSServer

from .auth_zones import (
    FAN,
    MX_FAN,
    MX_FAN_HOSTS,
    PTR_FAN_IP,
    PTR_FAN_NAMES,
    RUA_FAN,
    fanout_zone,
)


@pytest.fixture(scope="module")
def zone_server() -> Iterator[DNSServer]:
    with DNSServer(fanout_zone()) as server:
        yield server


@pytest.fixture
def server(zone_server: DNSServer) -> DNSServer:
    """The hostile zones' server, its query log emptied for this test."""
    zone_server.queries.clear()
    return zone_server


def check(server: DNSServer, domain: str, **kw: object) -> AuthReport:
    return check_domain(
        domain,
        resolver=server.nameserver,
        timeout=2,
        lifetime=4,  # type: ignore[arg-type]
        **kw,
    )


def lookups_at_server(server: DNSServer) -> set[tuple[str, str]]:
    """The distinct (name, type) the server was asked, UDP and TCP retries folded."""
    return {(name, qtype) for name, qtype, _ in server.queries}


class TestSPFFanOut:
    def test_includes_300_wide_stay_within_the_rfc_limits(self, server: DNSServer) -> None:
        """Every record including 300 names: at most 1 + 10 SPF records are fetched."""
        report = check(server, FAN, sending_ips=["203.0.113.7"])
        txt = {
            n
            for n, t in lookups_at_server(server)
            if t == "TXT" and n.endswith(FAN) and not n.startswith("_dmarc.")
        }
        # check_host follows includes depth first and stops at the 11th lookup (permerror);
        # the record-wide walk stops following once the count passes 10 (here at once).
        assert len(txt) <= 1 + 10
        assert len(server.queries) <= 2 * report.dns.queries  # type: ignore[union-attr]
        assert report.dns.queries <= DNSBudget().max_queries  # type: ignore[union-attr]
        assert ("invalid", "permerror") == (report.spf.status, report.spf.results["203.0.113.7"])
        assert {"spf.too_many_lookups", "spf.walk_stopped"} <= report.codes()
        assert "dns.budget_exhausted" not in report.codes()

    def test_walk_alone_fetches_one_record(self, server: DNSServer) -> None:
        """Without sending IPs, the record's own 300 terms pass the limit: nothing is followed."""
        report = check(server, FAN)
        txt = {
            n
            for n, t in lookups_at_server(server)
            if t == "TXT" and n.endswith(FAN) and not n.startswith("_dmarc.")
        }
        assert {FAN} == txt
        assert 300 == report.spf.lookups


class TestOtherFanOuts:
    def test_mx_hosts(self, server: DNSServer) -> None:
        """2,000 MX hosts: 10 are resolved (A and AAAA), the others are listed unchecked."""
        report = check(server, MX_FAN)
        asked = {n for n, t in lookups_at_server(server) if t in ("A", "AAAA")}
        assert 10 == len(asked)
        assert (
            1 + 2 * 10
            >= len(
                {q for q in lookups_at_server(server) if q[0] != MX_FAN or q[1] == "MX"}
                - {(f"_dmarc.{MX_FAN}", "TXT"), ("_dmarc.mxfan.test", "TXT")}
            )
            - 1
        )
        assert MX_FAN_HOSTS == len(report.mx.hosts)
        assert ["ok"] * 10 + ["not checked"] * (MX_FAN_HOSTS - 10) == [
            h.status for h in report.mx.hosts
        ]
        assert ("ok", "mx.too_many") == (report.mx.status, report.mx.findings[0].code)

    def test_dmarc_report_destinations(self, server: DNSServer) -> None:
        """2,000 external rua destinations: 10 authorizations are looked up."""
        report = check(server, RUA_FAN)
        asked = {n for n, _ in lookups_at_server(server) if "._report._dmarc." in n}
        assert 10 == len(asked)
        assert {"dmarc.many_destinations", "dmarc.destinations_not_checked"} <= report.codes()

    def test_ptr_names(self, server: DNSServer) -> None:
        """1,000 PTR names: 10 are resolved back."""
        report = check(server, "nothing.test", sending_ips=[PTR_FAN_IP])
        forward = {
            n for n, t in lookups_at_server(server) if t == "A" and n.endswith(".ptrfan.test")
        }
        assert 10 == len(forward)
        (ptr,) = report.ptr
        assert ("fail", 10) == (ptr.status, len(ptr.names))
        assert "ptr.too_many" in report.codes()
        assert PTR_FAN_NAMES > len(server.queries)


class TestBudget:
    def test_query_budget_stops_the_check(self, server: DNSServer) -> None:
        """A budget of 5 queries: no more are sent; the rest are temperror, and it is said."""
        report = check(server, MX_FAN, budget=DNSBudget(max_queries=5))
        assert report.dns is not None
        assert (5, True) == (report.dns.queries, report.dns.refused > 0)
        assert 5 == len(lookups_at_server(server))
        assert "dns.budget_exhausted" in report.codes()
        assert "temperror" == report.mx.status

    def test_answer_bytes_budget(self, server: DNSServer) -> None:
        """Answers beyond the byte budget stop further lookups (the cache stays bounded)."""
        report = check(server, MX_FAN, budget=DNSBudget(max_answer_bytes=1000))
        assert report.dns is not None and report.dns.exhausted is not None
        assert "bytes" in report.dns.exhausted
        assert report.dns.answer_bytes < 1000 + 65536

    def test_time_budget_with_an_injected_clock(self, server: DNSServer) -> None:
        """No lookup starts once max_seconds have passed since the first (clock injected)."""
        ticks = iter(range(1000))  # each look at the clock is one second later

        async def run() -> DNSClient:
            dns = DNSClient(
                make_resolver(server.nameserver, timeout=2, lifetime=4),
                DNSBudget(max_seconds=3),
                clock=lambda: float(next(ticks)),
            )
            await analyze_spf_async(dns, FAN, sending_ips=["203.0.113.7"])
            return dns

        dns = asyncio.run(run())
        # clock reads 0 (start), 1, 2: three lookups; at 3 the budget is spent.
        assert 3 == dns.queries
        assert dns.exhausted is not None and "time budget of 3 s" in dns.exhausted

    @pytest.mark.parametrize(
        "bad",
        [
            {"max_queries": 0},
            {"max_queries": 1.5},
            {"max_seconds": 0},
            {"max_seconds": float("inf")},
            {"max_answer_bytes": True},
        ],
    )
    def test_bad_budget(self, bad: dict[str, object]) -> None:
        """A budget that is not positive and finite is refused."""
        with pytest.raises(AuthCheckError, match="DNSBudget"):
            DNSBudget(**bad)  # type: ignore[arg-type]
