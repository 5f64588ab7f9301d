"""DKIM signing and verification (RFC 6376, RFC 8463): signer, batch signing, keys, DNS records."""

from __future__ import annotations

from mailscale.signing.keys import (
    KeyRecord,
    dns_record,
    dns_record_strings,
    generate_key,
    load_private_key,
    parse_key_record,
)

__all__ = [
    "KeyRecord",
    "dns_record",
    "dns_record_strings",
    "generate_key",
    "load_private_key",
    "parse_key_record",
]
