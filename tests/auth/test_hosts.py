"""MX hosts, forward-confirmed reverse DNS and identifier alignment."""

from __future__ import annotations

import pytest

from mailscale.auth import DMARCReport, Severity, aligned, check_domain
from mailscale.auth._hosts import analyze_alignment

from .auth_zones import FCRDNS_FAIL_IP, GOOD, NO_PTR_IP


class TestMX:
    def test_every_host_resolves(self, opts: dict[str, object]) -> None:
        """Both MX hosts are listed in preference order with their addresses."""
        mx = check_domain(GOOD, **opts).mx  # type: ignore[arg-type]
        assert "ok" == mx.status
        assert [
            (10, f"mx1.{GOOD}", ("192.0.2.25",)),
            (20, f"mx2.{GOOD}", ("192.0.2.26", "2001:db8::26")),
        ] == [(h.preference, h.host, h.addresses) for h in mx.hosts]
        assert () == mx.findings

    def test_unresolved_host(self, opts: dict[str, object]) -> None:
        """An MX host without addresses is an error naming it; the other still resolves."""
        mx = check_domain("badmx.example.com", **opts).mx  # type: ignore[arg-type]
        assert "invalid" == mx.status
        assert [("gone.badmx.example.com", "none"), ("mx.badmx.example.com", "ok")] == [
            (h.host, h.status) for h in mx.hosts
        ]
        (f,) = mx.findings
        assert ("mx.host_unresolved", Severity.ERROR) == (f.code, f.severity)
        assert "gone.badmx.example.com" in f.message

    def test_null_mx(self, opts: dict[str, object]) -> None:
        """A null MX (RFC 7505) is a warning: bounces are lost."""
        mx = check_domain("nullmx.example.com", **opts).mx  # type: ignore[arg-type]
        assert ("null", ["mx.null"]) == (mx.status, [f.code for f in mx.findings])

    def test_no_mx(self, opts: dict[str, object]) -> None:
        """No MX is a warning."""
        mx = check_domain("split.example.net", **opts).mx  # type: ignore[arg-type]
        assert ("missing", [Severity.WARNING]) == (mx.status, [f.severity for f in mx.findings])

    def test_host_servfail(self, opts: dict[str, object]) -> None:
        """An MX host whose lookup fails is a temporary error, not 'unresolved'."""
        mx = check_domain("tempmx.example.com", **opts).mx  # type: ignore[arg-type]
        assert ("temperror", ["mx.temperror"]) == (mx.status, [f.code for f in mx.findings])

    @pytest.mark.parametrize(
        ("domain", "status"),
        [("servfail.example.com", "temperror"), ("timeout.example.com", "temperror")],
    )
    def test_mx_lookup_fails(self, opts: dict[str, object], domain: str, status: str) -> None:
        """SERVFAIL and time-out on the MX lookup are temperror."""
        assert status == check_domain(domain, **opts).mx.status  # type: ignore[arg-type]


class TestFCrDNS:
    def test_one_passes_one_fails(self, opts: dict[str, object]) -> None:
        """203.0.113.7 resolves back to itself; 203.0.113.9's PTR name points elsewhere."""
        report = check_domain(GOOD, sending_ips=["203.0.113.7", FCRDNS_FAIL_IP], **opts)  # type: ignore[arg-type]
        ok, bad = report.ptr
        assert ("203.0.113.7", "pass", (f"mail1.{GOOD}",), (f"mail1.{GOOD}",), ()) == (
            ok.ip,
            ok.status,
            ok.names,
            ok.confirmed,
            ok.findings,
        )
        assert (FCRDNS_FAIL_IP, "fail", (f"mail9.{GOOD}",), ()) == (
            bad.ip,
            bad.status,
            bad.names,
            bad.confirmed,
        )
        (f,) = bad.findings
        assert ("ptr.not_confirmed", Severity.ERROR) == (f.code, f.severity)
        assert "203.0.113.99" in f.message

    def test_ipv6(self, opts: dict[str, object]) -> None:
        """An IPv6 sending IP: PTR under ip6.arpa, confirmed by AAAA."""
        (p,) = check_domain(GOOD, sending_ips=["2001:db8::7"], **opts).ptr  # type: ignore[arg-type]
        assert ("pass", (f"mail6.{GOOD}",)) == (p.status, p.confirmed)

    def test_no_ptr(self, opts: dict[str, object]) -> None:
        """An IP without PTR is an error."""
        (p,) = check_domain(GOOD, sending_ips=[NO_PTR_IP], **opts).ptr  # type: ignore[arg-type]
        assert ("missing", ["ptr.missing"]) == (p.status, [f.code for f in p.findings])

    def test_ptr_servfail(self, opts: dict[str, object]) -> None:
        """A PTR lookup that fails is a temporary error."""
        (p,) = check_domain(GOOD, sending_ips=["203.0.113.11"], **opts).ptr  # type: ignore[arg-type]
        assert ("temperror", ["ptr.temperror"]) == (p.status, [f.code for f in p.findings])


