"""Outgoing mail as transports see it: :class:`Envelope` in, :class:`SendResult` out.

An envelope pairs a message (raw bytes or an ``email.message.EmailMessage``)
with its SMTP envelope (sender, recipients) and the metadata a provider may
carry (tags, metadata, an idempotency key). Everything is validated at
construction: malformed addresses and CR/LF in header values (header
injection) are errors, never silently passed on.
"""

from __future__ import annotations

import email.errors
import email.policy
import email.utils
import enum
import itertools
import os
import re
import secrets
import time
from collections.abc import Iterable, Mapping
from email.message import EmailMessage, Message
from email.utils import getaddresses
from types import MappingProxyType
from typing import Any

import attrs

from mailscale.errors import HeaderInjection, InvalidAddress, InvalidMessage

__all__ = [
    "Envelope",
    "RecipientResult",
    "SendResult",
    "SendStatus",
    "ValueEnum",
    "ascii_dns_name",
    "check_header_name",
    "check_header_value",
    "check_message_headers",
    "ensure_message_id",
    "new_message_id",
    "overall_status",
    "validate_address",
    "with_message_id",
]

# RFC 5321 section 4.5.3.1: local part <= 64 octets, domain <= 255, path <= 256
# including the angle brackets, so an address is at most 254 characters.
_MAX_LOCAL = 64
_MAX_ADDRESS = 254
# RFC 1123 host name labels; with underscores, any DNS owner name (``_dmarc``, ``s_1``).
_HOST_LABEL = re.compile(r"(?!-)[A-Za-z0-9-]{1,63}(?<!-)\Z")
_DNS_LABEL = re.compile(r"(?!-)[A-Za-z0-9_-]{1,63}(?<!-)\Z")
_FORBIDDEN_IN_ADDRESS = re.compile(r"[\x00-\x20\x7f-\x9f\u2028\u2029<>()\[\],;:\\\"]")
_FOLD = re.compile(r"\r?\n(?=[ \t])")
# Every character str.splitlines() treats as a line end: any of them can end a
# header line for some reader (Python's email package splits on all of them).
_LINE_BREAK = re.compile("[\r\n\v\f\x1c\x1d\x1e\x85\u2028\u2029]")
# RFC 5322 section 2.2: a field name is printable US-ASCII except the colon.
_BAD_FIELD_NAME = re.compile(r"[^\x21-\x39\x3b-\x7e]")


def validate_address(address: str, *, field: str = "address") -> str:
    """Return *address* if it is a usable ``local@domain`` mailbox, else raise.

    Accepts dot-atom local parts and internationalized (UTF-8) addresses;
    rejects quoted local parts, display names, whitespace, control characters
    and CR/LF.

    Raises:
        InvalidAddress: naming the field and the problem (never the whole input
            when it contains control characters).
    """
    if not isinstance(address, str):
        raise InvalidAddress(f"{field}: expected a string, got {type(address).__name__}")
    if _LINE_BREAK.search(address):
        raise HeaderInjection(f"{field}: a line break (CR, LF or another) in an address")
    if not address:
        raise InvalidAddress(f"{field}: empty address")
    if len(address) > _MAX_ADDRESS:
        raise InvalidAddress(f"{field}: address longer than {_MAX_ADDRESS} characters")
    local, at, domain = address.rpartition("@")
    if not at or not local or not domain:
        raise InvalidAddress(f"{field}: {address!r} is not of the form local@domain")
    if _FORBIDDEN_IN_ADDRESS.search(address):
        raise InvalidAddress(f"{field}: {address!r} contains a character not allowed in an address")
    if len(local.encode()) > _MAX_LOCAL:
        raise InvalidAddress(f"{field}: local part longer than {_MAX_LOCAL} octets")
    if local.startswith(".") or local.endswith(".") or ".." in local:
        raise InvalidAddress(f"{field}: {address!r} has a misplaced dot in its local part")
    if ascii_dns_name(domain) is None:
        raise InvalidAddress(f"{field}: {address!r} has an invalid domain")
    return address


