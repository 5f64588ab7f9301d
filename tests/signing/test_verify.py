"""verify / DKIMVerifier: tampering, key records, clocks, DNS, malformed signatures."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import dkim
import pytest
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

from mailscale.errors import CanonicalizationError
from mailscale.signing import DKIMSigner, DKIMVerifier, KeyRecord, dns_record, verify
from mailscale.signing.keys import PrivateKey, parse_key_record

VECTORS = Path(__file__).parent / "vectors"
NOW = 1_700_000_000

MESSAGE = (
    b"From: News <news@example.com>\r\n"
    b"To: reader@example.net\r\n"
    b"Subject: Weekly news\r\n"
    b"Date: Tue, 14 Nov 2023 22:13:20 +0000\r\n"
    b"List-Unsubscribe: <https://example.com/unsub/1>\r\n"
    b"List-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n"
    b"\r\n"
    b"Hello reader,\r\n\r\nthe news.\r\n"
)


def _lookup(key: PrivateKey, extra: str = "", selector: str = "s") -> Callable[[str], str | None]:
    p = dns_record(key).split("p=")[1]
    kind = "ed25519" if isinstance(key, ed25519.Ed25519PrivateKey) else "rsa"
    records = {f"{selector}._domainkey.example.com": f"v=DKIM1; k={kind}; {extra}p={p}"}
    return records.get


def _statuses(signed: bytes, lookup: Callable[[str], object], now: float = NOW) -> list[str]:
    return [r.status for r in verify(signed, key_lookup=lookup, now=now)]  # type: ignore[arg-type]


@pytest.fixture(params=["rsa", "ed25519"])
def key(
    request: pytest.FixtureRequest, rsa_key: rsa.RSAPrivateKey, ed_key: ed25519.Ed25519PrivateKey
) -> PrivateKey:
    """The session RSA key, then the session Ed25519 key."""
    return rsa_key if request.param == "rsa" else ed_key


def _signed(key: PrivateKey, **kw: object) -> bytes:
    return DKIMSigner("example.com", "s", key, clock=lambda: NOW, **kw).sign(MESSAGE)  # type: ignore[arg-type]


class TestTampering:
    def test_untouched_passes(self, key: PrivateKey) -> None:
        """The signed message verifies as it is."""
        assert ["pass"] == _statuses(_signed(key), _lookup(key))

    @pytest.mark.parametrize(
        ("label", "change"),
        [
            ("body byte", lambda m: m.replace(b"the news.", b"the newz.")),
            ("signed header", lambda m: m.replace(b"Weekly news", b"Weekly newz")),
            ("added From", lambda m: m.replace(b"To:", b"From: evil@example.org\r\nTo:", 1)),
            (
                "added List-Unsubscribe-Post",
                lambda m: m.replace(b"To:", b"List-Unsubscribe-Post: x\r\nTo:", 1),
            ),
            (
                "changed List-Unsubscribe-Post",
                lambda m: m.replace(b"=One-Click", b"=Two-Click"),
            ),
            ("added Subject", lambda m: m.replace(b"\r\n\r\nH", b"\r\nSubject: x\r\n\r\nH")),
            ("body appended", lambda m: m + b"P.S. more\r\n"),
        ],
    )
    def test_tampering_fails(
        self, key: PrivateKey, label: str, change: Callable[[bytes], bytes]
    ) -> None:
        """Any change to a signed part makes verification fail."""
        tampered = change(_signed(key))
        results = verify(tampered, key_lookup=_lookup(key), now=NOW)
        assert ["fail"] == [r.status for r in results], label
        assert results[0].reason

    def test_unsigned_header_may_change(self, key: PrivateKey) -> None:
        """Adding an unsigned header (Received) keeps the signature valid."""
        signed = _signed(key)
        assert ["pass"] == _statuses(b"Received: by relay\r\n" + signed, _lookup(key))

    def test_relaxed_survives_whitespace_changes(self, key: PrivateKey) -> None:
        """relaxed/relaxed tolerates refolding and trailing whitespace in transit."""
        signed = _signed(key)
        changed = signed.replace(b"Subject: Weekly news", b"Subject:  Weekly\r\n\tnews ").replace(
            b"the news.\r\n", b"the news.   \r\n\r\n"
        )
        assert ["pass"] == _statuses(changed, _lookup(key))

    def test_body_length_allows_appended_content(self, key: PrivateKey) -> None:
        """With l= the body may grow after the signed length, not change within it."""
        signed = _signed(key, body_length=True)
        assert ["pass"] == _statuses(signed + b"-- footer\r\n", _lookup(key))
        assert ["fail"] == _statuses(signed.replace(b"Hello", b"Jello"), _lookup(key))


class TestKeyRecordTags:
    def test_testing_flag(self, key: PrivateKey) -> None:
        """t=y passes and is reported as testing."""
        result = verify(_signed(key), key_lookup=_lookup(key, "t=y; "), now=NOW)[0]
        assert ("pass", True) == (result.status, result.testing)

    @pytest.mark.parametrize(
        ("extra", "problem"),
        [
            ("s=other; ", "s="),
            ("h=sha1; ", "h="),
        ],
    )
    def test_record_refuses(self, key: PrivateKey, extra: str, problem: str) -> None:
        """A record whose s= or h= excludes this signature is a permerror."""
        result = verify(_signed(key), key_lookup=_lookup(key, extra), now=NOW)[0]
        assert "permerror" == result.status
        assert problem in result.reason

    def test_strict_identity(self, key: PrivateKey) -> None:
        """t=s refuses an i= in a subdomain and accepts one in d= itself."""
        sub = _signed(key, identity="a@mail.example.com")
        same = _signed(key, identity="a@example.com")
        assert ["permerror"] == _statuses(sub, _lookup(key, "t=s; "))
        assert ["pass"] == _statuses(same, _lookup(key, "t=s; "))

    def test_key_type_mismatch(
        self, rsa_key: rsa.RSAPrivateKey, ed_key: ed25519.Ed25519PrivateKey
    ) -> None:
        """An Ed25519 signature checked against a k=rsa record is a permerror."""
        result = verify(_signed(ed_key), key_lookup=_lookup(rsa_key), now=NOW)[0]
        assert ("permerror", True) == (result.status, "k=rsa" in result.reason)

    def test_wrong_key_fails(self, key: PrivateKey) -> None:
        """A record with another key of the same type fails."""
        other: PrivateKey = (
            ed25519.Ed25519PrivateKey.generate()
            if isinstance(key, ed25519.Ed25519PrivateKey)
            else rsa.generate_private_key(public_exponent=65537, key_size=1024)
        )
        assert ["fail"] == _statuses(_signed(key), _lookup(other))

    def test_revoked_key(self, key: PrivateKey) -> None:
        """An empty p= is a permerror saying the key is revoked."""
        result = verify(_signed(key), key_lookup=lambda name: "v=DKIM1; p=", now=NOW)[0]
        assert "permerror" == result.status
        assert "revoked" in result.reason

    def test_small_rsa_key_fails(self) -> None:
        """A signature made with a 512-bit RSA key fails, whatever its validity."""
        pem = (VECTORS / "rsa512.pem").read_bytes()
        signed = dkim.sign(MESSAGE, b"s", b"example.com", pem)
        small = parse_key_record("p=" + re.sub(r"\s|-----[A-Z ]+-----", "", _public_pem(pem)))
        result = verify(signed + MESSAGE, key_lookup=lambda name: small)[0]
        assert "fail" == result.status
        assert "512 bits" in result.reason

    def test_key_record_object(self, key: PrivateKey) -> None:
        """key_lookup may return a parsed KeyRecord."""
        record = parse_key_record(_lookup(key)("s._domainkey.example.com") or "")
        assert isinstance(record, KeyRecord)
        assert ["pass"] == _statuses(_signed(key), lambda name: record)


def _public_pem(private_pem: bytes) -> str:
    from cryptography.hazmat.primitives import serialization

    key = serialization.load_pem_private_key(private_pem, None)
    return (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )


class TestClock:
    def test_expired(self, key: PrivateKey) -> None:
        """After x= the signature fails as expired; before it, it passes."""
        signed = _signed(key, expire_after=600)
        assert ["pass"] == _statuses(signed, _lookup(key), now=NOW + 600)
        result = verify(signed, key_lookup=_lookup(key), now=NOW + 601)[0]
        assert ("fail", True) == (result.status, "expired" in result.reason)

    def test_future_timestamp(self, key: PrivateKey) -> None:
        """A t= more than five minutes ahead of the clock fails."""
        signed = _signed(key)
        assert ["pass"] == _statuses(signed, _lookup(key), now=NOW - 300)
        result = verify(signed, key_lookup=_lookup(key), now=NOW - 301)[0]
        assert ("fail", True) == (result.status, "future" in result.reason)

    def test_verifier_clock(self, key: PrivateKey) -> None:
        """DKIMVerifier reads its own clock when no time is given."""
        signed = _signed(key, expire_after=10)
        early = DKIMVerifier(key_lookup=_lookup(key), clock=lambda: NOW).verify(signed)
        assert ["pass"] == [r.status for r in early]
        late = DKIMVerifier(key_lookup=_lookup(key), clock=lambda: NOW + 11).verify(signed)
        assert ["fail"] == [r.status for r in late]


class TestDNS:
    def test_default_resolver_caches_keys(
        self, zone: object, ed_key: ed25519.Ed25519PrivateKey, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """The verifier's own resolver asks once for a key used by many messages."""
        import dns.resolver

        zone.add_key("s._domainkey.example.com", dns_record(ed_key))  # type: ignore[attr-defined]
        local = zone.resolver()  # type: ignore[attr-defined]
        monkeypatch.setattr(dns.resolver, "Resolver", lambda *a, **kw: local)
        verifier = DKIMVerifier(clock=lambda: NOW)
        statuses = [r.status for _ in range(3) for r in verifier.verify(_signed(ed_key))]
        assert (["pass"] * 3, 1) == (statuses, zone.queries)  # type: ignore[attr-defined]

    def test_given_resolver_is_used_as_it_is(
        self, zone: object, ed_key: ed25519.Ed25519PrivateKey
    ) -> None:
        """A resolver passed in gets no cache: every verification asks it."""
        zone.add_key("s._domainkey.example.com", dns_record(ed_key))  # type: ignore[attr-defined]
        resolver = zone.resolver()  # type: ignore[attr-defined]
        verifier = DKIMVerifier(resolver, clock=lambda: NOW)
        statuses = [r.status for _ in range(2) for r in verifier.verify(_signed(ed_key))]
        assert (["pass"] * 2, 2, None) == (statuses, zone.queries, resolver.cache)  # type: ignore[attr-defined]

    def test_multi_string_txt_is_joined(self, zone: object, rsa_key: rsa.RSAPrivateKey) -> None:
        """A key record split into several TXT strings is joined before parsing."""
        zone.add_key("s._domainkey.example.com", dns_record(rsa_key), chunk=60)  # type: ignore[attr-defined]
        results = verify(_signed(rsa_key), resolver=zone.resolver(), now=NOW)  # type: ignore[attr-defined]
        assert ["pass"] == [r.status for r in results]

    def test_other_txt_records_are_skipped(
        self, zone: object, ed_key: ed25519.Ed25519PrivateKey
    ) -> None:
        """Among several TXT records at the name, the DKIM key is used."""
        zone.add_key("s._domainkey.example.com", "some-verification=abc")  # type: ignore[attr-defined]
        zone.add_key("s._domainkey.example.com", dns_record(ed_key))  # type: ignore[attr-defined]
        results = verify(_signed(ed_key), resolver=zone.resolver(), now=NOW)  # type: ignore[attr-defined]
        assert ["pass"] == [r.status for r in results]

    def test_no_record(self, zone: object, ed_key: ed25519.Ed25519PrivateKey) -> None:
        """NXDOMAIN at the selector is a permerror naming the name."""
        result = verify(_signed(ed_key), resolver=zone.resolver(), now=NOW)[0]  # type: ignore[attr-defined]
        assert "permerror" == result.status
        assert "s._domainkey.example.com" in result.reason

    def test_servfail_is_temperror(self, zone: object, ed_key: ed25519.Ed25519PrivateKey) -> None:
        """A failing DNS server gives a temperror."""
        zone.servfail.add("s._domainkey.example.com")  # type: ignore[attr-defined]
        result = verify(_signed(ed_key), resolver=zone.resolver(), now=NOW)[0]  # type: ignore[attr-defined]
        assert "temperror" == result.status

    def test_malformed_record(self, zone: object, ed_key: ed25519.Ed25519PrivateKey) -> None:
        """A malformed key record is a permerror."""
        zone.add_key("s._domainkey.example.com", "v=DKIM1; k=ed25519; p=!!")  # type: ignore[attr-defined]
        result = verify(_signed(ed_key), resolver=zone.resolver(), now=NOW)[0]  # type: ignore[attr-defined]
        assert ("permerror", True) == (result.status, "base64" in result.reason)

    def test_lookup_error_is_temperror(self, ed_key: ed25519.Ed25519PrivateKey) -> None:
        """A key_lookup raising OSError gives a temperror."""

        def broken(name: str) -> str:
            raise TimeoutError("slow")

        assert ["temperror"] == _statuses(_signed(ed_key), broken)


