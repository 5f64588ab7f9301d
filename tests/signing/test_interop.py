"""Interoperability with dkimpy: each verifies what the other signs, over a varied corpus."""

from __future__ import annotations

import base64
import random
from collections.abc import Callable
from email.message import EmailMessage

import dkim
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

from mailscale.signing import DKIMSigner, dns_record, verify
from mailscale.signing.keys import PrivateKey, private_key_pem

HEADER = (
    b"From: Sender <sender@example.com>\r\n"
    b"To: Rcpt <rcpt@example.net>,\r\n"
    b"  Other <other@example.net>\r\n"
    b"Subject: Interop   test\r\n"
    b"Date: Tue, 14 Nov 2023 22:13:20 +0000\r\n"
    b"Message-ID: <interop@example.com>\r\n"
    b"MIME-Version: 1.0\r\n"
    b"Content-Type: text/plain; charset=utf-8\r\n"
    b"\r\n"
)


def _text(size: int, seed: int = 1) -> bytes:
    rng = random.Random(seed)
    words = [b"mail", b"scale", b"  spaced", b"\ttab", b"word", b"end  "]
    out = bytearray()
    while len(out) < size:
        out += b" ".join(rng.choice(words) for _ in range(rng.randint(2, 12))) + b"\r\n"
    return bytes(out[:size]) + b"\r\n"


def _multipart() -> bytes:
    msg = EmailMessage()
    msg["From"] = "Sender <sender@example.com>"
    msg["To"] = "rcpt@example.net"
    msg["Subject"] = "With attachments"
    msg["Message-ID"] = "<multi@example.com>"
    msg.set_content("See the attachments.\n")
    msg.add_attachment(
        bytes(range(256)) * 40, maintype="application", subtype="octet-stream", filename="data.bin"
    )
    msg.add_attachment("a,b\n1,2\n", subtype="csv", filename="t.csv")
    return msg.as_bytes().replace(b"\n", b"\r\n")


CORPUS: dict[str, bytes] = {
    "folded-headers": HEADER.replace(b"Subject: Interop   test", b"Subject: Interop\r\n\t test")
    + b"body\r\n",
    "trailing-whitespace": HEADER.replace(b"Date:", b"X-Trail: value  \t\r\nDate:")
    + b"line with trailing   \r\n\tand tabs\t\t\r\n",
    "trailing-blank-lines": HEADER + b"text\r\n\r\n\r\n\r\n",
    "empty-body": HEADER,
    "header-only": HEADER[:-2],
    "header-only-no-final-crlf": HEADER[:-4],
    "no-final-crlf": HEADER + b"last line without CRLF",
    "lf-only": (HEADER + b"line one\r\n\r\nline two\r\n").replace(b"\r\n", b"\n"),
    "8bit-body": HEADER.replace(b"MIME-Version", b"Content-Transfer-Encoding: 8bit\r\nMIME-Version")
    + "Grüße aus Köln — ça va ? 日本語\r\n".encode(),
    "998-char-lines": HEADER + (b"x" * 998 + b"\r\n") * 3 + (b"y " * 499)[:998] + b"\r\n",
    "multipart-attachments": _multipart(),
    "2kb": HEADER + _text(2_000, 2),
    "20kb": HEADER + _text(20_000, 3),
    "100kb": HEADER + _text(100_000, 4),
    "1mb": HEADER + _text(1_000_000, 5),
}
CANONS = ["relaxed/relaxed", "relaxed/simple", "simple/relaxed", "simple/simple"]


def _cases() -> list[object]:
    cases = []
    for name in CORPUS:
        for canon in CANONS:
            for alg in ("rsa", "ed25519"):
                cases.append(pytest.param(name, canon, alg, id=f"{name}-{canon}-{alg}"))
    return cases


@pytest.fixture
def keys(rsa_key: rsa.RSAPrivateKey, ed_key: ed25519.Ed25519PrivateKey) -> dict[str, PrivateKey]:
    """The session keys by algorithm name."""
    return {"rsa": rsa_key, "ed25519": ed_key}


def _records(keys: dict[str, PrivateKey]) -> dict[str, str]:
    return {f"{alg}._domainkey.example.com": dns_record(key) for alg, key in keys.items()}


def _dnsfunc(records: dict[str, str]) -> Callable[..., bytes]:
    def lookup(name: bytes, timeout: int = 5) -> bytes:
        return records[name.decode().rstrip(".")].encode()

    return lookup


def _dkimpy_key(key: PrivateKey) -> bytes:
    if isinstance(key, ed25519.Ed25519PrivateKey):
        seed = key.private_bytes(
            serialization.Encoding.Raw,
            serialization.PrivateFormat.Raw,
            serialization.NoEncryption(),
        )
        return base64.b64encode(seed)
    return private_key_pem(key)


class TestDkimpyInterop:
    @pytest.mark.parametrize(("name", "canon", "alg"), _cases())
    def test_dkimpy_verifies_mailscale(
        self, keys: dict[str, PrivateKey], name: str, canon: str, alg: str
    ) -> None:
        """dkimpy verifies the signature mailscale makes."""
        signer = DKIMSigner("example.com", alg, keys[alg], canonicalization=canon)
        signed = signer.sign(CORPUS[name])
        assert dkim.verify(signed, dnsfunc=_dnsfunc(_records(keys))) is True

    @pytest.mark.parametrize(("name", "canon", "alg"), _cases())
    def test_mailscale_verifies_dkimpy(
        self, keys: dict[str, PrivateKey], name: str, canon: str, alg: str
    ) -> None:
        """mailscale verifies the signature dkimpy makes."""
        message = CORPUS[name]
        header, body = canon.encode().split(b"/")
        sig = dkim.sign(
            message,
            alg.encode(),
            b"example.com",
            _dkimpy_key(keys[alg]),
            canonicalize=(header, body),
            signature_algorithm=b"ed25519-sha256" if alg == "ed25519" else b"rsa-sha256",
        )
        results = verify(sig + message, key_lookup=_records(keys).get)
        assert [("pass", "")] == [(r.status, r.reason) for r in results]

    @pytest.mark.parametrize("canon", CANONS)
    def test_bare_cr_and_lf_as_stored(self, keys: dict[str, PrivateKey], canon: str) -> None:
        """A dkimpy-signed message with a bare CR in the body and stored with LF ends verifies."""
        message = HEADER + b"odd\rbyte in a line\r\nlast line\r\n"
        header, body = canon.encode().split(b"/")
        sig = dkim.sign(
            message, b"rsa", b"example.com", _dkimpy_key(keys["rsa"]), canonicalize=(header, body)
        )
        stored = (sig + message).replace(b"\r\n", b"\n")
        results = verify(stored, key_lookup=_records(keys).get)
        assert [("pass", "")] == [(r.status, r.reason) for r in results]

    def test_dual_signature_both_ways(self, keys: dict[str, PrivateKey]) -> None:
        """dkimpy verifies both signatures of a dual-signed message."""
        from mailscale.signing import MultiSigner

        dual = MultiSigner(
            [DKIMSigner("example.com", alg, key) for alg, key in sorted(keys.items())]
        )
        signed = dual.sign(CORPUS["multipart-attachments"])
        checker = dkim.DKIM(signed)
        dnsfunc = _dnsfunc(_records(keys))
        assert [True, True] == [checker.verify(idx=i, dnsfunc=dnsfunc) for i in range(2)]
