# DKIM canonicalization (RFC 6376 section 3.4), compiled.
# Twin: mailscale/_dkim_py.py. Every function returns the same bytes as the twin.

from libc.stdlib cimport malloc, free
from libc.string cimport memcpy
from cpython.bytes cimport PyBytes_FromStringAndSize


cdef Py_ssize_t _normalize_len(const unsigned char[:] src) noexcept nogil:
    cdef Py_ssize_t n = src.shape[0]
    cdef Py_ssize_t i = 0, extra = 0
    cdef unsigned char c
    while i < n:
        c = src[i]
        if c == 13:
            if i + 1 < n and src[i + 1] == 10:
                i += 2
                continue
            extra += 1
        elif c == 10:
            extra += 1
        i += 1
    return extra


cdef void _normalize_fill(const unsigned char[:] src, unsigned char* dst) noexcept nogil:
    cdef Py_ssize_t n = src.shape[0]
    cdef Py_ssize_t i = 0, o = 0
    cdef unsigned char c
    while i < n:
        c = src[i]
        if c == 13 or c == 10:
            dst[o] = 13
            dst[o + 1] = 10
            o += 2
            if c == 13 and i + 1 < n and src[i + 1] == 10:
                i += 2
            else:
                i += 1
        else:
            dst[o] = c
            o += 1
            i += 1


def normalize_line_endings(const unsigned char[:] data not None):
    """Return *data* with every bare CR and bare LF turned into CRLF."""
    cdef Py_ssize_t n = data.shape[0]
    cdef Py_ssize_t extra
    cdef unsigned char* buf
    with nogil:
        extra = _normalize_len(data)
    if extra == 0:
        return bytes(data)
    buf = <unsigned char*> malloc(n + extra)
    if buf == NULL:
        raise MemoryError()
    try:
        with nogil:
            _normalize_fill(data, buf)
        return PyBytes_FromStringAndSize(<char*> buf, n + extra)
    finally:
        free(buf)


def canon_body_simple(const unsigned char[:] data not None):
    """Simple body canonicalization (RFC 6376 section 3.4.3).

    Trailing empty lines are removed; a body that does not end in CRLF gets
    one, so an empty body becomes a single CRLF. Only CRLF ends a line.
    """
    cdef Py_ssize_t end = data.shape[0]
    while end >= 4 and data[end - 4] == 13 and data[end - 3] == 10 \
            and data[end - 2] == 13 and data[end - 1] == 10:
        end -= 2
    if end >= 2 and data[end - 2] == 13 and data[end - 1] == 10:
        return bytes(data[:end])
    return bytes(data[:end]) + b"\r\n"


cdef Py_ssize_t _relaxed_body(const unsigned char[:] src, unsigned char* dst) noexcept nogil:
    # dst has room for len(src) + 2 bytes: every input line yields at most its
    # own bytes plus CRLF, and only the last line can lack its CRLF in the input.
    cdef Py_ssize_t n = src.shape[0]
    cdef Py_ssize_t i = 0, o = 0, keep = 0, line_start
    cdef bint pending_ws
    cdef unsigned char c
    while i < n:
        line_start = o
        pending_ws = False
        while i < n:
            c = src[i]
            if c == 13 and i + 1 < n and src[i + 1] == 10:
                break
            if c == 32 or c == 9:
                pending_ws = True
            else:
                if pending_ws:
                    dst[o] = 32
                    o += 1
                    pending_ws = False
                dst[o] = c
                o += 1
            i += 1
        # Whitespace at the end of a line is dropped (pending_ws discarded).
        if o > line_start:
            dst[o] = 13
            dst[o + 1] = 10
            o += 2
            keep = o
        else:
            dst[o] = 13
            dst[o + 1] = 10
            o += 2
        if i < n:
            i += 2
    return keep


