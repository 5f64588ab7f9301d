"""Split headers and signing plans (RFC 6376 sections 3.5, 3.7 and 5.4), the reference.

The compiled twin lives in ``_core_dkim_plan.pxi``. A ``Header`` is a message
split once: field offsets, the lower-cased names, the body offset. A
``SignPlan`` holds what one signer fixes (tags, signed names, canonicalization)
and turns a message in wire form into the DKIM-Signature template and the
digest to sign, in one call: the per-message path of ``DKIMSigner.sign``.
"""

from __future__ import annotations

import binascii
import hashlib
from collections.abc import Mapping, Sequence
from typing import Any

from mailscale._hot._core_dkim_py import (
    _as_bytes,
    _canon_header_relaxed,
    _select,
    _split_message,
    body_hash,
    normalize_line_endings,
    parse_signature,
)
from mailscale.errors import CanonicalizationError

__all__ = ["Header", "SignPlan", "_fold_tag_list", "split_header", "verify_step"]

#: Signature field lines are folded before they pass this many characters.
_WIDTH = 76
#: The b= value is folded into lines of this many base64 characters.
_B_LINE = 72
#: A plan remembers the h= list of this many header shapes (field name sequences).
_SHAPES = 512
#: ... and only for sequences of field names (``Header.names``) up to this many bytes, so
#: that the cache holds at most 512 KiB of keys and values bounded by them: a longer
#: sequence is recomputed each time it is met, with the same result.
_SHAPE_KEY = 1024

_NO_FROM = "the message has no From field; DKIM must sign From"


def _fold_tag_list(prefix: bytes, items: Sequence[bytes], sep: bytes) -> bytes:
    """``prefix`` + items joined by ``sep`` and ended by ``;``, folded before lines pass 76."""
    out = [prefix]
    line = 1 + len(prefix)
    for n, item in enumerate(items):
        piece = item + (sep if n < len(items) - 1 else b";")
        if line + len(piece) > _WIDTH and line > 1 + len(prefix):
            out.append(b"\r\n ")
            line = 1
        out.append(piece)
        line += len(piece)
    return b"".join(out)


class Header:
    """A message split into header fields once; see ``split_header``."""

    __slots__ = ("_fields", "body_start", "count", "data", "names")

    def __init__(self, data: bytes) -> None:
        self.data = _as_bytes(data)
        self._fields, self.body_start = _split_message(self.data)
        self.count = len(self._fields)
        self.names = b":".join([name for name, _ in self._fields])

    def fields(self) -> list[tuple[bytes, bytes]]:
        """``(lower-cased name, raw field)`` pairs, as ``_split_message`` gives them."""
        return list(self._fields)

    def field(self, index: int) -> bytes:
        """The raw field ``index`` (0 is the top), continuation lines and final CRLF included.

        Raises:
            IndexError: no such field.
        """
        return self._fields[_index(index, self.count)][1]

    def select(self, wanted: Sequence[bytes]) -> tuple[int, ...]:
        """The fields an h= list signs, in h= order (RFC 6376 section 5.4.2).

        Each name takes the last instance of its field not yet taken, bottom up;
        a name with none left takes nothing (over-signing). Names compare without
        case. Linear in fields + names, whatever h= holds.
        """
        return _select([name for name, _ in self._fields], wanted)

    def digest(self, indices: Sequence[int], tail: bytes, relaxed: bool) -> bytes:
        """SHA-256 of the header hash input: the fields at ``indices`` then ``tail``.

        ``tail`` is the DKIM-Signature field with an empty b= value and no final
        CRLF; it is canonicalized like the others, and no CRLF follows it.

        Raises:
            IndexError: an index is not a field of this header.
            CanonicalizationError: ``tail`` has no colon (relaxed).
        """
        last = _as_bytes(tail)
        parts = []
        for index in tuple(indices):
            raw = self._fields[_index(index, self.count)][1]
            parts.append(_canon_header_relaxed(raw) if relaxed else raw)
        parts.append(_canon_header_relaxed(last)[:-2] if relaxed else last)
        return hashlib.sha256(b"".join(parts)).digest()

    def crlf(self) -> bool:
        """True when every line of the header section ends in CRLF: no bare CR or LF
        before the body (a header with bare line ends splits, but is not CRLF)."""
        head = self.data[: self.body_start]
        return normalize_line_endings(head) == head


