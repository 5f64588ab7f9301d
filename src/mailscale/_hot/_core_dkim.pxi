# DKIM canonicalization and hashing (RFC 6376 sections 3.4 and 3.7), compiled.
# Twin: mailscale/_hot/_core_dkim_py.py. Every function returns the same bytes as the twin
# and raises the same errors.
#
# The loops work on raw pointers taken from typed memoryviews (never indexed past
# their length: each loop tests its bound before reading), and run without the
# GIL where they touch only bytes.

from libc.stdlib cimport calloc, malloc, realloc, free
from libc.string cimport memchr, memcpy
from cpython.buffer cimport PyBUF_READ
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize, PyBytes_GET_SIZE
from cpython.memoryview cimport PyMemoryView_FromMemory

import hashlib as _hashlib
from operator import index as _PyIndex
from mailscale.errors import CanonicalizationError as _CanonicalizationError

_sha256 = _hashlib.sha256

cdef const unsigned char* _EMPTY = <const unsigned char*> b""

# Work on fewer bytes than this keeps the GIL: releasing it costs a hand-over to
# a waiting thread and back, more than a short scan takes.
cdef enum:
    _NOGIL_BYTES = 8192


cdef inline const unsigned char* _ptr(const unsigned char[::1] view) noexcept:
    return &view[0] if view.shape[0] > 0 else _EMPTY


# The C of these scans is in _core_dkim_scan.h.
# Sixteen bytes at a time: masks of the SP, HTAB and CR bytes of a block (SSE2
# where the compiler has it, a plain loop elsewhere). A block with no HTAB, no
# two adjacent SPs and at most one CR, which ends a line (CRLF) not preceded by
# SP, is already canonical when the byte before it was not whitespace: it is
# copied as it is (except a final SP, whose fate depends on the next byte).
cdef extern from "_core_dkim_scan.h":
    void ms_masks16(const unsigned char* p, unsigned int* sp, unsigned int* ht,
                    unsigned int* cr) noexcept nogil
    void ms_crlf16(const unsigned char* p, unsigned int* cr, unsigned int* lf) noexcept nogil
    int ms_bit_index(unsigned int m) noexcept nogil
    int ms_high_bit(unsigned int m) noexcept nogil


# Whole-buffer scans, 64 bytes at a time on 64-bit masks: AVX-512BW or AVX2 when
# the CPU has it (chosen at run time, GCC/clang on x86), else four SSE2 blocks,
# else a loop.
cdef extern from "_core_dkim_scan.h":
    int ms_all_crlf(const unsigned char* p, Py_ssize_t n) noexcept nogil
    int ms_max_level() noexcept nogil
    int ms_get_level() noexcept nogil
    int ms_set_level(int level) noexcept nogil
    Py_ssize_t ms_clean_prefix(const unsigned char* p, Py_ssize_t n) noexcept nogil
    Py_ssize_t ms_relaxed(const unsigned char* src, Py_ssize_t n, unsigned char* dst,
                          int* crlf) noexcept nogil


# --- line endings ---------------------------------------------------------------

_SCAN_LEVELS = ("portable", "avx2", "avx512bw", "avx512vbmi2")


def _scan_level(level=None):
    """The whole-buffer scans in use ("portable", "avx2", "avx512bw" or
    "avx512vbmi2", which also packs relaxed body bytes by compress) and the
    best this CPU runs; ``level`` selects another one no better than that (for
    tests, which run every path the machine has)."""
    if level is not None:
        if level not in _SCAN_LEVELS or ms_set_level(_SCAN_LEVELS.index(level)) < 0:
            raise ValueError(f"scan level {level!r} is not one of "
                             f"{_SCAN_LEVELS[:ms_max_level() + 1]}")
    return _SCAN_LEVELS[ms_get_level()], _SCAN_LEVELS[ms_max_level()]


cdef inline bint _all_crlf(const unsigned char* p, Py_ssize_t n) noexcept nogil:
    # True when every CR is followed by LF and every LF preceded by CR.
    return ms_all_crlf(p, n) != 0


cdef Py_ssize_t _normalize_len(const unsigned char* p, Py_ssize_t n) noexcept nogil:
    # Bytes to add: one per LF not preceded by CR, one per CR not followed by LF.
    # (A CR followed by LF always pairs with it, so the two counts are exact.)
    cdef Py_ssize_t extra = 0, j
    if _all_crlf(p, n):
        return 0
    cdef const unsigned char* q = p
    cdef const unsigned char* end = p + n
    while q < end:
        q = <const unsigned char*> memchr(q, 10, end - q)
        if q == NULL:
            break
        if q == p or (q - 1)[0] != 13:
            extra += 1
        q += 1
    q = p
    while q < end:
        q = <const unsigned char*> memchr(q, 13, end - q)
        if q == NULL:
            break
        if q + 1 == end or q[1] != 10:
            extra += 1
        q += 1
    return extra


