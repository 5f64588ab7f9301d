"""DKIM keys: generation, loading, and the DNS key record (RFC 6376 section 3.6.1, RFC 8463).

A DKIM public key is published as a TXT record at ``selector._domainkey.domain``.
RSA keys are published as the base64 DER SubjectPublicKeyInfo, Ed25519 keys as
the base64 of the raw 32-byte public key (RFC 8463 section 4).
"""

from __future__ import annotations

import base64
import binascii
import re
from typing import TypeAlias

import attrs
from cryptography.exceptions import UnsupportedAlgorithm as _CryptoUnsupported
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

from mailscale.errors import InvalidKey, InvalidKeyRecord, UnsupportedAlgorithm
from mailscale.signing._tags import TagListError, parse_tag_list

__all__ = [
    "MAX_RSA_BITS",
    "MIN_RSA_BITS",
    "KeyRecord",
    "PrivateKey",
    "PublicKey",
    "dns_record",
    "dns_record_strings",
    "generate_key",
    "key_algorithm",
    "load_private_key",
    "parse_key_record",
    "private_key_pem",
    "public_key_bits",
]

PrivateKey: TypeAlias = rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey
PublicKey: TypeAlias = rsa.RSAPublicKey | ed25519.Ed25519PublicKey

#: RSA keys below this size are refused for signing and fail verification (RFC 8301).
MIN_RSA_BITS = 1024
#: The largest RSA key mailscale signs with (RFC 8301 asks verifiers to handle up to 4096).
MAX_RSA_BITS = 4096

_KEY_TYPES = ("rsa", "ed25519")
_B64_CHARS = re.compile(r"[A-Za-z0-9+/=]*\Z")


def generate_key(algorithm: str = "rsa", bits: int = 2048) -> PrivateKey:
    """Generate a new DKIM signing key.

    Args:
        algorithm: ``"rsa"`` or ``"ed25519"``.
        bits: RSA modulus size, 1024 to 4096 (2048 recommended); ignored for Ed25519.

    Raises:
        UnsupportedAlgorithm: an algorithm other than rsa or ed25519.
        InvalidKey: an RSA size outside 1024..4096.
    """
    if algorithm == "ed25519":
        return ed25519.Ed25519PrivateKey.generate()
    if algorithm != "rsa":
        raise UnsupportedAlgorithm(f"unsupported DKIM key algorithm {algorithm!r} (rsa, ed25519)")
    if not isinstance(bits, int) or not MIN_RSA_BITS <= bits <= MAX_RSA_BITS:
        raise InvalidKey(
            f"RSA key size must be {MIN_RSA_BITS} to {MAX_RSA_BITS} bits, not {bits!r}"
        )
    return rsa.generate_private_key(public_exponent=65537, key_size=bits)


def key_algorithm(key: PrivateKey | PublicKey) -> str:
    """Return ``"rsa"`` or ``"ed25519"`` for a key object.

    Raises:
        InvalidKey: any other kind of key.
    """
    if isinstance(key, (rsa.RSAPrivateKey, rsa.RSAPublicKey)):
        return "rsa"
    if isinstance(key, (ed25519.Ed25519PrivateKey, ed25519.Ed25519PublicKey)):
        return "ed25519"
    raise InvalidKey(f"not an RSA or Ed25519 key: {type(key).__name__}")


def public_key_bits(key: PrivateKey | PublicKey) -> int:
    """Return the key size in bits (256 for Ed25519)."""
    if isinstance(key, (rsa.RSAPrivateKey, rsa.RSAPublicKey)):
        return int(key.key_size)
    key_algorithm(key)
    return 256


def load_private_key(data: bytes | str | PrivateKey, password: bytes | None = None) -> PrivateKey:
    """Load and validate a DKIM private key from PEM or DER bytes, or accept a key object.

    RSA keys must be 1024 to 4096 bits. The key material never appears in an error.

    Raises:
        InvalidKey: unreadable data, a key type other than RSA or Ed25519, or a bad RSA size.
    """
    if isinstance(data, str):
        data = data.encode("ascii", "replace")
    if isinstance(data, (bytes, bytearray, memoryview)):
        raw = bytes(data)
        try:
            if raw.lstrip().startswith(b"-----"):
                key: object = serialization.load_pem_private_key(raw, password=password)
            else:
                key = serialization.load_der_private_key(raw, password=password)
        except TypeError as exc:
            # cryptography: "Password was not given but private key is encrypted" (or the
            # reverse); the text names no key material.
            if password is None and "encrypted" in str(exc):
                raise InvalidKey(
                    "the key is encrypted; decrypt it first, or load it with"
                    " load_private_key(data, password=...)"
                ) from None
            raise InvalidKey(f"cannot load the private key: {_what_it_is(raw)}") from None
        except (ValueError, _CryptoUnsupported):
            raise InvalidKey(f"cannot load the private key: {_what_it_is(raw)}") from None
    else:
        key = data
    if not isinstance(key, (rsa.RSAPrivateKey, ed25519.Ed25519PrivateKey)):
        raise InvalidKey(f"DKIM needs an RSA or Ed25519 private key, not {type(key).__name__}")
    if isinstance(key, rsa.RSAPrivateKey) and not MIN_RSA_BITS <= key.key_size <= MAX_RSA_BITS:
        raise InvalidKey(
            f"RSA key of {key.key_size} bits: DKIM needs {MIN_RSA_BITS} to {MAX_RSA_BITS} bits"
        )
    return key