class TestMalformedSignatures:
    @pytest.mark.parametrize(
        ("edit", "problem"),
        [
            (lambda f: f.replace(b"a=ed25519-sha256", b"a=rsa-sha1"), "rsa-sha1"),
            (lambda f: f.replace(b"a=ed25519-sha256", b"a=dsa-sha256"), "unsupported algorithm"),
            (lambda f: f.replace(b"v=1", b"v=2"), "version"),
            (lambda f: f.replace(b" bh=", b" xh="), "no bh= tag"),
            (lambda f: f.replace(b"c=relaxed/relaxed", b"c=loose"), "canonicalization"),
            (lambda f: re.sub(rb"h=[^;]*;", b"h=to:subject;", f), "From"),
            (lambda f: f.replace(b"d=example.com;", b"d=example.com; i=x@other.org;"), "i="),
            (lambda f: f.replace(b"d=example.com;", b"d=example.com; q=http;"), "q="),
            (lambda f: f.replace(b"d=example.com;", b"d=example.com; x=10;"), "x="),
            (lambda f: f.replace(b"t=", b"t=abc"), "t="),
            (lambda f: f.replace(b"d=example.com;", b"d=example.com; d=x;"), "duplicate"),
            (lambda f: f.replace(b"bh=", b"bh=*"), "bh="),
        ],
    )
    def test_permerror(
        self,
        ed_key: ed25519.Ed25519PrivateKey,
        edit: Callable[[bytes], bytes],
        problem: str,
    ) -> None:
        """A malformed DKIM-Signature is a permerror whose reason names the problem."""
        signed = _signed(ed_key)
        result = verify(edit(signed), key_lookup=_lookup(ed_key), now=NOW)[0]
        assert "permerror" == result.status
        assert problem in result.reason

    @pytest.mark.parametrize(
        ("edit", "problem"),
        [
            (lambda f: f.replace(b"d=example.com;", b"d=..;"), "bad d=: "),
            (lambda f: f.replace(b"d=example.com;", b"d=ex ample.com;"), "bad d=: "),
            (lambda f: f.replace(b"d=example.com;", b"d=" + b"a" * 64 + b".com;"), "bad d=: "),
            (lambda f: f.replace(b"d=example.com;", b"d=" + b"a.b" * 90 + b";"), "bad d=: "),
            (lambda f: f.replace(b"s=s;", b"s=..;"), "bad s=: "),
            (lambda f: f.replace(b"s=s;", b"s=a b;"), "bad s=: "),
            (lambda f: f.replace(b"s=s;", b"s=-s;"), "bad s=: "),
        ],
    )
    def test_bad_domain_or_selector_is_permerror_without_lookup(
        self,
        ed_key: ed25519.Ed25519PrivateKey,
        edit: Callable[[bytes], bytes],
        problem: str,
    ) -> None:
        """A d= or s= that is not a DNS name is a permerror, and no key is looked up."""
        asked: list[str] = []

        def lookup(name: str) -> str | None:
            asked.append(name)
            return _lookup(ed_key)(name)

        result = verify(edit(_signed(ed_key)), key_lookup=lookup, now=NOW)[0]
        assert ("permerror", []) == (result.status, asked)
        assert problem in result.reason
        assert "not a valid DNS name" in result.reason

    def test_no_signature(self) -> None:
        """A message without DKIM-Signature gives no results."""
        assert [] == verify(MESSAGE, key_lookup=lambda name: None)

    def test_unsplittable_message(self) -> None:
        """A message whose header cannot be split is a CanonicalizationError."""
        with pytest.raises(CanonicalizationError, match="line 2 has no colon"):
            verify(b"DKIM-Signature: v=1\r\nno colon", key_lookup=lambda name: None)

    def test_header_without_body(self) -> None:
        """A header with no empty line and no body is a message: its signature is read."""
        results = verify(b"From: a@example.com\r\nDKIM-Signature: v=1", key_lookup=lambda n: None)
        assert [("permerror", "the signature has no a= tag")] == [
            (r.status, r.reason) for r in results
        ]

    def test_eight_bit_signature(self, ed_key: ed25519.Ed25519PrivateKey) -> None:
        """8-bit bytes in a DKIM-Signature field are a permerror."""
        signed = _signed(ed_key).replace(b"s=s;", b"s=s\xe9;")
        assert ["permerror"] == _statuses(signed, _lookup(ed_key))


