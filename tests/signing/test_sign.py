"""DKIMSigner: RFC 8463 golden vectors, tags, headers, wire form, batches, bad input."""

from __future__ import annotations

import base64
import email
import email.message
import email.policy
import hashlib
import itertools
import re
from array import array
from email.message import EmailMessage
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

from mailscale._hot import core
from mailscale.errors import (
    CanonicalizationError,
    HeaderInjection,
    InvalidDomain,
    InvalidKey,
    SigningError,
    UnsupportedAlgorithm,
)
from mailscale.signing import (
    DKIMSigner,
    MultiSigner,
    dns_record,
    sign,
    sign_batch,
    signature_header,
    verify,
)
from mailscale.signing._tags import parse_tag_list
from mailscale.signing.keys import private_key_pem

VECTORS = Path(__file__).parent / "vectors"
RFC_TIME = 1528637909

MESSAGE = (
    b"From: Joe SixPack <joe@example.com>\r\n"
    b"To: Suzie Q <suzie@example.net>\r\n"
    b"Subject: Is dinner ready?\r\n"
    b"Date: Fri, 11 Jul 2003 21:00:37 -0700 (PDT)\r\n"
    b"Message-ID: <20030712040037.46341.5F8J@example.com>\r\n"
    b"X-Mailer: not signed\r\n"
    b"\r\n"
    b"Hi.\r\n\r\nWe lost the game.  Are you hungry yet?\r\n\r\nJoe.\r\n"
)


def _tags(field: bytes) -> dict[str, str]:
    return parse_tag_list(field.decode("ascii").partition(":")[2])


def _h(field: bytes) -> list[str]:
    return [name.strip() for name in _tags(field)["h"].split(":")]


def _signatures(signed: bytes) -> list[bytes]:
    fields, _ = core._split_message(signed)
    return [raw for name, raw in fields if name == b"dkim-signature"]


def _lookup(*pairs: tuple[str, object]) -> object:
    records = {f"{sel}._domainkey.example.com": dns_record(key) for sel, key in pairs}  # type: ignore[arg-type]
    return records.get


def _rfc_parts() -> tuple[bytes, list[bytes]]:
    """The RFC 8463 A.3 message without its signatures, and the two signature fields."""
    signed = (VECTORS / "rfc8463_A3.eml").read_bytes()
    fields, start = core._split_message(signed)
    sigs = [raw for name, raw in fields if name == b"dkim-signature"]
    unsigned = b"".join(raw for name, raw in fields if name != b"dkim-signature")
    return unsigned + b"\r\n" + signed[start:], sigs