def _index(index: int, count: int) -> int:
    if type(index) is not int or not 0 <= index < count:
        raise IndexError(f"no header field {index!r} (the header has {count})")
    return index


def _known_body(found: object) -> tuple[bytes, int] | None:
    """A body hash from a caller's ``known`` dict: (32-byte digest, length) or None."""
    if found is None:
        return None
    if (
        type(found) is not tuple
        or len(found) != 2
        or type(found[0]) is not bytes
        or len(found[0]) != 32
        or type(found[1]) is not int
        or found[1] < 0
    ):
        raise TypeError("known holds (32-byte SHA-256 digest, length) pairs")
    return found


#: verify_step signs at most this many fields (h= longer takes the general path).
_STEP_FIELDS = 64


def verify_step(
    header: Header,
    index: int,
    static: Mapping[Any, Any],
    selected: Mapping[Any, Any],
    check: bool = False,
) -> tuple[tuple[Any, ...], int | None, bytes, bool | None, bytes | None] | None:
    """The per-signature work of verification for a signature of a known shape, in
    one call: read the field ``index`` of ``header``, parse it, find its shape,
    hash the body and compare bh=, and hash the header hash input.

    ``static`` maps the signature's tags (v, a, c, d, s, h, i, q; None when absent)
    to its checked 8-tuple, whose items 2 and 3 are header and body relaxed;
    ``selected`` maps (h= value, ``header.names``) to the indices of the fields h=
    signs. Returns None (the caller takes the general path) unless the field is
    ASCII, parses, has b= and bh= of exact base64, no l= or x=, a t= of at most 76
    digits if any, a tuple of 8 in ``static`` and a tuple of at most 64 indices in
    ``selected``. Otherwise (the static tuple, t= as an int or None, the decoded
    b=, body ok, digest): body ok is True when the body hash matches bh= (digest is
    then the SHA-256 of the header hash input), False when not, None (with
    ``check``) when the body has a bare CR or LF (``body_hash``); digest is None
    unless body ok is True.

    Raises:
        IndexError: ``index`` or a selected index is not a field of ``header``.
    """
    raw = header.field(index)
    if not raw.isascii():
        return None
    try:
        tags, unsigned, signature, expected = parse_signature(raw)
    except ValueError:
        return None
    if unsigned is None or signature is None or expected is None:
        return None
    if "l" in tags or "x" in tags:
        return None
    get = tags.get
    known = static.get(
        (get("v"), get("a"), get("c"), get("d"), get("s"), get("h"), get("i"), get("q"))
    )
    if type(known) is not tuple or len(known) != 8:
        return None
    signed_at = None
    value = get("t")
    if value is not None:
        if not (0 < len(value) <= 76 and value.isdigit()):
            return None
        signed_at = int(value)
    indices = selected.get((tags["h"], header.names))
    if type(indices) is not tuple or len(indices) > _STEP_FIELDS:
        return None
    for at in indices:
        _index(at, header.count)
    found = body_hash(header.data, header.body_start, bool(known[3]), -1, check=check)
    if found is None:
        return (known, signed_at, signature, None, None)
    if found[0] != expected:
        return (known, signed_at, signature, False, None)
    return (known, signed_at, signature, True, header.digest(indices, unsigned, bool(known[2])))


def split_header(data: bytes) -> Header:
    """Split the message ``data`` (CRLF line ends) into a ``Header``.

    Raises:
        CanonicalizationError: as ``_split_message``.
    """
    return Header(data)


