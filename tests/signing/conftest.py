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
    """A loopback authoritative DNS server answering TXT queries from a dict.

    ``records[name]`` is a list of TXT records, each a list of strings (a
    multi-string TXT record); a name that is absent answers NXDOMAIN, a name
    listed in ``servfail`` answers SERVFAIL.
    """

    def __init__(self) -> None:
        from dnslib import QTYPE, RCODE, RR, TXT
        from dnslib.server import BaseResolver, DNSLogger, DNSServer

        zone = self
        self.records: dict[str, list[list[bytes]]] = {}
        self.servfail: set[str] = set()
        self.queries = 0

        class _Resolver(BaseResolver):  # type: ignore[misc]
            def resolve(self, request, handler):  # type: ignore[no-untyped-def]
                zone.queries += 1
                reply = request.reply()
                name = str(request.q.qname).rstrip(".").lower()
                if name in zone.servfail:
                    reply.header.rcode = RCODE.SERVFAIL
                elif name not in zone.records:
                    reply.header.rcode = RCODE.NXDOMAIN
                elif request.q.qtype == QTYPE.TXT:
                    for strings in zone.records[name]:
                        reply.add_answer(RR(request.q.qname, QTYPE.TXT, rdata=TXT(strings), ttl=60))
                return reply

        logger = DNSLogger(log="-request,-reply,-truncated,-error,-recv,-send,-data", prefix=False)
        self.server = DNSServer(_Resolver(), address="127.0.0.1", port=0, logger=logger)
        self.port = self.server.server.server_address[1]
        self.server.start_thread()

    def add_key(self, name: str, txt: str, chunk: int = 255) -> None:
        """Publish ``txt`` at ``name`` as one TXT record of ``chunk``-byte strings."""
        raw = txt.encode("ascii")
        self.records.setdefault(name.lower(), []).append(
            [raw[i : i + chunk] for i in range(0, len(raw), chunk)]
        )

    def resolver(self, timeout: float = 2.0) -> object:
        """A dnspython resolver that asks only this server."""
        import dns.resolver

        res = dns.resolver.Resolver(configure=False)
        res.nameservers = ["127.0.0.1"]
        res.port = self.port
        res.lifetime = timeout
        res.timeout = timeout
        return res

    def stop(self) -> None:
        self.server.stop()
        self.server.server.server_close()


@pytest.fixture
def zone() -> object:
    """A fresh loopback DNS server for one test."""
    z = TxtZone()
    yield z
    z.stop()
