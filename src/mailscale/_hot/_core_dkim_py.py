"""DKIM canonicalization (RFC 6376 section 3.4), the pure-Python reference.

The compiled twin lives in ``_core_dkim.pxi``; both must return identical bytes
for every input and raise only ``TypeError`` for an argument that is not a
bytes-like object, ``BufferError`` for a buffer that is not C-contiguous,
``ValueError`` for one that is not one-dimensional or not of bytes, and
``CanonicalizationError`` for a message that cannot be
split or a header field without a colon.

Only CRLF ends a line here: callers normalize bare CR and LF first
(``normalize_line_endings``), so that the signature covers the wire form.
"""

from __future__ import annotations

import binascii
import hashlib
import operator
import re
from collections.abc import Sequence
from typing import Literal, overload

from mailscale.errors import CanonicalizationError

__all__ = [
    "body_hash",
    "normalize_line_endings",
    "parse_signature",
    "parse_tags",
    "_BodyHasher",
    "_b64_value",
    "_canon_body_relaxed",
    "_canon_body_simple",
    "_canon_header_relaxed",
    "_header_hash_input",
    "_parse_tag_list",
    "_split_message",
    "_strip_b_value",
]

# FWS inside a tag value: WSP and folding CRLFs; both are insignificant at the ends.
_FWS_CHARS = " \t\r\n"
_FWS_BYTES = b" \t\r\n"

_BARE_EOL = re.compile(rb"\r\n|\r|\n")
_WSP_RUN = re.compile(rb"[ \t]+")


def _as_bytes(data: object) -> bytes:
    # The compiled core reads buffers as ``const unsigned char[::1]``: the same
    # buffers are refused here, with the same exception types.
    if type(data) is bytes:
        return data
    if data is None or isinstance(data, str):
        raise TypeError(f"a bytes-like object is required, not {type(data).__name__!r}")
    view = memoryview(data)  # type: ignore[arg-type]
    _check_byte_buffer(view)
    return view.tobytes()


def _check_byte_buffer(view: memoryview) -> None:
    """Refuse a buffer that is not one-dimensional, C-contiguous and of bytes.

    Raises:
        BufferError: the buffer is not C-contiguous (a strided or reversed view).
        ValueError: it has more or fewer than one dimension, or items other than bytes.
    """
    if not view.c_contiguous:
        raise BufferError("memoryview: underlying buffer is not C-contiguous")
    if view.ndim != 1:
        raise ValueError(f"Buffer has wrong number of dimensions (expected 1, got {view.ndim})")
    if view.format.lstrip("@=<>!") not in ("B", "c"):
        raise ValueError(
            f"Buffer dtype mismatch, expected 'const unsigned char' but got {view.format!r}"
        )


def normalize_line_endings(data: bytes) -> bytes:
    """Return *data* with every bare CR and bare LF turned into CRLF."""
    return _BARE_EOL.sub(b"\r\n", _as_bytes(data))


def _canon_body_simple(data: bytes) -> bytes:
    """Simple body canonicalization (RFC 6376 section 3.4.3)."""
    body = _as_bytes(data)
    end = len(body)
    while end >= 4 and body[end - 4 : end] == b"\r\n\r\n":
        end -= 2
    body = body[:end]
    if body.endswith(b"\r\n"):
        return body
    return body + b"\r\n"


def _canon_body_relaxed(data: bytes) -> bytes:
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


def _name_ok(name: bytes) -> bool:
    # field-name = 1*ftext; ftext = %d33-57 / %d59-126 (RFC 5322 section 3.6.8)
    return bool(name) and all(33 <= c <= 126 and c != 58 for c in name)


