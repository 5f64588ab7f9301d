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
    to: str = "alice@example.com", *, tags: tuple[str, ...] = (),
    metadata: dict[str, str] | None = None, **kw: str,
) -> Envelope:
    """An envelope for :func:`make_message`, recipients taken from its headers."""
    return Envelope.from_message(make_message(to=to, **kw), tags=tags, metadata=metadata or {})
