"""check_domain as a whole: the healthy domain, resolver injection, concurrency, bad input."""

from __future__ import annotations

import asyncio
import json

import dns.asyncresolver
import dns.nameserver
import dns.resolver
import pytest

from mailscale.auth import Severity, check_domain, check_domain_async
from mailscale.errors import AuthCheckError, MailscaleError
from peers.dns_server import DNSServer

from .auth_zones import GOOD, GOOD_IPS, GOOD_SELECTORS


class TestHealthyDomain:
    def test_no_errors_no_warnings(self, opts: dict[str, object]) -> None:
        """The healthy domain has only the Ed25519 note."""
        report = check_domain(
            GOOD, dkim_selectors=GOOD_SELECTORS, sending_ips=GOOD_IPS, esp="sendgrid", **opts
        )  # type: ignore[arg-type]
        assert report.ok
        assert [("dkim.ed25519", Severity.INFO)] == [(f.code, f.severity) for f in report.findings]
        assert ("ok", "ok", "ok") == (report.spf.status, report.dmarc.status, report.mx.status)
        assert ["ok", "ok"] == [d.status for d in report.dkim]
        assert ["pass", "pass"] == [p.status for p in report.ptr]
        # No envelope domain given: SPF alignment is unknown, never assumed.
        assert (None, True) == (report.alignment.spf_aligned, report.alignment.dkim_aligned)

    def test_to_dict_is_json(self, opts: dict[str, object]) -> None:
        """to_dict() is JSON-serializable and carries the findings and verdict."""
        report = check_domain("two.example.net", **opts)  # type: ignore[arg-type]
        data = json.loads(json.dumps(report.to_dict()))
        assert data["ok"] is False
        assert "spf.multiple" in [f["code"] for f in data["findings"]]
        assert "error" == data["findings"][0]["severity"]
        assert "invalid" == data["spf"]["status"]


class TestBrokenDomain:
    def test_every_problem_found(self, opts: dict[str, object]) -> None:
        """The broken domain's problems are all reported, each with its severity."""
        report = check_domain(
            "broken.example.com",
            dkim_selectors=["s1", "s2"],
            sending_ips=["203.0.113.7", "203.0.113.9"],
            esp="sendgrid",
            envelope_domain="bounces.example.net",
            **opts,
        )  # type: ignore[arg-type]
        assert {
            ("spf.include_loop", Severity.ERROR),
            ("spf.all_neutral", Severity.WARNING),
            ("spf.esp_include_missing", Severity.ERROR),
            ("spf.ip_not_permitted", Severity.ERROR),
            ("dkim.key_weak", Severity.WARNING),
            ("dkim.revoked", Severity.ERROR),
            ("dmarc.tag_invalid", Severity.WARNING),
            ("dmarc.policy_none", Severity.INFO),
            ("dmarc.report_unauthorized", Severity.WARNING),
            ("mx.host_unresolved", Severity.ERROR),
            ("ptr.not_confirmed", Severity.ERROR),
            ("align.spf", Severity.WARNING),
        } == {(f.code, f.severity) for f in report.findings}
        # 203.0.113.7 is listed before the include loop is reached; .9 hits the loop.
        assert {"203.0.113.7": "pass", "203.0.113.9": "permerror"} == report.spf.results
        assert not report.ok


