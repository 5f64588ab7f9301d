"""SPF: syntax, record-wide limits, loops, check_host and macros (RFC 7208)."""

from __future__ import annotations

import ipaddress

import pytest

from mailscale._sync import run_sync
from mailscale.auth import ESP_INCLUDES, SPFResult, check_domain, parse_spf
from mailscale.auth._dns import DNSClient, make_resolver
from mailscale.auth._model import Severity
from mailscale.auth._spf_eval import MacroContext
from mailscale.auth.spf import check_host_async, expand_macros
from mailscale.errors import AuthCheckError

from .auth_zones import GOOD, GOOD_IPS


def host(ns: str, ip: str, domain: str, sender: str | None = None) -> tuple[SPFResult, str]:
    async def go() -> tuple[SPFResult, str]:
        dns = DNSClient(make_resolver(ns, timeout=0.5, lifetime=1.0))
        return await check_host_async(dns, ip, domain, sender=sender)

    return run_sync(go())


class TestParse:
    def test_terms_and_qualifiers(self) -> None:
        """Every mechanism and modifier is parsed with its qualifier and value."""
        rec = parse_spf(
            "v=spf1 ip4:192.0.2.0/24 ip6:2001:db8::/32 a mx:mx.example.com/24//64 "
            "-ptr ~exists:%{i}.x.example.com ?include:example.net redirect=example.org"
        )
        got = [(t.name, t.qualifier, t.value, t.cidr4, t.cidr6) for t in rec.terms]
        assert [
            ("ip4", "+", "192.0.2.0", 24, None),
            ("ip6", "+", "2001:db8::", None, 32),
            ("a", "+", None, None, None),
            ("mx", "+", "mx.example.com", 24, 64),
            ("ptr", "-", None, None, None),
            ("exists", "~", "%{i}.x.example.com", None, None),
            ("include", "?", "example.net", None, None),
            ("redirect", "", "example.org", None, None),
        ] == got
        assert "example.org" == rec.redirect
        assert 6 == rec.lookup_terms

    def test_case_and_extra_spaces(self) -> None:
        """Mechanism names are case-insensitive and runs of spaces are allowed."""
        rec = parse_spf("V=SPF1   IP4:192.0.2.1   -ALL ")
        assert ["ip4", "all"] == [t.name for t in rec.terms]

    @pytest.mark.parametrize(
        ("record", "words"),
        [
            ("v=spf1 ip4:192.0.2.300 -all", "bad address"),
            ("v=spf1 ip4:2001:db8::1 -all", "IPv6"),
            ("v=spf1 ip4:192.0.2.0/33", "prefix"),
            ("v=spf1 a/129", "prefix"),
            ("v=spf1 foo:bar", "unknown SPF mechanism"),
            ("v=spf1 include", "needs ':domain'"),
            ("v=spf1 include:localhost", "fully qualified"),
            ("v=spf1 all:x", "takes no argument"),
            ("v=spf1 redirect=a.example redirect=b.example", "more than once"),
            ("v=spf1 exists:%{q}.example.com", "unknown macro letter"),
            ("v=spf1 exists:%{i0}.example.com", "zero labels"),
            ("v=spf1 exists:%x.example.com", "bad macro"),
            ("v=spf10 -all", "not an SPF record"),
            ("spf1 -all", "not an SPF record"),
        ],
    )
    def test_syntax_errors(self, record: str, words: str) -> None:
        """A malformed term raises AuthCheckError naming the problem."""
        with pytest.raises(AuthCheckError, match=words):
            parse_spf(record)


