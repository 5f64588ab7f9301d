"""Take an outgoing message apart for the JSON providers (SendGrid, Postmark).

JSON APIs build the MIME themselves, so a message (bytes or an
``EmailMessage``) is split into its sender, header recipients, subject, text
and HTML bodies, attachments and the remaining headers. Raw-MIME transports
(Mailgun ``messages.mime``, SES raw) never go through here: their bytes pass
unchanged.
"""

from __future__ import annotations

import email.policy
from email.message import EmailMessage, Message
from email.parser import BytesParser
from email.utils import getaddresses

import attrs

from mailscale.message import Envelope

__all__ = ["Attachment", "Decomposed", "decompose"]

#: Headers a JSON provider derives from its own fields; never copied as custom headers.
STRUCTURAL_HEADERS = frozenset(
    {
        "from",
        "to",
        "cc",
        "bcc",
        "subject",
        "reply-to",
        "sender",
        "date",
        "mime-version",
        "content-type",
        "content-transfer-encoding",
        "content-disposition",
        "content-id",
        "return-path",
        "received",
        "dkim-signature",
    }
)


@attrs.frozen(kw_only=True)
class Attachment:
    """One attachment or inline part."""

    filename: str
    content: bytes
    content_type: str
    inline: bool = False
    content_id: str | None = None


@attrs.frozen(kw_only=True)
class Decomposed:
    """The fields a JSON provider needs, taken from one message."""

    from_name: str
    from_email: str
    to: tuple[str, ...]
    cc: tuple[str, ...]
    reply_to: tuple[tuple[str, str], ...]
    subject: str | None
    text: str | None
    html: str | None
    other_content: tuple[tuple[str, str], ...]
    attachments: tuple[Attachment, ...]
    headers: tuple[tuple[str, str], ...]


def _parse(env: Envelope) -> EmailMessage:
    msg = env.message
    if isinstance(msg, EmailMessage) and not isinstance(msg.policy, type(email.policy.compat32)):
        return msg
    raw = env.to_bytes()
    parsed = BytesParser(policy=email.policy.default).parsebytes(raw)
    assert isinstance(parsed, EmailMessage)
    return parsed


def _addresses(msg: Message, name: str) -> list[tuple[str, str]]:
    values = [str(v) for v in msg.get_all(name, [])]
    return [(n, a) for n, a in getaddresses(values) if a]


def _text_of(part: EmailMessage) -> str:
    try:
        content = part.get_content()
    except (LookupError, ValueError):
        payload = part.get_payload(decode=True)
        content = payload.decode("utf-8", "replace") if isinstance(payload, bytes) else ""
    return content if isinstance(content, str) else bytes(content).decode("utf-8", "replace")


def _bytes_of(part: EmailMessage) -> bytes:
    payload = part.get_payload(decode=True)
    return payload if isinstance(payload, bytes) else b""


def decompose(env: Envelope) -> Decomposed:
    """Split *env*'s message into the fields a JSON provider takes."""
    msg = _parse(env)
    froms = _addresses(msg, "From")
    from_name, from_email = froms[0] if froms else ("", env.sender)
    text = html = None
    other: list[tuple[str, str]] = []
    attachments: list[Attachment] = []
    for part in msg.walk():
        if part.is_multipart():
            continue
        assert isinstance(part, EmailMessage)
        ctype = part.get_content_type()
        disposition = part.get_content_disposition()
        filename = part.get_filename()
        cid = part.get("Content-ID")
        is_text = part.get_content_maintype() == "text"
        if disposition != "attachment" and filename is None and is_text:
            body = _text_of(part)
            if ctype == "text/plain" and text is None:
                text = body
                continue
            if ctype == "text/html" and html is None:
                html = body
                continue
            if disposition is None:
                other.append((ctype, body))
                continue
        inline = disposition == "inline" or (disposition is None and cid is not None)
        attachments.append(
            Attachment(
                filename=filename or f"part-{len(attachments) + 1}",
                content=_bytes_of(part),
                content_type=ctype,
                inline=inline,
                content_id=str(cid).strip().strip("<>") if cid else None,
            )
        )
    headers = tuple(
        (name, str(value))
        for name, value in msg.items()
        if name.lower() not in STRUCTURAL_HEADERS
    )
    subject = msg.get("Subject")
    return Decomposed(
        from_name=from_name,
        from_email=from_email,
        to=tuple(a for _, a in _addresses(msg, "To")),
        cc=tuple(a for _, a in _addresses(msg, "Cc")),
        reply_to=tuple(_addresses(msg, "Reply-To")),
        subject=str(subject) if subject is not None else None,
        text=text,
        html=html,
        other_content=tuple(other),
        attachments=tuple(attachments),
        headers=headers,
    )


def split_recipients(
    env: Envelope, parts: Decomposed
) -> list[tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...]]]:
    """Map envelope recipients onto (to, cc, bcc) lists.

    Recipients named in the To header go to ``to``, those in Cc to ``cc``,
    the rest to ``bcc``. When none is named in To (all hidden), each recipient
    gets its own (to,) entry so no hidden address is shown to another.
    """
    to_set = {a.lower() for a in parts.to}
    cc_set = {a.lower() for a in parts.cc}
    to = tuple(r for r in env.recipients if r.lower() in to_set)
    cc = tuple(r for r in env.recipients if r.lower() in cc_set and r.lower() not in to_set)
    bcc = tuple(r for r in env.recipients if r.lower() not in to_set and r.lower() not in cc_set)
    if not to:
        return [((r,), (), ()) for r in env.recipients]
    return [(to, cc, bcc)]
