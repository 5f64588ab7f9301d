"""DKIM canonicalization (RFC 6376 section 3.4), the pure-Python reference.

The compiled twin lives in ``_core_dkim.pxi``; both must return identical bytes
for every input and raise only ``TypeError`` for an argument that is not a
bytes-like object.
"""

from __future__ import annotations

import re

__all__ = ["canon_body_relaxed", "canon_body_simple", "normalize_line_endings"]

_BARE_EOL = re.compile(rb"\r\n|\r|\n")
_WSP_RUN = re.compile(rb"[ \t]+")


def _as_bytes(data: object) -> bytes:
    if data is None or isinstance(data, str):
        raise TypeError(f"a bytes-like object is required, not {type(data).__name__!r}")
    return bytes(memoryview(data))  # type: ignore[arg-type]


def normalize_line_endings(data: bytes) -> bytes:
    """Return *data* with every bare CR and bare LF turned into CRLF."""
    return _BARE_EOL.sub(b"\r\n", _as_bytes(data))


def canon_body_simple(data: bytes) -> bytes:
    """Simple body canonicalization (RFC 6376 section 3.4.3)."""
    body = _as_bytes(data)
    end = len(body)
    while end >= 4 and body[end - 4 : end] == b"\r\n\r\n":
        end -= 2
    body = body[:end]
    if body.endswith(b"\r\n"):
        return body
    return body + b"\r\n"


def canon_body_relaxed(data: bytes) -> bytes:
    """Relaxed body canonicalization (RFC 6376 section 3.4.4)."""
    lines = _as_bytes(data).split(b"\r\n")
    if lines and lines[-1] == b"":
        lines.pop()  # the input ended in CRLF: no unterminated last line
    out = [_WSP_RUN.sub(b" ", line).rstrip(b" ") for line in lines]
    while out and out[-1] == b"":
        out.pop()
    if not out:
        return b""
    return b"\r\n".join(out) + b"\r\n"