def canon_body_relaxed(const unsigned char[:] data not None):
    """Relaxed body canonicalization (RFC 6376 section 3.4.4).

    Runs of SP/HTAB become one SP, whitespace at line ends is removed, trailing
    empty lines are removed, and a non-empty body ends in CRLF. An empty body
    stays empty. Only CRLF ends a line; an unterminated last line counts as a
    line.
    """
    cdef Py_ssize_t n = data.shape[0]
    cdef Py_ssize_t out
    cdef unsigned char* buf = <unsigned char*> malloc(n + 2)
    if buf == NULL:
        raise MemoryError()
    try:
        with nogil:
            out = _relaxed_body(data, buf)
        return PyBytes_FromStringAndSize(<char*> buf, out)
    finally:
        free(buf)


# --- header splitting, relaxed header canonicalization, hashing ---------------

import hashlib as _hashlib
from mailscale.errors import CanonicalizationError as _CanonicalizationError

_sha256 = _hashlib.sha256


cdef inline bint _is_crlf(const unsigned char* p, Py_ssize_t i, Py_ssize_t n) noexcept nogil:
    return i + 1 < n and p[i] == 13 and p[i + 1] == 10


def split_message(const unsigned char[:] data not None):
    """Split a CRLF message into header fields and the offset where the body starts.

    Each field is ``(lowercased name, raw field with its continuation lines and
    final CRLF)``. See the twin for the rules and errors.
    """
    cdef Py_ssize_t n = data.shape[0]
    cdef Py_ssize_t pos = 0, end, colon, start = -1, name_end, k, line_no = 0
    cdef unsigned char c, first
    cdef const unsigned char* p = NULL
    cdef list fields = []
    cdef object name = b""
    if n == 0:
        raise _CanonicalizationError(
            "the message is empty: no header, no empty line before the body"
        )
    p = &data[0]
    while True:
        line_no += 1
        if _is_crlf(p, pos, n):
            if start >= 0:
                fields.append((name, PyBytes_FromStringAndSize(<const char*> p + start, pos - start)))
            return fields, pos + 2
        end = pos
        colon = -1
        while end < n and not _is_crlf(p, end, n):
            if colon < 0 and p[end] == 58:
                colon = end
            end += 1
        if end >= n:
            raise _CanonicalizationError("no empty line separates the header from the body")
        first = p[pos]
        if first == 32 or first == 9:
            if start < 0:
                raise _CanonicalizationError(
                    f"header line {line_no} is a continuation line with no field before it"
                )
        else:
            if colon < 0:
                raise _CanonicalizationError(f"header line {line_no} has no colon")
            name_end = colon
            while name_end > pos and (p[name_end - 1] == 32 or p[name_end - 1] == 9):
                name_end -= 1
            if name_end == pos:
                raise _CanonicalizationError(
                    f"header line {line_no}: the field name is empty or contains a control, "
                    "space, NUL or 8-bit byte"
                )
            for k in range(pos, name_end):
                c = p[k]
                if c < 33 or c > 126:
                    raise _CanonicalizationError(
                        f"header line {line_no}: the field name is empty or contains a control, "
                        "space, NUL or 8-bit byte"
                    )
            if start >= 0:
                fields.append((name, PyBytes_FromStringAndSize(<const char*> p + start, pos - start)))
            start = pos
            name = PyBytes_FromStringAndSize(<const char*> p + pos, name_end - pos).lower()
        pos = end + 2