cdef void _normalize_fill(const unsigned char* src, Py_ssize_t n, unsigned char* dst) noexcept nogil:
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


def normalize_line_endings(data):
    """Return *data* with every bare CR and bare LF turned into CRLF."""
    if data is None:
        raise TypeError("a bytes-like object is required, not 'NoneType'")
    cdef const unsigned char[::1] view = data
    cdef Py_ssize_t n = view.shape[0]
    cdef const unsigned char* p = _ptr(view)
    cdef Py_ssize_t extra
    cdef bytes out
    cdef unsigned char* w
    if n >= _NOGIL_BYTES:
        with nogil:
            extra = _normalize_len(p, n)
    else:
        extra = _normalize_len(p, n)
    if extra == 0:
        return data if type(data) is bytes else PyBytes_FromStringAndSize(<const char*> p, n)
    out = PyBytes_FromStringAndSize(NULL, n + extra)
    w = <unsigned char*> PyBytes_AS_STRING(out)
    if n >= _NOGIL_BYTES:
        with nogil:
            _normalize_fill(p, n, w)
    else:
        _normalize_fill(p, n, w)
    return out


# --- bodies ---------------------------------------------------------------------

cdef Py_ssize_t _simple_end(const unsigned char* p, Py_ssize_t n) noexcept nogil:
    # Length after removing trailing empty lines (RFC 6376 section 3.4.3).
    cdef Py_ssize_t end = n
    while end >= 4 and p[end - 4] == 13 and p[end - 3] == 10 \
            and p[end - 2] == 13 and p[end - 1] == 10:
        end -= 2
    return end


cdef inline bint _ends_crlf(const unsigned char* p, Py_ssize_t end) noexcept nogil:
    return end >= 2 and p[end - 2] == 13 and p[end - 1] == 10


def _canon_body_simple(const unsigned char[::1] data not None):
    """Simple body canonicalization (RFC 6376 section 3.4.3).

    Trailing empty lines are removed; a body that does not end in CRLF gets
    one, so an empty body becomes a single CRLF. Only CRLF ends a line.
    """
    cdef const unsigned char* p = _ptr(data)
    cdef Py_ssize_t end = _simple_end(p, data.shape[0])
    if _ends_crlf(p, end):
        return PyBytes_FromStringAndSize(<const char*> p, end)
    return PyBytes_FromStringAndSize(<const char*> p, end) + b"\r\n"


cdef enum:
    # Slack a relaxed-body output buffer needs past n + 2: blocks are stored whole.
    _RELAXED_SLACK = 64


cdef Py_ssize_t _relaxed_body(const unsigned char* src, Py_ssize_t n, unsigned char* dst,
                              Py_ssize_t* written=NULL, int* crlf=NULL) noexcept nogil:
    # dst has room for n + 2 + _RELAXED_SLACK bytes. Whitespace runs are collapsed
    # (or dropped before CRLF and at the end) 64 bytes at a time; an unterminated
    # last line with content gets its CRLF. Returns the canonical length; *written
    # gets the length before trailing empty lines were dropped, *crlf whether
    # src has no bare CR or LF.
    cdef Py_ssize_t o = ms_relaxed(src, n, dst, crlf)
    if o > 0 and not _ends_crlf(dst, o):
        dst[o] = 13
        dst[o + 1] = 10
        o += 2
    if written != NULL:
        written[0] = o
    # Trailing empty lines are removed: only CRLF ends a line, so they are the
    # CRLF pairs at the end of the output.
    return _simple_keep(dst, o)


cdef inline Py_ssize_t _relaxed_clean_prefix(const unsigned char* p, Py_ssize_t n) noexcept nogil:
    # Length of the longest run of whole lines (each ending in CRLF) at the start
    # of p that relaxed canonicalization leaves as they are: no HTAB, no SP before
    # SP or CR, every CR followed by LF and every LF preceded by CR (a bare CR or
    # LF stops the run too, though it may be canonical: the general path
    # decides). Generated mail is mostly such lines, and they are hashed in
    # place instead of copied.
    return ms_clean_prefix(p, n)