class TestLineEnds:
    """Bytes with CRLF throughout are verified without a separate pass over their line
    ends; any other line ends give what the message read as received gives."""

    @pytest.mark.parametrize("simple", [False, True])
    @pytest.mark.parametrize(
        ("label", "change", "status"),
        [
            ("all LF", lambda m: m.replace(b"\r\n", b"\n"), "pass"),
            ("bare LF in the body", lambda m: m.replace(b"the news.\r\n", b"the news.\n"), "pass"),
            (
                "bare LF in the header",
                lambda m: m.replace(b"Weekly news\r\n", b"Weekly news\n"),
                "pass",
            ),
            (
                "bare CR in the body",
                lambda m: m.replace(b"Hello reader,", b"Hello\rreader,"),
                "fail",
            ),
            ("no final line end", lambda m: m[:-2], "pass"),
            ("last line ends in LF", lambda m: m[:-2] + b"\n", "pass"),
        ],
    )
    def test_other_line_ends(
        self,
        key: PrivateKey,
        simple: bool,
        label: str,
        change: Callable[[bytes], bytes],
        status: str,
    ) -> None:
        """Each result is the one for the message as _received_bytes reads it."""
        canon = "simple/simple" if simple else "relaxed/relaxed"
        signed = _signed(key, canonicalization=canon)
        changed = change(signed)
        assert changed != signed, label
        if simple and label == "bare CR in the body":
            status = "fail"
        assert [status] == _statuses(changed, _lookup(key)), label
        # The same result as the bytes read as received, given as a bytearray (which
        # does not take the fast path).
        assert _statuses(bytearray(changed), _lookup(key)) == _statuses(changed, _lookup(key))

    def test_two_signatures_one_check(self, rsa_key: rsa.RSAPrivateKey) -> None:
        """Two signatures over a body with a bare LF both see it read as CRLF."""
        once = _signed(rsa_key)
        twice = DKIMSigner("example.com", "s", rsa_key, clock=lambda: NOW).sign(once)
        stored = twice.replace(b"the news.\r\n", b"the news.\n")
        assert ["pass", "pass"] == _statuses(stored, _lookup(rsa_key))