def ascii_dns_name(name: str, *, underscore: bool = False) -> str | None:
    """The ASCII form of the DNS name *name* (IDNA for non-ASCII), or None if it is not one.

    Every label is 1 to 63 letters, digits and hyphens, not starting or ending with
    a hyphen; ``underscore=True`` also allows underscores, as DNS owner names such as
    ``_dmarc.example.com`` have. The name is at most 253 characters; one final dot
    (the root) is allowed and kept. Case is kept: callers lower-case where it matters.
    """
    if not isinstance(name, str):
        return None
    try:
        ascii_name = name.encode("idna").decode("ascii") if not name.isascii() else name
    except UnicodeError:
        return None
    bare = ascii_name[:-1] if ascii_name.endswith(".") else ascii_name
    label = _DNS_LABEL if underscore else _HOST_LABEL
    if len(bare) > 253 or not all(label.match(part) for part in bare.split(".")):
        return None
    return ascii_name


def check_header_name(name: object) -> str:
    """Return *name* if it is a valid header field name (RFC 5322 section 2.2:
    printable US-ASCII except the colon), else raise.

    Raises:
        HeaderInjection: naming the field (its first 40 characters).
    """
    if not isinstance(name, str) or not name or _BAD_FIELD_NAME.search(name):
        raise HeaderInjection(f"header name {str(name)[:40]!r} is not a valid field name")
    return name


def check_header_value(name: str, value: str) -> str:
    """Return *value* unless it could inject a header.

    Any line break ``str.splitlines`` knows (CR, LF, VT, FF, FS, GS, RS, NEL,
    U+2028, U+2029) is refused, except a CRLF (or LF) followed by a space or tab: a fold.

    Raises:
        HeaderInjection: naming the header.
    """
    unfolded = _FOLD.sub("", value)
    found = _LINE_BREAK.search(unfolded)
    if found:
        raise HeaderInjection(
            f"header {name!r}: line break {found.group()!r} in the value (header injection)"
        )
    return value


class ValueEnum(str, enum.Enum):
    """The one form of every status (and severity) in mailscale: a ``str``-valued enum.

    A member equals its value (``SendStatus.ACCEPTED == "accepted"``), and ``str()``,
    f-strings and JSON show the value, as :class:`enum.StrEnum` does on Python 3.11+
    (the package also supports 3.10).
    """

    def __str__(self) -> str:
        return str(self.value)

    def __format__(self, spec: str) -> str:
        return format(str(self.value), spec)


class SendStatus(ValueEnum):
    """What became of a message (or one recipient of it)."""

    ACCEPTED = "accepted"
    """The peer took responsibility for delivery."""
    DEFERRED = "deferred"
    """A transient failure: retry later (see ``retry_after``)."""
    REJECTED = "rejected"
    """A permanent failure: retrying the same message will not help."""


def _to_tuple(value: Iterable[str] | str) -> tuple[str, ...]:
    if isinstance(value, str):
        return (value,)
    return tuple(value)


_EMPTY: Mapping[str, str] = MappingProxyType({})


def _frozen_mapping(value: Mapping[str, str] | None) -> Mapping[str, str]:
    if not value:
        return _EMPTY  # the common case, shared: most results carry no rate-limit headers
    return MappingProxyType(dict(value))


def _validate_recipients(
    inst: Envelope, attribute: attrs.Attribute[Any], value: tuple[str, ...]
) -> None:
    if not value:
        raise InvalidMessage("recipients: an envelope needs at least one recipient")
    for i, rcpt in enumerate(value):
        validate_address(rcpt, field=f"recipients[{i}]")


def _validate_sender(inst: Envelope, attribute: attrs.Attribute[Any], value: str) -> None:
    validate_address(value, field="sender")


def _validate_message(inst: Envelope, attribute: attrs.Attribute[Any], value: object) -> None:
    if isinstance(value, (bytes, bytearray, memoryview)):
        return
    if isinstance(value, Message):
        check_message_headers(value)
        return
    raise InvalidMessage(
        f"message: expected bytes or email.message.EmailMessage, got {type(value).__name__}"
    )


