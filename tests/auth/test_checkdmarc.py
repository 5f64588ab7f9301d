"""The same zones give the same verdicts in checkdmarc where both check the same thing.

checkdmarc takes a configured ``dns.resolver.Resolver``, whose nameserver can be a
``Do53Nameserver`` on any port, so it runs against the same local server. Compared:
SPF lookup count, void lookup count and validity for those limits and for loops
and duplicate records; DMARC tag validity, fatal errors, dropped tag values and
unauthorized external report destinations.
"""

from __future__ import annotations

from collections.abc import Iterator

import dns.nameserver
import dns.resolver
import pytest

from mailscale.auth import Severity, check_domain
from peers.dns_server import DNSServer

from .auth_zones import GOOD

checkdmarc_spf = pytest.importorskip("checkdmarc.spf", reason="checkdmarc is a test dependency")
checkdmarc_dmarc = pytest.importorskip("checkdmarc.dmarc")
checkdmarc_utils = pytest.importorskip("checkdmarc.utils")


@pytest.fixture
def resolver(dns_server: DNSServer) -> Iterator[dns.resolver.Resolver]:
    """A dnspython resolver on the local server, and checkdmarc's cache emptied."""
    res = dns.resolver.Resolver(configure=False)
    res.nameservers = [dns.nameserver.Do53Nameserver(dns_server.host, dns_server.port)]
    res.timeout = 0.5
    res.lifetime = 1.0
    checkdmarc_utils.DNS_CACHE.clear()
    yield res
    checkdmarc_utils.DNS_CACHE.clear()


def local(res: dns.resolver.Resolver) -> dict[str, object]:
    """checkdmarc's arguments: nameservers= too, which its DNSSEC lookups use."""
    return {"resolver": res, "nameservers": list(res.nameservers), "timeout": 1, "retries": 0}


class TestSPFParity:
    @pytest.mark.parametrize(
        ("domain", "lookups", "void", "valid"),
        [
            (GOOD, 1, 0, True),
            ("chain.example.net", 11, 0, False),
            ("ten.example.net", 10, 0, True),
            ("void.example.net", 3, 3, False),
            ("twovoid.example.net", 2, 2, True),
            ("redirect.example.net", 1, 0, True),
            ("split.example.net", 0, 0, True),
        ],
    )
    def test_counts_and_validity(
        self, resolver: dns.resolver.Resolver, domain: str, lookups: int, void: int, valid: bool
    ) -> None:
        """Lookup count, void count and verdict agree with checkdmarc's."""
        theirs = checkdmarc_spf.check_spf(domain, **local(resolver))
        ours = check_domain(domain, resolver=resolver).spf
        # checkdmarc stops (and reports no lookup count) when the void limit is hit.
        their_lookups = None if void > 2 else lookups
        assert (their_lookups, valid) == (theirs.get("dns_lookups"), theirs["valid"])
        assert void == theirs["void_dns_lookups"]
        assert (lookups, void, valid) == (ours.lookups, ours.void_lookups, ours.status == "ok")

    @pytest.mark.parametrize(
        ("domain", "code", "words"),
        [
            ("loop.example.net", "spf.include_loop", "Include loop"),
            ("rloop.example.net", "spf.redirect_loop", "Redirect loop"),
            ("two.example.net", "spf.multiple", "multiple SPF"),
            ("nothing.example.net", "spf.missing", "does not exist"),
            ("servfail.example.com", "spf.temperror", "SERVFAIL"),
        ],
    )
    def test_invalid_records(
        self, resolver: dns.resolver.Resolver, domain: str, code: str, words: str
    ) -> None:
        """Loops, duplicate records, absent domains and SERVFAIL are invalid for both."""
        theirs = checkdmarc_spf.check_spf(domain, **local(resolver))
        ours = check_domain(domain, resolver=resolver).spf
        assert False is theirs["valid"]
        assert words in theirs["error"]
        assert ours.status != "ok"
        assert code in {f.code for f in ours.findings}


class TestDMARCParity:
    @pytest.mark.parametrize(
        ("domain", "valid", "policy"),
        [
            (GOOD, True, "reject"),
            ("extok.example.com", True, "none"),
            ("strict.example.com", True, "reject"),
            ("unknowntag.example.com", True, "none"),
            ("badpct.example.com", True, "reject"),
            ("badalign.example.com", True, "none"),
            ("badpolicy.example.com", False, None),
            ("twodmarc.example.com", False, None),
        ],
    )
    def test_validity_and_policy(
        self, resolver: dns.resolver.Resolver, domain: str, valid: bool, policy: str | None
    ) -> None:
        """Both accept or refuse the same records and read the same policy."""
        theirs = checkdmarc_dmarc.check_dmarc(domain, **local(resolver))
        ours = check_domain(domain, resolver=resolver).dmarc
        assert valid == theirs["valid"]
        assert valid == (ours.status == "ok")
        if valid:
            assert policy == theirs["tags"]["p"]["value"] == ours.policy

    @pytest.mark.parametrize(
        ("domain", "tag"), [("badpct.example.com", "pct"), ("badalign.example.com", "adkim")]
    )
    def test_dropped_tag_values(
        self, resolver: dns.resolver.Resolver, domain: str, tag: str
    ) -> None:
        """An invalid tag value is a warning in both, and the default is used."""
        theirs = checkdmarc_dmarc.check_dmarc(domain, **local(resolver))
        ours = check_domain(domain, resolver=resolver).dmarc
        assert any(tag in w for w in theirs["warnings"])
        assert [Severity.WARNING] == [
            f.severity for f in ours.findings if f.code == "dmarc.tag_invalid"
        ]
        if tag == "adkim":
            assert "r" == theirs["tags"]["adkim"]["value"] == ours.adkim

    def test_unknown_tag(self, resolver: dns.resolver.Resolver) -> None:
        """An unknown tag is a warning in both."""
        theirs = checkdmarc_dmarc.check_dmarc("unknowntag.example.com", **local(resolver))
        ours = check_domain("unknowntag.example.com", resolver=resolver).dmarc
        assert any("foo" in w for w in theirs["warnings"])
        assert Severity.WARNING == {f.code: f.severity for f in ours.findings}["dmarc.unknown_tag"]

    @pytest.mark.parametrize(
        ("domain", "authorized"), [("extok.example.com", True), ("extbad.example.com", False)]
    )
    def test_external_report_authorization(
        self, resolver: dns.resolver.Resolver, domain: str, authorized: bool
    ) -> None:
        """Both find the same external destinations authorized or not."""
        theirs = checkdmarc_dmarc.check_dmarc(domain, **local(resolver))
        ours = check_domain(domain, resolver=resolver).dmarc
        their_flag = any("does not indicate that it accepts" in w for w in theirs["warnings"])
        our_flag = "dmarc.report_unauthorized" in {f.code for f in ours.findings}
        assert (not authorized, not authorized) == (their_flag, our_flag)
