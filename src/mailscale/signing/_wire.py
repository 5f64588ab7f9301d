"""Turning a message into its wire form, and checking DNS names for DKIM."""

from __future__ import annotations

import email.errors
import re
from email.message import Message

from mailscale._hot import normalize_line_endings
from mailscale.errors import CanonicalizationError, InvalidDomain
from mailscale.message import ascii_dns_name, check_message_headers

__all__ = ["check_dns_name", "check_identity", "wire_bytes"]

_LOCAL_PART = re.compile(r"[!-~]*\Z")  # printable ASCII; ';' and '=' checked apart


def wire_bytes(message: bytes | bytearray | memoryview | Message) -> bytes:
    """Return the bytes a signature covers: CRLF line ends, ending in CRLF.

    Bare CR and bare LF become CRLF and a body without a final CRLF gets one,
    as SMTP would do in transit; the result is exactly what must be sent.

    Raises:
        CanonicalizationError: a message that is neither bytes nor an email Message,
            or a Message that cannot be serialized.
        HeaderInjection: a Message header whose name is not a valid field name, or
            whose value has CR or LF not starting a fold, or another line break (the
            rule of ``mailscale.message.check_message_headers``).
    """
    data: bytes | bytearray | memoryview
    if type(message) is bytes:
        data = message
    elif isinstance(message, Message):
        # The one rule mailscale.message applies to every Envelope: valid field names,
        # no line break in a value other than a fold.
        check_message_headers(message)
        try:
            data = message.as_bytes()
        except (
            UnicodeError,
            LookupError,
            ValueError,
            TypeError,
            AttributeError,
            RecursionError,
            email.errors.MessageError,
        ) as exc:
            # A payload the email package cannot serialize (set_payload([1, 2]), an int,
            # a part that contains itself, a policy that is not one): the error names
            # the type of the failure, never the content.
            raise CanonicalizationError(
                f"the email message cannot be serialized: {type(exc).__name__}"
            ) from None
    elif isinstance(message, (bytes, bytearray, memoryview)):
        # Any buffer (a strided view, an array of ints) as the bytes it holds.
        data = memoryview(message).tobytes()
    else:
        raise CanonicalizationError(
            f"a message must be bytes or an email.message.Message, not {type(message).__name__}"
        )
    out = normalize_line_endings(data)
    if out[-2:] != b"\r\n" and out:
        out += b"\r\n"
    return out


def check_dns_name(name: str, what: str) -> str:
    """Return ``name`` as an ASCII DNS name (IDNA for non-ASCII), or raise InvalidDomain."""
    if not isinstance(name, str) or not name:
        raise InvalidDomain(f"the DKIM {what} must be a non-empty string")
    # A domain may end in the root's dot; a selector is a relative name.
    ascii_name = ascii_dns_name(name, underscore=True)
    if ascii_name is None or (what != "domain" and ascii_name.endswith(".")):
        raise InvalidDomain(f"the DKIM {what} {name!r} is not a valid DNS name")
    return ascii_name.rstrip(".").lower() if what == "domain" else ascii_name


def check_identity(identity: str, domain: str) -> str:
    """Return a valid ``i=`` value for ``domain``: ``[local]@domain-or-subdomain``."""
    local, at, host = identity.rpartition("@")
    if not at:
        raise InvalidDomain(f"the DKIM identity {identity!r} has no '@'")
    if not _LOCAL_PART.match(local) or ";" in local or "=" in local:
        raise InvalidDomain(f"the DKIM identity {identity!r} has an invalid local part")
    host = check_dns_name(host, "domain")
    if host != domain and not host.endswith("." + domain):
        raise InvalidDomain(
            f"the DKIM identity {identity!r} is not in the signing domain {domain!r}"
        )
    return f"{local}@{host}"
