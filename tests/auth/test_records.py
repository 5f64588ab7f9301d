"""Record builders: what they build parses back and passes the checks."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from mailscale.auth import (
    check_domain,
    dkim_record,
    dmarc_record,
    parse_dmarc,
    parse_spf,
    report_authorization_record,
    spf_record,
)
from mailscale.auth.records import split_txt
from mailscale.errors import AuthCheckError
from mailscale.signing.keys import parse_key_record
from peers.dns_server import DNSServer, Zone

from .auth_zones import Keys

DOMAIN = "built.example.com"
IPS = [f"203.0.113.{i}" for i in range(1, 41)]


class TestSPFRecord:
    def test_terms(self) -> None:
        """Addresses, ESP includes and includes, in a fixed order."""
        rec = spf_record(
            ips=["203.0.113.7", "198.51.100.0/24", "2001:db8::/32"],
            esp="sendgrid",
            includes=["_spf.example.net"],
            mx=True,
            all="-all",
        )
        assert (
            "v=spf1 mx ip4:203.0.113.7 ip4:198.51.100.0/24 ip6:2001:db8::/32 "
            "include:sendgrid.net include:_spf.example.net -all"
        ) == rec.value
        assert ("@",) == (rec.name,)

    def test_parses_back(self) -> None:
        """The built record parses with the checks' own parser."""
        rec = spf_record(ips=IPS, esp=["mailgun", "ses"], a=True)
        parsed = parse_spf(rec.value)
        assert 3 == parsed.lookup_terms
        assert IPS == [t.value for t in parsed.terms if t.name == "ip4"]

    def test_splits_long_records(self) -> None:
        """A record over 255 bytes is split into strings of at most 255, at spaces."""
        rec = spf_record(ips=IPS)
        assert len(rec.value) > 255
        assert all(len(s.encode()) <= 255 for s in rec.strings)
        assert len(rec.strings) >= 3
        assert all(s.startswith(" ") for s in rec.strings[1:])
        assert rec.zone_line().startswith('@\t3600\tIN\tTXT\t"v=spf1 ')

    def test_refuses_over_ten_lookups(self) -> None:
        """Eleven includes are refused: receivers would return permerror."""
        with pytest.raises(AuthCheckError, match="11 DNS-querying terms"):
            spf_record(includes=[f"i{i}.example.net" for i in range(11)])
        assert (
            10
            == parse_spf(
                spf_record(includes=[f"i{i}.example.net" for i in range(10)]).value
            ).lookup_terms
        )

    @pytest.mark.parametrize(
        ("kwargs", "words"),
        [
            ({"all": "+all"}, "all must be"),
            ({"ips": ["203.0.113.300"]}, "bad SPF address"),
            ({"ips": ["203.0.113.7/24"]}, "host bits"),
            ({"esp": "pigeon"}, "unknown ESP"),
            ({"includes": ["not a domain"]}, "include"),
        ],
    )
    def test_bad_input(self, kwargs: dict[str, object], words: str) -> None:
        """Bad input is an AuthCheckError naming it."""
        with pytest.raises(AuthCheckError, match=words):
            spf_record(**kwargs)  # type: ignore[arg-type]


class TestCountIncludes:
    def test_within_limit(self, ns: str) -> None:
        """An include worth 9 more lookups makes 10: accepted."""
        rec = spf_record(includes=["l2.chain.example.net"], count_includes=True, resolver=ns)
        assert "v=spf1 include:l2.chain.example.net ~all" == rec.value

    def test_over_limit_through_includes(self, ns: str) -> None:
        """One include worth 10 more lookups makes 11: refused, with the total."""
        with pytest.raises(AuthCheckError, match="needs 11 DNS-querying terms counting"):
            spf_record(includes=["l1.chain.example.net"], count_includes=True, resolver=ns)

    def test_own_terms_counted_too(self, ns: str) -> None:
        """a and mx add to the includes' count."""
        with pytest.raises(AuthCheckError, match="needs 11"):
            spf_record(includes=["l2.chain.example.net"], a=True, count_includes=True, resolver=ns)

    @pytest.mark.parametrize(
        ("include", "words"),
        [
            ("nospf.example.net", "no SPF record"),
            ("servfail.example.com", "SERVFAIL"),
            ("loop.example.net", "loop"),
        ],
    )
    def test_uncountable_include(self, ns: str, include: str, words: str) -> None:
        """An include without a usable record cannot be counted: refused, saying why."""
        with pytest.raises(AuthCheckError, match=words):
            spf_record(includes=[include], count_includes=True, resolver=ns)


