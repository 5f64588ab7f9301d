"""Transports: send batches of envelopes through SMTP, direct-to-MX, ESP APIs or dev sinks."""

from __future__ import annotations

from mailscale.transports.base import Transport, TransportBase, TransportURL, redact_url

__all__ = ["Transport", "TransportBase", "TransportURL", "redact_url"]
