"""DKIM key records per selector: key type and size, revoked, testing, malformed, local key."""

from __future__ import annotations

import pytest

from mailscale.auth import DKIMReport, Severity, check_domain
from mailscale.errors import AuthCheckError

from .auth_zones import GOOD, Keys

DOMAIN = "dkim.example.com"


def dkim_of(
    opts: dict[str, object], selector: str, domain: str = DOMAIN, **kw: object
) -> DKIMReport:
    (report,) = check_domain(domain, dkim_selectors=[selector], **opts, **kw).dkim  # type: ignore[arg-type]
    return report


def codes(report: DKIMReport) -> dict[str, Severity]:
    return {f.code: f.severity for f in report.findings}


class TestKeys:
    @pytest.mark.parametrize(
        ("selector", "status", "key_type", "bits", "findings"),
        [
            ("k2048", "ok", "rsa", 2048, {}),
            ("k1024", "ok", "rsa", 1024, {"dkim.key_weak": Severity.WARNING}),
            ("ed", "ok", "ed25519", 256, {"dkim.ed25519": Severity.INFO}),
            ("k512", "invalid", "rsa", 512, {"dkim.key_too_small": Severity.ERROR}),
            ("testing", "ok", "rsa", 2048, {"dkim.testing": Severity.WARNING}),
            ("sha1", "invalid", "rsa", 2048, {"dkim.hash": Severity.ERROR}),
            ("esp", "ok", "rsa", 2048, {}),  # a CNAME to another domain's key, as ESPs do
        ],
    )
    def test_key_verdicts(
        self,
        opts: dict[str, object],
        selector: str,
        status: str,
        key_type: str,
        bits: int,
        findings: dict[str, Severity],
    ) -> None:
        """Each published key gets its type, size and verdict."""
        report = dkim_of(opts, selector)
        assert (status, key_type, bits) == (report.status, report.key_type, report.key_bits)
        assert findings == codes(report)
        assert f"{selector}._domainkey.{DOMAIN}" == report.name

    def test_testing_flag(self, opts: dict[str, object]) -> None:
        """t=y is reported on the report too."""
        assert (True, False) == (dkim_of(opts, "testing").testing, dkim_of(opts, "k2048").testing)

    def test_revoked(self, opts: dict[str, object]) -> None:
        """An empty p= is a revoked key: an error."""
        report = dkim_of(opts, "revoked")
        assert ("revoked", {"dkim.revoked": Severity.ERROR}) == (report.status, codes(report))

    @pytest.mark.parametrize(("selector", "words"), [("bad", "base64"), ("badtype", "dsa")])
    def test_malformed(self, opts: dict[str, object], selector: str, words: str) -> None:
        """A malformed record is a syntax error whose message names the problem."""
        report = dkim_of(opts, selector)
        assert ("invalid", {"dkim.syntax": Severity.ERROR}) == (report.status, codes(report))
        assert words in report.findings[0].message

    def test_record_split_into_strings(self, opts: dict[str, object], keys: Keys) -> None:
        """A 2048-bit key record (several TXT strings) is joined before parsing."""
        from mailscale.signing.keys import dns_record

        assert dns_record(keys.rsa2048) == dkim_of(opts, "k2048").record

    def test_missing(self, opts: dict[str, object]) -> None:
        """No record at the selector: dkim.missing, NXDOMAIN named."""
        report = dkim_of(opts, "nosuch")
        assert ("missing", {"dkim.missing": Severity.ERROR}) == (report.status, codes(report))
        assert "NXDOMAIN" in report.findings[0].message

    @pytest.mark.parametrize(
        ("domain", "word"),
        [("dkimfail.example.com", "SERVFAIL"), ("dkimhang.example.com", "time-out")],
    )
    def test_temporary_errors(self, opts: dict[str, object], domain: str, word: str) -> None:
        """SERVFAIL and time-out are temperror, not missing."""
        report = dkim_of(opts, "s1", domain)
        assert ("temperror", {"dkim.temperror": Severity.ERROR}) == (report.status, codes(report))
        assert word in report.findings[0].message


class TestLocalKey:
    def test_matching_key(self, opts: dict[str, object], keys: Keys) -> None:
        """The published key is the local key's public half."""
        report = dkim_of(opts, "k2048", dkim_keys={"k2048": keys.rsa2048})
        assert (True, {}) == (report.matches_local_key, codes(report))

    def test_matching_public_key(self, opts: dict[str, object], keys: Keys) -> None:
        """A public key works as the local key too."""
        report = dkim_of(opts, "ed", dkim_keys={"ed": keys.ed.public_key()})
        assert report.matches_local_key is True

    def test_mismatch(self, opts: dict[str, object], keys: Keys) -> None:
        """A different local key is an error."""
        report = dkim_of(opts, "k1024", dkim_keys={"k1024": keys.other})
        assert report.matches_local_key is False
        assert Severity.ERROR == codes(report)["dkim.key_mismatch"]
        assert "invalid" == report.status

    def test_mismatched_type(self, opts: dict[str, object], keys: Keys) -> None:
        """An Ed25519 local key does not match an RSA record."""
        assert dkim_of(opts, "k2048", dkim_keys={"k2048": keys.ed}).matches_local_key is False

    def test_key_for_unchecked_selector(self, opts: dict[str, object], keys: Keys) -> None:
        """A local key for a selector that is not checked is refused."""
        with pytest.raises(AuthCheckError, match="not checked"):
            check_domain(GOOD, dkim_selectors=["s1"], dkim_keys={"s9": keys.ed}, **opts)  # type: ignore[arg-type]


class TestSelectors:
    @pytest.mark.parametrize(
        "selector", ["", "a..b", "bad selector", "x" * 64, "s1/2", ".".join(["x" * 63] * 4)]
    )
    def test_bad_selector(self, opts: dict[str, object], selector: str) -> None:
        """A selector that is not a DNS label sequence is refused."""
        with pytest.raises(AuthCheckError, match="selector"):
            check_domain(GOOD, dkim_selectors=[selector], **opts)  # type: ignore[arg-type]

    def test_several_selectors_in_order(self, opts: dict[str, object]) -> None:
        """Each selector gets a report, in the order given, duplicates once."""
        report = check_domain(DOMAIN, dkim_selectors=["ed", "K2048", "ed"], **opts)  # type: ignore[arg-type]
        assert ["ed", "k2048"] == [d.selector for d in report.dkim]