class TestDKIMRecord:
    def test_names_and_value(self, keys: Keys) -> None:
        """The owner is selector._domainkey.domain and the value parses back to the key."""
        rec = dkim_record(keys.rsa2048, selector="s1", domain="Example.COM")
        assert "s1._domainkey.example.com" == rec.name
        assert all(len(s) <= 255 for s in rec.strings) and len(rec.strings) > 1
        parsed = parse_key_record(list(rec.strings))
        assert ("rsa", 2048) == (parsed.key_type, parsed.bits)

    def test_relative_name(self, keys: Keys) -> None:
        """Without a domain the owner is relative to the zone."""
        assert "s2._domainkey" == dkim_record(keys.ed, selector="s2").name

    def test_one_builder(self, keys: Keys) -> None:
        """The record's value is signing's ``dns_record`` (one builder), split as
        ``dns_record_strings`` splits it."""
        from mailscale.signing import dns_record, dns_record_strings

        for key in (keys.rsa2048, keys.ed):
            rec = dkim_record(key, selector="s1", domain="example.com")
            assert dns_record(key) == rec.value
            assert tuple(dns_record_strings(key)) == rec.strings

    def test_domain_needs_selector(self, keys: Keys) -> None:
        """A domain without a selector is refused: '_domainkey.domain' is no key's name."""
        with pytest.raises(AuthCheckError, match="selector"):
            dkim_record(keys.ed, domain="example.com")
        assert "@" == dkim_record(keys.ed).name


class TestDMARCRecord:
    def test_value(self) -> None:
        """Tags in canonical order; bare addresses get mailto:."""
        rec = dmarc_record(
            "quarantine",
            rua=["agg@example.com", "mailto:b@example.net"],
            ruf="f@example.com",
            pct=50,
            adkim="s",
            domain="example.com",
        )
        assert "_dmarc.example.com" == rec.name
        assert (
            "v=DMARC1; p=quarantine; pct=50; rua=mailto:agg@example.com,mailto:b@example.net;"
            " ruf=mailto:f@example.com; adkim=s"
        ) == rec.value
        assert "quarantine" == parse_dmarc(rec.value)["p"]

    @pytest.mark.parametrize(
        ("args", "kwargs", "words"),
        [
            (("block",), {}, "DMARC p .*'block'"),
            (("none",), {"pct": 101}, "pct"),
            (("none",), {"pct": "50"}, "pct"),
            (("none",), {"adkim": "x"}, "adkim"),
            (("none",), {"rua": "not an address"}, "rua"),
            (("none",), {"rua": "a@example.com\r\nX: y"}, "rua|CR or LF"),
        ],
    )
    def test_bad_input(self, args: tuple[str], kwargs: dict[str, object], words: str) -> None:
        """Bad tags are refused by name."""
        with pytest.raises(AuthCheckError, match=words):
            dmarc_record(*args, **kwargs)  # type: ignore[arg-type]

    @pytest.mark.parametrize(
        ("args", "kwargs", "tag"),
        [
            (("none; rua=mailto:x@evil.example",), {}, "p"),
            (("none",), {"sp": "reject; ruf=mailto:x@evil.example"}, "sp"),
            (("none",), {"adkim": "r; p=reject"}, "adkim"),
            (("none",), {"aspf": "s s"}, "aspf"),
            (("none",), {"fo": "1; rua=mailto:x@evil.example"}, "fo"),
            (("none",), {"fo": "1:2"}, "fo"),
            (("none",), {"fo": ""}, "fo"),
            (("none",), {"pct": -1}, "pct"),
            (("none",), {"ri": "86400"}, "ri"),
            (("none",), {"ri": -5}, "ri"),
            (("none",), {"rua": "a@example.com; p=reject"}, "rua"),
            (("none",), {"rua": "a@example.com,mailto:x@evil.example"}, "rua"),
            (("none",), {"ruf": ["f@example.com p=reject"]}, "ruf"),
            ((None,), {}, "p"),
            ((3,), {}, "p"),
            (("none",), {"sp": 1}, "sp"),
            (("none",), {"fo": 1}, "fo"),
        ],
    )
    def test_no_tag_injection(
        self, args: tuple[object], kwargs: dict[str, object], tag: str
    ) -> None:
        """Each value is validated on its own: none can smuggle in another tag."""
        with pytest.raises(AuthCheckError, match=rf"\b{tag}\b"):
            dmarc_record(*args, **kwargs)  # type: ignore[arg-type]

    def test_all_tags(self) -> None:
        """Every supported tag is written when valid, fo options joined by ':'."""
        rec = dmarc_record(
            "reject",
            sp="quarantine",
            pct=0,
            adkim="s",
            aspf="r",
            fo="0:d:s",
            ri=3600,
            rua="a@example.com",
        )
        assert (
            "v=DMARC1; p=reject; sp=quarantine; pct=0; rua=mailto:a@example.com; "
            "adkim=s; aspf=r; fo=0:d:s; ri=3600"
        ) == rec.value
        assert "3600" == parse_dmarc(rec.value)["ri"]

    def test_authorization_record(self) -> None:
        """The destination's authorization record (RFC 7489 7.1)."""
        rec = report_authorization_record("example.com", "reports.example.net")
        assert ("example.com._report._dmarc.reports.example.net", "v=DMARC1") == (
            rec.name,
            rec.value,
        )


