"""Keys and vectors shared by the signing tests: generated once per session."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

from mailscale.signing.keys import generate_key

VECTORS = Path(__file__).parent / "vectors"


@pytest.fixture(scope="session")
def rsa_key() -> rsa.RSAPrivateKey:
    """One RSA-2048 key for the whole session (generation is slow)."""
    key = generate_key("rsa", 2048)
    assert isinstance(key, rsa.RSAPrivateKey)
    return key


@pytest.fixture(scope="session")
def ed_key() -> ed25519.Ed25519PrivateKey:
    """One Ed25519 key for the whole session."""
    key = generate_key("ed25519")
    assert isinstance(key, ed25519.Ed25519PrivateKey)
    return key


@pytest.fixture(scope="session")
def rfc8463_rsa() -> rsa.RSAPrivateKey:
    """The RSA-1024 key of RFC 8463 appendix A.2."""
    key = serialization.load_pem_private_key((VECTORS / "rfc8463_rsa1024.pem").read_bytes(), None)
    assert isinstance(key, rsa.RSAPrivateKey)
    return key


@pytest.fixture(scope="session")
def rfc8463_ed() -> ed25519.Ed25519PrivateKey:
    """The Ed25519 key of RFC 8463 appendix A.1 (from its 32-byte seed)."""
    seed = base64.b64decode((VECTORS / "rfc8463_ed25519.seed.b64").read_text().strip())
    return ed25519.Ed25519PrivateKey.from_private_bytes(seed)


class TxtZone:
    """DKIM key records served by the shared loopback DNS server (``peers.dns_server``).

    ``servfail`` holds names that answer SERVFAIL; an absent name answers NXDOMAIN;
    ``queries`` counts the queries received.
    """

    def __init__(self) -> None:
        from peers.dns_server import DNSServer, Zone

        self.zone = Zone()
        self.server = DNSServer(self.zone).start()
        self.port = self.server.port

    @property
    def servfail(self) -> set[str]:
        return self.zone.servfail

    @property
    def queries(self) -> int:
        return len(self.server.queries)

    def add_key(self, name: str, txt: str, chunk: int = 255) -> None:
        """Publish ``txt`` at ``name`` as one TXT record of ``chunk``-byte strings."""
        raw = txt.encode("ascii")
        self.zone.txt(name, *(raw[i : i + chunk] for i in range(0, len(raw), chunk)))

    def resolver(self, timeout: float = 2.0) -> object:
        """A dnspython resolver that asks only this server."""
        return self.server.client(timeout)

    def stop(self) -> None:
        self.server.stop()


@pytest.fixture
def zone() -> object:
    """A fresh loopback DNS server for one test."""
    z = TxtZone()
    yield z
    z.stop()