class TestReusedVerifier:
    def test_caches_give_the_fresh_results(
        self, rsa_key: rsa.RSAPrivateKey, ed_key: ed25519.Ed25519PrivateKey
    ) -> None:
        """One verifier over a mixed stream gives what a fresh verifier gives for each message."""
        rsa_record = dns_record(rsa_key).split("p=")[1]
        ed_record = dns_record(ed_key).split("p=")[1]
        records = {
            "s._domainkey.example.com": f"v=DKIM1; k=ed25519; p={ed_record}",
            "r._domainkey.example.com": f"v=DKIM1; k=rsa; p={rsa_record}",
            "t._domainkey.example.com": f"v=DKIM1; k=rsa; t=y:s; p={rsa_record}",
        }

        def signed(key: PrivateKey, selector: str, **kw: object) -> bytes:
            signer = DKIMSigner("example.com", selector, key, clock=lambda: NOW, **kw)  # type: ignore[arg-type]
            return signer.sign(MESSAGE)

        good_ed, good_rsa = signed(ed_key, "s"), signed(rsa_key, "r")
        testing, sub = signed(rsa_key, "t"), signed(rsa_key, "t", identity="a@mail.example.com")
        stream = [
            good_ed,
            good_ed.replace(b"the news.", b"the newz."),
            re.sub(rb"h=[^;]*;", b"h=to:subject;", good_ed),
            good_rsa,
            good_ed.replace(b"v=1", b"v=2"),
            testing,
            sub,
            good_ed,
            good_rsa.replace(b"Weekly news", b"Weekly newz"),
            testing,
            good_rsa,
            re.sub(rb"h=[^;]*;", b"h=to:subject;", good_ed),
        ]
        reused = DKIMVerifier(key_lookup=records.get)
        got = [reused.verify(m, now=NOW) for m in stream]
        expected = [DKIMVerifier(key_lookup=records.get).verify(m, now=NOW) for m in stream]
        assert expected == got
        statuses = [[r.status for r in results] for results in got]
        assert [
            ["pass"],
            ["fail"],
            ["permerror"],
            ["pass"],
            ["permerror"],
            ["pass"],
            ["permerror"],
            ["pass"],
            ["fail"],
            ["pass"],
            ["pass"],
            ["permerror"],
        ] == statuses
        assert [True, True] == [got[5][0].testing, got[9][0].testing]
        assert not got[0][0].testing


class TestKeyLookupResults:
    @pytest.mark.parametrize(
        ("found", "problem"),
        [
            (5, "returned int"),
            ({"p": "x"}, "returned dict"),
            ([b"v=DKIM1; ", 5], "returned list"),
            (object(), "returned object"),
        ],
    )
    def test_wrong_type_is_permerror(
        self, ed_key: ed25519.Ed25519PrivateKey, found: object, problem: str
    ) -> None:
        """A key_lookup returning something that is not a record is a permerror, not a crash."""
        result = verify(_signed(ed_key), key_lookup=lambda name: found, now=NOW)[0]  # type: ignore[arg-type,return-value]
        assert "permerror" == result.status
        assert problem in result.reason

    def test_bytearray_and_string_list_are_records(self, ed_key: ed25519.Ed25519PrivateKey) -> None:
        """A bytearray or a list of str and bytes strings is read as the TXT value."""
        txt = _lookup(ed_key)("s._domainkey.example.com")
        assert txt is not None
        for found in (bytearray(txt.encode()), [txt[:10], txt[10:].encode()]):
            assert ["pass"] == _statuses(_signed(ed_key), lambda name, f=found: f)
