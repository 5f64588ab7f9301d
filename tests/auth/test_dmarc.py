"""DMARC: discovery with organizational-domain fallback, tags, report authorization."""

from __future__ import annotations

import pytest

from mailscale.auth import (
    DMARCReport,
    Policy,
    Severity,
    check_domain,
    organizational_domain,
    parse_dmarc,
)
from mailscale.errors import AuthCheckError

from .auth_zones import GOOD, LONG_DEST, REPORTS


def dmarc_of(opts: dict[str, object], domain: str) -> DMARCReport:
    return check_domain(domain, **opts).dmarc  # type: ignore[arg-type]


def codes(report: DMARCReport) -> dict[str, Severity]:
    return {f.code: f.severity for f in report.findings}


class TestParse:
    def test_tags(self) -> None:
        """Tags are returned as published, names lower-cased."""
        tags = parse_dmarc(
            "v=DMARC1;p=quarantine; SP=reject ;pct=50; rua=mailto:a@example.com!10m,"
            "mailto:b@example.net; adkim=s; aspf=r; fo=0:1:d:s; ri=3600; rf=afrf"
        )
        assert {
            "v": "DMARC1",
            "p": "quarantine",
            "sp": "reject",
            "pct": "50",
            "rua": "mailto:a@example.com!10m,mailto:b@example.net",
            "adkim": "s",
            "aspf": "r",
            "fo": "0:1:d:s",
            "ri": "3600",
            "rf": "afrf",
        } == tags

    @pytest.mark.parametrize(
        ("record", "words"),
        [
            ("v=DMARC1; p=maybe", "p='maybe'"),
            ("v=DMARC1", "no p="),
            ("v=DMARC1; p=none; sp=all", "sp='all'"),
            ("v=DMARC1; p=none; pct=101", "pct"),
            ("v=DMARC1; p=none; pct=-1", "pct"),
            ("v=DMARC1; p=none; adkim=x", "adkim"),
            ("v=DMARC1; p=none; aspf=relaxed", "aspf"),
            ("v=DMARC1; p=none; fo=2", "fo="),
            ("v=DMARC1; p=none; rua=reports@example.com", "not a mailto"),
            ("v=DMARC1; p=none; rua=mailto:nobody", "not a valid mailto"),
            ("v=DMARC1; p=none; ri=daily", "ri="),
            ("v=DMARC1; p=none; rf=json", "rf="),
            ("v=DMARC1; p=none; p=reject", "more than once"),
            ("v=DMARC1; p=none; junk", "malformed"),
            ("p=none; v=DMARC1", "not a DMARC record"),
            ("v=dmarc1; p=none", "not a DMARC record"),
            (" v=DMARC1; p=none", "not a DMARC record"),
            ("\tv=DMARC1; p=none", "not a DMARC record"),
        ],
    )
    def test_bad_tags(self, record: str, words: str) -> None:
        """A bad tag raises AuthCheckError naming it."""
        with pytest.raises(AuthCheckError, match=words):
            parse_dmarc(record)


class TestOrganizationalDomain:
    @pytest.mark.parametrize(
        ("domain", "expected"),
        [
            ("news.good.example.com", "example.com"),
            ("example.com", "example.com"),
            ("a.b.example.co.uk", "example.co.uk"),
            ("mail.shop.test", "shop.test"),
            ("co.uk", "co.uk"),
        ],
    )
    def test_public_suffix_aware(self, domain: str, expected: str) -> None:
        """The organizational domain is one label below the public suffix."""
        assert expected == organizational_domain(domain)