class TestRFC8463Vectors:
    @pytest.mark.parametrize("which", ["ed25519", "rsa"])
    def test_resigning_reproduces_b_and_bh(
        self,
        which: str,
        rfc8463_ed: ed25519.Ed25519PrivateKey,
        rfc8463_rsa: rsa.RSAPrivateKey,
    ) -> None:
        """Re-signing the A.3 message with its keys, tags and h= gives its b= and bh= exactly."""
        unsigned, sigs = _rfc_parts()
        field = sigs[0] if which == "ed25519" else sigs[1]
        tags = _tags(field)
        key = rfc8463_ed if which == "ed25519" else rfc8463_rsa
        signer = DKIMSigner(
            "football.example.com",
            tags["s"],
            key,
            headers=["from", "to", "subject", "date", "message-id"],
            oversign=["from", "subject", "date"],
            identity="@football.example.com",
            clock=lambda: RFC_TIME,
        )
        ours = _tags(signer.signature_header(unsigned))
        assert tags["bh"] == ours["bh"]
        assert tags["t"] == ours["t"]
        assert tags["i"] == ours["i"]
        assert [h.strip() for h in tags["h"].split(":")] == _h(signer.signature_header(unsigned))
        # The b= value covers the exact signature field; sign that field's unsigned form.
        fields, _ = core._split_message(unsigned)
        names = [h.strip().encode() for h in tags["h"].split(":")]
        data = core._header_hash_input(fields, names, core._strip_b_value(field), True)
        b = base64.b64encode(signer._sign_digest(hashlib.sha256(data).digest())).decode()
        assert re.sub(r"\s+", "", tags["b"]) == b

    def test_bh_literal(self) -> None:
        """The body hash is the one the vector README states."""
        unsigned, _ = _rfc_parts()
        _, start = core._split_message(unsigned)
        digest, _ = core.body_hash(unsigned, start, True)
        assert "2jUSOH9NhtVGCQWNr9BrIAPreKQjO6Sn7XIkfJVOzv8=" == base64.b64encode(digest).decode()

    def test_verify_passes_through_dns(self, zone: object) -> None:
        """verify passes both signatures with the TXT records served by a loopback DNS server."""
        z = zone
        z.add_key(  # type: ignore[attr-defined]
            "brisbane._domainkey.football.example.com",
            (VECTORS / "rfc8463_brisbane.txt").read_text().strip(),
        )
        z.add_key(  # type: ignore[attr-defined]
            "test._domainkey.football.example.com",
            (VECTORS / "rfc8463_test.txt").read_text().strip(),
            chunk=100,
        )
        signed = (VECTORS / "rfc8463_A3.eml").read_bytes()
        results = verify(signed, resolver=z.resolver(), now=RFC_TIME + 60)  # type: ignore[attr-defined]
        assert [("pass", "brisbane", "ed25519-sha256"), ("pass", "test", "rsa-sha256")] == [
            (r.status, r.selector, r.algorithm) for r in results
        ]


