"""mailscale: plan, sign, shape and send high-volume email.

Importing mailscale has no side effects: it configures no logging, prints
nothing and changes no process state.
"""

from __future__ import annotations

from mailscale.errors import (
    AuthCheckError,
    CanonicalizationError,
    ConfigurationError,
    HeaderInjection,
    InvalidAddress,
    InvalidKey,
    InvalidMessage,
    MailscaleError,
    MessageTooLarge,
    PlanningError,
    ShaperUnavailable,
    ShapingError,
    SigningError,
    TransportAuthError,
    TransportConnectionError,
    TransportError,
    TransportTimeout,
    UnsupportedAlgorithm,
)

__version__ = "0.1.0"

__all__ = [
    "AuthCheckError",
    "CanonicalizationError",
    "ConfigurationError",
    "HeaderInjection",
    "InvalidAddress",
    "InvalidKey",
    "InvalidMessage",
    "MailscaleError",
    "MessageTooLarge",
    "PlanningError",
    "ShaperUnavailable",
    "ShapingError",
    "SigningError",
    "TransportAuthError",
    "TransportConnectionError",
    "TransportError",
    "TransportTimeout",
    "UnsupportedAlgorithm",
    "__version__",
]