class TestDiscovery:
    def test_healthy(self, opts: dict[str, object]) -> None:
        """p=reject with an internal rua: no findings at all."""
        report = dmarc_of(opts, GOOD)
        assert ("ok", GOOD, "reject", {}) == (
            report.status,
            report.found_at,
            report.policy,
            codes(report),
        )

    def test_fallback_to_organizational_domain(self, opts: dict[str, object], dns_server) -> None:  # type: ignore[no-untyped-def]
        """With no record of its own, a subdomain falls back to the organizational domain."""
        report = dmarc_of(opts, "news.good.example.com")
        # good.example.com is not the organizational domain (example.com is), so no record.
        assert "missing" == report.status
        assert "_dmarc.example.com" in report.findings[0].message
        names = [q[0] for q in dns_server.queries]
        assert "_dmarc.news.good.example.com" in names and "_dmarc.example.com" in names

    def test_fallback_finds_the_org_record(self, opts: dict[str, object]) -> None:
        """A subdomain without a record inherits the organizational domain's, noted as info."""
        report = dmarc_of(opts, "mail.shop.test")
        assert ("ok", "shop.test", "quarantine") == (report.status, report.found_at, report.policy)
        assert Severity.INFO == codes(report)["dmarc.org_fallback"]
        assert "reject" == report.tags["sp"]

    def test_missing(self, opts: dict[str, object]) -> None:
        """No record anywhere: an error saying what to publish."""
        report = dmarc_of(opts, "nothing.example.net")
        assert ("missing", {"dmarc.missing": Severity.ERROR}) == (report.status, codes(report))
        assert "p=none" in report.findings[0].message
        assert "_dmarc.nothing.example.net" == report.findings[0].record

    def test_multiple(self, opts: dict[str, object]) -> None:
        """Two records: receivers apply none."""
        report = dmarc_of(opts, "twodmarc.example.com")
        assert ("invalid", {"dmarc.multiple": Severity.ERROR}) == (report.status, codes(report))

    def test_bad_policy_without_rua(self, opts: dict[str, object]) -> None:
        """No valid p= and no rua=: receivers apply no DMARC (RFC 7489 6.6.3): an error."""
        report = dmarc_of(opts, "badpolicy.example.com")
        assert ("invalid", None) == (report.status, report.policy)
        assert {"dmarc.no_policy": Severity.ERROR, "dmarc.tag_invalid": Severity.WARNING} == (
            codes(report)
        )

    @pytest.mark.parametrize("domain", ["nop.example.com", "badp.example.com"])
    def test_missing_or_bad_policy_with_rua_is_none(
        self, opts: dict[str, object], domain: str
    ) -> None:
        """No valid p= but a valid rua=: receivers act as if p=none (RFC 7489 6.6.3)."""
        report = dmarc_of(opts, domain)
        assert ("ok", Policy.NONE) == (report.status, report.policy)
        assert Severity.WARNING == codes(report)["dmarc.policy_fallback"]
        assert "p" not in report.tags

    def test_invalid_sp_with_rua_is_none_everywhere(self, opts: dict[str, object]) -> None:
        """An invalid sp= with a valid rua= makes the whole record p=none, p=reject included."""
        report = dmarc_of(opts, "badsp.example.com")
        assert ("ok", Policy.NONE, Policy.NONE) == (
            report.status,
            report.policy,
            report.subdomain_policy,
        )
        assert {"dmarc.tag_invalid", "dmarc.policy_fallback", "dmarc.policy_none"} == set(
            codes(report)
        )

    def test_invalid_sp_without_rua_is_no_policy(self, opts: dict[str, object]) -> None:
        """An invalid sp= and no rua=: no DMARC processing at all (RFC 7489 6.6.3)."""
        report = dmarc_of(opts, "badspnorua.example.com")
        assert ("invalid", None) == (report.status, report.policy)
        assert Severity.ERROR == codes(report)["dmarc.no_policy"]

    def test_policy_values_are_normalized(self, opts: dict[str, object]) -> None:
        """p=REJECT is Policy.REJECT, which still equals the string 'reject'."""
        report = dmarc_of(opts, "upper.example.com")
        assert (Policy.REJECT, Policy.QUARANTINE) == (report.policy, report.subdomain_policy)
        assert "reject" == report.policy
        assert "p=reject" == f"p={report.policy}"
        assert (
            "reject"
            == check_domain("upper.example.com", **opts).to_dict()[  # type: ignore[arg-type]
                "dmarc"
            ]["policy"]
        )

    @pytest.mark.parametrize("domain", ["space.example.com", "lower.example.com"])
    def test_record_not_starting_with_version_is_discarded(
        self, opts: dict[str, object], domain: str
    ) -> None:
        """A TXT record not beginning with exactly 'v=DMARC1' is not DMARC: missing, said why."""
        report = dmarc_of(opts, domain)
        assert ("missing", None) == (report.status, report.policy)
        assert {"dmarc.not_dmarc": Severity.WARNING, "dmarc.missing": Severity.ERROR} == (
            codes(report)
        )

    @pytest.mark.parametrize(
        ("domain", "tag"), [("badpct.example.com", "pct"), ("badalign.example.com", "adkim")]
    )
    def test_bad_tag_values(self, opts: dict[str, object], domain: str, tag: str) -> None:
        """An invalid tag value is dropped, as receivers do (RFC 7489 6.3): a warning."""
        report = dmarc_of(opts, domain)
        assert ("ok", Severity.WARNING) == (report.status, codes(report)["dmarc.tag_invalid"])
        assert tag not in report.tags
        (f,) = [f for f in report.findings if f.code == "dmarc.tag_invalid"]
        assert f"{tag}=" in f.message

    def test_policy_none_noted(self, opts: dict[str, object]) -> None:
        """p=none is noted as the minimum, not as an error."""
        report = dmarc_of(opts, "extok.example.com")
        assert ("ok", {"dmarc.policy_none": Severity.INFO}) == (report.status, codes(report))

    def test_unknown_tag_and_strict(self, opts: dict[str, object]) -> None:
        """An unknown tag is a warning; adkim/aspf are read."""
        report = dmarc_of(opts, "unknowntag.example.com")
        assert Severity.WARNING == codes(report)["dmarc.unknown_tag"]
        strict = dmarc_of(opts, "strict.example.com")
        assert ("s", "s", {}) == (strict.adkim, strict.aspf, codes(strict))

    @pytest.mark.parametrize(
        ("domain", "word"),
        [
            ("servfail.example.com", "SERVFAIL"),
            ("timeout.example.com", "time-out"),
            ("dmarcfail.example.com", "SERVFAIL"),
        ],
    )
    def test_temporary_errors(self, opts: dict[str, object], domain: str, word: str) -> None:
        """SERVFAIL and time-out are temperror: no fallback, never 'missing'."""
        report = dmarc_of(opts, domain)
        assert ("temperror", {"dmarc.temperror": Severity.ERROR}) == (report.status, codes(report))
        assert word in report.findings[0].message