def check_message_headers(msg: Message) -> None:
    """Check every header field of *msg*: a valid name, and no line break in the value
    other than a fold (the rule for every message mailscale sends or signs).

    Raises:
        HeaderInjection: naming the field.
    """
    # raw_items(): items() would parse the values and hide a raw line break.
    for name, header in msg.raw_items():
        check_header_name(name)
        check_header_value(name, str(header))


def _validate_labels(inst: Envelope, attribute: attrs.Attribute[Any], value: Any) -> None:
    items = value.items() if isinstance(value, Mapping) else ((attribute.name, v) for v in value)
    for key, val in items:
        for text in (key, val):
            if not isinstance(text, str):
                raise InvalidMessage(
                    f"{attribute.name}: expected strings, got {type(text).__name__}"
                )
            check_header_value(attribute.name, text)


def _validate_key(inst: Envelope, attribute: attrs.Attribute[Any], value: object) -> None:
    if value is None:
        return
    if not isinstance(value, str):
        raise InvalidMessage(f"idempotency_key: expected a string, got {type(value).__name__}")
    if not value or not value.isprintable():
        raise InvalidMessage("idempotency_key: must be a non-empty printable string")


@attrs.frozen(kw_only=True)
class Envelope:
    """One message to send, with its SMTP envelope and provider metadata.

    Attributes:
        sender: envelope sender (return path), a bare ``local@domain``.
        recipients: envelope recipients; at least one.
        message: the message as bytes (sent exactly as given) or an
            ``EmailMessage`` (serialized with CRLF line ends, Bcc removed).
        tags: provider tags / categories.
        metadata: provider metadata (custom args, variables).
        idempotency_key: lets a retried send be recognized by the provider or
            the outbox.

    Raises:
        InvalidAddress: the sender or a recipient is not a bare ``local@domain``.
        InvalidMessage: no recipient, or a message that is neither bytes nor
            an email message.

    Example:
        >>> from mailscale import Envelope
        >>> env = Envelope(sender="a@example.com", recipients=["b@example.org"],
        ...                message=b"Subject: hi\\r\\n\\r\\nHello\\r\\n")
        >>> env.recipients
        ('b@example.org',)
    """

    sender: str = attrs.field(validator=_validate_sender)
    recipients: tuple[str, ...] = attrs.field(converter=_to_tuple, validator=_validate_recipients)
    message: bytes | EmailMessage = attrs.field(validator=_validate_message, repr=False)
    tags: tuple[str, ...] = attrs.field(default=(), converter=_to_tuple, validator=_validate_labels)
    metadata: Mapping[str, str] = attrs.field(
        factory=dict, converter=_frozen_mapping, validator=_validate_labels
    )
    idempotency_key: str | None = attrs.field(default=None, validator=_validate_key)

    @classmethod
    def from_message(
        cls,
        message: EmailMessage,
        *,
        sender: str | None = None,
        recipients: Iterable[str] | None = None,
        **kw: Any,
    ) -> Envelope:
        """Build an envelope whose sender and recipients come from the headers.

        The sender defaults to the first From (or Sender) address, the
        recipients to every To, Cc and Bcc address.
        """
        if sender is None:
            found = getaddresses(message.get_all("Sender", []) or message.get_all("From", []))
            if not found or not found[0][1]:
                raise InvalidMessage("sender: the message has no From address")
            sender = found[0][1]
        if recipients is None:
            fields = [v for name in ("To", "Cc", "Bcc") for v in message.get_all(name, [])]
            recipients = [addr for _, addr in getaddresses(fields) if addr]
        return cls(sender=sender, recipients=tuple(recipients), message=message, **kw)

    def to_bytes(self) -> bytes:
        """The message in wire form: bytes as given, or the EmailMessage with CRLF and no Bcc."""
        msg = self.message
        if isinstance(msg, (bytes, bytearray, memoryview)):
            return bytes(msg)
        # Checked again: the caller may have changed the message since construction.
        check_message_headers(msg)
        if "Bcc" in msg:
            msg = _copy_without_bcc(msg)
        try:
            return msg.as_bytes(policy=email.policy.SMTP)
        except (email.errors.MessageError, UnicodeError, ValueError, LookupError) as exc:
            raise InvalidMessage(f"message: cannot be serialized: {exc}") from None
        except (AttributeError, TypeError) as exc:
            # A payload the email package cannot handle (set_payload(123), a list of
            # non-messages): its error names a type, never the content.
            raise InvalidMessage(
                f"message: cannot be serialized: {type(exc).__name__}: {exc}"
            ) from None

    def headers(self) -> Message:
        """The message's header fields (parsed from bytes when needed)."""
        msg = self.message
        if isinstance(msg, Message):
            return msg
        from email.parser import BytesHeaderParser

        return BytesHeaderParser(policy=email.policy.default).parsebytes(bytes(msg))


