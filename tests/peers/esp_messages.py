"""Messages and envelopes for the HTTP provider transport tests."""

from __future__ import annotations

from email.message import EmailMessage

from mailscale.message import Envelope


def make_message(
    *,
    to: str = "alice@example.com",
    cc: str | None = None,
    subject: str = "Hello",
    text: str = "Hello there.\n",
    html: str | None = None,
    sender: str = "news@mail.example.org",
    extra: dict[str, str] | None = None,
) -> EmailMessage:
    """A small multipart message."""
    msg = EmailMessage()
    msg["From"] = f"News <{sender}>"
    msg["To"] = to
    if cc:
        msg["Cc"] = cc
    msg["Subject"] = subject
    for name, value in (extra or {}).items():
        msg[name] = value
    msg.set_content(text)
    if html is not None:
        msg.add_alternative(html, subtype="html")
    return msg


def make_envelope(
    to: str = "alice@example.com",
    *,
    tags: tuple[str, ...] = (),
    metadata: dict[str, str] | None = None,
    **kw: str,
) -> Envelope:
    """An envelope for :func:`make_message`, recipients taken from its headers."""
    return Envelope.from_message(make_message(to=to, **kw), tags=tags, metadata=metadata or {})


#: A message whose addresses carry display names: quoted, with a comma, RFC 2047-encoded.
NAMED_RAW = (
    b"From: =?utf-8?q?J=C3=B6rg_D=C5=93?= <news@mail.example.org>\r\n"
    b'To: "Smith, John" <a@example.com>, Bob <b@example.com>\r\n'
    b"Cc: =?utf-8?q?Car=C3=B6l?= <c@example.com>\r\n"
    b'Reply-To: "Help \\"Desk\\"" <help@example.org>\r\n'
    b"Subject: Names\r\n"
    b"MIME-Version: 1.0\r\n"
    b"Content-Type: text/plain; charset=utf-8\r\n"
    b"\r\n"
    b"Hello.\r\n"
)


def named_envelope(form: str) -> Envelope:
    """:data:`NAMED_RAW` to a, b and c@example.com, as bytes or as a parsed ``EmailMessage``."""
    import email.policy
    from email.parser import BytesParser

    message: bytes | EmailMessage = NAMED_RAW
    if form == "message":
        parsed = BytesParser(policy=email.policy.default).parsebytes(NAMED_RAW)
        assert isinstance(parsed, EmailMessage)
        message = parsed
    return Envelope(
        sender="news@mail.example.org",
        recipients=("a@example.com", "b@example.com", "c@example.com"),
        message=message,
    )