class TestResolverInjection:
    def test_sync_resolver(self, dns_server: DNSServer) -> None:
        """A configured dns.resolver.Resolver lends its nameserver and port."""
        res = dns.resolver.Resolver(configure=False)
        res.nameservers = [dns_server.host]
        res.port = dns_server.port
        res.lifetime = 1
        assert "ok" == check_domain(GOOD, resolver=res).spf.status

    def test_async_resolver(self, dns_server: DNSServer) -> None:
        """A dns.asyncresolver.Resolver is used as it is."""
        res = dns.asyncresolver.Resolver(configure=False)
        res.nameservers = [dns.nameserver.Do53Nameserver(dns_server.host, dns_server.port)]
        assert "ok" == check_domain(GOOD, resolver=res).dmarc.status

    def test_callers_resolver_not_changed(self, dns_server: DNSServer) -> None:
        """Time-outs given to the check do not change the caller's resolver."""
        res = dns.asyncresolver.Resolver(configure=False)
        res.nameservers = [dns.nameserver.Do53Nameserver(dns_server.host, dns_server.port)]
        res.lifetime = 3.0
        check_domain(GOOD, resolver=res, lifetime=0.5)
        assert 3.0 == res.lifetime

    def test_list_of_nameservers(self, ns: str) -> None:
        """A list of host:port strings works."""
        assert "ok" == check_domain(GOOD, resolver=[ns]).spf.status

    @pytest.mark.parametrize(
        "bad", ["dns.example.com", "127.0.0.1:0", "127.0.0.1:99999", "[::1]x", ""]
    )
    def test_bad_nameserver(self, bad: str) -> None:
        """A malformed nameserver is an AuthCheckError."""
        with pytest.raises(AuthCheckError, match=r"nameserver|resolver"):
            check_domain(GOOD, resolver=bad if bad else [])

    def test_inside_running_loop(self, opts: dict[str, object]) -> None:
        """The sync form works when called from code that runs an event loop."""

        async def inner() -> str:
            return check_domain(GOOD, **opts).spf.status  # type: ignore[arg-type]

        assert "ok" == asyncio.run(inner())

    def test_async_form(self, opts: dict[str, object]) -> None:
        """check_domain_async gives the same report."""
        report = asyncio.run(check_domain_async(GOOD, sending_ips=GOOD_IPS, **opts))  # type: ignore[arg-type]
        assert {ip: "pass" for ip in GOOD_IPS} == report.spf.results


class TestConcurrency:
    def test_lookups_run_together(self, ns: str, dns_server: DNSServer) -> None:
        """Independent lookups are in flight together: all are asked before any is retried."""
        before = len(dns_server.queries)
        report = check_domain("timeout.example.com", resolver=ns, timeout=0.3, lifetime=0.6)
        assert ("temperror",) * 3 == (report.spf.status, report.dmarc.status, report.mx.status)
        asked = [q[:2] for q in dns_server.queries[before:]]
        first_retry = next(i for i, q in enumerate(asked) if q in asked[:i])
        expected = {
            ("timeout.example.com", "TXT"),
            ("_dmarc.timeout.example.com", "TXT"),
            ("timeout.example.com", "MX"),
        }
        # One after another, the first name would be retried before the second was asked.
        assert expected <= set(asked[:first_retry])

    def test_shared_lookups_asked_once(
        self, opts: dict[str, object], dns_server: DNSServer
    ) -> None:
        """The SPF TXT is fetched once although the analysis and check_host both need it."""
        before = len(dns_server.queries)
        check_domain("split.example.net", sending_ips=["203.0.113.7", "203.0.113.8"], **opts)  # type: ignore[arg-type]
        asked = [q for q in dns_server.queries[before:] if q[:2] == ("split.example.net", "TXT")]
        assert 1 == len(asked)


class TestBadInput:
    @pytest.mark.parametrize(
        "domain", ["", ".", "a..b", "-bad.example.com", "x" * 64 + ".com", "sp ace.example.com"]
    )
    def test_bad_domain(self, opts: dict[str, object], domain: str) -> None:
        """A malformed domain is an AuthCheckError (a MailscaleError and ValueError)."""
        with pytest.raises(AuthCheckError, match="domain") as info:
            check_domain(domain, **opts)  # type: ignore[arg-type]
        assert isinstance(info.value, MailscaleError) and isinstance(info.value, ValueError)

    def test_bad_ip(self, opts: dict[str, object]) -> None:
        """A sending IP that is not an address is refused by name."""
        with pytest.raises(AuthCheckError, match=r"999\.1\.1\.1"):
            check_domain(GOOD, sending_ips=["999.1.1.1"], **opts)  # type: ignore[arg-type]

    def test_domain_is_normalized(self, opts: dict[str, object]) -> None:
        """Case and a final dot do not matter."""
        assert GOOD == check_domain("Good.Example.COM.", **opts).domain  # type: ignore[arg-type]