def _split_message(data: bytes) -> tuple[list[tuple[bytes, bytes]], int]:
    """Split a CRLF message into header fields and the offset where the body starts.

    Each field is ``(lowercased name, raw field with its continuation lines and
    final CRLF)``. The body starts after the first empty line; a message whose
    header runs to its end (every line ending in CRLF, no empty line) has an
    empty body starting at its end. Whitespace between a name and its colon is
    allowed (obsolete syntax) and not part of the name.

    Raises:
        CanonicalizationError: an empty message, a header line not ending in CRLF
            (with no empty line before it), a line without a colon, a continuation
            line before the first field, or a name with a control, space, NUL or
            8-bit byte.
    """
    msg = _as_bytes(data)
    n = len(msg)
    fields: list[tuple[bytes, bytes]] = []
    pos = 0
    start = -1
    name = b""
    line_no = 0
    while True:
        line_no += 1
        if msg.startswith(b"\r\n", pos):
            if start >= 0:
                fields.append((name, msg[start:pos]))
            return fields, pos + 2
        if pos == n and n:
            # Every line ended in CRLF and the message ends: a header and no body
            # (RFC 5322 makes the empty line and the body optional).
            fields.append((name, msg[start:pos]))
            return fields, n
        end = msg.find(b"\r\n", pos)
        if end < 0:
            raise CanonicalizationError(
                f"header line {line_no} does not end with CRLF (and no empty line ends the header)"
                if n
                else "the message is empty: no header, no empty line before the body"
            )
        first = msg[pos]
        if first == 32 or first == 9:
            if start < 0:
                raise CanonicalizationError(
                    f"header line {line_no} is a continuation line with no field before it"
                )
        else:
            colon = msg.find(b":", pos, end)
            if colon < 0:
                raise CanonicalizationError(f"header line {line_no} has no colon")
            raw_name = msg[pos:colon].rstrip(b" \t")
            if not _name_ok(raw_name):
                raise CanonicalizationError(
                    f"header line {line_no}: the field name is empty or contains a control, "
                    "space, NUL or 8-bit byte"
                )
            if start >= 0:
                fields.append((name, msg[start:pos]))
            start = pos
            name = raw_name.lower()
        pos = end + 2


def _canon_header_relaxed(field: bytes) -> bytes:
    """Relaxed header canonicalization of one field (RFC 6376 section 3.4.2).

    CRLFs are removed (unfolding), the name is lowercased, whitespace before
    and after the colon is removed, runs of SP/HTAB become one SP and trailing
    whitespace goes; the result ends in CRLF.

    Raises:
        CanonicalizationError: the field has no colon.
    """
    whole = _as_bytes(field).replace(b"\r\n", b"")
    colon = whole.find(b":")
    if colon < 0:
        raise CanonicalizationError("header field has no colon")
    name = whole[:colon].rstrip(b" \t").lower()
    value = _WSP_RUN.sub(b" ", whole[colon + 1 :]).strip(b" ")
    return name + b":" + value + b"\r\n"


def _header_hash_input(
    fields: Sequence[tuple[bytes, bytes]],
    names: Sequence[bytes],
    signature_field: bytes,
    relaxed: bool,
) -> bytes:
    """Assemble the data the header hash covers (RFC 6376 sections 3.7 and 5.4.2).

    For each name of ``names`` (the h= list) the last not yet used instance of
    that field is taken, bottom up; a name with no instance left adds nothing
    (over-signing). The DKIM-Signature field, given with an empty b= and without
    its final CRLF, comes last, canonicalized and without a final CRLF.

    Raises:
        CanonicalizationError: a field without a colon (relaxed).
    """
    sig = _as_bytes(signature_field)
    raws = [_as_bytes(raw) for _, raw in fields]
    chosen = _select([_as_bytes(name).lower() for name, _ in fields], names)
    out = [_canon_header_relaxed(raws[i]) if relaxed else raws[i] for i in chosen]
    out.append(_canon_header_relaxed(sig)[:-2] if relaxed else sig)
    return b"".join(out)