_EXPECTED = "expected a PEM or DER private key (RSA or Ed25519)"


def _what_it_is(raw: bytes) -> str:
    """Say what ``raw`` holds instead of a private key, never quoting it."""
    text = raw.strip()
    if not text:
        return f"the data is empty; {_EXPECTED}"
    if text.startswith(b"-----BEGIN"):
        label = text[11 : text.find(b"-----", 11)].decode("ascii", "replace").strip()
        if "PUBLIC KEY" in label:
            return f"this is a public key ({label}); {_EXPECTED}"
        if "OPENSSH PRIVATE KEY" in label:
            return (
                "this is an OpenSSH private key; convert it to PKCS#8 PEM"
                " (ssh-keygen -p -m PKCS8 -f FILE) or give the PEM or DER private key"
            )
        if "PRIVATE KEY" in label:
            return f"the PEM private key ({label}) is damaged or of an unsupported kind"
        return f"this is PEM data of another kind ({label[:40]}); {_EXPECTED}"
    if text.startswith(b"v=DKIM1") or re.match(rb'^[^;"]*\bIN\s+TXT\b', text):
        return f"this is a DKIM DNS record (the public key's TXT value); {_EXPECTED}"
    try:
        serialization.load_der_public_key(raw)
    except (ValueError, TypeError, _CryptoUnsupported):
        pass
    else:
        return f"this is a DER public key; {_EXPECTED}"
    if b"p=" in text and b";" in text and text.isascii():
        return f"this looks like a DKIM DNS record (a tag list with p=); {_EXPECTED}"
    return f"not a key; {_EXPECTED}"


def private_key_pem(key: PrivateKey) -> bytes:
    """Serialize a private key as unencrypted PKCS#8 PEM (for a key file)."""
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _public(key: PrivateKey | PublicKey) -> PublicKey:
    if isinstance(key, (rsa.RSAPrivateKey, ed25519.Ed25519PrivateKey)):
        return key.public_key()
    if isinstance(key, (rsa.RSAPublicKey, ed25519.Ed25519PublicKey)):
        return key
    raise InvalidKey(f"not an RSA or Ed25519 key: {type(key).__name__}")


def _p_value(public_key: PublicKey) -> str:
    if isinstance(public_key, ed25519.Ed25519PublicKey):
        raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    else:
        raw = public_key.public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    return base64.b64encode(raw).decode("ascii")


def dns_record(public_key: PublicKey | PrivateKey) -> str:
    """Return the TXT value to publish at ``selector._domainkey.domain``.

    A private key is accepted too; only its public half is used.
    """
    pub = _public(public_key)
    return f"v=DKIM1; k={key_algorithm(pub)}; p={_p_value(pub)}"


def dns_record_strings(public_key: PublicKey | PrivateKey, limit: int = 255) -> list[str]:
    """Return the TXT value split into strings of at most ``limit`` bytes (for zone files).

    A DNS TXT record holds strings of at most 255 bytes; verifiers join them.
    """
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= 255:
        raise InvalidKey(f"a TXT string holds 1 to 255 bytes, not {limit!r}")
    value = dns_record(public_key)
    return [value[i : i + limit] for i in range(0, len(value), limit)]


@attrs.frozen
class KeyRecord:
    """A parsed DKIM key record.

    Attributes:
        key_type: ``"rsa"`` or ``"ed25519"`` (the ``k=`` tag; rsa by default).
        public_key: the key, or None when the record revokes it (empty ``p=``).
        hash_algorithms: the ``h=`` tag's hashes, or None when every hash is allowed.
        service_types: the ``s=`` tag (``("*",)`` by default).
        flags: the ``t=`` tag's flags (``"y"`` testing, ``"s"`` strict identity).
        notes: the ``n=`` tag, for humans.
        version: the ``v=`` tag (``"DKIM1"``), or None when the record has none.
        public_key_b64: the ``p=`` value without whitespace ("" when revoked).
    """

    key_type: str
    public_key: PublicKey | None
    hash_algorithms: tuple[str, ...] | None = None
    service_types: tuple[str, ...] = ("*",)
    flags: tuple[str, ...] = ()
    notes: str = ""
    version: str | None = None
    public_key_b64: str = ""

    @property
    def revoked(self) -> bool:
        """True when the record publishes an empty ``p=`` (the key is revoked)."""
        return self.public_key is None

    @property
    def testing(self) -> bool:
        """True when ``t=y``: the domain is testing DKIM."""
        return "y" in self.flags

    @property
    def strict_identity(self) -> bool:
        """True when ``t=s``: ``i=`` must use exactly the ``d=`` domain."""
        return "s" in self.flags

    @property
    def bits(self) -> int:
        """The public key size in bits (0 when revoked)."""
        return 0 if self.public_key is None else public_key_bits(self.public_key)

    def allows_hash(self, name: str) -> bool:
        """True when the record's ``h=`` tag permits the hash ``name``."""
        return self.hash_algorithms is None or name in self.hash_algorithms

    def allows_email(self) -> bool:
        """True when the record's ``s=`` tag permits email (``*`` or ``email``)."""
        return "*" in self.service_types or "email" in self.service_types


