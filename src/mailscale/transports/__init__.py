"""Transports: send batches of envelopes through SMTP, direct-to-MX, ESP APIs or dev sinks.

``transport_from_url("smtp://user:pass@host:587")`` builds any transport from
its URL (see docs/transports.md). The SMTP and MX classes are imported on
first use, so importing this package stays cheap.
"""

from __future__ import annotations

import importlib
from typing import Any

from mailscale.transports.base import (
    Signer,
    Transport,
    TransportBase,
    TransportURL,
    message_bytes,
    redact_url,
    signed_bytes,
)
from mailscale.transports.composite import FailoverTransport, RoundRobinTransport
from mailscale.transports.dev import FileTransport, MemoryTransport, NullTransport
from mailscale.transports.registry import (
    TransportInfo,
    available_transports,
    get_transport_class,
    transport_from_url,
    transport_tls,
)
from mailscale.transports.retry import RetryingTransport, RetryPolicy

__all__ = [
    "FailoverTransport",
    "FileTransport",
    "MXTransport",
    "MemoryTransport",
    "NullTransport",
    "RetryPolicy",
    "RetryingTransport",
    "RoundRobinTransport",
    "SMTPTransport",
    "Signer",
    "Transport",
    "TransportBase",
    "TransportInfo",
    "TransportURL",
    "available_transports",
    "get_transport_class",
    "message_bytes",
    "redact_url",
    "signed_bytes",
    "transport_from_url",
    "transport_tls",
]

_LAZY = {
    "SMTPTransport": "mailscale.transports.smtp",
    "MXTransport": "mailscale.transports.mx",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'mailscale.transports' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
