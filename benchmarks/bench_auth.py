"""DNS authentication checks against a local authoritative server, beside checkdmarc.

Run: ``python -m pytest benchmarks/bench_auth.py`` (figures) or with ``-m gate``
(the ratio gate only).

mailscale's full check (SPF with check_host for two IPs, DKIM for two selectors,
DMARC, MX, FCrDNS for two IPs, alignment; lookups concurrent) is timed beside
checkdmarc's ``check_spf`` + ``check_dmarc`` + ``check_mx`` on the same zone
(checkdmarc has no DKIM-selector, check_host or FCrDNS check; its lookups run one
after another, its cache emptied before each call so that both do every lookup).
"""

from __future__ import annotations

from collections.abc import Iterator

import dns.nameserver
import dns.resolver
import pytest
from tests.peers.dns_server import DNSServer, Zone

from mailscale.auth import check_domain
from mailscale.signing.keys import dns_record_strings, generate_key

from ._ratio import gate, ratio

DOMAIN = "bench.example.com"
IPS = ("203.0.113.7", "203.0.113.8")
SELECTORS = ("s1", "s2")


def _zone() -> Zone:
    zone = Zone()
    zone.txt(DOMAIN, "v=spf1 ip4:203.0.113.7 ip4:203.0.113.8 include:sendgrid.net -all")
    zone.txt("sendgrid.net", "v=spf1 ip4:198.51.100.0/24 -all")
    zone.txt(f"s1._domainkey.{DOMAIN}", *dns_record_strings(generate_key("rsa", 2048)))
    zone.txt(f"s2._domainkey.{DOMAIN}", *dns_record_strings(generate_key("ed25519")))
    zone.txt(f"_dmarc.{DOMAIN}", f"v=DMARC1; p=reject; rua=mailto:dmarc@{DOMAIN}")
    zone.mx(DOMAIN, 10, f"mx1.{DOMAIN}").mx(DOMAIN, 20, f"mx2.{DOMAIN}")
    zone.a(f"mx1.{DOMAIN}", "192.0.2.25").a(f"mx2.{DOMAIN}", "192.0.2.26")
    for i, ip in enumerate(IPS, 1):
        zone.a(f"mail{i}.{DOMAIN}", ip).ptr(ip, f"mail{i}.{DOMAIN}")
    return zone


@pytest.fixture(scope="module")
def server() -> Iterator[DNSServer]:
    with DNSServer(_zone()) as srv:
        yield srv


def _ours(server: DNSServer) -> object:
    report = check_domain(
        DOMAIN,
        dkim_selectors=SELECTORS,
        sending_ips=IPS,
        esp="sendgrid",
        envelope_domain=DOMAIN,
        resolver=server.nameserver,
        timeout=1,
        lifetime=2,
    )
    assert report.ok
    return report


def _checkdmarc(server: DNSServer) -> object:
    from checkdmarc.dmarc import check_dmarc
    from checkdmarc.smtp import check_mx
    from checkdmarc.spf import check_spf
    from checkdmarc.utils import DNS_CACHE

    local = [dns.nameserver.Do53Nameserver(server.host, server.port)]
    res = dns.resolver.Resolver(configure=False)
    res.nameservers = local
    res.lifetime = 2
    DNS_CACHE.clear()
    # nameservers= as well: checkdmarc's DNSSEC and TLSA lookups ignore resolver=.
    kw = {"resolver": res, "nameservers": local, "timeout": 2, "retries": 0}
    spf = check_spf(DOMAIN, **kw)
    dmarc = check_dmarc(DOMAIN, **kw)
    mx = check_mx(DOMAIN, **kw)
    assert spf["valid"] and dmarc["valid"] and mx["hosts"]
    return spf, dmarc, mx


def test_full_check(benchmark, server: DNSServer) -> None:  # type: ignore[no-untyped-def]
    """Full check of one domain: 2 selectors, 2 IPs."""
    benchmark(_ours, server)


def test_checkdmarc_spf_dmarc_mx(benchmark, server: DNSServer) -> None:  # type: ignore[no-untyped-def]
    """checkdmarc's SPF + DMARC + MX checks on the same zone."""
    pytest.importorskip("checkdmarc")
    benchmark(_checkdmarc, server)


@pytest.mark.gate
def test_gate_full_check_vs_checkdmarc(server: DNSServer) -> None:
    """mailscale's full check (more lookups) keeps pace with checkdmarc's subset."""
    pytest.importorskip("checkdmarc")
    r = ratio(
        lambda: _ours(server), lambda: _checkdmarc(server), rounds=5, min_time=0.1, clock="wall"
    )
    gate("full check vs checkdmarc SPF+DMARC+MX", r, 0.5)