class TestSplit:
    @pytest.mark.parametrize("size", [0, 1, 255, 256, 600, 1000])
    def test_split_joins_back(self, size: int) -> None:
        """Splitting never loses or adds a byte and respects the limit."""
        value = ("ab " * 400)[:size]
        parts = split_txt(value)
        assert value == "".join(parts)
        assert all(len(p) <= 255 for p in parts)


@pytest.fixture(scope="module")
def built_server(keys: Keys) -> Iterator[DNSServer]:
    """A zone made only of what the builders produce."""
    zone = Zone()
    spf = spf_record(ips=IPS, esp="postmark", domain=DOMAIN)
    zone.txt(spf.name, *spf.strings)
    zone.txt("spf.mtasv.net", "v=spf1 ip4:198.51.100.0/24 -all")
    for selector, key in (("rsa", keys.rsa2048), ("ed", keys.ed)):
        rec = dkim_record(key, selector=selector, domain=DOMAIN)
        zone.txt(rec.name, *rec.strings)
    dmarc = dmarc_record("reject", rua="agg@reports.example.net", domain=DOMAIN)
    zone.txt(dmarc.name, *dmarc.strings)
    auth = report_authorization_record(DOMAIN, "reports.example.net")
    zone.txt(auth.name, *auth.strings)
    with DNSServer(zone) as server:
        yield server


class TestBuiltRecordsPass:
    def test_check_domain_passes(self, built_server: DNSServer, keys: Keys) -> None:
        """Records from the builders pass check_domain with no errors or warnings."""
        report = check_domain(
            DOMAIN,
            dkim_selectors=["rsa", "ed"],
            sending_ips=IPS[:2],
            esp="postmark",
            dkim_keys={"rsa": keys.rsa2048, "ed": keys.ed},
            resolver=built_server.nameserver,
            lifetime=1,
        )
        assert ("ok", True) == (report.spf.status, report.spf.esp_include)
        assert {ip: "pass" for ip in IPS[:2]} == report.spf.results
        assert ["ok", "ok"] == [d.status for d in report.dkim]
        assert [True, True] == [d.matches_local_key for d in report.dkim]
        assert ("ok", "reject") == (report.dmarc.status, report.dmarc.policy)
        spf_dkim_dmarc = [
            f
            for f in report.findings
            if f.code.split(".")[0] in ("spf", "dkim", "dmarc") and f.severity.value != "info"
        ]
        assert [] == spf_dkim_dmarc