cdef Py_ssize_t _canon_header(const unsigned char* src, Py_ssize_t n,
                              unsigned char* tmp, unsigned char* dst) noexcept nogil:
    # Returns the output length, or -1 when the field has no colon.
    # tmp holds n bytes, dst n + 3 bytes.
    cdef Py_ssize_t i = 0, m = 0, colon = -1, name_end, o = 0
    cdef unsigned char c
    cdef bint pending_ws = False, started = False
    # Unfold: drop every CRLF, scanning left to right like bytes.replace.
    while i < n:
        if src[i] == 13 and i + 1 < n and src[i + 1] == 10:
            i += 2
            continue
        tmp[m] = src[i]
        if colon < 0 and src[i] == 58:
            colon = m
        m += 1
        i += 1
    if colon < 0:
        return -1
    name_end = colon
    while name_end > 0 and (tmp[name_end - 1] == 32 or tmp[name_end - 1] == 9):
        name_end -= 1
    for i in range(name_end):
        c = tmp[i]
        if 65 <= c <= 90:
            c += 32
        dst[o] = c
        o += 1
    dst[o] = 58
    o += 1
    for i in range(colon + 1, m):
        c = tmp[i]
        if c == 32 or c == 9:
            pending_ws = True
        else:
            if pending_ws and started:
                dst[o] = 32
                o += 1
            pending_ws = False
            started = True
            dst[o] = c
            o += 1
    dst[o] = 13
    dst[o + 1] = 10
    return o + 2


cdef bytes _canon_header_bytes(const unsigned char[:] field):
    cdef Py_ssize_t n = field.shape[0]
    cdef Py_ssize_t out
    cdef unsigned char* buf = <unsigned char*> malloc(2 * n + 3)
    if buf == NULL:
        raise MemoryError()
    try:
        if n == 0:
            out = -1
        else:
            out = _canon_header(&field[0], n, buf, buf + n)
        if out < 0:
            raise _CanonicalizationError("header field has no colon")
        return PyBytes_FromStringAndSize(<char*> buf + n, out)
    finally:
        free(buf)


def canon_header_relaxed(const unsigned char[:] field not None):
    """Relaxed header canonicalization of one field (RFC 6376 section 3.4.2)."""
    return _canon_header_bytes(field)


def header_hash_input(fields, names, const unsigned char[:] signature_field not None,
                      bint relaxed):
    """Assemble the data the header hash covers (RFC 6376 sections 3.7 and 5.4.2)."""
    cdef dict by_name = {}
    cdef list out = []
    cdef list stack
    cdef bytes raw, sig
    for name, raw_field in fields:
        key = bytes(name).lower()
        stack = by_name.get(key)
        if stack is None:
            by_name[key] = [bytes(raw_field)]
        else:
            stack.append(bytes(raw_field))
    for wanted in names:
        stack = by_name.get(bytes(wanted).lower())
        if stack:
            raw = stack.pop()
            out.append(_canon_header_bytes(raw) if relaxed else raw)
    if relaxed:
        sig = _canon_header_bytes(signature_field)
        out.append(sig[:len(sig) - 2])
    else:
        out.append(bytes(signature_field))
    return b"".join(out)


def body_hash(const unsigned char[:] data not None, Py_ssize_t start, bint relaxed,
              Py_ssize_t limit=-1):
    """SHA-256 of the canonicalized body ``data[start:]``, and the canonical length.

    Relaxed canonicalization runs without the GIL; hashlib releases it while
    hashing large buffers, so threads sign in parallel.
    """
    cdef Py_ssize_t n = data.shape[0]
    cdef Py_ssize_t end, length, take, part
    cdef const unsigned char[:] body
    cdef unsigned char[:] out
    cdef bytearray buf
    if start < 0 or start > n:
        raise _CanonicalizationError(f"body offset {start} is outside the message")
    if relaxed:
        body = data[start:]
        buf = bytearray(n - start + 2)
        out = buf
        with nogil:
            length = _relaxed_body(body, &out[0])
        take = length if limit < 0 or limit >= length else limit
        return _sha256(memoryview(buf)[:take]).digest(), length
    end = n
    while end - start >= 4 and data[end - 4] == 13 and data[end - 3] == 10 \
            and data[end - 2] == 13 and data[end - 1] == 10:
        end -= 2
    if end - start >= 2 and data[end - 2] == 13 and data[end - 1] == 10:
        length = end - start
    else:
        length = end - start + 2
    take = length if limit < 0 or limit >= length else limit
    part = take if take < end - start else end - start
    h = _sha256(data[start:start + part])
    if take > part:
        h.update(b"\r\n"[:take - part])
    return h.digest(), length
