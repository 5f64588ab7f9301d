"""DKIM keys: generation, loading, DNS key records."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from mailscale.errors import (
    InvalidKey,
    InvalidKeyRecord,
    SigningError,
    UnsupportedAlgorithm,
)
from mailscale.signing.keys import (
    KeyRecord,
    dns_record,
    dns_record_strings,
    generate_key,
    load_private_key,
    parse_key_record,
    private_key_pem,
)

VECTORS = Path(__file__).parent / "vectors"


def _pub_bytes(key: object) -> bytes:
    return key.public_bytes(  # type: ignore[attr-defined, no-any-return]
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


class TestGenerateKey:
    def test_rsa_default_is_2048(self, rsa_key: rsa.RSAPrivateKey) -> None:
        """The session RSA key is a 2048-bit key with exponent 65537."""
        assert 2048 == rsa_key.key_size
        assert 65537 == rsa_key.public_key().public_numbers().e

    def test_rsa_1024(self) -> None:
        """1024 bits is the smallest size DKIM accepts."""
        key = generate_key("rsa", 1024)
        assert isinstance(key, rsa.RSAPrivateKey)
        assert 1024 == key.key_size

    def test_ed25519(self) -> None:
        """Ed25519 keys ignore the bits argument."""
        assert isinstance(generate_key("ed25519", bits=1), ed25519.Ed25519PrivateKey)

    @pytest.mark.parametrize("bits", [512, 1023, 4097, 8192])
    def test_rsa_size_out_of_range(self, bits: int) -> None:
        """An RSA size outside 1024..4096 is an InvalidKey naming the size."""
        with pytest.raises(InvalidKey, match=str(bits)):
            generate_key("rsa", bits)

    def test_unknown_algorithm(self) -> None:
        """An algorithm other than rsa/ed25519 is UnsupportedAlgorithm."""
        with pytest.raises(UnsupportedAlgorithm, match="dsa"):
            generate_key("dsa")


class TestLoadPrivateKey:
    def test_pem_round_trip(self, ed_key: ed25519.Ed25519PrivateKey) -> None:
        """A PKCS#8 PEM written by private_key_pem loads back to the same key."""
        loaded = load_private_key(private_key_pem(ed_key))
        assert _pub_bytes(ed_key.public_key()) == _pub_bytes(loaded.public_key())

    def test_traditional_rsa_pem(self, rfc8463_rsa: rsa.RSAPrivateKey) -> None:
        """A traditional 'BEGIN RSA PRIVATE KEY' file loads."""
        loaded = load_private_key((VECTORS / "rfc8463_rsa1024.pem").read_bytes())
        assert _pub_bytes(rfc8463_rsa.public_key()) == _pub_bytes(loaded.public_key())

    def test_der(self, ed_key: ed25519.Ed25519PrivateKey) -> None:
        """DER bytes load as well as PEM."""
        der = ed_key.private_bytes(
            serialization.Encoding.DER,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        assert isinstance(load_private_key(der), ed25519.Ed25519PrivateKey)

    def test_key_object_passes_through(self, ed_key: ed25519.Ed25519PrivateKey) -> None:
        """A cryptography key object is accepted as it is."""
        assert ed_key is load_private_key(ed_key)

    def test_garbage(self) -> None:
        """Unreadable bytes are InvalidKey, without echoing the data."""
        with pytest.raises(InvalidKey) as info:
            load_private_key(b"-----BEGIN PRIVATE KEY-----\nc2VjcmV0\n-----END PRIVATE KEY-----\n")
        assert "c2VjcmV0" not in str(info.value)

    def test_wrong_key_type(self) -> None:
        """An EC key is not a DKIM key."""
        with pytest.raises(InvalidKey, match="RSA or Ed25519"):
            load_private_key(ec.generate_private_key(ec.SECP256R1()))

    def test_too_small_rsa(self) -> None:
        """An RSA key under 1024 bits is refused with its size in the message."""
        with pytest.raises(InvalidKey, match="512 bits"):
            load_private_key((VECTORS / "rsa512.pem").read_bytes())


class TestDnsRecord:
    def test_rsa_record_matches_rfc8463(self, rfc8463_rsa: rsa.RSAPrivateKey) -> None:
        """The RSA record of the RFC 8463 key is the one the RFC publishes."""
        expected = (VECTORS / "rfc8463_test.txt").read_text().strip()
        assert expected == dns_record(rfc8463_rsa.public_key())

    def test_ed25519_record_matches_rfc8463(self, rfc8463_ed: ed25519.Ed25519PrivateKey) -> None:
        """The Ed25519 record holds the raw 32-byte key, as RFC 8463 publishes it."""
        expected = (VECTORS / "rfc8463_brisbane.txt").read_text().strip()
        assert expected == dns_record(rfc8463_ed)

    def test_strings_are_at_most_255_bytes(self) -> None:
        """A 4096-bit key record is split into <=255-byte strings that join back."""
        key = generate_key("rsa", 4096)
        strings = dns_record_strings(key.public_key())  # type: ignore[arg-type]
        assert len(strings) >= 3
        assert all(len(s.encode("ascii")) <= 255 for s in strings)
        assert dns_record(key) == "".join(strings)

    def test_short_record_is_one_string(self, ed_key: ed25519.Ed25519PrivateKey) -> None:
        """An Ed25519 record fits one string."""
        assert [dns_record(ed_key)] == dns_record_strings(ed_key)

    def test_round_trip(self, rsa_key: rsa.RSAPrivateKey) -> None:
        """parse_key_record reads back the key dns_record publishes, from strings too."""
        record = parse_key_record([s.encode() for s in dns_record_strings(rsa_key)])
        assert "rsa" == record.key_type
        assert record.public_key is not None
        assert _pub_bytes(rsa_key.public_key()) == _pub_bytes(record.public_key)
        assert 2048 == record.bits


class TestParseKeyRecord:
    def test_tags(self, ed_key: ed25519.Ed25519PrivateKey) -> None:
        """h=, s=, t= and n= are read as lists and text."""
        p = dns_record(ed_key).split("p=")[1]
        record = parse_key_record(
            f"v=DKIM1; k=ed25519; h=sha256; s=email:*; t=y:s; n=rotated 2026; p={p}"
        )
        assert ("sha256",) == record.hash_algorithms
        assert ("email", "*") == record.service_types
        assert ("y", "s") == record.flags
        assert record.testing and record.strict_identity
        assert record.allows_hash("sha256") and not record.allows_hash("sha1")
        assert "rotated 2026" == record.notes
        assert 256 == record.bits
        assert "DKIM1" == record.version
        assert p == record.public_key_b64

    def test_defaults(self, rsa_key: rsa.RSAPrivateKey) -> None:
        """Without k=, h=, s=, t= the record is rsa, any hash, any service, no flags."""
        p = dns_record(rsa_key).split("p=")[1]
        record = parse_key_record(f"p={p}")
        assert record.version is None
        assert ("rsa", None, ("*",), ()) == (
            record.key_type,
            record.hash_algorithms,
            record.service_types,
            record.flags,
        )
        assert record.allows_email() and not record.testing

    def test_folded_p(self, rsa_key: rsa.RSAPrivateKey) -> None:
        """Whitespace inside p= is ignored."""
        p = dns_record(rsa_key).split("p=")[1]
        record = parse_key_record(f"v=DKIM1; p={p[:40]} {p[40:90]}\t{p[90:]};")
        assert p == record.public_key_b64
        assert isinstance(record.public_key, rsa.RSAPublicKey)
        assert rsa_key.public_key().public_numbers() == record.public_key.public_numbers()

    def test_revoked(self) -> None:
        """An empty p= is a revoked key, not an error."""
        record = parse_key_record("v=DKIM1; k=rsa; p=")
        assert record.revoked
        assert 0 == record.bits

    def test_pkcs1_rsa_key(self, rsa_key: rsa.RSAPrivateKey) -> None:
        """A bare PKCS#1 RSAPublicKey in p= is accepted (some publishers use it)."""
        pkcs1 = rsa_key.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.PKCS1
        )
        record = parse_key_record("p=" + base64.b64encode(pkcs1).decode())
        assert record.public_key is not None
        assert _pub_bytes(rsa_key.public_key()) == _pub_bytes(record.public_key)

    def test_service_not_email(self, ed_key: ed25519.Ed25519PrivateKey) -> None:
        """s= without email or * does not allow email."""
        p = dns_record(ed_key).split("p=")[1]
        assert not parse_key_record(f"k=ed25519; s=other; p={p}").allows_email()

    @pytest.mark.parametrize(
        ("txt", "problem"),
        [
            ("v=DKIM1; k=rsa", "no p="),
            ("v=DKIM2; p=", "version"),
            ("k=rsa; v=DKIM1; p=", "first"),
            ("v=DKIM1; p=!!!!", "base64"),
            ("v=DKIM1; p=abc", "base64"),
            ("v=DKIM1; p=AAAA", "RSA public key"),
            ("v=DKIM1; k=ed25519; p=AAAA", "32 bytes"),
            ("v=DKIM1; p; k=rsa", "no '='"),
            ("v=DKIM1; p=; p=", "duplicate"),
            ("v=DKIM1; 1x=2; p=", "tag name"),
            (b"v=DKIM1; n=\xff; p=", "non-ASCII"),
            (5, "not int"),
            (None, "not NoneType"),
            ([b"v=DKIM1; ", 5], "TXT strings"),
        ],
    )
    def test_malformed(self, txt: str | bytes, problem: str) -> None:
        """A malformed record is an InvalidKeyRecord naming the problem."""
        with pytest.raises(InvalidKeyRecord, match=problem) as info:
            parse_key_record(txt)
        assert isinstance(info.value, SigningError)

    def test_ed25519_p_in_rsa_record(self, ed_key: ed25519.Ed25519PrivateKey) -> None:
        """k=rsa with an Ed25519 SubjectPublicKeyInfo is refused."""
        spki = base64.b64encode(_pub_bytes(ed_key.public_key())).decode()
        with pytest.raises(InvalidKeyRecord, match="Ed25519"):
            parse_key_record(f"k=rsa; p={spki}")

    def test_unknown_key_type(self) -> None:
        """An unknown k= is UnsupportedAlgorithm, a SigningError."""
        with pytest.raises(UnsupportedAlgorithm, match="k='dsa'"):
            parse_key_record("v=DKIM1; k=dsa; p=")

    def test_record_is_a_value(self) -> None:
        """KeyRecord is immutable."""
        record = parse_key_record("p=")
        assert isinstance(record, KeyRecord)
        with pytest.raises(AttributeError):
            record.key_type = "ed25519"  # type: ignore[misc]


class TestTypedErrors:
    @pytest.mark.parametrize("limit", [0, -1, 256, True, "255", 2.5])
    def test_bad_string_limit(self, ed_key: ed25519.Ed25519PrivateKey, limit: object) -> None:
        """A TXT string limit outside 1..255 is an InvalidKey naming the limit."""
        with pytest.raises(InvalidKey, match="1 to 255 bytes"):
            dns_record_strings(ed_key, limit=limit)  # type: ignore[arg-type]

    def test_encrypted_pem_is_named(self, ed_key: ed25519.Ed25519PrivateKey) -> None:
        """An encrypted key without a password is InvalidKey saying it is encrypted."""
        pem = ed_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(b"secret"),
        )
        with pytest.raises(InvalidKey, match="the key is encrypted; decrypt it first"):
            load_private_key(pem)
        assert _pub_bytes(ed_key.public_key()) == _pub_bytes(
            load_private_key(pem, password=b"secret").public_key()
        )
