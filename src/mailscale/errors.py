"""The mailscale error family.

Every error mailscale raises on bad input or a failed operation is a
:class:`MailscaleError`. Subclasses also derive from the builtin whose meaning
matches (``ValueError`` for bad input, ``TimeoutError`` for time-outs), so code
that already catches those keeps working. Errors carry context as attributes;
their ``str()`` never contains a secret or a message body.
"""

from __future__ import annotations

__all__ = [
    "AuthCheckError",
    "CanonicalizationError",
    "ConfigurationError",
    "HeaderInjection",
    "InvalidAddress",
    "InvalidDomain",
    "InvalidKey",
    "InvalidKeyRecord",
    "InvalidMessage",
    "MailscaleError",
    "MessageTooLarge",
    "PlanningError",
    "ShaperUnavailable",
    "ShapingError",
    "SigningError",
    "TransportAuthError",
    "TransportCertificateError",
    "TransportConnectionError",
    "TransportError",
    "TransportTimeout",
    "UnsupportedAlgorithm",
]


class MailscaleError(Exception):
    """Root of every error mailscale raises on purpose."""


class ConfigurationError(MailscaleError, ValueError):
    """A setting, URL or override is malformed or missing."""


# --- messages -----------------------------------------------------------


class InvalidMessage(MailscaleError, ValueError):
    """An outgoing message or envelope is malformed."""


class HeaderInjection(InvalidMessage):
    """A header value contains CR or LF (header injection)."""


class InvalidAddress(InvalidMessage):
    """An email address is malformed."""


class MessageTooLarge(InvalidMessage):
    """A message exceeds a size limit."""


# --- planning -----------------------------------------------------------


class PlanningError(MailscaleError, ValueError):
    """A workload or planning override is invalid.

    Attributes:
        field: the name of the offending field, when there is one.
    """

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


# --- signing ------------------------------------------------------------


class SigningError(MailscaleError, ValueError):
    """DKIM signing or verification cannot proceed on this input."""


class CanonicalizationError(SigningError):
    """A message cannot be split or canonicalized (RFC 6376 section 3.4)."""


class InvalidKey(SigningError):
    """A DKIM key is malformed, of the wrong type, or too small."""


class UnsupportedAlgorithm(SigningError):
    """A DKIM algorithm or canonicalization mode is not supported."""


class InvalidKeyRecord(InvalidKey):
    """A DKIM key record (the DNS TXT value) is malformed (RFC 6376 section 3.6.1)."""


class InvalidDomain(SigningError):
    """A DKIM domain, selector or identity is not a valid DNS name."""


# --- shaping ------------------------------------------------------------


class ShapingError(MailscaleError, ValueError):
    """A rate limit or shaping request is invalid."""


class ShaperUnavailable(MailscaleError, ConnectionError):
    """The shared shaper's backend (Redis) cannot be reached; nothing was admitted."""


# --- transports ---------------------------------------------------------


class TransportError(MailscaleError):
    """A whole transport call failed.

    Attributes:
        provider: the transport's name (``"sendgrid"``, ``"smtp"``, ...).
        status: the provider's status code, when there is one.
        recipients: the recipients of the failed call.
        transient: True when retrying later may succeed.
    """

    def __init__(
        self,
        message: str,
        *,
        provider: str | None = None,
        status: int | str | None = None,
        recipients: tuple[str, ...] = (),
        transient: bool = False,
    ) -> None:
        super().__init__(message)
        self.provider = provider
        self.status = status
        self.recipients = tuple(recipients)
        self.transient = transient


class TransportConnectionError(TransportError, ConnectionError):
    """The transport could not reach its peer (always transient)."""

    def __init__(self, message: str, **kwargs: object) -> None:
        kwargs.setdefault("transient", True)
        super().__init__(message, **kwargs)  # type: ignore[arg-type]


class TransportTimeout(TransportError, TimeoutError):
    """The peer did not answer in time (always transient)."""

    def __init__(self, message: str, **kwargs: object) -> None:
        kwargs.setdefault("transient", True)
        super().__init__(message, **kwargs)  # type: ignore[arg-type]


class TransportAuthError(TransportError):
    """The provider refused the credentials (permanent)."""


class TransportCertificateError(TransportError):
    """The peer's TLS certificate failed verification (a configuration problem of
    that transport, not of the message: composites move on, retrying does not help)."""


# --- auth (DNS checks) --------------------------------------------------


class AuthCheckError(MailscaleError, ValueError):
    """A DNS record or authentication-check input is invalid."""
