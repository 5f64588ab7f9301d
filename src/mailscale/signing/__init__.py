"""DKIM signing and verification (RFC 6376, RFC 8463): signer, batch signing, keys, DNS records.

The signature covers the wire form of a message (CRLF line ends, final CRLF);
``sign`` returns exactly the bytes to send.
"""

from __future__ import annotations

from mailscale.signing._signer import (
    DEFAULT_HEADERS,
    DEFAULT_OVERSIGN,
    DKIMSigner,
    MultiSigner,
    sign,
    sign_batch,
    signature_header,
)
from mailscale.signing._verify import DKIMVerifier, VerifyResult, VerifyStatus, verify
from mailscale.signing.keys import (
    KeyRecord,
    dns_record,
    dns_record_strings,
    generate_key,
    load_private_key,
    parse_key_record,
)

__all__ = [
    "DEFAULT_HEADERS",
    "DEFAULT_OVERSIGN",
    "DKIMSigner",
    "DKIMVerifier",
    "KeyRecord",
    "MultiSigner",
    "VerifyResult",
    "VerifyStatus",
    "dns_record",
    "dns_record_strings",
    "generate_key",
    "load_private_key",
    "parse_key_record",
    "sign",
    "sign_batch",
    "signature_header",
    "verify",
]
