"""Fixtures for transport tests: loopback SMTP peers, a test CA, envelopes, secrets."""

from __future__ import annotations

import ssl
from collections.abc import Iterator
from pathlib import Path

import pytest
import trustme
from transport_helpers import SMTP_PASSWORD, SMTP_USER

from peers.smtp_peer import ScriptedHandler, SMTPPeer, start_peer


@pytest.fixture(scope="session")
def ca() -> trustme.CA:
    """A throwaway certificate authority."""
    return trustme.CA()


@pytest.fixture(scope="session")
def server_tls(ca: trustme.CA) -> ssl.SSLContext:
    """The peers' TLS context: a certificate for localhost / 127.0.0.1 from the test CA."""
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("localhost", "127.0.0.1", "mx.tls.test").configure_cert(ctx)
    return ctx


@pytest.fixture(scope="session")
def cafile(ca: trustme.CA, tmp_path_factory: pytest.TempPathFactory) -> str:
    """The test CA as a PEM file."""
    path: Path = tmp_path_factory.mktemp("ca") / "ca.pem"
    ca.cert_pem.write_to_path(str(path))
    return str(path)


@pytest.fixture(scope="session")
def client_tls(ca: trustme.CA) -> ssl.SSLContext:
    """A verifying client context that trusts the test CA."""
    ctx = ssl.create_default_context()
    ca.configure_trust(ctx)
    return ctx


@pytest.fixture
def plain_peer() -> Iterator[SMTPPeer]:
    """aiosmtpd without TLS, answering per recipient."""
    peer = start_peer(handler=ScriptedHandler())
    yield peer
    peer.stop()


@pytest.fixture
def starttls_peer(server_tls: ssl.SSLContext) -> Iterator[SMTPPeer]:
    """aiosmtpd requiring STARTTLS, with AUTH for SMTP_USER."""
    peer = start_peer(starttls=server_tls, credentials={SMTP_USER: SMTP_PASSWORD})
    yield peer
    peer.stop()


@pytest.fixture
def implicit_peer(server_tls: ssl.SSLContext) -> Iterator[SMTPPeer]:
    """aiosmtpd with implicit TLS (smtps), with AUTH for SMTP_USER."""
    # aiosmtpd only counts STARTTLS as TLS for AUTH; the implicit-TLS session is encrypted.
    peer = start_peer(
        implicit_tls=server_tls, credentials={SMTP_USER: SMTP_PASSWORD}, auth_require_tls=False
    )
    yield peer
    peer.stop()