def _select(names: Sequence[bytes], wanted: Sequence[bytes]) -> tuple[int, ...]:
    """The field indices an h= list signs (RFC 6376 section 5.4.2).

    Each wanted name, without case, takes the last instance of ``names`` (the
    lower-cased field names, top to bottom) not taken yet, bottom up; a name
    with none left takes nothing. Linear in fields + names, whatever h= holds.
    """
    stacks: dict[bytes, list[int]] = {}
    for index, name in enumerate(names):
        stacks.setdefault(name, []).append(index)
    chosen = []
    for name in wanted:
        stack = stacks.get(_as_bytes(name).lower())
        if stack:
            chosen.append(stack.pop())
    return tuple(chosen)


@overload
def body_hash(
    data: bytes, start: int, relaxed: bool, limit: int = -1, check: Literal[False] = False
) -> tuple[bytes, int]: ...
@overload
def body_hash(
    data: bytes, start: int, relaxed: bool, limit: int = -1, *, check: bool
) -> tuple[bytes, int] | None: ...
def body_hash(
    data: bytes, start: int, relaxed: bool, limit: int = -1, check: bool = False
) -> tuple[bytes, int] | None:
    """SHA-256 of the canonicalized body ``data[start:]``, and the canonical length.

    ``limit`` >= 0 hashes only that many canonical bytes (the l= tag); the
    returned length is always the whole canonical body's. ``start`` and
    ``limit`` are ints of any size (``operator.index``; TypeError otherwise).
    With ``check``, None when the body has a bare CR or a bare LF (the
    compiled core proves the line ends in the same pass as the hash, so a
    caller need not scan the body beforehand); never None without it.

    Raises:
        CanonicalizationError: ``start`` is outside the message.
    """
    msg = _as_bytes(data)
    start, limit = operator.index(start), operator.index(limit)
    if not 0 <= start <= len(msg):
        raise CanonicalizationError(f"body offset {start} is outside the message")
    body = msg[start:]
    if check and normalize_line_endings(body) != body:
        return None
    canon = _canon_body_relaxed(body) if relaxed else _canon_body_simple(body)
    length = len(canon)
    if 0 <= limit < length:
        canon = canon[:limit]
    return hashlib.sha256(canon).digest(), length


class _BodyHasher:
    """Streaming body hash: feed the body in chunks, get what ``body_hash`` gives.

    Only the unfinished last line and a count of trailing empty lines are kept
    between chunks, so a large body never needs to be in memory at once.

    Raises:
        CanonicalizationError: ``update`` after ``digest``.
    """

    def __init__(self, relaxed: bool) -> None:
        self._relaxed = bool(relaxed)
        self._hash = hashlib.sha256()
        self._carry = b""
        self._pending = 0
        self._length = 0
        self._result: tuple[bytes, int] | None = None

    def _line(self, line: bytes) -> None:
        canon = _WSP_RUN.sub(b" ", line).rstrip(b" ") if self._relaxed else line
        if not canon:
            self._pending += 1
            return
        if self._pending:
            self._hash.update(b"\r\n" * self._pending)
            self._length += 2 * self._pending
            self._pending = 0
        self._hash.update(canon + b"\r\n")
        self._length += len(canon) + 2

    def update(self, chunk: bytes) -> None:
        """Add the next bytes of the body."""
        data = _as_bytes(chunk)
        if self._result is not None:
            raise CanonicalizationError("the body hash is already finished")
        data = self._carry + data
        cut = data.rfind(b"\r\n")
        if cut < 0:
            self._carry = data
            return
        self._carry = data[cut + 2 :]
        for line in data[:cut].split(b"\r\n"):
            self._line(line)

    def digest(self) -> tuple[bytes, int]:
        """The SHA-256 of the canonical body and its length; the hasher is then finished."""
        if self._result is None:
            if self._carry:
                self._line(self._carry)
            if not self._relaxed and self._length == 0:
                self._hash.update(b"\r\n")  # an empty body is a single CRLF (simple)
                self._length = 2
            self._result = (self._hash.digest(), self._length)
        return self._result