class TestMacros:
    CTX = MacroContext(
        ipaddress.ip_address("192.0.2.3"),
        "strong-bad@email.example.com",
        "email.example.com",
        "mx.example.org",
    )

    @pytest.mark.parametrize(
        ("macro", "expected"),
        [  # RFC 7208 section 7.4's examples
            ("%{s}", "strong-bad@email.example.com"),
            ("%{o}", "email.example.com"),
            ("%{d}", "email.example.com"),
            ("%{d4}", "email.example.com"),
            ("%{d3}", "email.example.com"),
            ("%{d2}", "example.com"),
            ("%{d1}", "com"),
            ("%{dr}", "com.example.email"),
            ("%{d2r}", "example.email"),
            ("%{l}", "strong-bad"),
            ("%{l-}", "strong.bad"),
            ("%{lr}", "strong-bad"),
            ("%{lr-}", "bad.strong"),
            ("%{l1r-}", "strong"),
            ("%{ir}.%{v}._spf.%{d2}", "3.2.0.192.in-addr._spf.example.com"),
            ("%{lr-}.lp._spf.%{d2}", "bad.strong.lp._spf.example.com"),
            ("%{h}", "mx.example.org"),
            ("%%%_%-", "% %20"),
            ("%{S}", "strong-bad%40email.example.com"),
        ],
    )
    def test_rfc_examples(self, macro: str, expected: str) -> None:
        """Macro expansion gives RFC 7208's own examples."""
        assert expected == expand_macros(macro, self.CTX)

    @pytest.mark.parametrize(
        ("macro", "expected"),
        [
            ("%{dR}", "com.example.email"),
            ("%{d2R}", "example.email"),
            ("%{IR}", "3.2.0.192"),
            ("%{LR-}", "bad.strong"),
            ("%{V}", "in-addr"),
            ("%{O}", "email.example.com"),
        ],
    )
    def test_case_insensitive(self, macro: str, expected: str) -> None:
        """Letters and the 'r' transformer take either case; upper-case letters URL-escape."""
        assert expected == expand_macros(macro, self.CTX)
        record = parse_spf(f"v=spf1 exists:{macro}.x.example.com -all")
        assert f"{macro}.x.example.com" == record.terms[0].value

    def test_ipv6(self) -> None:
        """%{i} of an IPv6 address is its dot-separated nibbles; %{v} is ip6."""
        ctx = MacroContext(ipaddress.ip_address("2001:db8::cb01"), "a@b.example", "b.example", "h")
        expected = "1.0.b.c." + "0." * 20 + "8.b.d.0.1.0.0.2.ip6"
        assert expected == expand_macros("%{ir}.%{v}", ctx)

    def test_long_result_is_trimmed(self) -> None:
        """An expansion over 253 characters loses labels from the left (7.3)."""
        ctx = MacroContext(
            ipaddress.ip_address("192.0.2.3"), ("x" * 60 + ".") * 5 + "example", "d.example", "h"
        )
        out = expand_macros("%{o}.example.com", ctx)
        assert len(out) <= 253 and out.endswith(".example.example.com")


class TestCheckHost:
    @pytest.mark.parametrize(
        ("ip", "domain", "expected"),
        [
            ("203.0.113.7", GOOD, "pass"),
            ("198.51.100.44", GOOD, "pass"),  # through include:sendgrid.net
            ("192.0.2.1", GOOD, "fail"),
            ("203.0.113.7", "redirect.example.net", "pass"),
            ("203.0.113.99", "redirect.example.net", "fail"),
            ("203.0.113.8", "split.example.net", "pass"),
            ("203.0.113.9", "softfail.example.net", "softfail"),
            ("203.0.113.9", "neutral.example.net", "neutral"),
            ("203.0.113.9", "plusall.example.net", "pass"),
            ("203.0.113.9", "noall.example.net", "neutral"),
            ("198.51.100.5", "mech.example.net", "pass"),  # a:host
            ("192.0.2.200", "mech.example.net", "pass"),  # mx/24
            ("192.0.3.1", "mech.example.net", "fail"),
            ("2001:db8::5", "mech.example.net", "pass"),  # ip6
            ("203.0.113.7", "ptr.example.net", "pass"),  # PTR mail1.good.example.com
            ("203.0.113.9", "ptr.example.net", "fail"),  # PTR not forward-confirmed
            ("203.0.113.12", "ptr2.example.net", "pass"),  # one PTR name SERVFAILs: skipped
            ("203.0.113.8", "redirall.example.net", "fail"),  # redirect ignored beside -all
            ("203.0.113.7", "chain.example.net", "permerror"),
            ("203.0.113.7", "ten.example.net", "pass"),
            ("203.0.113.7", "loop.example.net", "permerror"),
            ("203.0.113.7", "void.example.net", "permerror"),
            ("203.0.113.7", "twovoid.example.net", "pass"),
            ("203.0.113.7", "voidexists.example.net", "permerror"),
            ("203.0.113.7", "v6void.example.net", "pass"),  # A records: no void lookup
            ("2001:db8::7", "v6void.example.net", "permerror"),  # no AAAA: 3 void lookups
            ("203.0.113.7", "macrovoid.example.net", "permerror"),
            ("203.0.113.7", "manymx.example.net", "permerror"),
            ("203.0.113.7", "two.example.net", "permerror"),
            ("203.0.113.7", "syntax.example.net", "permerror"),
            ("203.0.113.7", "badinclude.example.net", "permerror"),
            ("203.0.113.7", "nospf.example.net", "none"),
            ("203.0.113.7", "nothing-here.example.net", "none"),
            ("203.0.113.7", "tempinclude.example.net", "temperror"),
            ("203.0.113.7", "servfail.example.com", "temperror"),
            ("203.0.113.7", "timeout.example.com", "temperror"),
        ],
    )
    def test_results(self, ns: str, ip: str, domain: str, expected: str) -> None:
        """check_host gives the RFC 7208 result for each zone, an SPFResult equal to its string."""
        result = host(ns, ip, domain)[0]
        assert SPFResult(expected) is result
        assert expected == result

    def test_macros_use_the_sender(self, ns: str) -> None:
        """exists: with %{ir} and %{l1r-} matches only for the listed IP and local-part."""
        sender = "bounce-user@macro.example.net"
        assert "pass" == host(ns, "203.0.113.7", "macro.example.net", sender)[0]
        assert "fail" == host(ns, "203.0.113.8", "macro.example.net", sender)[0]
        assert "fail" == host(ns, "203.0.113.7", "macro.example.net", "other@macro.example.net")[0]

    def test_name_too_long_for_dns_is_no_match(self, ns: str) -> None:
        """A macro expanding to a label over 63 octets matches nothing: not temperror."""
        domain = "longlocal.example.net"
        assert "pass" == host(ns, "203.0.113.7", domain, f"ok@{domain}")[0]
        assert "fail" == host(ns, "203.0.113.7", domain, f"{'x' * 64}@{domain}")[0]

    def test_reason_names_the_matching_term(self, ns: str) -> None:
        """The reason says which term matched where."""
        assert ("fail", "matched -all at _spf.redirect.example.net") == host(
            ns, "203.0.113.99", "redirect.example.net"
        )

    def test_limit_reason(self, ns: str) -> None:
        """permerror explains which limit was hit."""
        assert "more than 10" in host(ns, "203.0.113.7", "chain.example.net")[1]
        assert "more than 2 void" in host(ns, "203.0.113.7", "void.example.net")[1]