def _canon_body_relaxed(const unsigned char[::1] data not None):
    """Relaxed body canonicalization (RFC 6376 section 3.4.4).

    Runs of SP/HTAB become one SP, whitespace at line ends is removed, trailing
    empty lines are removed, and a non-empty body ends in CRLF. An empty body
    stays empty. Only CRLF ends a line; an unterminated last line counts as a
    line.
    """
    cdef Py_ssize_t n = data.shape[0]
    cdef const unsigned char* p = _ptr(data)
    cdef Py_ssize_t out
    cdef unsigned char* buf = <unsigned char*> malloc(n + 2 + _RELAXED_SLACK)
    if buf == NULL:
        raise MemoryError()
    try:
        with nogil:
            out = _relaxed_body(p, n, buf)
        return PyBytes_FromStringAndSize(<char*> buf, out)
    finally:
        free(buf)


def body_hash(const unsigned char[::1] data not None, start, bint relaxed, limit=-1,
              bint check=False):
    """SHA-256 of the canonicalized body ``data[start:]``, and the canonical length;
    with ``check``, None when the body has a bare CR or LF (see the twin).

    Relaxed canonicalization of a large body runs without the GIL; hashlib
    releases it while hashing large buffers, so threads sign in parallel.
    Simple canonicalization hashes the message bytes in place.

    ``start`` and ``limit`` are Python ints of any size (an l= tag may hold 76
    digits): they are range-checked here, never converted where they overflow.
    """
    cdef Py_ssize_t n = data.shape[0]
    start = _PyIndex(start)
    limit = _PyIndex(limit)
    if not 0 <= start <= n:
        raise _CanonicalizationError(f"body offset {start} is outside the message")
    # A limit past the canonical body (at most n + 2 bytes) hashes all of it, as
    # does a negative one (no limit): both clamp to a C size unchanged in meaning.
    if limit > n + 2:
        limit = n + 2
    elif limit < 0:
        limit = -1
    return _body_digest(data, _ptr(data), n, <Py_ssize_t> start, relaxed, <Py_ssize_t> limit,
                        check)


cdef inline object _view(const unsigned char* p, Py_ssize_t n):
    # A read-only memoryview over p[:n], no copy; the caller keeps p alive.
    return PyMemoryView_FromMemory(<char*> p, n, PyBUF_READ)


cdef tuple _body_digest(object owner, const unsigned char* p, Py_ssize_t n, Py_ssize_t start,
                        bint relaxed, Py_ssize_t limit, bint check=False):
    # body_hash on a pointer that ``owner`` keeps alive. With ``check``, None
    # when the body has a bare CR or LF (the caller normalizes and starts again):
    # relaxed, the scan for canonical lines proves it on the way.
    cdef Py_ssize_t end, length, take, part, clean, rest, size = n - start
    cdef bytes buf = None
    cdef unsigned char* w
    cdef bint crlf = True
    cdef int rest_crlf = 1
    if start < 0 or start > n:
        raise _CanonicalizationError(f"body offset {start} is outside the message")
    if relaxed:
        # Lines already canonical are hashed where they are; the rest, from the
        # first line that changes, is canonicalized into a buffer, its line ends
        # checked by the same pass (the clean run proves its own).
        if size >= _NOGIL_BYTES:
            with nogil:
                clean = _relaxed_clean_prefix(p + start, size)
        else:
            clean = _relaxed_clean_prefix(p + start, size)
        rest = size - clean
        length = 0
        if rest:
            buf = PyBytes_FromStringAndSize(NULL, rest + 2 + _RELAXED_SLACK)
            w = <unsigned char*> PyBytes_AS_STRING(buf)
            if rest >= _NOGIL_BYTES:
                with nogil:
                    length = _relaxed_body(p + start + clean, rest, w, NULL, &rest_crlf)
            else:
                length = _relaxed_body(p + start + clean, rest, w, NULL, &rest_crlf)
        if check and not rest_crlf:
            return None
        if length:
            length += clean
        else:
            # Nothing but empty lines after the clean run: they are dropped.
            clean = length = _simple_keep(p + start, clean)
        take = length if limit < 0 or limit >= length else limit
        part = take if take < clean else clean
        h = _sha256(_view(p + start, part))
        if take > part:
            h.update(_view(<const unsigned char*> PyBytes_AS_STRING(buf), take - part))
        return h.digest(), length
    if check:
        if size >= _NOGIL_BYTES:
            with nogil:
                crlf = _all_crlf(p + start, size)
        else:
            crlf = _all_crlf(p + start, size)
        if not crlf:
            return None
    end = start + _simple_end(p + start, size)
    length = end - start if _ends_crlf(p + start, end - start) else end - start + 2
    take = length if limit < 0 or limit >= length else limit
    part = take if take < end - start else end - start
    h = _sha256(_view(p + start, part))
    if take > part:
        h.update(b"\r\n"[:take - part])
    return h.digest(), length


# --- header fields --------------------------------------------------------------

_NAME_ERROR = "header line {}: the field name is empty or contains a control, space, NUL or 8-bit byte"
_NO_CRLF = "header line {} does not end with CRLF (and no empty line ends the header)"


