"""Turning what an application submits into outbox records: validation and Message-ID.

Everything here runs before ``Outbox.add``: a batch is either valid as a whole
and stored, or refused with a typed error naming the first bad message's index.
"""

from __future__ import annotations

import itertools
import os
import re
import secrets
import time
from email.message import EmailMessage

from mailscale._hot import normalize_line_endings
from mailscale.errors import InvalidMessage, MessageTooLarge
from mailscale.message import Envelope

__all__ = ["at_index", "ensure_message_id", "new_message_id", "to_envelope", "wire_form"]

_MESSAGE_ID = re.compile(rb"(?im)^message-id[ \t]*:[ \t]*(.*(?:\r?\n[ \t].*)*)")
_FOLD = re.compile(rb"\r?\n[ \t]+")


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


def _header_block(data: bytes) -> bytes:
    end = data.find(b"\r\n\r\n")
    return data if end < 0 else data[: end + 2]


_ID_PREFIX = f"{secrets.token_hex(6)}.{os.getpid()}"
_ID_COUNTER = itertools.count(1)


def new_message_id(domain: str) -> str:
    """A fresh Message-ID: random per process, a counter within it (unique, and cheap)."""
    return f"<{_ID_PREFIX}.{next(_ID_COUNTER)}.{int(time.time())}@{domain}>"


def ensure_message_id(data: bytes, sender: str) -> tuple[bytes, str]:
    """The message with a Message-ID (one is added when missing) and that Message-ID.

    A message submitted without one gets it here, once, so that every retry and
    every duplicate of it carries the same Message-ID.
    """
    header = _header_block(data)
    low = header.lower()
    if low.startswith(b"message-id") or b"\nmessage-id" in low:
        found = _MESSAGE_ID.search(header)
        if found:
            value = _FOLD.sub(b" ", found.group(1)).strip()
            if value:
                return data, value.decode("ascii", "replace")
    domain = sender.rpartition("@")[2] or "localhost"
    if not domain.isascii():
        domain = domain.encode("idna").decode("ascii")
    message_id = new_message_id(domain)
    return b"Message-ID: " + message_id.encode("ascii") + b"\r\n" + data, message_id