def _colon_list(value: str) -> tuple[str, ...]:
    return tuple(item.strip(" \t\r\n").lower() for item in value.split(":") if item.strip())


def parse_key_record(txt: str | bytes | list[bytes] | list[str] | tuple[bytes, ...]) -> KeyRecord:
    """Parse a DKIM key record; a list of TXT strings is joined first.

    Raises:
        InvalidKeyRecord: not text or bytes, a malformed tag list, a wrong ``v=``, bad
            base64, or a ``p=`` that is not a key of the ``k=`` type.
        UnsupportedAlgorithm: a ``k=`` other than rsa or ed25519.
    """
    if isinstance(txt, (list, tuple)):
        if not all(isinstance(p, (str, bytes, bytearray)) for p in txt):
            raise InvalidKeyRecord("a DKIM key record's TXT strings must be str or bytes")
        parts = [p.encode("latin-1") if isinstance(p, str) else bytes(p) for p in txt]
        txt = b"".join(parts)
    if not isinstance(txt, (str, bytes, bytearray)):
        raise InvalidKeyRecord(
            f"a DKIM key record must be str, bytes or a list of them, not {type(txt).__name__}"
        )
    if isinstance(txt, (bytes, bytearray)):
        try:
            text = bytes(txt).decode("ascii")
        except UnicodeDecodeError:
            raise InvalidKeyRecord("DKIM key record contains non-ASCII bytes") from None
    else:
        text = txt
    try:
        tags = parse_tag_list(text)
    except TagListError as exc:
        raise InvalidKeyRecord(f"malformed DKIM key record: {exc}") from None
    if "v" in tags:
        if next(iter(tags)) != "v":
            raise InvalidKeyRecord("v= must be the first tag of a DKIM key record")
        if tags["v"] != "DKIM1":
            raise InvalidKeyRecord(f"unsupported key record version v={tags['v'][:20]!r}")
    if "p" not in tags:
        raise InvalidKeyRecord("DKIM key record has no p= tag")
    key_type = tags.get("k", "rsa").lower()
    if key_type not in _KEY_TYPES:
        raise UnsupportedAlgorithm(f"unsupported key type k={key_type[:20]!r}")
    p = re.sub(r"[ \t\r\n]", "", tags["p"])
    public_key: PublicKey | None = None
    if p:
        if not _B64_CHARS.match(p):
            raise InvalidKeyRecord("p= is not base64")
        try:
            raw = base64.b64decode(p, validate=True)
        except (binascii.Error, ValueError):
            raise InvalidKeyRecord("p= is not valid base64") from None
        public_key = _load_public(key_type, raw)
    hashes = _colon_list(tags["h"]) if "h" in tags else None
    services = _colon_list(tags["s"]) if "s" in tags else ("*",)
    flags = _colon_list(tags["t"]) if "t" in tags else ()
    return KeyRecord(
        key_type=key_type,
        public_key=public_key,
        hash_algorithms=hashes,
        service_types=services,
        flags=flags,
        notes=tags.get("n", ""),
        version=tags.get("v"),
        public_key_b64=p,
    )


def _load_public(key_type: str, raw: bytes) -> PublicKey:
    if key_type == "ed25519":
        if len(raw) != 32:
            raise InvalidKeyRecord(f"an Ed25519 p= holds 32 bytes, not {len(raw)}")
        return ed25519.Ed25519PublicKey.from_public_bytes(raw)
    try:
        key = serialization.load_der_public_key(raw)
    except (ValueError, TypeError, _CryptoUnsupported):
        # Some publishers use the bare PKCS#1 RSAPublicKey instead of SubjectPublicKeyInfo.
        try:
            key = serialization.load_der_public_key(_pkcs1_to_spki(raw))
        except (ValueError, TypeError, _CryptoUnsupported):
            raise InvalidKeyRecord("p= is not a DER-encoded RSA public key") from None
    if not isinstance(key, rsa.RSAPublicKey):
        raise InvalidKeyRecord(f"k=rsa but p= holds a {type(key).__name__}")
    return key


def _der_length(n: int) -> bytes:
    if n < 0x80:
        return bytes([n])
    body = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([0x80 | len(body)]) + body


def _pkcs1_to_spki(pkcs1: bytes) -> bytes:
    # SubjectPublicKeyInfo { AlgorithmIdentifier rsaEncryption NULL, BIT STRING pkcs1 }
    algorithm = bytes.fromhex("300d06092a864886f70d0101010500")
    bit_string = b"\x03" + _der_length(len(pkcs1) + 1) + b"\x00" + pkcs1
    body = algorithm + bit_string
    return b"\x30" + _der_length(len(body)) + body