# Error codes of _scan_header (its line number tells which line).
cdef enum:
    _NO_BLANK = -1
    _ORPHAN_CONTINUATION = -2
    _NO_COLON = -3
    _BAD_NAME = -4
    _NO_MEMORY = -5


cdef Py_ssize_t _scan_header(const unsigned char* p, Py_ssize_t n, Py_ssize_t** starts,
                             Py_ssize_t** name_ends, Py_ssize_t* count,
                             Py_ssize_t* line_out) noexcept nogil:
    # Find where each field starts and where its name ends, without the GIL; the
    # result is the offset of the empty line, or an error code. *starts and
    # *name_ends are malloc'd (the caller frees them).
    cdef Py_ssize_t pos = 0, end, colon, name_end, k, cap = 0, line_no = 0
    cdef const unsigned char* q
    cdef Py_ssize_t* grown
    cdef unsigned char c, first
    count[0] = 0
    while True:
        line_no += 1
        line_out[0] = line_no
        if pos + 1 < n and p[pos] == 13 and p[pos + 1] == 10:
            return pos
        if pos >= n:
            # Every line so far ended in CRLF and the message ends: a header with
            # no body (RFC 5322 makes the empty line and body optional).
            return n
        # The line ends at the next CR that LF follows; memchr finds candidates.
        end = pos
        while True:
            q = <const unsigned char*> memchr(p + end, 13, n - end)
            if q == NULL:
                end = n
                break
            end = q - p
            if end + 1 < n and p[end + 1] == 10:
                break
            end += 1
        if end >= n:
            return _NO_BLANK
        first = p[pos]
        if first == 32 or first == 9:
            if count[0] == 0:
                return _ORPHAN_CONTINUATION
        else:
            q = <const unsigned char*> memchr(p + pos, 58, end - pos)
            if q == NULL:
                return _NO_COLON
            colon = q - p
            name_end = colon
            while name_end > pos and (p[name_end - 1] == 32 or p[name_end - 1] == 9):
                name_end -= 1
            if name_end == pos:
                return _BAD_NAME
            for k in range(pos, name_end):
                c = p[k]
                if c < 33 or c > 126:
                    return _BAD_NAME
            if count[0] == cap:
                cap = 32 if cap == 0 else cap * 2
                grown = <Py_ssize_t*> realloc(starts[0], cap * sizeof(Py_ssize_t))
                if grown == NULL:
                    return _NO_MEMORY
                starts[0] = grown
                grown = <Py_ssize_t*> realloc(name_ends[0], cap * sizeof(Py_ssize_t))
                if grown == NULL:
                    return _NO_MEMORY
                name_ends[0] = grown
            starts[0][count[0]] = pos
            name_ends[0][count[0]] = name_end
            count[0] += 1
        pos = end + 2


cdef Py_ssize_t _split(const unsigned char* p, Py_ssize_t n, Py_ssize_t** starts,
                       Py_ssize_t** name_ends, Py_ssize_t* count) except -1:
    # _scan_header with its error codes raised; the offset of the empty line, or
    # n when the header runs to the end of the message (no body).
    # The scan keeps the GIL: a header is short, and the hand-over costs more.
    cdef Py_ssize_t blank, line_no = 0
    if n == 0:
        raise _CanonicalizationError(
            "the message is empty: no header, no empty line before the body"
        )
    blank = _scan_header(p, n, starts, name_ends, count, &line_no)
    if blank == _NO_BLANK:
        raise _CanonicalizationError(_NO_CRLF.format(line_no))
    if blank == _ORPHAN_CONTINUATION:
        raise _CanonicalizationError(
            f"header line {line_no} is a continuation line with no field before it"
        )
    if blank == _NO_COLON:
        raise _CanonicalizationError(f"header line {line_no} has no colon")
    if blank == _BAD_NAME:
        raise _CanonicalizationError(_NAME_ERROR.format(line_no))
    if blank == _NO_MEMORY:
        raise MemoryError()
    return blank


cdef inline void _lower_into(const unsigned char* src, Py_ssize_t n, unsigned char* dst) noexcept nogil:
    cdef Py_ssize_t k
    cdef unsigned char c
    for k in range(n):
        c = src[k]
        dst[k] = c + 32 if 65 <= c <= 90 else c


def _split_message(data):
    """Split a CRLF message into header fields and the offset where the body starts.

    Each field is ``(lowercased name, raw field with its continuation lines and
    final CRLF)``. See the twin for the rules and errors.
    """
    cdef Header header = split_header(data)
    return header.fields(), header.body_start


