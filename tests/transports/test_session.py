"""The SMTP session's set-up error table: each failure becomes the typed error it names."""

from __future__ import annotations

import smtplib
import ssl

import pytest

from mailscale.errors import (
    TransportAuthError,
    TransportCertificateError,
    TransportConnectionError,
    TransportError,
    TransportTimeout,
)
from mailscale.transports._session import SetupFailure, TLSHandshakeError, setup_error


def _cert_error() -> ssl.SSLCertVerificationError:
    exc = ssl.SSLCertVerificationError(1, "certificate verify failed")
    exc.verify_message = "self-signed certificate"
    return exc


class TestSetupErrors:
    @pytest.mark.parametrize(
        ("exc", "stage", "kind", "text", "transient"),
        [
            (
                smtplib.SMTPAuthenticationError(535, b"5.7.8 no"),
                "AUTH",
                TransportAuthError,
                "mx.example:587 refused the credentials: 535 5.7.8 no",
                False,
            ),
            (
                _cert_error(),
                "STARTTLS",
                TransportCertificateError,
                "mx.example:587: TLS certificate verification failed (self-signed certificate); "
                "trust its CA with ?cafile= or ssl_context=",
                False,
            ),
            (
                ssl.SSLError(1, "wrong version"),
                "STARTTLS",
                TLSHandshakeError,
                "mx.example:587: TLS handshake failed (",
                True,
            ),
            (
                smtplib.SMTPConnectError(554, b"go away"),
                "greeting",
                TransportConnectionError,
                "mx.example:587 refused the session: 554 go away",
                False,
            ),
            (
                smtplib.SMTPConnectError(421, b"busy"),
                "greeting",
                TransportConnectionError,
                "mx.example:587 refused the session: 421 busy",
                True,
            ),
            (
                smtplib.SMTPHeloError(501, b"bad"),
                "EHLO",
                TransportConnectionError,
                "mx.example:587 failed the session set-up at EHLO: 501 bad",
                False,
            ),
            (
                smtplib.SMTPServerDisconnected("gone"),
                "EHLO",
                TransportConnectionError,
                "mx.example:587 closed the connection during set-up (waiting for the EHLO reply)",
                True,
            ),
            (
                smtplib.SMTPNotSupportedError("no"),
                "AUTH",
                TransportError,
                "mx.example:587: no",
                False,
            ),
            (
                TimeoutError(),
                "greeting",
                TransportTimeout,
                "mx.example:587: timed out after 2.5s waiting for the greeting",
                True,
            ),
            (
                ConnectionRefusedError(111, "Connection refused"),
                "connect",
                TransportConnectionError,
                "cannot connect to mx.example:587: Connection refused",
                True,
            ),
            (
                ConnectionResetError(104, "reset"),
                "STARTTLS",
                TransportConnectionError,
                "mx.example:587: connection lost in STARTTLS: reset",
                True,
            ),
        ],
    )
    def test_each_failure_maps_to_its_error(
        self,
        exc: BaseException,
        stage: str,
        kind: type[TransportError],
        text: str,
        transient: bool,
    ) -> None:
        """First matching row wins: subclasses (auth, certificate) before their bases."""
        failure = SetupFailure(where="mx.example:587", stage=stage, timeout=2.5, provider="smtp")
        typed = setup_error(exc, failure)
        assert kind is type(typed)
        assert str(typed).startswith(text)
        assert (transient, "smtp") == (typed.transient, typed.provider)

    def test_other_exceptions_are_not_mapped(self) -> None:
        """A programming error is not disguised as a transport failure."""
        failure = SetupFailure(where="h:25", stage="connect", timeout=1.0, provider="smtp")
        assert setup_error(KeyError("x"), failure) is None
