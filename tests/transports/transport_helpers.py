"""Shared helpers for transport tests: messages, envelopes, test credentials."""

from __future__ import annotations

from mailscale.message import Envelope

#: Credentials the AUTH peers accept; tests assert they never leak.
SMTP_USER = "relay-user"
SMTP_PASSWORD = "s3cret-Pa55word-xyzzy"

#: Provider credentials of the cross-provider integration tests.
INTEGRATION_KEYS = {
    "sendgrid": "SG.integration-key-0123",
    "mailgun": "key-integration-4567",
    "postmark": "pm-integration-token-89",
    "ses": "mailscale-integration-secret-0123",
}

#: Provider credentials of each provider's own tests.
PROVIDER_KEYS = {
    "sendgrid": "SG.test-key-0123456789",
    "mailgun": "key-0123456789abcdef",
    "postmark": "pm-server-token-0123",
    "ses": "mailscale-test-secret-access-key-0123",
}

#: Every credential the transport tests use; none may appear in a log event, repr or error.
SECRETS = (
    SMTP_PASSWORD,
    "not-the-Pa55word-42",
    "hunter2-Very-Secret",
    "Sup3r-Secret-Value",
    "right-password-1",
    "wrong-password-2",
    *INTEGRATION_KEYS.values(),
    *PROVIDER_KEYS.values(),
)


def make_message(
    *,
    sender: str = "sender@example.com",
    to: str = "rcpt@example.net",
    subject: str = "Hello",
    body: bytes = b"Hello there.\r\n",
) -> bytes:
    """A small CRLF message as raw bytes."""
    head = (
        f"From: {sender}\r\nTo: {to}\r\nSubject: {subject}\r\n"
        "Message-ID: <test@example.com>\r\nMIME-Version: 1.0\r\n"
        "Content-Type: text/plain; charset=utf-8\r\n\r\n"
    ).encode()
    return head + body


def make_envelope(*recipients: str, body: bytes = b"Hello there.\r\n", **kw: object) -> Envelope:
    """An envelope from sender@example.com to *recipients* (default one)."""
    rcpts = recipients or ("rcpt@example.net",)
    return Envelope(
        sender="sender@example.com",
        recipients=rcpts,
        message=make_message(to=", ".join(rcpts), body=body),
        **kw,  # type: ignore[arg-type]
    )


def raw_with_headers(*extra: str, sender: str = "From: sender@example.com") -> bytes:
    """A small raw message with extra header lines."""
    head = "\r\n".join(
        [
            sender,
            "To: rcpt@example.net",
            *extra,
            "MIME-Version: 1.0",
            "Content-Type: text/plain; charset=utf-8",
        ]
    )
    return (head + "\r\n\r\nHello.\r\n").encode()


#: Raw messages whose decoded header values would inject a header line.
INJECTIONS = {
    "subject": raw_with_headers("Subject: =?utf-8?q?hi=0D=0ABcc:_evil@evil.com?="),
    "x_header": raw_with_headers("X-Campaign: =?utf-8?q?a=0ABcc:_evil@evil.com?="),
    "bare_cr": raw_with_headers("X-Campaign: a\rBcc: evil@evil.com"),
    "from_name": raw_with_headers(
        sender="From: =?utf-8?q?Ev=0D=0ABcc:_x@evil.com?= <sender@example.com>"
    ),
    "cc_name": raw_with_headers("Cc: =?utf-8?q?Ev=0D=0ABcc:_x@evil.com?= <rcpt@example.net>"),
}


def unserializable_envelope() -> Envelope:
    """An EmailMessage envelope whose payload the email package cannot serialize."""
    from email.message import EmailMessage

    msg = EmailMessage()
    msg["From"] = "sender@example.com"
    msg["To"] = "rcpt@example.net"
    env = Envelope(sender="sender@example.com", recipients=("rcpt@example.net",), message=msg)
    msg.set_payload(123)  # type: ignore[arg-type]
    return env