cdef Py_ssize_t _canon_header(const unsigned char* src, Py_ssize_t n, unsigned char* dst) noexcept nogil:
    # Relaxed canonicalization of one field into dst (room for n + 2 bytes).
    # Returns the output length, or -1 when the field has no colon. CRLF pairs
    # are dropped as they are met, left to right, like bytes.replace(CRLF, b"").
    cdef Py_ssize_t i = 0, o = 0, name_end = 0
    cdef unsigned char c
    cdef bint pending_ws = False, started = False, in_name = True
    while i < n:
        c = src[i]
        if c == 13 and i + 1 < n and src[i + 1] == 10:
            i += 2
            continue
        i += 1
        if in_name:
            if c == 58:
                o = name_end
                dst[o] = 58
                o += 1
                in_name = False
            else:
                dst[o] = c + 32 if 65 <= c <= 90 else c
                o += 1
                if c != 32 and c != 9:
                    name_end = o
        elif c == 32 or c == 9:
            pending_ws = True
        else:
            if pending_ws and started:
                dst[o] = 32
                o += 1
            pending_ws = False
            started = True
            dst[o] = c
            o += 1
            # The rest of a word: bytes above SP are copied as they are.
            while i < n and src[i] > 32:
                dst[o] = src[i]
                o += 1
                i += 1
    if in_name:
        return -1
    dst[o] = 13
    dst[o + 1] = 10
    return o + 2


def _canon_header_relaxed(const unsigned char[::1] field not None):
    """Relaxed header canonicalization of one field (RFC 6376 section 3.4.2)."""
    cdef Py_ssize_t n = field.shape[0]
    cdef Py_ssize_t out
    cdef unsigned char* buf = <unsigned char*> malloc(n + 2)
    if buf == NULL:
        raise MemoryError()
    try:
        out = _canon_header(_ptr(field), n, buf)
        if out < 0:
            raise _CanonicalizationError("header field has no colon")
        return PyBytes_FromStringAndSize(<char*> buf, out)
    finally:
        free(buf)


cdef bytes _as_bytes(object obj):
    # bytes stay as they are (no buffer acquisition); other buffers are copied.
    if type(obj) is bytes:
        return <bytes> obj
    if obj is None or isinstance(obj, str):
        raise TypeError(f"a bytes-like object is required, not {type(obj).__name__!r}")
    # The same buffers as a const unsigned char[::1] argument, refused the same way.
    cdef const unsigned char[::1] view = obj
    return PyBytes_FromStringAndSize(<const char*> _ptr(view), view.shape[0])


cdef tuple _select(list names, object wanted):
    # The field indices an h= list signs (RFC 6376 section 5.4.2): each wanted
    # name, without case, takes the last instance of ``names`` not taken yet,
    # bottom up. Fields are indexed by name once, so an h= list chosen by the
    # sender costs linear time, never names x h=.
    cdef dict stacks = {}
    cdef list chosen = []
    cdef list stack
    cdef Py_ssize_t index = 0
    for name in names:
        stack = stacks.get(name)
        if stack is None:
            stacks[name] = [index]
        else:
            stack.append(index)
        index += 1
    for name in wanted:
        stack = stacks.get(_as_bytes(name).lower())
        if stack:
            chosen.append(stack.pop())
    return tuple(chosen)


def _header_hash_input(fields, names, signature_field, bint relaxed):
    """Assemble the data the header hash covers (RFC 6376 sections 3.7 and 5.4.2)."""
    cdef bytes raw, sig = _as_bytes(signature_field)
    cdef list raws = [_as_bytes(raw_field) for _, raw_field in fields]
    cdef list chosen
    cdef Py_ssize_t total, o, i, count
    cdef unsigned char* buf
    cdef const unsigned char** ptrs
    cdef Py_ssize_t* lens
    chosen = [raws[i] for i in _select([_as_bytes(name).lower() for name, _ in fields], names)]
    total = PyBytes_GET_SIZE(sig) + 2
    for raw in chosen:
        total += PyBytes_GET_SIZE(raw) + 2
    # The chosen fields and the signature field as pointers, so that the copy
    # and canonicalization run without the GIL (``chosen`` and ``sig`` keep them alive).
    count = len(chosen) + 1
    buf = <unsigned char*> malloc(total)
    ptrs = <const unsigned char**> malloc(count * sizeof(const unsigned char*))
    lens = <Py_ssize_t*> malloc(count * sizeof(Py_ssize_t))
    try:
        if buf == NULL or ptrs == NULL or lens == NULL:
            raise MemoryError()
        for i in range(count - 1):
            raw = <bytes> chosen[i]
            ptrs[i] = <const unsigned char*> PyBytes_AS_STRING(raw)
            lens[i] = PyBytes_GET_SIZE(raw)
        ptrs[count - 1] = <const unsigned char*> PyBytes_AS_STRING(sig)
        lens[count - 1] = PyBytes_GET_SIZE(sig)
        with nogil:
            o = _assemble(ptrs, lens, count, relaxed, buf)
        if o < 0:
            raise _CanonicalizationError("header field has no colon")
        return PyBytes_FromStringAndSize(<char*> buf, o)
    finally:
        free(buf)
        free(ptrs)
        free(lens)