class TestSignatureTags:
    def test_defaults(self, rsa_key: rsa.RSAPrivateKey) -> None:
        """relaxed/relaxed, t= from the clock, no x=, no l=, no i= by default."""
        signer = DKIMSigner("example.com", "s1", rsa_key, clock=lambda: 1_700_000_000.7)
        tags = _tags(signer.signature_header(MESSAGE))
        assert "1" == tags["v"]
        assert "rsa-sha256" == tags["a"]
        assert "relaxed/relaxed" == tags["c"]
        assert ("example.com", "s1") == (tags["d"], tags["s"])
        assert "1700000000" == tags["t"]
        assert not {"x", "l", "i"} & set(tags)

    def test_default_headers_and_oversigning(self, ed_key: ed25519.Ed25519PrivateKey) -> None:
        """Present default headers are signed; the over-signed names get one extra entry."""
        h = _h(DKIMSigner("example.com", "s", ed_key).signature_header(MESSAGE))
        assert (
            "from:to:subject:date:message-id:"
            "from:subject:date:list-unsubscribe:list-unsubscribe-post"
        ) == ":".join(h)

    def test_list_unsubscribe_pair_is_oversigned(self, ed_key: ed25519.Ed25519PrivateKey) -> None:
        """With List-Unsubscribe present, both it and List-Unsubscribe-Post are over-signed."""
        msg = MESSAGE.replace(b"X-Mailer", b"List-Unsubscribe: <https://example.com/u>\r\nX-Mailer")
        h = _h(DKIMSigner("example.com", "s", ed_key).signature_header(msg))
        assert 2 == h.count("list-unsubscribe")
        assert 1 == h.count("list-unsubscribe-post")

    @pytest.mark.parametrize(
        "added",
        [
            [b"From: evil@example.org"],
            [b"Subject: click here"],
            [b"Date: Sat, 1 Jan 2000 00:00:00 +0000"],
            [b"List-Unsubscribe: <https://evil.example/u>"],
            [b"List-Unsubscribe-Post: List-Unsubscribe=One-Click"],
            [
                b"List-Unsubscribe: <https://evil.example/u>",
                b"List-Unsubscribe-Post: List-Unsubscribe=One-Click",
            ],
        ],
    )
    @pytest.mark.parametrize("where", ["top", "bottom"])
    def test_adding_an_oversigned_field_breaks_the_signature(
        self, ed_key: ed25519.Ed25519PrivateKey, added: list[bytes], where: str
    ) -> None:
        """Adding From, Subject, Date or the List-Unsubscribe pair, present before or not, fails."""
        original = MESSAGE.replace(b"Subject: Is dinner ready?\r\n", b"")
        signed = DKIMSigner("example.com", "s", ed_key).sign(original)
        lookup = _lookup(("s", ed_key))
        assert ["pass"] == [r.status for r in verify(signed, key_lookup=lookup)]
        extra = b"".join(line + b"\r\n" for line in added)
        if where == "top":
            tampered = extra + signed
        else:
            head, _, body = signed.partition(b"\r\n\r\n")
            tampered = head + b"\r\n" + extra + b"\r\n" + body
        assert ["fail"] == [r.status for r in verify(tampered, key_lookup=lookup)]

    def test_options(self, ed_key: ed25519.Ed25519PrivateKey) -> None:
        """i=, x=, l= and a chosen canonicalization appear when asked; t= can be off."""
        signer = DKIMSigner(
            "Example.COM",
            "sel.one",
            ed_key,
            identity="news@mail.example.com",
            expire_after=3600,
            body_length=True,
            timestamp=False,
            canonicalization="simple/relaxed",
            clock=lambda: 1000,
        )
        tags = _tags(signer.signature_header(MESSAGE))
        body = MESSAGE.partition(b"\r\n\r\n")[2]
        assert "ed25519-sha256" == tags["a"]
        assert ("example.com", "sel.one") == (tags["d"], tags["s"])
        assert "simple/relaxed" == tags["c"]
        assert "news@mail.example.com" == tags["i"]
        assert "4600" == tags["x"]
        assert "t" not in tags
        assert str(len(core._canon_body_relaxed(body))) == tags["l"]

    def test_stamps_follow_the_clock_and_settings(self, ed_key: ed25519.Ed25519PrivateKey) -> None:
        """t= and x= follow each new second and later changes of timestamp or expire_after."""
        readings = iter([1000.2, 1000.9, 1001.0, 1001.5, 1001.5, 1001.5])
        signer = DKIMSigner("example.com", "s", ed_key, clock=lambda: next(readings))
        stamps = [_tags(signer.signature_header(MESSAGE)).get("t") for _ in range(3)]
        assert ["1000", "1000", "1001"] == stamps
        signer.expire_after = 60
        assert ("1001", "1061") == tuple(map(_tags(signer.signature_header(MESSAGE)).get, "tx"))
        signer.timestamp = False
        assert (None, "1061") == tuple(map(_tags(signer.signature_header(MESSAGE)).get, "tx"))
        signer.expire_after = None
        assert (None, None) == tuple(map(_tags(signer.signature_header(MESSAGE)).get, "tx"))

    def test_lines_are_folded(self, rsa_key: rsa.RSAPrivateKey) -> None:
        """The signature field is folded into lines of at most 78 characters."""
        field = DKIMSigner("example.com", "s", rsa_key).signature_header(MESSAGE)
        assert field.endswith(b"\r\n")
        assert all(len(line) <= 78 for line in field.split(b"\r\n"))

    def test_key_is_loaded_once(
        self, rsa_key: rsa.RSAPrivateKey, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """The PEM key is parsed when the signer is made, never again per message."""
        import mailscale.signing._signer as signer_module
        from mailscale.signing import keys as keys_module

        calls: list[object] = []
        real = keys_module.load_private_key

        def counting(data: object, password: bytes | None = None) -> object:
            calls.append(data)
            return real(data, password)  # type: ignore[arg-type]

        monkeypatch.setattr(signer_module, "load_private_key", counting)
        signer = DKIMSigner("example.com", "s", private_key_pem(rsa_key))
        signer.sign_batch([MESSAGE] * 5, workers=2)
        signer.sign(MESSAGE)
        assert 1 == len(calls)

    def test_repr_has_no_key(self, rsa_key: rsa.RSAPrivateKey) -> None:
        """The repr names domain, selector and algorithm, never key material."""
        signer = DKIMSigner("example.com", "s", private_key_pem(rsa_key))
        text = repr(signer)
        assert "DKIMSigner(domain='example.com', selector='s', algorithm='rsa-sha256')" == text


class TestWireForm:
    def test_lf_input_is_signed_as_crlf(self, ed_key: ed25519.Ed25519PrivateKey) -> None:
        """LF-only input comes back with CRLF line ends, and that form verifies."""
        signer = DKIMSigner("example.com", "s", ed_key)
        signed = signer.sign(MESSAGE.replace(b"\r\n", b"\n"))
        assert signed.endswith(MESSAGE)
        assert b"\n" not in signed.replace(b"\r\n", b"")
        assert ["pass"] == [r.status for r in verify(signed, key_lookup=_lookup(("s", ed_key)))]

    def test_final_crlf_added(self, ed_key: ed25519.Ed25519PrivateKey) -> None:
        """A body without a final CRLF gets one, as SMTP would add it."""
        signed = DKIMSigner("example.com", "s", ed_key).sign(MESSAGE[:-2])
        assert signed.endswith(MESSAGE)

    def test_sign_is_header_plus_wire_form(self, ed_key: ed25519.Ed25519PrivateKey) -> None:
        """sign() is signature_header() followed by the message, with a fixed clock."""
        signer = DKIMSigner("example.com", "s", ed_key, clock=lambda: 5)
        assert signer.signature_header(MESSAGE) + MESSAGE == signer.sign(MESSAGE)

    def test_email_message_input(self, rsa_key: rsa.RSAPrivateKey) -> None:
        """An EmailMessage is signed in its serialized wire form."""
        msg = EmailMessage()
        msg["From"] = "a@example.com"
        msg["To"] = "b@example.net"
        msg["Subject"] = "hello"
        msg.set_content("body line\n")
        signed = DKIMSigner("example.com", "s", rsa_key).sign(msg)
        assert signed.endswith(msg.as_bytes().replace(b"\n", b"\r\n"))
        assert ["pass"] == [r.status for r in verify(signed, key_lookup=_lookup(("s", rsa_key)))]


class TestDualAndBatch:
    def test_dual_signing(
        self, rsa_key: rsa.RSAPrivateKey, ed_key: ed25519.Ed25519PrivateKey
    ) -> None:
        """MultiSigner adds one Ed25519 and one RSA signature; both verify."""
        dual = MultiSigner(
            [DKIMSigner("example.com", "ed", ed_key), DKIMSigner("example.com", "rsa", rsa_key)]
        )
        signed = dual.sign(MESSAGE)
        assert 2 == len(_signatures(signed))
        results = verify(signed, key_lookup=_lookup(("ed", ed_key), ("rsa", rsa_key)))
        assert [("pass", "ed25519-sha256"), ("pass", "rsa-sha256")] == [
            (r.status, r.algorithm) for r in results
        ]

    def test_module_functions_accept_a_list(
        self, rsa_key: rsa.RSAPrivateKey, ed_key: ed25519.Ed25519PrivateKey
    ) -> None:
        """sign/signature_header/sign_batch take one signer or a list of signers."""
        signers = [
            DKIMSigner("example.com", "ed", ed_key, clock=lambda: 7),
            DKIMSigner("example.com", "rsa", rsa_key, clock=lambda: 7),
        ]
        header = signature_header(MESSAGE, signers)
        assert header + MESSAGE == sign(MESSAGE, signers)
        assert [header + MESSAGE] * 3 == sign_batch([MESSAGE] * 3, signers, workers=2)
        assert signers[0].sign(MESSAGE) == sign(MESSAGE, signers[0])

    @pytest.mark.parametrize("workers", [None, 1, 2, 3, 8])
    def test_batch_keeps_order(
        self, ed_key: ed25519.Ed25519PrivateKey, workers: int | None
    ) -> None:
        """sign_batch returns what sign returns, in input order, for any worker count."""
        signer = DKIMSigner("example.com", "s", ed_key, clock=lambda: 9)
        messages = [MESSAGE.replace(b"Joe.", b"Joe %d." % i) for i in range(7)]
        assert [signer.sign(m) for m in messages] == signer.sign_batch(messages, workers=workers)

    def test_batch_empty(self, ed_key: ed25519.Ed25519PrivateKey) -> None:
        """An empty batch gives an empty list."""
        assert [] == DKIMSigner("example.com", "s", ed_key).sign_batch([], workers=2)

    @pytest.mark.parametrize("workers", [0, -1, 1.5, True])
    def test_bad_workers(self, ed_key: ed25519.Ed25519PrivateKey, workers: object) -> None:
        """A worker count that is not a positive integer is a SigningError."""
        with pytest.raises(SigningError, match="workers"):
            DKIMSigner("example.com", "s", ed_key).sign_batch([MESSAGE], workers=workers)  # type: ignore[arg-type]

    @pytest.mark.parametrize("workers", [1, 2, 4])
    def test_worker_exception_reaches_the_caller(
        self, ed_key: ed25519.Ed25519PrivateKey, workers: int
    ) -> None:
        """An exception other than a MailscaleError, raised in any thread, is raised unchanged."""
        calls = itertools.count()

        def clock() -> float:
            if next(calls) == 5:
                raise RuntimeError("clock broke")
            return 1_700_000_000.0

        signer = DKIMSigner("example.com", "s", ed_key, clock=clock)
        with pytest.raises(RuntimeError, match=r"^clock broke$"):
            signer.sign_batch([MESSAGE] * 12, workers=workers)

    def test_threads_sign_each_message_once(self, ed_key: ed25519.Ed25519PrivateKey) -> None:
        """With threads every message is signed exactly once and lands in its own place."""
        stamps = itertools.count(1_700_000_000)
        signer = DKIMSigner("example.com", "s", ed_key, clock=lambda: next(stamps))
        messages = [MESSAGE.replace(b"Subject: ", b"Subject: %d " % i) for i in range(40)]
        signed = signer.sign_batch(messages, workers=3)
        assert 1_700_000_040 == next(stamps)  # one clock reading per message, no more
        assert [s.endswith(m) for s, m in zip(signed, messages, strict=True)] == [True] * 40
        assert 40 == len({re.search(rb"t=(\d+)", s).group(1) for s in signed})  # type: ignore[union-attr]

    def test_batch_error_names_problem(self, ed_key: ed25519.Ed25519PrivateKey) -> None:
        """A malformed message in a batch raises its CanonicalizationError."""
        with pytest.raises(CanonicalizationError, match="no colon"):
            DKIMSigner("example.com", "s", ed_key).sign_batch(
                [MESSAGE, b"From: a\r\nbroken\r\n\r\n"], workers=2
            )


class TestBadInput:
    @pytest.mark.parametrize(
        ("message", "error", "problem"),
        [
            (b"From: a@example.com\r\nSubject: x\rTo", CanonicalizationError, "no colon"),
            (b"From: a@example.com\r\nno colon\r\n\r\nbody", CanonicalizationError, "no colon"),
            (b"Fr\x00m: a\r\n\r\nbody", CanonicalizationError, "field name"),
            (b"Fr\xe9m: a\r\n\r\nbody", CanonicalizationError, "field name"),
            (b"To: b@example.net\r\n\r\nbody", CanonicalizationError, "no From"),
            ("From: text\r\n\r\n", CanonicalizationError, "bytes or an email"),
            (None, CanonicalizationError, "bytes or an email"),
        ],
    )
    def test_bad_messages(
        self, ed_key: ed25519.Ed25519PrivateKey, message: object, error: type, problem: str
    ) -> None:
        """Malformed messages get a SigningError subclass naming the problem."""
        with pytest.raises(error, match=problem):
            DKIMSigner("example.com", "s", ed_key).sign(message)  # type: ignore[arg-type]

    @pytest.mark.parametrize(
        "value",
        [
            "x\r\nBcc: evil@x",
            "x\nBcc: evil@x",
            "x\rBcc: evil@x",
            "x\u2028Bcc: evil@x",
            "x\x85Bcc: evil@x",
            "x\r\n\r\nbody",
        ],
    )
    @pytest.mark.parametrize("policy", [email.policy.compat32, email.policy.SMTP])
    def test_header_injection_in_a_message_object(
        self, ed_key: ed25519.Ed25519PrivateKey, value: str, policy: email.policy.Policy
    ) -> None:
        """A Message header value with a line break that is not a fold is HeaderInjection."""
        msg = email.message.Message(policy=policy)
        msg["From"] = "a@example.com"
        msg.set_raw("Subject", value)
        msg.set_payload("hi\n")
        signer = DKIMSigner("example.com", "s", ed_key)
        for call in (signer.sign, signer.signature_header, lambda m: signer.sign_batch([m])):
            with pytest.raises(HeaderInjection, match="'Subject'"):
                call(msg)  # type: ignore[operator]

    def test_folded_message_object_header_signs(self, ed_key: ed25519.Ed25519PrivateKey) -> None:
        """A folded header value read from a file (CRLF or LF then space) is not injection."""
        msg = email.message_from_bytes(
            b"From: a@example.com\nSubject: a long\n  subject\nTo: b@example.net\n\nhi\n"
        )
        signed = DKIMSigner("example.com", "s", ed_key).sign(msg)
        assert signed.endswith(b"Subject: a long\r\n  subject\r\nTo: b@example.net\r\n\r\nhi\r\n")
        assert ["pass"] == [r.status for r in verify(signed, key_lookup=_lookup(("s", ed_key)))]

    @pytest.mark.parametrize(
        ("kwargs", "error", "problem"),
        [
            ({"domain": "exa mple.com"}, InvalidDomain, "domain"),
            ({"domain": "-bad.example.com"}, InvalidDomain, "domain"),
            ({"domain": ""}, InvalidDomain, "domain"),
            ({"selector": "s;1"}, InvalidDomain, "selector"),
            ({"selector": "a" * 64}, InvalidDomain, "selector"),
            ({"identity": "user@other.org"}, InvalidDomain, "not in the signing domain"),
            ({"identity": "no-at-sign"}, InvalidDomain, "no '@'"),
            ({"identity": "a;b@example.com"}, InvalidDomain, "local part"),
            ({"canonicalization": "loose/relaxed"}, UnsupportedAlgorithm, "canonicalization"),
            ({"key": b"not a key"}, InvalidKey, "cannot load"),
            ({"key": (VECTORS / "rsa512.pem").read_bytes()}, InvalidKey, "512 bits"),
            ({"headers": ["to", "subject"]}, SigningError, "From"),
            ({"headers": ["from", "bad:name"]}, SigningError, "invalid header field name"),
            ({"expire_after": 0}, SigningError, "expire_after"),
            ({"expire_after": True}, SigningError, "expire_after"),
            ({"expire_after": 1.5}, SigningError, "expire_after"),
            ({"headers": []}, SigningError, "From"),
            ({"headers": "from"}, SigningError, "list of header field names"),
            ({"headers": ["from", 5]}, SigningError, "list of header field names"),
            ({"oversign": ["from", "x-custom"]}, SigningError, "not in headers: x-custom"),
            ({"oversign": "from"}, SigningError, "list of header field names"),
        ],
    )
    def test_bad_configuration(
        self,
        ed_key: ed25519.Ed25519PrivateKey,
        kwargs: dict[str, object],
        error: type,
        problem: str,
    ) -> None:
        """Bad domains, selectors, identities, modes and keys are refused up front."""
        args: dict[str, object] = {"domain": "example.com", "selector": "s", "key": ed_key}
        args.update(kwargs)
        with pytest.raises(error, match=problem):
            DKIMSigner(**args)  # type: ignore[arg-type]

    def test_idn_domain(self, ed_key: ed25519.Ed25519PrivateKey) -> None:
        """A non-ASCII domain is signed as its A-label."""
        signer = DKIMSigner("bücher.example", "s", ed_key)
        assert "xn--bcher-kva.example" == signer.domain

    def test_multisigner_needs_signers(self) -> None:
        """An empty MultiSigner is a SigningError."""
        with pytest.raises(SigningError, match="one or more"):
            MultiSigner([])


def _buffers(data: bytes) -> dict[str, object]:
    """``data`` behind buffers of other shapes (the int array needs a length divisible by 4)."""
    return {
        "bytearray": bytearray(data),
        "reversed": memoryview(data[::-1])[::-1],
        "every second": memoryview(bytes(b for x in data for b in (x, 0)))[::2],
        "array I": memoryview(array("I", data)),
    }


class TestBufferInput:
    @pytest.mark.parametrize("kind", ["bytearray", "reversed", "every second", "array I"])
    def test_any_buffer_signs_and_verifies_as_its_bytes(
        self, ed_key: ed25519.Ed25519PrivateKey, kind: str
    ) -> None:
        """sign() and verify() read any buffer as the bytes it holds."""
        # A padded body, and a t= of the length that makes the signed message fill whole ints.
        data = MESSAGE[:-2] + b"x" * (-len(MESSAGE) % 4) + b"\r\n"
        signer, signed = next(
            (signer, signed)
            for when in (5, 50, 500, 5000)
            for signer in [DKIMSigner("example.com", "s", ed_key, clock=lambda t=when: t)]
            for signed in [signer.sign(data)]
            if len(signed) % 4 == 0
        )
        assert signed == signer.sign(_buffers(data)[kind])  # type: ignore[arg-type]
        results = verify(_buffers(signed)[kind], key_lookup=_lookup(("s", ed_key)), now=6000)  # type: ignore[arg-type]
        assert ["pass"] == [r.status for r in results]


class TestTypedErrors:
    @pytest.mark.parametrize("when", ["now", None, float("nan"), -1, 10**12, True])
    def test_bad_clock(self, ed_key: ed25519.Ed25519PrivateKey, when: object) -> None:
        """A clock that does not give POSIX seconds is a SigningError when signing."""
        signer = DKIMSigner("example.com", "s", ed_key, clock=lambda: when)  # type: ignore[arg-type,return-value]
        with pytest.raises(SigningError, match="clock"):
            signer.sign(MESSAGE)

    def test_oversign_subset_of_headers(self, ed_key: ed25519.Ed25519PrivateKey) -> None:
        """An explicit oversign list inside headers is used as given."""
        signer = DKIMSigner(
            "example.com", "s", ed_key, headers=["from", "to", "x-a"], oversign=["x-a"]
        )
        assert ["from", "to", "x-a"] == _h(signer.signature_header(MESSAGE))

    @pytest.mark.parametrize("workers", [None, 2])
    def test_batch_error_names_the_message(
        self, ed_key: ed25519.Ed25519PrivateKey, workers: int | None
    ) -> None:
        """A bad message in a batch raises its error type, saying which message it was."""
        batch = [MESSAGE] * 5 + [b"To: b@example.net\r\n\r\nbody\r\n"] + [MESSAGE] * 2
        signer = DKIMSigner("example.com", "s", ed_key)
        with pytest.raises(CanonicalizationError, match=r"message 5 of the batch: .*no From"):
            signer.sign_batch(batch, workers=workers)
        dual = MultiSigner([signer, signer])
        with pytest.raises(CanonicalizationError, match="message 5 of the batch"):
            dual.sign_batch(batch, workers=workers)

    def test_batch_error_with_another_constructor_gets_a_note(self) -> None:
        """An error class that cannot be rebuilt from a message keeps its type and gets a
        PEP 678 note naming the message, on every supported Python (3.10 has no add_note)."""
        from mailscale.signing._signer import _raise_indexed

        class CodedError(SigningError):
            def __init__(self, code: int, detail: str) -> None:
                super().__init__(f"signing failed with code {code}: {detail}")

        with pytest.raises(CodedError) as info:
            _raise_indexed(CodedError(7, "no key"), 3)
        assert ["message 3 of the batch"] == info.value.__notes__
        assert "signing failed with code 7: no key" == str(info.value)


def _malformed(kind: str) -> email.message.Message:
    """A Message the email package cannot serialize, of the given kind."""
    msg = EmailMessage()
    msg["From"] = "a@example.com"
    msg["To"] = "b@example.net"
    if kind == "list payload":
        msg.set_payload([1, 2])
    elif kind == "int payload":
        msg.set_payload(123)
    elif kind == "part containing itself":
        msg.set_payload([msg])
    elif kind == "no policy":
        msg.set_payload("hi\n")
        msg.policy = None  # type: ignore[assignment]
    elif kind == "bytes header value":
        msg.set_payload("hi\n")
        msg._headers.append(("X-Raw", b"value"))  # type: ignore[attr-defined]
    elif kind == "non-ASCII text payload (compat32)":
        msg = email.message.Message()
        msg["From"] = "a@example.com"
        msg.set_payload("h\xe9llo\n")
    return msg


_KINDS = (
    "list payload",
    "int payload",
    "part containing itself",
    "no policy",
    "bytes header value",
    "non-ASCII text payload (compat32)",
)


class TestMalformedMessageObjects:
    @pytest.mark.parametrize("kind", _KINDS)
    def test_every_entry_point_raises_the_documented_error(
        self, ed_key: ed25519.Ed25519PrivateKey, kind: str
    ) -> None:
        """A Message that cannot be serialized is a CanonicalizationError from sign,
        signature_header, verify, MultiSigner and the module functions, never an
        AttributeError or TypeError."""
        msg = _malformed(kind)
        signer = DKIMSigner("example.com", "s", ed_key)
        dual = MultiSigner([signer, signer])
        calls = [
            signer.sign,
            signer.signature_header,
            dual.sign,
            dual.signature_header,
            lambda m: sign(m, signer),
            lambda m: verify(m, key_lookup=lambda name: None),
        ]
        pattern = r"cannot be serialized: [A-Za-z]+Error"
        for call in calls:
            with pytest.raises(CanonicalizationError, match=pattern):
                call(msg)

    @pytest.mark.parametrize("kind", _KINDS)
    @pytest.mark.parametrize("workers", [None, 2])
    def test_batch_names_the_message(
        self, ed_key: ed25519.Ed25519PrivateKey, kind: str, workers: int | None
    ) -> None:
        """sign_batch (signer, MultiSigner and module function) says which message it was."""
        signer = DKIMSigner("example.com", "s", ed_key)
        batch = [MESSAGE, MESSAGE, _malformed(kind), MESSAGE]
        pattern = r"message 2 of the batch: the email message cannot be serialized"
        for call in (
            signer.sign_batch,
            MultiSigner([signer, signer]).sign_batch,
            lambda b, workers: sign_batch(b, signer, workers),
        ):
            with pytest.raises(CanonicalizationError, match=pattern):
                call(batch, workers=workers)  # type: ignore[operator]

    @pytest.mark.parametrize("name", ["X-A:B", "X A", "Subj\xe9ct", "", "X-\x00"])
    def test_header_names_follow_the_envelope_rule(
        self, ed_key: ed25519.Ed25519PrivateKey, name: str
    ) -> None:
        """A Message header name that Envelope refuses is refused by signing and verify
        too: HeaderInjection naming it, with the batch position in sign_batch."""
        from mailscale.message import Envelope

        msg = email.message.Message()
        msg["From"] = "a@example.com"
        msg._headers.append((name, "x"))  # type: ignore[attr-defined]
        msg.set_payload("hi\n")
        with pytest.raises(HeaderInjection, match="is not a valid field name"):
            Envelope(sender="a@example.com", recipients=["b@example.net"], message=msg)
        signer = DKIMSigner("example.com", "s", ed_key)
        for call in (signer.sign, MultiSigner([signer]).sign, lambda m: verify(m)):
            with pytest.raises(HeaderInjection, match="is not a valid field name"):
                call(msg)
        with pytest.raises(HeaderInjection, match="message 1 of the batch: header name"):
            signer.sign_batch([MESSAGE, msg])