def _copy_without_bcc(msg: EmailMessage) -> EmailMessage:
    import copy

    clone = copy.copy(msg)
    clone._headers = [(k, v) for k, v in msg._headers if k.lower() != "bcc"]  # type: ignore[attr-defined]
    return clone


@attrs.frozen(kw_only=True)
class RecipientResult:
    """What a provider said about one recipient of a message."""

    recipient: str
    status: SendStatus
    status_code: int | str | None = None
    status_text: str = ""
    enhanced_status: str | None = None


@attrs.frozen(kw_only=True)
class SendResult:
    """The outcome of one message handed to a transport.

    Attributes:
        status: accepted, deferred (transient) or rejected (permanent).
        recipients: the envelope recipients this result covers.
        transport: name of the transport (for composites: the member that handled it).
        message_id: the provider's message id, when it gave one.
        status_code: the provider's status (HTTP status, SMTP reply code, provider error code).
        status_text: the provider's words (never a secret).
        enhanced_status: RFC 3463 enhanced status code (``"5.1.1"``), when known.
        retry_after: seconds to wait before retrying a deferred message, when known.
        latency: seconds the provider exchange that carried the message took: its HTTP
            request (until the whole answer was read), or its SMTP transaction (MAIL FROM
            to the answer after the final dot); 0.0 when the transport does not time it.
        recipient_results: per-recipient outcomes, where the provider tells them.
        rate_limit: rate-limit response headers (``X-RateLimit-*``, ``Retry-After``) for the shaper.
        idempotency_key: the envelope's key, echoed.
        possibly_delivered: the whole message reached the peer but its answer was
            lost (the connection dropped or timed out after SMTP's final dot, or
            after an HTTP request body was sent): the result is deferred, yet the
            message may have been delivered. Retry it at most once, later, with the
            same Message-ID, and never through another transport (see
            docs/transports.md). After a merge it stays True: a copy may exist.
        exchange: set when one provider request carried several messages: results
            with the same number came from that one request and share its
            ``latency`` (count it once). None when the latency is the message's own.
    """

    status: SendStatus
    recipients: tuple[str, ...] = ()
    transport: str = ""
    message_id: str | None = None
    status_code: int | str | None = None
    status_text: str = ""
    enhanced_status: str | None = None
    retry_after: float | None = None
    latency: float = 0.0
    recipient_results: tuple[RecipientResult, ...] = ()
    rate_limit: Mapping[str, str] = attrs.field(factory=dict, converter=_frozen_mapping)
    idempotency_key: str | None = None
    possibly_delivered: bool = False
    exchange: int | None = None

    @property
    def accepted(self) -> bool:
        """True when the status is ACCEPTED (the peer took responsibility for delivery)."""
        return self.status is SendStatus.ACCEPTED

    @property
    def deferred(self) -> bool:
        """True when the status is DEFERRED (transient: try again later)."""
        return self.status is SendStatus.DEFERRED

    @property
    def rejected(self) -> bool:
        """True when the status is REJECTED (permanent: do not retry)."""
        return self.status is SendStatus.REJECTED

    @property
    def pending_recipients(self) -> tuple[str, ...]:
        """Recipients worth retrying: the deferred ones (all of them for a deferred
        result without per-recipient detail)."""
        if self.recipient_results:
            return tuple(
                r.recipient for r in self.recipient_results if r.status is SendStatus.DEFERRED
            )
        return self.recipients if self.status is SendStatus.DEFERRED else ()