cdef Py_ssize_t _assemble(const unsigned char** ptrs, Py_ssize_t* lens, Py_ssize_t count,
                          bint relaxed, unsigned char* buf) noexcept nogil:
    # The fields one after another, canonicalized when relaxed; the last one (the
    # signature field) without its final CRLF. -1 when a field has no colon.
    cdef Py_ssize_t i, o = 0, got
    for i in range(count):
        if relaxed:
            got = _canon_header(ptrs[i], lens[i], buf + o)
            if got < 0:
                return -1
            o += got - 2 if i == count - 1 else got
        else:
            memcpy(buf + o, ptrs[i], lens[i])
            o += lens[i]
    return o


# --- streaming body hash -------------------------------------------------------

cdef Py_ssize_t _simple_keep(const unsigned char* p, Py_ssize_t n) noexcept nogil:
    # p[:n] is whole lines (it ends with CRLF and starts a line): the end of its
    # last non-empty line, 0 when every line is empty.
    cdef Py_ssize_t k = n
    while k >= 2:
        if k == 2 or (k >= 4 and p[k - 4] == 13 and p[k - 3] == 10):
            k -= 2
        else:
            return k
    return 0


cdef class _BodyHasher:
    """Streaming body hash: feed the body in chunks, get what ``body_hash`` gives.

    Only the unfinished last line and a count of trailing empty lines are kept
    between chunks. Canonicalization runs without the GIL.
    """

    cdef bint _relaxed
    cdef object _hash
    cdef bytes _carry
    cdef Py_ssize_t _pending
    cdef Py_ssize_t _length
    cdef object _result

    def __init__(self, relaxed):
        self._relaxed = bool(relaxed)
        self._hash = _sha256()
        self._carry = b""
        self._pending = 0
        self._length = 0
        self._result = None

    cdef void _flush_pending(self) except *:
        if self._pending:
            self._hash.update(b"\r\n" * self._pending)
            self._length += 2 * self._pending
            self._pending = 0

    cdef void _lines(self, bytes data, Py_ssize_t n) except *:
        # data[:n] is whole lines: hash their canonical form, holding back
        # trailing empty lines until a non-empty line follows.
        cdef const unsigned char* p = <const unsigned char*> PyBytes_AS_STRING(data)
        cdef Py_ssize_t keep, written = 0
        cdef bytes buf
        cdef unsigned char* w
        if self._relaxed:
            buf = PyBytes_FromStringAndSize(NULL, n + 2 + _RELAXED_SLACK)
            w = <unsigned char*> PyBytes_AS_STRING(buf)
            with nogil:
                keep = _relaxed_body(p, n, w, &written)
            if keep > 0:
                self._flush_pending()
                self._hash.update(memoryview(buf)[:keep])
                self._length += keep
            # Every line is whole here, so what follows keep is empty lines.
            self._pending += (written - keep) // 2
        else:
            keep = _simple_keep(p, n)
            if keep > 0:
                self._flush_pending()
                self._hash.update(memoryview(data)[:keep])
                self._length += keep
            self._pending += (n - keep) // 2

    def update(self, chunk):
        """Add the next bytes of the body."""
        cdef bytes data = _as_bytes(chunk)
        cdef Py_ssize_t cut
        if self._result is not None:
            raise _CanonicalizationError("the body hash is already finished")
        if self._carry:
            data = self._carry + data
        cut = data.rfind(b"\r\n")
        if cut < 0:
            self._carry = data
            return
        self._carry = data[cut + 2:]
        self._lines(data, cut + 2)

    def digest(self):
        """The SHA-256 of the canonical body and its length; the hasher is then finished."""
        cdef bytes last
        if self._result is None:
            if self._carry:
                last = self._carry + b"\r\n"
                self._carry = b""
                self._lines(last, PyBytes_GET_SIZE(last))
            if not self._relaxed and self._length == 0:
                self._hash.update(b"\r\n")  # an empty body is a single CRLF (simple)
                self._length = 2
            self._result = (self._hash.digest(), self._length)
        return self._result


# --- tag lists (RFC 6376 section 3.2) ------------------------------------------

from cpython.unicode cimport PyUnicode_DecodeASCII


