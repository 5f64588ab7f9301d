"""DKIM-signed messages through the raw-MIME routes: the received bytes still verify."""

from __future__ import annotations

from collections.abc import Iterator

import dkim
import pytest
from transport_helpers import PROVIDER_KEYS, make_message

from mailscale.errors import ConfigurationError
from mailscale.message import Envelope, SendStatus
from mailscale.signing import DKIMSigner, dns_record, generate_key, verify
from mailscale.transports.mailgun import MailgunTransport
from mailscale.transports.registry import transport_from_url
from mailscale.transports.ses import SESTransport
from mailscale.transports.smtp import SMTPTransport
from peers.mailgun_peer import MailgunPeer
from peers.smtp_peer import SMTPPeer

DOMAIN = "example.com"
SELECTOR = "route"
KEY = generate_key("rsa", 2048)
RECORD = dns_record(KEY)
RECORD_NAME = f"{SELECTOR}._domainkey.{DOMAIN}"


def key_lookup(name: str) -> str | None:
    return RECORD if name.rstrip(".") == RECORD_NAME else None


def dnsfunc(name: bytes, timeout: int = 5) -> bytes:
    return RECORD.encode() if name.decode().rstrip(".") == RECORD_NAME else b""


def signer() -> DKIMSigner:
    return DKIMSigner(DOMAIN, SELECTOR, KEY, canonicalization="relaxed/simple")


def envelope() -> Envelope:
    # Trailing spaces and a line starting with "." exercise canonicalization and
    # SMTP dot-stuffing: both must survive the trip byte for byte.
    body = b"Hello there.   \r\n.leading dot\r\nBye.\r\n"
    return Envelope(
        sender=f"news@{DOMAIN}",
        recipients=("rcpt@example.net",),
        message=make_message(sender=f"news@{DOMAIN}", body=body),
    )


def assert_verifies(received: bytes) -> None:
    assert received.startswith(b"DKIM-Signature:")
    assert ["pass"] == [r.status for r in verify(received, key_lookup=key_lookup)]
    assert dkim.verify(received, dnsfunc=dnsfunc) is True


@pytest.fixture
def mailgun_peer() -> Iterator[MailgunPeer]:
    with MailgunPeer(PROVIDER_KEYS["mailgun"], ("mg.example.com",)) as p:
        yield p  # type: ignore[misc]


class TestSignedThroughSMTP:
    def test_received_bytes_verify(self, plain_peer: SMTPPeer) -> None:
        """A message signed by DKIMSigner on the SMTP route verifies as received."""
        with SMTPTransport("127.0.0.1", plain_peer.port, tls="none", signer=signer()) as t:
            [result] = t.send([envelope()])
        assert SendStatus.ACCEPTED == result.status
        assert_verifies(plain_peer.received[0].content)


class TestSignedThroughMailgun:
    def test_received_bytes_verify(self, mailgun_peer: MailgunPeer) -> None:
        """signer= on Mailgun signs the messages.mime part; the peer's bytes verify."""
        url = f"mailgun://{PROVIDER_KEYS['mailgun']}@mg.example.com"
        with transport_from_url(url, base_url=mailgun_peer.url, signer=signer()) as t:
            [result] = t.send([envelope()])
        assert SendStatus.ACCEPTED == result.status
        [(_, parts)] = mailgun_peer.accepted
        [message] = [p.data for p in parts if p.name == "message"]
        assert_verifies(message)

    def test_failing_signer_rejects_that_message(self, mailgun_peer: MailgunPeer) -> None:
        """A signer that raises rejects only its message; nothing of it is sent."""

        class Broken:
            def sign(self, message: bytes) -> bytes:
                raise RuntimeError("key unavailable")

        with MailgunTransport(
            PROVIDER_KEYS["mailgun"], "mg.example.com", base_url=mailgun_peer.url, signer=Broken()
        ) as t:
            [result] = t.send([envelope()])
        assert (SendStatus.REJECTED, "local") == (result.status, result.status_code)
        assert "signing failed: RuntimeError: key unavailable" in result.status_text
        assert [] == mailgun_peer.accepted


class TestSignerOption:
    @pytest.mark.parametrize(
        "build",
        [
            lambda: MailgunTransport("key-1", "mg.example.com", signer=object()),
            lambda: SESTransport(region="eu-west-1", signer=object()),
        ],
    )
    def test_signer_must_have_sign(self, build: object) -> None:
        """A signer without sign() is refused at construction, as for SMTP."""
        with pytest.raises(ConfigurationError, match="sign"):
            build()  # type: ignore[operator]

    def test_ses_request_carries_signed_bytes(self) -> None:
        """SES's Content.Raw.Data is the signer's output, and it verifies."""
        t = SESTransport(region="eu-west-1", signer=signer())
        data = t.build_payload(envelope())["Content"]["Raw"]["Data"]
        t.close()
        assert_verifies(data)