def parse_tags(text: str) -> dict[str, str]:
    """Parse a DKIM tag list (RFC 6376 section 3.2) given as text; see _parse_tag_list.

    Raises:
        ValueError: a tag without ``=``, an invalid tag name, or a duplicate tag.
    """
    tags: dict[str, str] = {}
    parts = text.split(";")
    if parts[-1].strip(_FWS_CHARS) == "":
        parts.pop()
    for part in parts:
        name, sep, value = part.partition("=")
        # tag-name = ALPHA *ALNUMPUNC (ALNUMPUNC = ALPHA / DIGIT / "_")
        name = name.strip(_FWS_CHARS)
        if not sep:
            raise ValueError(f"tag {name[:20]!r} has no '='")
        if not (name.isascii() and name[:1].isalpha() and name.replace("_", "a").isalnum()):
            raise ValueError(f"invalid tag name {name[:20]!r}")
        if name in tags:
            raise ValueError(f"duplicate tag {name!r}")
        tags[name] = value.strip(_FWS_CHARS)
    return tags


def _parse_tag_list(data: bytes) -> dict[str, str]:
    """Parse ``tag=value; tag=value`` (ASCII bytes) into a dict of str, keeping tag order.

    Whitespace around names and values is dropped; a trailing ``;`` is allowed.

    Raises:
        ValueError: a non-ASCII byte, a tag without ``=``, an invalid tag name, or a
            duplicate tag.
    """
    raw = _as_bytes(data)
    if not raw.isascii():
        raise ValueError("the tag list contains a non-ASCII byte")
    return parse_tags(raw.decode("ascii"))


def _strip_b_value(field: bytes) -> bytes | None:
    """The field without its final CRLF and with the b= value emptied, or None.

    RFC 6376 section 3.7: the value and the whitespace around it are deleted,
    the rest of the field stays byte for byte. The last ``b`` tag after the
    first colon is the one emptied; None when there is none.
    """
    raw = _as_bytes(field)
    if raw.endswith(b"\r\n"):
        raw = raw[:-2]
    head, _, value = raw.partition(b":")
    parts = value.split(b";")
    for idx in range(len(parts) - 1, -1, -1):
        name, eq, _ = parts[idx].partition(b"=")
        if eq and name.strip(_FWS_BYTES) == b"b":
            parts[idx] = name + b"="
            return head + b":" + b";".join(parts)
    return None


def _b64_value(value: bytes) -> bytes | None:
    """Decode a base64 tag value (b=, bh=), or None when it is not exactly base64.

    FWS (SP, HTAB, CR, LF) anywhere is ignored (RFC 6376 section 3.5). What is
    left must be canonical base64: only the alphabet, padding only at the end,
    a multiple of four characters, unused bits zero.
    """
    compact = _as_bytes(value).translate(None, _FWS_BYTES)
    try:
        raw = binascii.a2b_base64(compact)
    except (binascii.Error, ValueError):
        return None
    # a2b_base64 skips stray characters: insist that the value was exactly base64.
    if binascii.b2a_base64(raw, newline=False) != compact:
        return None
    return raw


def parse_signature(
    field: bytes,
) -> tuple[dict[str, str], bytes | None, bytes | None, bytes | None]:
    """A DKIM-Signature field read in one call.

    Returns the tags after the first colon (``_parse_tag_list``), the field
    with its b= value emptied (``_strip_b_value``), and the decoded b= and bh=
    values (``_b64_value``; None when absent or not exactly base64).

    Raises:
        ValueError: no colon, or what ``_parse_tag_list`` raises.
    """
    raw = _as_bytes(field)
    colon = raw.find(b":")
    if colon < 0:
        raise ValueError("the field has no colon")
    tags = _parse_tag_list(raw[colon + 1 :])
    b = _b64_value(tags["b"].encode("ascii")) if "b" in tags else None
    bh = _b64_value(tags["bh"].encode("ascii")) if "bh" in tags else None
    return tags, _strip_b_value(raw), b, bh
