"""Turning what an application submits into outbox records: validation and wire form.

Everything here runs before ``Outbox.add``: a batch is either valid as a whole
and stored, or refused with a typed error naming the first bad message's index.
"""

from __future__ import annotations

from email.message import EmailMessage

from mailscale._hot import normalize_line_endings
from mailscale.errors import InvalidMessage, MessageTooLarge
from mailscale.message import Envelope

__all__ = ["at_index", "to_envelope", "wire_form"]


def at_index(index: int, exc: InvalidMessage) -> InvalidMessage:
    """The same kind of error, its message prefixed with the message's index."""
    err = type(exc)(f"message {index}: {exc}")
    err.index = index  # type: ignore[attr-defined]
    return err


def to_envelope(item: object) -> Envelope:
    """An Envelope as given, or one built from an EmailMessage's headers."""
    if isinstance(item, Envelope):
        return item
    if isinstance(item, EmailMessage):
        return Envelope.from_message(item)
    raise InvalidMessage(
        f"expected an Envelope or an email.message.EmailMessage, got {type(item).__name__}"
    )


def wire_form(envelope: Envelope, max_size: int) -> bytes:
    """The message's bytes with CRLF line ends, refused above *max_size* bytes."""
    # Bare CR or LF made CRLF here, before anything signs it (RFC 5321 section 2.3.8);
    # the compiled core returns CRLF input itself, without a copy.
    data = normalize_line_endings(envelope.to_bytes())
    if len(data) > max_size:
        raise MessageTooLarge(f"{len(data)} bytes, more than the limit of {max_size}")
    return data