def overall_status(statuses: Iterable[SendStatus]) -> SendStatus:
    """The status of a message from its recipients' statuses.

    Every recipient accepted → accepted; any deferred → deferred (the deferred
    recipients are retried, the accepted ones are not); otherwise accepted when
    at least one recipient was accepted (the rest are final rejections), else
    rejected.
    """
    seen = set(statuses)
    if SendStatus.DEFERRED in seen:
        return SendStatus.DEFERRED
    if SendStatus.ACCEPTED in seen or not seen:
        return SendStatus.ACCEPTED
    return SendStatus.REJECTED


# A Message-ID field of a header section and its (possibly folded) value; RFC 5322
# section 4.5.3 allows WSP between the field name and its colon.
_MESSAGE_ID_FIELD = re.compile(rb"(?im)^message-id[ \t]*:[ \t]*(.*(?:\r?\n[ \t].*)*)")
_FOLDED_VALUE = re.compile(rb"\r?\n[ \t]+")
_ID_PREFIX = f"{secrets.token_hex(6)}.{os.getpid()}"
_ID_COUNTER = itertools.count(1)


def new_message_id(sender: str) -> str:
    """A new ``<...@domain>`` id in the sender's domain (IDNA-encoded): random per
    process, a counter within it (unique, and cheap)."""
    domain = sender.rpartition("@")[2] or "localhost"
    if not domain.isascii():
        try:
            domain = domain.encode("idna").decode("ascii")
        except UnicodeError:  # pragma: no cover - the sender was validated
            domain = "localhost"
    return f"<{_ID_PREFIX}.{next(_ID_COUNTER)}.{int(time.time())}@{domain}>"


def ensure_message_id(data: bytes, sender: str) -> tuple[bytes, str]:
    """Raw message bytes with a Message-ID, and that Message-ID.

    *data* itself when its header section has a Message-ID field with a value (only
    the header section counts, not the body); else the bytes with a new field
    prepended (in the message's line ending), its id in *sender*'s domain. A signature
    made before cannot cover a field the message did not have, unless it over-signs
    ``Message-ID``.
    """
    end = data.find(b"\r\n\r\n")
    crlf = end >= 0
    if not crlf:
        end = data.find(b"\n\n")
    head = data if end < 0 else data[: end + 2]
    if data.startswith((b"\r\n", b"\n")):
        head = b""  # no header fields at all: what follows the blank line is body
    low = head.lower()
    at = 0 if low.startswith(b"message-id") else low.find(b"\nmessage-id") + 1
    while at > 0 or low.startswith(b"message-id"):
        # Anchored at the field's line: no scan of the whole header by the regex.
        found = _MESSAGE_ID_FIELD.match(head, at)
        if found:
            value = found.group(1)
            if b"\n" in value:
                value = _FOLDED_VALUE.sub(b" ", value)
            value = value.strip()
            if value:
                return data, value.decode("ascii", "replace")
        at = low.find(b"\nmessage-id", at + 1) + 1
        if at == 0:
            break
    eol = b"\r\n" if crlf or b"\r\n" in head or b"\n" not in head else b"\n"
    message_id = new_message_id(sender)
    return b"Message-ID: " + message_id.encode("ascii") + eol + data, message_id


def with_message_id(envelope: Envelope) -> Envelope:
    """*envelope* itself when its message has a Message-ID, else a copy that has one.

    A message sent again after an unknown outcome keeps the same Message-ID, so a
    duplicate is recognisable. Raw bytes are handled as :func:`ensure_message_id`
    does; an ``EmailMessage`` is copied, never changed in place. The id's domain is
    the envelope sender's.
    """
    msg = envelope.message
    if isinstance(msg, Message):
        if "Message-ID" in msg:
            return envelope
        import copy

        clone = copy.copy(msg)
        clone._headers = list(msg._headers)  # type: ignore[attr-defined]
        clone["Message-ID"] = new_message_id(envelope.sender)
        return attrs.evolve(envelope, message=clone)
    data = bytes(msg)
    out, _ = ensure_message_id(data, envelope.sender)
    return envelope if out is data else attrs.evolve(envelope, message=out)
