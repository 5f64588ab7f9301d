"""DKIM key records at ``selector._domainkey.domain`` (RFC 6376 3.6, RFC 8301, RFC 8463).

The record itself is parsed by :func:`mailscale.signing.keys.parse_key_record`;
this module turns what it finds into findings.
"""

from __future__ import annotations

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

from mailscale._deprecation import deprecated_aliases
from mailscale.auth._dns import DNSClient
from mailscale.auth._model import CheckStatus, DKIMReport, Finding, HostStatus, Severity
from mailscale.errors import AuthCheckError, InvalidKey, UnsupportedAlgorithm
from mailscale.signing.keys import PrivateKey, PublicKey, parse_key_record

__all__ = ["analyze_dkim_async", "selector_name"]

__getattr__ = deprecated_aliases(__name__, {"analyze_dkim": "analyze_dkim_async"})

_SELECTOR_LABEL = frozenset("abcdefghijklmnopqrstuvwxyz0123456789-_")


def selector_name(selector: str, domain: str) -> str:
    """The DNS name of a DKIM selector's key record."""
    labels = selector.lower().split(".")
    if not selector or any(not x or len(x) > 63 or set(x) - _SELECTOR_LABEL for x in labels):
        raise AuthCheckError(f"bad DKIM selector {selector!r}")
    name = f"{selector.lower()}._domainkey.{domain.rstrip('.').lower()}"
    if len(name) > 253:
        raise AuthCheckError(f"DKIM selector {selector!r}: {name[:40]}... passes 253 characters")
    return name


def _public(key: PublicKey | PrivateKey) -> PublicKey:
    if isinstance(key, (rsa.RSAPrivateKey, ed25519.Ed25519PrivateKey)):
        return key.public_key()
    if isinstance(key, (rsa.RSAPublicKey, ed25519.Ed25519PublicKey)):
        return key
    raise AuthCheckError(f"not an RSA or Ed25519 key: {type(key).__name__}")


def _raw(key: PublicKey) -> bytes:
    return key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


async def analyze_dkim_async(
    dns: DNSClient,
    domain: str,
    selector: str,
    *,
    local_key: PublicKey | PrivateKey | None = None,
) -> DKIMReport:
    """Check the key record of one selector; compare it with ``local_key`` if given."""
    name = selector_name(selector, domain)
    lookup = await dns.query(name, "TXT")

    def report(
        status: CheckStatus, record: str | None, *findings: Finding, **kw: object
    ) -> DKIMReport:
        return DKIMReport(selector, name, record, status, findings=findings, **kw)  # type: ignore[arg-type]

    if lookup.status is HostStatus.INVALID_NAME:
        return report(
            CheckStatus.INVALID,
            None,
            Finding(Severity.ERROR, "dkim.invalid_name", lookup.describe(), name),
        )
    if lookup.temporary:
        return report(
            CheckStatus.TEMPERROR,
            None,
            Finding(
                Severity.ERROR,
                "dkim.temperror",
                f"could not fetch selector {selector}: {lookup.describe()}; "
                "this is not 'no record'",
                name,
            ),
        )
    if not lookup.records:
        return report(
            CheckStatus.MISSING,
            None,
            Finding(
                Severity.ERROR, "dkim.missing", f"no DKIM key at {name} ({lookup.describe()})", name
            ),
        )
    if len(lookup.records) > 1:
        return report(
            CheckStatus.INVALID,
            lookup.records[0],
            Finding(
                Severity.ERROR,
                "dkim.multiple",
                f"{len(lookup.records)} TXT records at {name}; verifiers may pick any of them",
                " | ".join(lookup.records),
            ),
        )
    text = lookup.records[0]
    try:
        key = parse_key_record(list(lookup.strings[0]))
    except (InvalidKey, UnsupportedAlgorithm) as exc:
        return report(
            CheckStatus.INVALID, text, Finding(Severity.ERROR, "dkim.syntax", str(exc), text)
        )
    findings: list[Finding] = []
    if key.revoked:
        return report(
            CheckStatus.REVOKED,
            text,
            Finding(
                Severity.ERROR,
                "dkim.revoked",
                f"selector {selector} is revoked (empty p=): mail signed with it fails DKIM",
                text,
            ),
            key_type=key.key_type,
        )
    bits = key.bits
    if key.key_type == "rsa" and bits < 1024:
        findings.append(
            Finding(
                Severity.ERROR,
                "dkim.key_too_small",
                f"{bits}-bit RSA key: verifiers reject keys under 1024 bits (RFC 8301)",
                text,
            )
        )
    elif key.key_type == "rsa" and bits < 2048:
        findings.append(
            Finding(
                Severity.WARNING,
                "dkim.key_weak",
                f"{bits}-bit RSA key: use 2048 bits (Gmail and Yahoo recommend it)",
                text,
            )
        )
    elif key.key_type == "ed25519":
        findings.append(
            Finding(
                Severity.INFO,
                "dkim.ed25519",
                "Ed25519 key: not every verifier supports it (RFC 8463); also sign with an RSA "
                "selector",
                text,
            )
        )
    if key.testing:
        findings.append(
            Finding(
                Severity.WARNING,
                "dkim.testing",
                f"selector {selector} has t=y (testing): verifiers may ignore failures; "
                "remove it once signing works",
                text,
            )
        )
    if not key.allows_hash("sha256"):
        findings.append(
            Finding(
                Severity.ERROR,
                "dkim.hash",
                f"h={':'.join(key.hash_algorithms or ())} excludes sha256, the only hash "
                "verifiers accept (RFC 8301)",
                text,
            )
        )
    if not key.allows_email():
        findings.append(
            Finding(
                Severity.ERROR,
                "dkim.service",
                f"s={':'.join(key.service_types)} does not allow email",
                text,
            )
        )
    matches = None
    if local_key is not None:
        local = _public(local_key)
        assert key.public_key is not None
        try:
            matches = type(local) is type(key.public_key) and _raw(local) == _raw(key.public_key)
        except ValueError:
            matches = False
        if not matches:
            findings.append(
                Finding(
                    Severity.ERROR,
                    "dkim.key_mismatch",
                    f"the key at {name} is not the public half of the local signing key: "
                    "publish the local key's record",
                    text,
                )
            )
    status = (
        CheckStatus.INVALID
        if any(f.severity is Severity.ERROR for f in findings)
        else CheckStatus.OK
    )
    return DKIMReport(
        selector, name, text, status, key.key_type, bits, key.testing, matches, findings=findings
    )