class SignPlan:
    """The message-dependent part of one signer's DKIM-Signature field.

    Args:
        head: the field's fixed start, ``DKIM-Signature: v=1; a=...; d=...; s=...;``.
        headers: lower-cased names to sign when present, in h= order.
        oversign: lower-cased names listed once more than they occur.
        header_relaxed: relaxed (True) or simple header canonicalization.
        body_relaxed: relaxed (True) or simple body canonicalization.
        body_length: add ``l=`` with the canonical body length.
    """

    __slots__ = (
        "_headers",
        "_oversign",
        "_shapes",
        "body_length",
        "body_relaxed",
        "head",
        "header_relaxed",
    )

    def __init__(
        self,
        head: bytes,
        headers: Sequence[bytes],
        oversign: Sequence[bytes],
        header_relaxed: bool,
        body_relaxed: bool,
        body_length: bool,
    ) -> None:
        self.head = _as_bytes(head)
        self._headers = tuple(_as_bytes(name) for name in headers)
        self._oversign = tuple(_as_bytes(name) for name in oversign)
        self.header_relaxed = bool(header_relaxed)
        self.body_relaxed = bool(body_relaxed)
        self.body_length = bool(body_length)
        self._shapes: dict[bytes, tuple[tuple[int, ...], bytes]] = {}

    def h_list(self, names: bytes) -> tuple[bytes, ...]:
        """The h= list for a header whose field names are ``names`` (``Header.names``).

        Every present name of ``headers`` as often as it occurs, then each
        over-signed name once more: an h= name with no field left signs its
        absence, so adding one later breaks the signature.

        Raises:
            CanonicalizationError: there is no From field.
        """
        counts: dict[bytes, int] = {}
        for name in _as_bytes(names).split(b":"):
            counts[name] = counts.get(name, 0) + 1
        if b"from" not in counts:
            raise CanonicalizationError(_NO_FROM)
        out: list[bytes] = []
        for name in self._headers:
            if counts.get(name):
                out.extend([name] * counts[name])
        out.extend(self._oversign)
        return tuple(out)

    def _shape(self, header: Header) -> tuple[tuple[int, ...], bytes]:
        found = self._shapes.get(header.names)
        if found is None:
            h_list = self.h_list(header.names)
            found = (header.select(h_list), _fold_tag_list(b"\r\n h=", h_list, b":"))
            if len(self._shapes) < _SHAPES and len(header.names) <= _SHAPE_KEY:
                self._shapes[header.names] = found
        return found

    def _cache_info(self) -> tuple[int, int]:
        """(header shapes remembered, bytes of their keys); for the tests of the bound."""
        return len(self._shapes), sum([len(k) for k in self._shapes])

    def prepare(
        self, data: bytes, mid: bytes, known: dict[bool, tuple[bytes, int]] | None = None
    ) -> tuple[bytes, bytes, bytes]:
        """The field template (ending in ``b=``), the SHA-256 digest to sign, and the
        message in wire form (bare CR and LF made CRLF).

        ``mid`` holds the tags between ``s=`` and ``h=`` (``i=``, ``t=``, ``x=``),
        each with a leading space. ``known``, for several plans signing one
        message already in wire form, caches body hashes by body
        canonicalization; ``data`` is then used as it is.

        Raises:
            TypeError: ``data`` or ``mid`` is not bytes, ``known`` not a dict.
            CanonicalizationError: the message cannot be split, or has no From.
        """
        if type(data) is not bytes or type(mid) is not bytes:
            raise TypeError("prepare() takes the message and the tags as bytes")
        if known is not None and type(known) is not dict:
            raise TypeError(f"known must be a dict or None, not {type(known).__name__}")
        wire = data if known is not None else normalize_line_endings(data)
        header = Header(wire)
        found = None if known is None else _known_body(known.get(self.body_relaxed))
        if found is None:
            found = body_hash(wire, header.body_start, self.body_relaxed)
            if known is not None:
                known[self.body_relaxed] = found
        indices, h_text = self._shape(header)
        bh, length = found
        length_tag = b" l=%d;" % length if self.body_length else b""
        template = b"%s%s%s%s\r\n bh=%s;\r\n b=" % (
            self.head,
            mid,
            length_tag,
            h_text,
            binascii.b2a_base64(bh, newline=False),
        )
        return template, header.digest(indices, template, self.header_relaxed), wire

    def finish(self, template: bytes, signature: bytes, data: bytes = b"") -> bytes:
        """The complete field (``template``, the folded base64 ``signature``, CRLF) + ``data``."""
        b = binascii.b2a_base64(_as_bytes(signature), newline=False)
        folded = b"\r\n ".join([b[i : i + _B_LINE] for i in range(0, len(b), _B_LINE)])
        return b"".join((_as_bytes(template), folded, b"\r\n", _as_bytes(data)))
