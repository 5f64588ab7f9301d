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