class TestReportAuthorization:
    def test_authorized_external_rua(self, opts: dict[str, object]) -> None:
        """An external rua whose destination publishes the authorization record is fine."""
        report = dmarc_of(opts, "extok.example.com")
        assert "dmarc.report_unauthorized" not in codes(report)

    def test_unauthorized_external_rua_and_ruf(self, opts: dict[str, object]) -> None:
        """An external destination without the record is a warning naming the record."""
        report = dmarc_of(opts, "extbad.example.com")
        assert "ok" == report.status
        (f,) = [f for f in report.findings if f.code == "dmarc.report_unauthorized"]
        assert Severity.WARNING == f.severity
        assert f"extbad.example.com._report._dmarc.{REPORTS}" in f.message
        assert "rua/ruf" in f.message

    def test_authorization_name_too_long(self, opts: dict[str, object]) -> None:
        """A destination whose authorization name passes 255 octets is an error, not temperror."""
        report = dmarc_of(opts, "longrua.example.com")
        assert "invalid" == report.status
        assert {"dmarc.report_name_invalid": Severity.ERROR} == {
            c: s for c, s in codes(report).items() if s is Severity.ERROR
        }
        (f,) = [f for f in report.findings if f.code == "dmarc.report_name_invalid"]
        assert LONG_DEST in f.message