cdef inline bint _fws(unsigned char c) noexcept nogil:
    return c == 32 or c == 9 or c == 13 or c == 10


cdef inline bint _alpha(unsigned char c) noexcept nogil:
    return (65 <= c <= 90) or (97 <= c <= 122)


cdef str _ascii(const unsigned char* p, Py_ssize_t a, Py_ssize_t b):
    # p[a:b] with FWS stripped at both ends, as str.
    while a < b and _fws(p[a]):
        a += 1
    while b > a and _fws(p[b - 1]):
        b -= 1
    return PyUnicode_DecodeASCII(<const char*> p + a, b - a, NULL)


def _parse_tag_list(data):
    """Parse ``tag=value; tag=value`` (ASCII bytes) into a dict of str, keeping tag order.

    See the twin for the rules and the ValueError messages.
    """
    cdef bytes raw = _as_bytes(data)
    return _parse_tags(<const unsigned char*> PyBytes_AS_STRING(raw), PyBytes_GET_SIZE(raw))


cdef dict _parse_tags(const unsigned char* p, Py_ssize_t n, Py_ssize_t* spans=NULL):
    # _parse_tag_list on p[:n], which the caller keeps alive. With ``spans`` (four
    # entries the caller set to -1): where the b tag's '=' and part end are, then
    # the bh tag's.
    cdef Py_ssize_t i, a, b, eq, k, end, first
    cdef dict tags = {}
    cdef str name
    cdef unsigned char c, high = 0
    cdef const unsigned char* q
    for i in range(n):
        high |= p[i]
    if high >= 128:
        raise ValueError("the tag list contains a non-ASCII byte")
    # A last part of nothing but FWS (after a trailing ';', or an empty list) is no tag.
    end = n
    k = n
    while k > 0 and _fws(p[k - 1]):
        k -= 1
    if k == 0:
        return tags
    if p[k - 1] == 59:
        end = k - 1
    a = 0
    while True:
        q = <const unsigned char*> memchr(p + a, 59, end - a)
        b = end if q == NULL else q - p
        q = <const unsigned char*> memchr(p + a, 61, b - a)
        eq = -1 if q == NULL else q - p
        if eq < 0:
            raise ValueError(f"tag {_ascii(p, a, b)[:20]!r} has no '='")
        name = _ascii(p, a, eq)
        # tag-name = ALPHA *ALNUMPUNC, checked on the stripped bytes.
        i = a
        while i < eq and _fws(p[i]):
            i += 1
        k = eq
        while k > i and _fws(p[k - 1]):
            k -= 1
        if k == i or not _alpha(p[i]):
            raise ValueError(f"invalid tag name {name[:20]!r}")
        first = i
        i += 1
        while i < k:
            c = p[i]
            if not (_alpha(c) or 48 <= c <= 57 or c == 95):
                raise ValueError(f"invalid tag name {name[:20]!r}")
            i += 1
        if name in tags:
            raise ValueError(f"duplicate tag {name!r}")
        tags[name] = _ascii(p, eq + 1, b)
        if spans != NULL and p[first] == 98:
            if k - first == 1:
                spans[0] = eq
                spans[1] = b
            elif k - first == 2 and p[first + 1] == 104:
                spans[2] = eq
                spans[3] = b
        if b >= end:
            return tags
        a = b + 1


def _strip_b_value(field):
    """The field without its final CRLF and with the b= value emptied, or None.

    See the twin (RFC 6376 section 3.7).
    """
    cdef bytes raw = _as_bytes(field)
    cdef const unsigned char* p = <const unsigned char*> PyBytes_AS_STRING(raw)
    cdef Py_ssize_t n = PyBytes_GET_SIZE(raw), colon, a, b, eq, x, y
    cdef Py_ssize_t keep = -1, resume = -1
    if n >= 2 and p[n - 2] == 13 and p[n - 1] == 10:
        n -= 2
    colon = 0
    while colon < n and p[colon] != 58:
        colon += 1
    if colon >= n:
        return None
    a = colon + 1
    while a <= n:
        b = a
        eq = -1
        while b < n and p[b] != 59:
            if p[b] == 61 and eq < 0:
                eq = b
            b += 1
        if eq >= 0:
            x = a
            y = eq
            while x < y and _fws(p[x]):
                x += 1
            while y > x and _fws(p[y - 1]):
                y -= 1
            if y - x == 1 and p[x] == 98:
                keep = eq + 1
                resume = b
        a = b + 1
    if keep < 0:
        return None
    return PyBytes_FromStringAndSize(<const char*> p, keep) + \
        PyBytes_FromStringAndSize(<const char*> p + resume, n - resume)


# --- base64 tag values ---------------------------------------------------------