class TestSideEffects:
    def test_logs_one_event_and_prints_nothing(
        self, opts: dict[str, object], capsys: pytest.CaptureFixture[str]
    ) -> None:
        """A check logs one auth.check_done event with counts and prints nothing."""
        import structlog
        from structlog.testing import capture_logs

        try:
            with capture_logs() as logs:
                check_domain("two.example.net", **opts)  # type: ignore[arg-type]
        finally:
            # capture_logs leaves structlog marked as configured (printing to stdout).
            structlog.reset_defaults()
        events = [e for e in logs if e["event"] == "auth.check_done"]
        assert 1 == len(events)
        # spf.multiple and dmarc.missing
        assert ("two.example.net", 2) == (events[0]["domain"], events[0]["errors"])
        assert events[0]["queries"] >= 3
        assert ("", "") == capsys.readouterr()


class TestNameserverStrings:
    @pytest.mark.parametrize(
        ("text", "expected"),
        [
            ("127.0.0.1", ("127.0.0.1", 53)),
            ("127.0.0.1:5353", ("127.0.0.1", 5353)),
            ("::1", ("::1", 53)),
            ("[::1]:5353", ("::1", 5353)),
            ("[2001:db8::1]", ("2001:db8::1", 53)),
        ],
    )
    def test_forms(self, text: str, expected: tuple[str, int]) -> None:
        """host, host:port, bare IPv6 and [IPv6]:port are understood."""
        from mailscale.auth._dns import parse_nameserver

        assert expected == parse_nameserver(text)


class TestLookupStatus:
    @pytest.mark.parametrize("name", ["x" * 64 + ".example.com", ".".join(["y" * 63] * 5)])
    def test_invalid_name_is_not_temporary(self, ns: str, name: str) -> None:
        """A name DNS cannot carry is 'invalid_name': neither temporary nor a void answer."""
        from mailscale._sync import run_sync
        from mailscale.auth._dns import DNSClient, make_resolver

        lookup = run_sync(DNSClient(make_resolver(ns)).query(name, "A"))
        assert ("invalid_name", False, False) == (lookup.status, lookup.temporary, lookup.void)
        assert "not a valid DNS name" in lookup.describe()


class TestAlignmentStatus:
    def test_ok_when_aligned_and_fetched(self, opts: dict[str, object]) -> None:
        """Aligned identifiers whose records were fetched: ok."""
        report = check_domain(GOOD, dkim_selectors=["s1"], envelope_domain=GOOD, **opts)  # type: ignore[arg-type]
        assert "ok" == report.alignment.status

    def test_dkim_temperror_is_not_ok(self, opts: dict[str, object]) -> None:
        """DKIM d= aligns, but its key could not be fetched: alignment is unknown, not ok."""
        report = check_domain("dkimfail.example.com", dkim_selectors=["s1"], **opts)  # type: ignore[arg-type]
        assert ("temperror", True, "unknown") == (
            report.dkim[0].status,
            report.alignment.dkim_aligned,
            report.alignment.status,
        )

    def test_dmarc_temperror_leaves_differing_modes_unknown(self, opts: dict[str, object]) -> None:
        """Without the DMARC record the mode is unknown: relaxed-only alignment is unknown."""
        report = check_domain(
            "servfail.example.com",
            envelope_domain="b.servfail.example.com",  # type: ignore[arg-type]
            **opts,
        )
        assert (True, False, None, "unknown") == (
            report.alignment.spf_relaxed,
            report.alignment.spf_strict,
            report.alignment.spf_aligned,
            report.alignment.status,
        )

    def test_fail_when_nothing_aligns(self, opts: dict[str, object]) -> None:
        """A known, unaligned envelope domain and no DKIM domain: fail."""
        report = check_domain(GOOD, envelope_domain="example.net", **opts)  # type: ignore[arg-type]
        assert "fail" == report.alignment.status