def spf_of(opts: dict[str, object], domain: str, **kw: object):  # type: ignore[no-untyped-def]
    return check_domain(domain, **opts, **kw).spf  # type: ignore[arg-type]


class TestAnalysis:
    def test_healthy(self, opts: dict[str, object]) -> None:
        """A sound record: one lookup, no void lookups, both IPs pass, ESP include found."""
        spf = spf_of(opts, GOOD, sending_ips=GOOD_IPS, esp="sendgrid")
        assert ("ok", 1, 0, True) == (spf.status, spf.lookups, spf.void_lookups, spf.esp_include)
        assert {ip: "pass" for ip in GOOD_IPS} == spf.results
        assert all(r is SPFResult.PASS for r in spf.results.values())
        assert () == spf.findings

    def test_chain_eleven_deep(self, opts: dict[str, object]) -> None:
        """An include chain 11 deep counts 11 lookups: too many."""
        spf = spf_of(opts, "chain.example.net")
        assert ("invalid", 11) == (spf.status, spf.lookups)
        assert {"spf.too_many_lookups", "spf.walk_stopped"} == {f.code for f in spf.findings}

    def test_chain_ten_deep_is_valid(self, opts: dict[str, object]) -> None:
        """Exactly 10 lookups is within the limit."""
        spf = spf_of(opts, "ten.example.net")
        assert ("ok", 10) == (spf.status, spf.lookups)

    def test_include_loop(self, opts: dict[str, object]) -> None:
        """An include loop is reported with its path."""
        spf = spf_of(opts, "loop.example.net")
        assert "invalid" == spf.status
        (loop,) = [f for f in spf.findings if f.code == "spf.include_loop"]
        assert "loop.example.net -> loop2.example.net -> loop.example.net" in loop.message

    def test_redirect_ignored_beside_all(self, opts: dict[str, object]) -> None:
        """redirect= beside 'all' is ignored: not followed, not counted, warned about."""
        spf = spf_of(opts, "redirall.example.net")
        assert ("ok", 0) == (spf.status, spf.lookups)
        assert ["spf.redirect_ignored"] == [f.code for f in spf.findings]

    def test_redirect_loop(self, opts: dict[str, object]) -> None:
        """A redirect loop is reported; check_host gives permerror."""
        spf = spf_of(opts, "rloop.example.net", sending_ips=["203.0.113.7"])
        assert ("invalid", {"203.0.113.7": "permerror"}) == (spf.status, spf.results)
        assert ["spf.redirect_loop"] == [f.code for f in spf.findings if f.code.endswith("_loop")]

    def test_large_record_over_tcp(self, opts: dict[str, object], dns_server) -> None:  # type: ignore[no-untyped-def]
        """A record too large for UDP is fetched again over TCP and parsed whole."""
        spf = spf_of(opts, "big.example.net", sending_ips=["198.51.100.100"])
        assert ("ok", {"198.51.100.100": "pass"}) == (spf.status, spf.results)
        assert spf.record is not None and 101 == len(parse_spf(spf.record).terms)
        transports = {q[2] for q in dns_server.queries if q[:2] == ("big.example.net", "TXT")}
        assert {"udp", "tcp"} == transports

    def test_three_void_lookups(self, opts: dict[str, object]) -> None:
        """Three names without records are three void lookups: over the limit of 2."""
        spf = spf_of(opts, "void.example.net")
        assert ("invalid", 3, 3) == (spf.status, spf.lookups, spf.void_lookups)
        assert {"spf.void_lookups"} == {f.code for f in spf.findings}

    def test_exists_void_lookups_counted(self, opts: dict[str, object]) -> None:
        """exists: names without records are void lookups in the walk too."""
        spf = spf_of(opts, "voidexists.example.net")
        assert ("invalid", 3, 3) == (spf.status, spf.lookups, spf.void_lookups)
        assert {"spf.void_lookups"} == {f.code for f in spf.findings}

    def test_void_lookups_per_family(self, opts: dict[str, object]) -> None:
        """a: names with only A records are void for IPv6 senders: the worse family counts."""
        spf = spf_of(opts, "v6void.example.net")
        assert ("invalid", 3, 3) == (spf.status, spf.lookups, spf.void_lookups)
        assert {"spf.void_lookups", "spf.void_lookups_family"} == {f.code for f in spf.findings}
        (family,) = [f for f in spf.findings if f.code == "spf.void_lookups_family"]
        assert "IPv4 senders 0, IPv6 senders 3" in family.message

    def test_permerror_for_a_sending_ip_is_invalid(self, opts: dict[str, object]) -> None:
        """A record the walk finds sound is invalid when check_host gives permerror."""
        assert "ok" == spf_of(opts, "macrovoid.example.net").status
        spf = spf_of(opts, "macrovoid.example.net", sending_ips=["203.0.113.7"])
        assert ("invalid", {"203.0.113.7": "permerror"}) == (spf.status, spf.results)
        (f,) = spf.findings
        assert "permerror" in f.message and Severity.ERROR == f.severity

    def test_mx_with_more_than_ten_hosts(self, opts: dict[str, object]) -> None:
        """An mx term whose domain has 11 MX hosts is an error (check_host: permerror)."""
        spf = spf_of(opts, "manymx.example.net")
        assert ("invalid", 1) == (spf.status, spf.lookups)
        (f,) = spf.findings
        assert ("spf.mx_too_many", Severity.ERROR) == (f.code, f.severity)
        assert "11 MX hosts" in f.message

    def test_two_void_lookups_allowed(self, opts: dict[str, object]) -> None:
        """Two void lookups are within the limit."""
        spf = spf_of(opts, "twovoid.example.net")
        assert ("ok", 2) == (spf.status, spf.void_lookups)

    def test_redirect(self, opts: dict[str, object]) -> None:
        """redirect= is followed and counted."""
        spf = spf_of(opts, "redirect.example.net", sending_ips=["203.0.113.7"])
        assert ("ok", 1, {"203.0.113.7": "pass"}) == (spf.status, spf.lookups, spf.results)

    def test_two_records(self, opts: dict[str, object]) -> None:
        """Two SPF records are an error, with both in the finding."""
        spf = spf_of(opts, "two.example.net")
        assert "invalid" == spf.status
        (f,) = spf.findings
        assert ("spf.multiple", Severity.ERROR) == (f.code, f.severity)
        assert f.record is not None and "203.0.113.7" in f.record and "203.0.113.8" in f.record

    def test_split_record(self, opts: dict[str, object]) -> None:
        """A record split into several strings is joined without separators."""
        spf = spf_of(opts, "split.example.net")
        assert "v=spf1 ip4:203.0.113.7 ip4:203.0.113.8 -all" == spf.record

    @pytest.mark.parametrize(
        ("domain", "code", "severity"),
        [
            ("plusall.example.net", "spf.all_pass", Severity.ERROR),
            ("neutral.example.net", "spf.all_neutral", Severity.WARNING),
            ("ptr.example.net", "spf.ptr", Severity.WARNING),
            ("noall.example.net", "spf.no_all", Severity.WARNING),
            ("syntax.example.net", "spf.syntax", Severity.ERROR),
            ("badinclude.example.net", "spf.include_missing", Severity.ERROR),
            ("nothing-here.example.net", "spf.missing", Severity.ERROR),
            ("servfail.example.com", "spf.temperror", Severity.ERROR),
            ("tempinclude.example.net", "spf.temperror", Severity.ERROR),
        ],
    )
    def test_flagged(
        self, opts: dict[str, object], domain: str, code: str, severity: Severity
    ) -> None:
        """Weak, discouraged or broken records are flagged with a stable code."""
        spf = spf_of(opts, domain)
        assert [severity] == [f.severity for f in spf.findings if f.code == code]

    def test_servfail_is_not_missing(self, opts: dict[str, object]) -> None:
        """SERVFAIL is a temporary error, never 'no record'."""
        spf = spf_of(opts, "servfail.example.com")
        assert "temperror" == spf.status
        assert "spf.missing" not in {f.code for f in spf.findings}
        assert "SERVFAIL" in spf.findings[0].message

    def test_timeout_is_not_missing(self, opts: dict[str, object]) -> None:
        """A time-out is a temporary error, never 'no record'."""
        spf = spf_of(opts, "timeout.example.com")
        assert "temperror" == spf.status
        assert ["spf.temperror"] == [f.code for f in spf.findings]
        assert "time-out" in spf.findings[0].message

    def test_nxdomain_is_told_apart(self, opts: dict[str, object]) -> None:
        """A domain that does not exist is 'missing', and the message says NXDOMAIN."""
        spf = spf_of(opts, "nothing-here.example.net")
        assert "missing" == spf.status
        assert "NXDOMAIN" in spf.findings[0].message
        assert "nothing-here.example.net" == spf.findings[0].record
        nodata = spf_of(opts, "nospf.example.net")
        assert "NXDOMAIN" not in nodata.findings[0].message

    @pytest.mark.parametrize("esp", sorted(ESP_INCLUDES))
    def test_esp_include(self, opts: dict[str, object], esp: str) -> None:
        """Only SendGrid's include is present in the healthy record."""
        spf = spf_of(opts, GOOD, esp=esp)
        assert (esp == "sendgrid") == spf.esp_include
        assert (esp != "sendgrid") == ("spf.esp_include_missing" in {f.code for f in spf.findings})

    def test_ip_not_permitted(self, opts: dict[str, object]) -> None:
        """A sending IP the record does not list is an error with its result."""
        spf = spf_of(opts, GOOD, sending_ips=["192.0.2.77"])
        assert {"192.0.2.77": "fail"} == spf.results
        (f,) = spf.findings
        assert "spf.ip_not_permitted" == f.code and "192.0.2.77" in f.message
        assert spf.record == f.record

    def test_unknown_esp(self, opts: dict[str, object]) -> None:
        """An unknown ESP name is refused."""
        with pytest.raises(AuthCheckError, match="unknown ESP"):
            spf_of(opts, GOOD, esp="pigeon")


class TestDeprecatedNames:
    @pytest.mark.parametrize(
        ("module", "old", "new"),
        [
            ("mailscale.auth.spf", "check_host", "check_host_async"),
            ("mailscale.auth.spf", "analyze_spf", "analyze_spf_async"),
            ("mailscale.auth.spf", "fetch_spf", "fetch_spf_async"),
            ("mailscale.auth.dkim", "analyze_dkim", "analyze_dkim_async"),
            ("mailscale.auth.dmarc", "analyze_dmarc", "analyze_dmarc_async"),
        ],
    )
    def test_old_coroutine_name_warns(self, module: str, old: str, new: str) -> None:
        """A coroutine's name before the ``_async`` suffix still resolves, with a warning."""
        import importlib

        mod = importlib.import_module(module)
        with pytest.warns(DeprecationWarning, match=rf"{module}\.{old} is deprecated.*{new}"):
            value = getattr(mod, old)
        assert getattr(mod, new) is value

    def test_unknown_name(self) -> None:
        """An unknown attribute is still an AttributeError naming it."""
        import mailscale.auth.spf

        with pytest.raises(AttributeError, match="no_such_name"):
            mailscale.auth.spf.no_such_name  # noqa: B018