# Base64 alphabet values; the other codes: FWS (skipped), '=' (padding), invalid.
cdef enum:
    _B64_FWS = -2
    _B64_PAD = -3
    _B64_BAD = -1

cdef signed char _B64[256]


cdef void _b64_init() noexcept:
    cdef int k
    cdef bytes alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
    for k in range(256):
        _B64[k] = _B64_BAD
    for k in range(64):
        _B64[<unsigned char> alphabet[k]] = k
    for k in (32, 9, 13, 10):
        _B64[k] = _B64_FWS
    _B64[61] = _B64_PAD


_b64_init()


def _b64_value(value):
    """Decode a base64 tag value (b=, bh=), or None when it is not exactly base64.

    See the twin: FWS is ignored, the rest must be canonical base64.
    """
    cdef bytes raw = _as_bytes(value)
    return _b64_decode(<const unsigned char*> PyBytes_AS_STRING(raw), PyBytes_GET_SIZE(raw))


cdef object _b64_decode(const unsigned char* p, Py_ssize_t n):
    # _b64_value on p[:n], which the caller keeps alive.
    cdef Py_ssize_t i, count = 0, pad = 0, o = 0
    cdef unsigned int acc = 0
    cdef signed char v
    cdef unsigned char stack_buf[768]
    cdef unsigned char* w = stack_buf
    if (n // 4) * 3 + 3 > 768:
        w = <unsigned char*> malloc((n // 4) * 3 + 3)
        if w == NULL:
            raise MemoryError()
    try:
        for i in range(n):
            v = _B64[p[i]]
            if v >= 0:
                if pad:
                    return None
                acc = (acc << 6) | <unsigned int> v
                count += 1
                if (count & 3) == 0:
                    w[o] = (acc >> 16) & 0xFF
                    w[o + 1] = (acc >> 8) & 0xFF
                    w[o + 2] = acc & 0xFF
                    o += 3
                    acc = 0
            elif v == _B64_PAD:
                # Padding: one or two '=' completing the last group of four.
                pad += 1
                count += 1
            elif v == _B64_BAD:
                return None
        if (count & 3) or pad > 2:
            return None
        if pad == 1:
            # Three characters: 18 bits, two bytes, the low two bits unused.
            if acc & 0x3:
                return None
            w[o] = (acc >> 10) & 0xFF
            w[o + 1] = (acc >> 2) & 0xFF
            o += 2
        elif pad == 2:
            # Two characters: 12 bits, one byte, the low four bits unused.
            if acc & 0xF:
                return None
            w[o] = (acc >> 4) & 0xFF
            o += 1
        return PyBytes_FromStringAndSize(<const char*> w, o)
    finally:
        if w != stack_buf:
            free(w)


def parse_signature(field):
    """A DKIM-Signature field read in one call: its tags, the field with b= emptied,
    and the decoded b= and bh= values; see the twin."""
    return _parse_signature(_as_bytes(field))


cdef tuple _parse_signature(bytes raw):
    # parse_signature of a bytes object.
    cdef const unsigned char* p = <const unsigned char*> PyBytes_AS_STRING(raw)
    cdef Py_ssize_t n = PyBytes_GET_SIZE(raw), start, stop, a_end
    cdef const unsigned char* q = <const unsigned char*> memchr(p, 58, n)
    cdef Py_ssize_t spans[4]
    cdef dict tags
    cdef object b = None, bh = None, unsigned = None
    cdef bytes out
    if q == NULL:
        raise ValueError("the field has no colon")
    start = q + 1 - p
    spans[0] = spans[1] = spans[2] = spans[3] = -1
    tags = _parse_tags(q + 1, n - start, spans)
    # The spans are those of the one b tag and the one bh tag (a duplicate is an
    # error above); base64 skips the FWS they may hold.
    if spans[0] >= 0:
        b = _b64_decode(q + 1 + spans[0] + 1, spans[1] - spans[0] - 1)
        # b= emptied: the field up to '=', then from the end of the b tag, without
        # the final CRLF (as _strip_b_value gives it).
        stop = n - 2 if n >= 2 and p[n - 2] == 13 and p[n - 1] == 10 else n
        a_end = start + spans[1]
        if a_end > stop:
            a_end = stop
        out = PyBytes_FromStringAndSize(NULL, start + spans[0] + 1 + stop - a_end)
        memcpy(PyBytes_AS_STRING(out), p, start + spans[0] + 1)
        memcpy(PyBytes_AS_STRING(out) + start + spans[0] + 1, p + a_end, stop - a_end)
        unsigned = out
    if spans[2] >= 0:
        bh = _b64_decode(q + 1 + spans[2] + 1, spans[3] - spans[2] - 1)
    return tags, unsigned, b, bh