def dmarc(adkim: str = "r", aspf: str = "r") -> DMARCReport:
    return DMARCReport(
        "v=DMARC1; p=none",
        "ok",
        "example.com",
        {"v": "DMARC1", "p": "none", "adkim": adkim, "aspf": aspf},
    )


class TestAlignment:
    @pytest.mark.parametrize(
        ("ident", "from_domain", "relaxed", "strict"),
        [
            ("example.com", "example.com", True, True),
            ("bounces.example.com", "example.com", True, False),
            ("example.com", "news.example.com", True, False),
            ("example.net", "example.com", False, False),
            ("a.example.co.uk", "b.example.co.uk", True, False),
            ("example.co.uk", "other.co.uk", False, False),
            ("EXAMPLE.com.", "example.COM", True, True),
        ],
    )
    def test_modes(self, ident: str, from_domain: str, relaxed: bool, strict: bool) -> None:
        """Relaxed compares organizational domains, strict the exact names."""
        assert (relaxed, strict) == (
            aligned(ident, from_domain, "r"),
            aligned(ident, from_domain, "s"),
        )

    def test_relaxed_policy(self) -> None:
        """A subdomain return-path aligns under aspf=r."""
        al = analyze_alignment("example.com", "bounces.example.com", "example.com", dmarc())
        assert (True, False, True, True, True) == (
            al.spf_relaxed,
            al.spf_strict,
            al.spf_aligned,
            al.dkim_strict,
            al.dkim_aligned,
        )
        assert () == al.findings

    def test_strict_policy(self) -> None:
        """The same return-path does not align under aspf=s: a warning, DKIM still aligns."""
        al = analyze_alignment("example.com", "bounces.example.com", "example.com", dmarc("s", "s"))
        assert (False, True) == (al.spf_aligned, al.dkim_aligned)
        assert ["align.spf"] == [f.code for f in al.findings]

    def test_neither_aligns(self) -> None:
        """ESP return-path and ESP d=: DMARC fails, an error."""
        al = analyze_alignment("example.com", "sendgrid.net", "sendgrid.net", dmarc())
        assert {
            "align.spf": Severity.WARNING,
            "align.dkim": Severity.WARNING,
            "align.none": Severity.ERROR,
        } == {f.code: f.severity for f in al.findings}

    def test_unknown_identifiers(self) -> None:
        """Without DKIM d=, DKIM alignment is unknown (None), never True."""
        al = analyze_alignment("example.com", "example.com", None, dmarc())
        assert (True, None, None) == (al.spf_aligned, al.dkim_aligned, al.dkim_relaxed)

    def test_from_check_domain(self, opts: dict[str, object]) -> None:
        """check_domain takes the identities as arguments."""
        report = check_domain(
            GOOD,
            dkim_selectors=["s1"],
            envelope_domain="sendgrid.net",  # type: ignore[arg-type]
            **opts,
        )
        al = report.alignment
        assert (GOOD, "sendgrid.net", GOOD, False, True) == (
            al.from_domain,
            al.envelope_domain,
            al.dkim_domain,
            al.spf_aligned,
            al.dkim_aligned,
        )
