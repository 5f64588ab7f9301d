# Split headers and signing plans (RFC 6376 sections 3.5, 3.7 and 5.4), compiled.
# Twin: mailscale/_hot/_core_dkim_plan_py.py, which defines the behaviour. Uses the
# canonicalization and body hashing of _core_dkim.pxi.
#
# SignPlan.prepare is the per-message path of DKIMSigner.sign: one call splits
# the header, finds the h= list (cached per sequence of field names), hashes the
# body, builds the signature field's template and hashes the header hash input,
# with no Python object per field.

cdef enum:
    _WIDTH = 76      # signature field lines are folded before they pass this
    _B_LINE = 54     # bytes of signature per folded b= line (72 base64 characters)
    _SHAPES = 512    # h= lists a plan remembers, by sequence of field names
    _SHAPE_KEY = 1024  # longest sequence of field names (bytes) a plan remembers
    _STACK = 4096    # header hash inputs up to this size are built on the stack

cdef const unsigned char* _B64_ALPHABET = \
    <const unsigned char*> b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"

_NO_FROM = "the message has no From field; DKIM must sign From"


cdef inline Py_ssize_t _b64_len(Py_ssize_t n) noexcept nogil:
    return ((n + 2) // 3) * 4


cdef Py_ssize_t _b64_encode(const unsigned char* src, Py_ssize_t n, unsigned char* dst) noexcept nogil:
    # Standard base64 with padding, no line breaks; returns the length written.
    cdef Py_ssize_t i = 0, o = 0
    cdef unsigned int v
    while i + 3 <= n:
        v = (<unsigned int> src[i] << 16) | (<unsigned int> src[i + 1] << 8) | src[i + 2]
        dst[o] = _B64_ALPHABET[(v >> 18) & 63]
        dst[o + 1] = _B64_ALPHABET[(v >> 12) & 63]
        dst[o + 2] = _B64_ALPHABET[(v >> 6) & 63]
        dst[o + 3] = _B64_ALPHABET[v & 63]
        i += 3
        o += 4
    if n - i == 1:
        v = <unsigned int> src[i] << 16
        dst[o] = _B64_ALPHABET[(v >> 18) & 63]
        dst[o + 1] = _B64_ALPHABET[(v >> 12) & 63]
        dst[o + 2] = 61
        dst[o + 3] = 61
        o += 4
    elif n - i == 2:
        v = (<unsigned int> src[i] << 16) | (<unsigned int> src[i + 1] << 8)
        dst[o] = _B64_ALPHABET[(v >> 18) & 63]
        dst[o + 1] = _B64_ALPHABET[(v >> 12) & 63]
        dst[o + 2] = _B64_ALPHABET[(v >> 6) & 63]
        dst[o + 3] = 61
        o += 4
    return o


cdef inline Py_ssize_t _put(unsigned char* w, Py_ssize_t o, bytes piece):
    memcpy(w + o, PyBytes_AS_STRING(piece), PyBytes_GET_SIZE(piece))
    return o + PyBytes_GET_SIZE(piece)


def _fold_tag_list(prefix, items, sep):
    """``prefix`` + items joined by ``sep`` and ended by ``;``, folded before lines pass 76."""
    cdef list out = [prefix]
    cdef Py_ssize_t line = 1 + len(prefix), n, last = len(items) - 1
    for n, item in enumerate(items):
        piece = item + (sep if n < last else b";")
        if line + len(piece) > _WIDTH and line > 1 + len(prefix):
            out.append(b"\r\n ")
            line = 1
        out.append(piece)
        line += len(piece)
    return b"".join(out)


cdef class Header:
    """A message split into header fields once; see ``split_header``."""

    cdef readonly bytes data
    cdef readonly Py_ssize_t body_start
    cdef readonly Py_ssize_t count
    cdef readonly bytes names
    cdef Py_ssize_t _blank
    cdef Py_ssize_t* _starts
    cdef Py_ssize_t* _name_ends

    def __cinit__(self):
        self._starts = NULL
        self._name_ends = NULL

    def __dealloc__(self):
        free(self._starts)
        free(self._name_ends)

    def __init__(self, data):
        self._load(_as_bytes(data))

    cdef int _load(self, bytes data) except -1:
        cdef const unsigned char* p = <const unsigned char*> PyBytes_AS_STRING(data)
        cdef Py_ssize_t i, o = 0, total = 0, a, b
        cdef unsigned char* w
        self.data = data
        self._blank = _split(p, PyBytes_GET_SIZE(data), &self._starts, &self._name_ends,
                             &self.count)
        # No empty line (a header and no body): the body starts, empty, at the end.
        self.body_start = self._blank + 2 if self._blank < PyBytes_GET_SIZE(data) else self._blank
        for i in range(self.count):
            total += self._name_ends[i] - self._starts[i] + 1
        self.names = PyBytes_FromStringAndSize(NULL, total - 1 if total else 0)
        w = <unsigned char*> PyBytes_AS_STRING(self.names)
        for i in range(self.count):
            a = self._starts[i]
            b = self._name_ends[i]
            if i:
                w[o] = 58
                o += 1
            _lower_into(p + a, b - a, w + o)
            o += b - a
        return 0

    cdef inline Py_ssize_t _end(self, Py_ssize_t i) noexcept:
        return self._starts[i + 1] if i + 1 < self.count else self._blank

    cdef Py_ssize_t _index(self, object index) except -1:
        if type(index) is not int or not 0 <= index < self.count:
            raise IndexError(f"no header field {index!r} (the header has {self.count})")
        return <Py_ssize_t> index

    def fields(self):
        """``(lower-cased name, raw field)`` pairs, as ``_split_message`` gives them."""
        cdef const char* p = PyBytes_AS_STRING(self.data)
        cdef list out = []
        cdef Py_ssize_t i
        cdef bytes name
        for i in range(self.count):
            name = PyBytes_FromStringAndSize(NULL, self._name_ends[i] - self._starts[i])
            _lower_into(<const unsigned char*> p + self._starts[i],
                        self._name_ends[i] - self._starts[i],
                        <unsigned char*> PyBytes_AS_STRING(name))
            out.append((name, PyBytes_FromStringAndSize(p + self._starts[i],
                                                        self._end(i) - self._starts[i])))
        return out

    def field(self, index):
        """The raw field ``index`` (0 is the top), continuation lines and final CRLF included."""
        cdef Py_ssize_t i = self._index(index)
        return PyBytes_FromStringAndSize(PyBytes_AS_STRING(self.data) + self._starts[i],
                                         self._end(i) - self._starts[i])

    def select(self, wanted):
        """The fields an h= list signs, in h= order (RFC 6376 section 5.4.2); see the twin."""
        return _select(self.names.split(b":") if self.count else [], wanted)

    def digest(self, indices, tail, bint relaxed):
        """SHA-256 of the header hash input: the fields at ``indices`` then ``tail``."""
        cdef bytes last = _as_bytes(tail)
        cdef tuple chosen_at = tuple(indices)
        cdef Py_ssize_t k = len(chosen_at), j
        cdef int* chosen = <int*> malloc((k if k else 1) * sizeof(int))
        if chosen == NULL:
            raise MemoryError()
        try:
            for j in range(k):
                chosen[j] = <int> self._index(chosen_at[j])
            return self._digest(chosen, k, <const unsigned char*> PyBytes_AS_STRING(last),
                                PyBytes_GET_SIZE(last), relaxed)
        finally:
            free(chosen)

    def crlf(self):
        """True when every line of the header section ends in CRLF; see the twin."""
        return bool(_all_crlf(<const unsigned char*> PyBytes_AS_STRING(self.data),
                              self.body_start))

    cdef bytes _digest(self, const int* chosen, Py_ssize_t k, const unsigned char* tail,
                       Py_ssize_t tail_n, bint relaxed):
        # The fields at chosen[:k] (valid indices) and the tail, canonicalized, hashed.
        cdef unsigned char stack_buf[_STACK]
        cdef unsigned char* buf = stack_buf
        cdef const unsigned char* p = <const unsigned char*> PyBytes_AS_STRING(self.data)
        cdef Py_ssize_t total = tail_n + 2, o = 0, j, a, n, got
        for j in range(k):
            total += self._end(chosen[j]) - self._starts[chosen[j]] + 2
        if total > _STACK:
            buf = <unsigned char*> malloc(total)
            if buf == NULL:
                raise MemoryError()
        try:
            for j in range(k):
                a = self._starts[chosen[j]]
                n = self._end(chosen[j]) - a
                if relaxed:
                    o += _canon_header(p + a, n, buf + o)  # a split field has its colon
                else:
                    memcpy(buf + o, p + a, n)
                    o += n
            if relaxed:
                got = _canon_header(tail, tail_n, buf + o)
                if got < 0:
                    raise _CanonicalizationError("header field has no colon")
                o += got - 2
            else:
                memcpy(buf + o, tail, tail_n)
                o += tail_n
            return _sha256(_view(buf, o)).digest()
        finally:
            if buf != stack_buf:
                free(buf)


cdef tuple _known_body(object found):
    # A body hash from a caller's ``known`` dict: (32-byte digest, length) or None.
    if found is None:
        return None
    if (type(found) is not tuple or len(<tuple> found) != 2 or type(found[0]) is not bytes
            or PyBytes_GET_SIZE(found[0]) != 32 or type(found[1]) is not int or found[1] < 0):
        raise TypeError("known holds (32-byte SHA-256 digest, length) pairs")
    return <tuple> found


def verify_step(Header header not None, index, static, selected, bint check=False):
    """The per-signature work of verification for a signature of a known shape, in
    one call; see the twin."""
    cdef Py_ssize_t i = header._index(index), a, j, k
    cdef bytes raw
    cdef tuple parsed, chosen_at
    cdef dict tags
    cdef object known, value, signed_at = None, indices, found
    cdef const unsigned char* q
    cdef int chosen[64]
    a = header._starts[i]
    raw = PyBytes_FromStringAndSize(PyBytes_AS_STRING(header.data) + a, header._end(i) - a)
    if not raw.isascii():
        return None
    try:
        parsed = _parse_signature(raw)
    except ValueError:
        return None
    tags = <dict> parsed[0]
    if parsed[1] is None or parsed[2] is None or parsed[3] is None:
        return None
    if "l" in tags or "x" in tags:
        return None
    known = static.get((tags.get("v"), tags.get("a"), tags.get("c"), tags.get("d"),
                        tags.get("s"), tags.get("h"), tags.get("i"), tags.get("q")))
    if type(known) is not tuple or len(<tuple> known) != 8:
        return None
    value = tags.get("t")
    if value is not None:
        # An ASCII field: isdigit() is true of ASCII digits only.
        k = len(<str> value)
        if not 0 < k <= 76 or not (<str> value).isdigit():
            return None
        signed_at = int(value)
    indices = selected.get((tags["h"], header.names))
    if type(indices) is not tuple or len(<tuple> indices) > 64:
        return None
    chosen_at = <tuple> indices
    for j in range(len(chosen_at)):
        chosen[j] = <int> header._index(chosen_at[j])
    found = _body_digest(header.data, <const unsigned char*> PyBytes_AS_STRING(header.data),
                         PyBytes_GET_SIZE(header.data), header.body_start,
                         bool(known[3]), -1, check)
    if found is None:
        return (known, signed_at, parsed[2], None, None)
    if (<tuple> found)[0] != parsed[3]:
        return (known, signed_at, parsed[2], False, None)
    return (known, signed_at, parsed[2], True,
            header._digest(chosen, len(chosen_at),
                           <const unsigned char*> PyBytes_AS_STRING(parsed[1]),
                           PyBytes_GET_SIZE(parsed[1]), bool(known[2])))


def split_header(data):
    """Split the message ``data`` (CRLF line ends) into a ``Header``."""
    cdef Header header = Header.__new__(Header)
    header._load(_as_bytes(data))
    return header


cdef class SignPlan:
    """The message-dependent part of one signer's DKIM-Signature field; see the twin."""

    cdef readonly bytes head
    cdef readonly bint header_relaxed
    cdef readonly bint body_relaxed
    cdef readonly bint body_length
    cdef tuple _headers
    cdef tuple _oversign
    cdef dict _shapes

    def __init__(self, head, headers, oversign, header_relaxed, body_relaxed, body_length):
        self.head = _as_bytes(head)
        self._headers = tuple([_as_bytes(name) for name in headers])
        self._oversign = tuple([_as_bytes(name) for name in oversign])
        self.header_relaxed = bool(header_relaxed)
        self.body_relaxed = bool(body_relaxed)
        self.body_length = bool(body_length)
        self._shapes = {}

    def h_list(self, names):
        """The h= list for a header whose field names are ``names`` (``Header.names``)."""
        cdef dict counts = {}
        cdef list out = []
        for name in _as_bytes(names).split(b":"):
            counts[name] = counts.get(name, 0) + 1
        if b"from" not in counts:
            raise _CanonicalizationError(_NO_FROM)
        for name in self._headers:
            if counts.get(name):
                out.extend([name] * counts[name])
        out.extend(self._oversign)
        return tuple(out)

    cdef tuple _shape(self, Header header):
        # (chosen field indices packed as C ints, folded h= tag), cached by names.
        cdef tuple found = self._shapes.get(header.names)
        cdef tuple chosen
        cdef bytes packed
        cdef int* w
        cdef Py_ssize_t j
        if found is None:
            h_list = self.h_list(header.names)
            chosen = header.select(h_list)
            packed = PyBytes_FromStringAndSize(NULL, len(chosen) * sizeof(int))
            w = <int*> PyBytes_AS_STRING(packed)
            for j in range(len(chosen)):
                w[j] = <int> chosen[j]
            found = (packed, _fold_tag_list(b"\r\n h=", h_list, b":"))
            if len(self._shapes) < _SHAPES and len(header.names) <= _SHAPE_KEY:
                self._shapes[header.names] = found
        return found

    def _cache_info(self):
        """(header shapes remembered, bytes of their keys); for the tests of the bound."""
        return len(self._shapes), sum([len(k) for k in self._shapes])

    def prepare(self, data, mid, dict known=None):
        """The field template (ending in ``b=``), the SHA-256 digest to sign and the
        message in wire form; see the twin."""
        if type(data) is not bytes or type(mid) is not bytes:
            raise TypeError("prepare() takes the message and the tags as bytes")
        cdef Header header = Header.__new__(Header)
        cdef bytes wire = <bytes> data, packed, h_text, length_tag = b"", template
        cdef tuple shape, found = None
        cdef Py_ssize_t total, o
        cdef unsigned char* w
        cdef const unsigned char* bh
        cdef const unsigned char* p
        if known is not None:
            # Several plans sign one message, already in wire form: it is used as
            # it is, and its body hash is computed once per canonicalization.
            header._load(wire)
            found = _known_body(known.get(self.body_relaxed))
            if found is None:
                found = _body_digest(wire, <const unsigned char*> PyBytes_AS_STRING(wire),
                                     PyBytes_GET_SIZE(wire), header.body_start,
                                     self.body_relaxed, -1)
                known[self.body_relaxed] = found
        else:
            # Line ends are checked on the way (the header here, the body by its
            # hash) instead of in a pass of their own; a bare CR or LF anywhere
            # means normalizing the message and starting again.
            p = <const unsigned char*> PyBytes_AS_STRING(wire)
            try:
                header._load(wire)
            except _CanonicalizationError:
                if _all_crlf(p, PyBytes_GET_SIZE(wire)):
                    raise
                header = None
            if header is not None and _all_crlf(p, header.body_start):
                found = _body_digest(wire, p, PyBytes_GET_SIZE(wire), header.body_start,
                                     self.body_relaxed, -1, True)
            if found is None:
                wire = normalize_line_endings(wire)
                header = Header.__new__(Header)
                header._load(wire)
                found = _body_digest(wire, <const unsigned char*> PyBytes_AS_STRING(wire),
                                     PyBytes_GET_SIZE(wire), header.body_start,
                                     self.body_relaxed, -1)
        shape = self._shape(header)
        packed = <bytes> shape[0]
        h_text = <bytes> shape[1]
        bh = <const unsigned char*> PyBytes_AS_STRING(<bytes> found[0])
        if self.body_length:
            # The length as the Python int it is (a caller's ``known`` may hold any).
            length_tag = b" l=%d;" % found[1]
        total = (PyBytes_GET_SIZE(self.head) + PyBytes_GET_SIZE(mid) + PyBytes_GET_SIZE(length_tag)
                 + PyBytes_GET_SIZE(h_text) + 6 + 44 + 6)
        template = PyBytes_FromStringAndSize(NULL, total)
        w = <unsigned char*> PyBytes_AS_STRING(template)
        o = _put(w, 0, self.head)
        o = _put(w, o, mid)
        o = _put(w, o, length_tag)
        o = _put(w, o, h_text)
        memcpy(w + o, <const char*> b"\r\n bh=", 6)
        o += 6
        o += _b64_encode(bh, 32, w + o)
        memcpy(w + o, <const char*> b";\r\n b=", 6)
        digest = header._digest(<const int*> PyBytes_AS_STRING(packed),
                                PyBytes_GET_SIZE(packed) // sizeof(int), w, total,
                                self.header_relaxed)
        return template, digest, wire

    def finish(self, template, signature, data=b""):
        """The complete field (``template``, the folded base64 ``signature``, CRLF) + ``data``."""
        cdef bytes t = _as_bytes(template), s = _as_bytes(signature), d = _as_bytes(data)
        cdef Py_ssize_t sn = PyBytes_GET_SIZE(s), dn = PyBytes_GET_SIZE(d)
        cdef Py_ssize_t lines = (sn + _B_LINE - 1) // _B_LINE
        cdef Py_ssize_t folded = _b64_len(sn) + (3 * (lines - 1) if lines else 0)
        cdef bytes out = PyBytes_FromStringAndSize(
            NULL, PyBytes_GET_SIZE(t) + folded + 2 + dn)
        cdef unsigned char* w = <unsigned char*> PyBytes_AS_STRING(out)
        cdef const unsigned char* sp = <const unsigned char*> PyBytes_AS_STRING(s)
        cdef Py_ssize_t o = _put(w, 0, t), i = 0, take
        cdef const char* dp
        while i < sn:
            if i:
                memcpy(w + o, <const char*> b"\r\n ", 3)
                o += 3
            take = sn - i if sn - i < _B_LINE else _B_LINE
            o += _b64_encode(sp + i, take, w + o)
            i += take
        w[o] = 13
        w[o + 1] = 10
        dp = PyBytes_AS_STRING(d)
        if dn >= _NOGIL_BYTES:
            with nogil:
                memcpy(w + o + 2, dp, dn)
        else:
            memcpy(w + o + 2, dp, dn)
        return out
