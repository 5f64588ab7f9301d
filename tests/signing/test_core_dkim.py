"""The DKIM hot path on both implementations: splitting, header canonicalization, hashing."""

from __future__ import annotations

import base64
import hashlib
import re
from array import array
from collections.abc import Iterator
from contextlib import contextmanager
from types import ModuleType

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mailscale import _hot
from mailscale._hot import _core_py
from mailscale.errors import CanonicalizationError

# Bytes that exercise header and body rules: line ends, folding, colons, odd names.
_MAIL_BYTES = st.lists(
    st.sampled_from(
        [
            b"\r\n",
            b"\r",
            b"\n",
            b" ",
            b"\t",
            b":",
            b"a",
            b"Z",
            b"\x00",
            b"\xff",
            b"  \t ",
            b"From",
            b"\r\n ",
            b"\r\n\r\n",
            b"x-y",
            b";",
        ]
    ),
    max_size=60,
).map(b"".join)
_ANY_BYTES = st.one_of(st.binary(max_size=300), _MAIL_BYTES)
# Longer text-like bodies: runs of plain bytes long enough for the word-at-a-time path.
_TEXT_BYTES = st.lists(
    st.sampled_from(
        [b"abcdefgh", b"word", b"x y z w ", b" ", b"  ", b"\t", b"\r\n", b"\r", b"\n", b"\x00"]
    ),
    max_size=120,
).map(b"".join)
# Bodies whose first lines are already relaxed-canonical (hashed in place by the
# compiled core) followed by anything, block edges falling anywhere in them.
_CLEAN_LINE = st.lists(
    st.sampled_from([b"word", b"abcdefghijklmno", b"x", b" ", b"\n", b"\x00", b"\xff"]),
    max_size=12,
).map(lambda parts: b"".join(parts).replace(b"  ", b" x ").rstrip(b" ") + b"\r\n")
_MOSTLY_CLEAN = st.tuples(
    st.lists(_CLEAN_LINE, max_size=30).map(b"".join),
    st.one_of(_TEXT_BYTES, st.sampled_from([b"", b"\r\n", b"\r\n\r\n", b"  \r\n", b"a "])),
).map(b"".join)
# Whitespace-heavy bodies (indented HTML, quoted-printable): runs of SP and HTAB of
# any length next to CR, LF, CRLF and text, so that runs and line ends fall on
# every position of the 64-byte blocks and across them.
_WS_HEAVY = st.lists(
    st.one_of(
        st.sampled_from([b"<td>", b"x", b"=20", b"\r\n", b"\r", b"\n", b"=\r\n", b"\x00"]),
        st.tuples(st.sampled_from([b" ", b"\t", b" \t", b"\t "]), st.integers(1, 70)).map(
            lambda t: (t[0] * t[1])[: t[1]]
        ),
        st.integers(1, 130).map(lambda k: b"y" * k),
    ),
    max_size=40,
).map(b"".join)
# Tag lists: names, values, separators and folding whitespace in any order.
_TAG_BYTES = st.lists(
    st.sampled_from(
        [
            b"a",
            b"b",
            b"bh",
            b"h",
            b"_x",
            b"v1",
            b"=",
            b";",
            b" ",
            b"\t",
            b"\r\n ",
            b"\r\n",
            b"abc",
            b"Z9",
            b"1",
            b"+/=",
            b"-",
            b"\xe9",
            b":",
        ]
    ),
    max_size=40,
).map(b"".join)


# Signature tag lists: real tags with base64 values, folded or broken anywhere.
_SIGNATURE_FIELDS = st.lists(
    st.one_of(
        st.sampled_from([b"v=1", b" a=rsa-sha256", b"d=example.com", b" h=from:to", b"b=", b"bh="]),
        st.binary(max_size=40).map(lambda raw: b"b=" + base64.b64encode(raw)),
        st.binary(max_size=40).map(lambda raw: b" bh = " + base64.b64encode(raw)[:-1]),
        st.sampled_from([b"b=QU\r\n JD", b"bh=QUJD=", b"b=@@", b"b", b"=1", b"\xe9=1"]),
    ),
    max_size=8,
).map(lambda tags: b";".join(tags) + b"\r\n")


# Integers where C sizes overflow: around 2**31, 2**63 and 2**64, and the largest
# values a 76-digit tag holds, with either sign.
_INT_LIMITS = st.sampled_from(
    [
        2**31 - 1,
        2**31,
        2**32,
        2**63 - 1,
        2**63,
        2**63 + 1,
        2**64 - 1,
        2**64,
        2**64 + 1,
        10**76 - 1,
        10**76,
    ]
).flatmap(lambda v: st.sampled_from([v, -v]))


def _int_outcome(func: object, *args: object) -> tuple[str, object]:
    """The result, or any exception's type and message (OverflowError included)."""
    try:
        return ("ok", func(*args))  # type: ignore[operator]
    except Exception as exc:  # the type is what is compared
        return (type(exc).__name__, str(exc))


def _tags_outcome(func: object, data: bytes) -> tuple[str, object]:
    try:
        return ("ok", func(data))  # type: ignore[operator]
    except ValueError as exc:
        return ("error", str(exc))


MESSAGE = (
    b"From: Joe <joe@example.com>\r\n"
    b"To: a@example.net,\r\n"
    b"\tb@example.net\r\n"
    b"Subject:   Hello   \t world  \r\n"
    b"Subject : second\r\n"
    b"\r\n"
    b"Body line  \r\n"
    b"\r\n"
)


def _outcome(func: object, *args: object) -> tuple[str, object]:
    """The result, or the documented error with its message."""
    try:
        return ("ok", func(*args))  # type: ignore[operator]
    except CanonicalizationError as exc:
        return ("error", str(exc))


class TestSplitMessage:
    def test_fields_and_body_offset(self, core_impl: ModuleType) -> None:
        """Fields keep their raw bytes and folding; names are lowercased."""
        fields, start = core_impl._split_message(MESSAGE)
        assert [
            (b"from", b"From: Joe <joe@example.com>\r\n"),
            (b"to", b"To: a@example.net,\r\n\tb@example.net\r\n"),
            (b"subject", b"Subject:   Hello   \t world  \r\n"),
            (b"subject", b"Subject : second\r\n"),
        ] == fields
        assert b"Body line  \r\n\r\n" == MESSAGE[start:]

    def test_empty_body(self, core_impl: ModuleType) -> None:
        """A message ending with the empty line has an empty body."""
        data = b"From: a\r\n\r\n"
        assert ([(b"from", b"From: a\r\n")], len(data)) == core_impl._split_message(data)

    def test_no_header(self, core_impl: ModuleType) -> None:
        """A message starting with the empty line has no fields."""
        assert ([], 2) == core_impl._split_message(b"\r\nbody")

    @pytest.mark.parametrize(
        "data",
        [b"From: a\r\nTo: b\r\n", b"From: a\r\nTo: b,\r\n c\r\n", b"From: a\r\n"],
    )
    def test_header_without_body(self, core_impl: ModuleType, data: bytes) -> None:
        """A header with no empty line and no body (RFC 5322) ends at the end: empty body."""
        fields, start = core_impl._split_message(data)
        assert len(data) == start
        assert data == b"".join(raw for _, raw in fields)
        assert b"from" == fields[0][0]

    @pytest.mark.parametrize(
        ("data", "problem"),
        [
            (b"", "empty"),
            (b"From: a", "line 1 does not end with CRLF"),
            (b"From: a\r\nTo: b", "line 2 does not end with CRLF"),
            (b"From: a\nTo: b\n\nbody", "line 1 does not end with CRLF"),
            (b"From: a\r\nnot a header\r\n\r\n", "line 2 has no colon"),
            (b" folded: first\r\n\r\n", "line 1 is a continuation"),
            (b"Fr\x00m: a\r\n\r\n", "line 1: the field name"),
            (b"Fr\xc3\xa9m: a\r\n\r\n", "line 1: the field name"),
            (b"X Y: a\r\n\r\n", "line 1: the field name"),
            (b": a\r\n\r\n", "line 1: the field name"),
        ],
    )
    def test_bad_input(self, core_impl: ModuleType, data: bytes, problem: str) -> None:
        """Malformed headers are a CanonicalizationError naming the problem."""
        with pytest.raises(CanonicalizationError, match=problem):
            core_impl._split_message(data)


class TestCanonHeaderRelaxed:
    @pytest.mark.parametrize(
        ("field", "expected"),
        [
            (b"A: X\r\n", b"a:X\r\n"),  # RFC 6376 section 3.4.5
            (b"B : Y\t\r\n\tZ  \r\n", b"b:Y Z\r\n"),  # RFC 6376 section 3.4.5
            (b"Subject:   Hello   \t world  \r\n", b"subject:Hello world\r\n"),
            (b"X-Empty:\r\n", b"x-empty:\r\n"),
            (b"DKIM-Signature: v=1; b=", b"dkim-signature:v=1; b=\r\n"),
            (b"K: a:b\r\n", b"k:a:b\r\n"),
        ],
    )
    def test_rules(self, core_impl: ModuleType, field: bytes, expected: bytes) -> None:
        """Names are lowercased, values unfolded, whitespace compressed and trimmed."""
        assert expected == core_impl._canon_header_relaxed(field)

    def test_no_colon(self, core_impl: ModuleType) -> None:
        """A field without a colon cannot be canonicalized."""
        with pytest.raises(CanonicalizationError, match="no colon"):
            core_impl._canon_header_relaxed(b"nothing here\r\n")


class TestHeaderHashInput:
    def test_bottom_up_and_oversigned(self, core_impl: ModuleType) -> None:
        """Repeated names take instances bottom up; a missing instance adds nothing."""
        fields, _ = core_impl._split_message(MESSAGE)
        got = core_impl._header_hash_input(
            fields,
            [b"from", b"subject", b"subject", b"subject", b"x-absent", b"from"],
            b"DKIM-Signature: v=1;\r\n b=",
            True,
        )
        expected = (
            b"from:Joe <joe@example.com>\r\n"
            b"subject:second\r\n"
            b"subject:Hello world\r\n"
            b"dkim-signature:v=1; b="
        )
        assert expected == got

    def test_simple_keeps_bytes(self, core_impl: ModuleType) -> None:
        """Simple canonicalization takes the raw fields and the raw signature field."""
        fields, _ = core_impl._split_message(MESSAGE)
        got = core_impl._header_hash_input(
            fields, [b"To", b"subject"], b"DKIM-Signature: b=", False
        )
        expected = (
            b"To: a@example.net,\r\n\tb@example.net\r\nSubject : second\r\nDKIM-Signature: b="
        )
        assert expected == got


class TestBodyHash:
    @pytest.mark.parametrize("relaxed", [True, False])
    @pytest.mark.parametrize(
        "body", [b"", b"\r\n", b"abc", b"a  b \r\n\r\n\r\n", b" x\r\n\ty\t\r\n" * 500]
    )
    def test_matches_canonical_body(
        self, core_impl: ModuleType, relaxed: bool, body: bytes
    ) -> None:
        """The hash and length are those of the canonicalized body."""
        data = b"From: a\r\n\r\n" + body
        canon = (core_impl._canon_body_relaxed if relaxed else core_impl._canon_body_simple)(body)
        assert (hashlib.sha256(canon).digest(), len(canon)) == core_impl.body_hash(
            data, 11, relaxed
        )

    @pytest.mark.parametrize("relaxed", [True, False])
    @pytest.mark.parametrize("limit", [0, 1, 3, 4, 5, 100])
    def test_limit(self, core_impl: ModuleType, relaxed: bool, limit: int) -> None:
        """A limit hashes only the first canonical bytes (l=), the length stays whole."""
        data = b"H: v\r\n\r\nab"
        canon = b"ab\r\n"
        assert (hashlib.sha256(canon[:limit]).digest(), 4) == core_impl.body_hash(
            data, 8, relaxed, limit
        )

    def test_empty_bodies_rfc6376(self, core_impl: ModuleType) -> None:
        """Empty body hashes are those RFC 6376 section 3.4.3/3.4.4 implies."""
        data = b"From: a\r\n\r\n"
        assert hashlib.sha256(b"\r\n").digest() == core_impl.body_hash(data, 11, False)[0]
        assert hashlib.sha256(b"").digest() == core_impl.body_hash(data, 11, True)[0]

    @pytest.mark.parametrize("start", [-1, 12])
    def test_offset_out_of_range(self, core_impl: ModuleType, start: int) -> None:
        """A body offset outside the message is a CanonicalizationError."""
        with pytest.raises(CanonicalizationError, match="outside"):
            core_impl.body_hash(b"From: a\r\n\r\n", start, True)

    @pytest.mark.parametrize(
        "limit", [2**31, 2**31 - 1, 2**63 - 1, 2**63, 2**64, 2**64 + 1, 10**76 - 1, -(2**63) - 1]
    )
    @pytest.mark.parametrize("relaxed", [True, False])
    def test_limit_of_any_size(self, core_impl: ModuleType, relaxed: bool, limit: int) -> None:
        """An l= past the body, however large (76 digits), hashes the whole body; a
        negative one of any size means no limit: never an OverflowError."""
        assert core_impl.body_hash(MESSAGE, 0, relaxed) == core_impl.body_hash(
            MESSAGE, 0, relaxed, limit
        )

    @pytest.mark.parametrize("start", [2**63, 2**64, -(2**63) - 1, 10**76])
    def test_huge_offset_is_outside(self, core_impl: ModuleType, start: int) -> None:
        """A body offset beyond a C size is outside the message, not an OverflowError."""
        with pytest.raises(CanonicalizationError, match="outside the message"):
            core_impl.body_hash(MESSAGE, start, True)

    @pytest.mark.parametrize("relaxed", [True, False])
    @pytest.mark.parametrize(
        ("body", "crlf"),
        [
            (b"", True),
            (b"a\r\n", True),
            (b"a  \r\n\r\n", True),
            (b"no end", True),
            (b"a\nb\r\n", False),
            (b"a\rb\r\n", False),
            (b"a\r\n\r", False),
            (b"a\r\n\n", False),
            (b"  \t\n", False),
        ],
    )
    def test_check_finds_bare_line_ends(
        self, core_impl: ModuleType, relaxed: bool, body: bytes, crlf: bool
    ) -> None:
        """With check, None when the body has a bare CR or LF, else the same hash."""
        data = b"From: a\r\n\r\n" + body
        expected = core_impl.body_hash(data, 11, relaxed) if crlf else None
        assert expected == core_impl.body_hash(data, 11, relaxed, check=True)

    @pytest.mark.parametrize(("start", "limit"), [(1.0, -1), (0, 2.5), ("1", -1), (0, None)])
    def test_non_integers_refused(
        self, core_impl: ModuleType, start: object, limit: object
    ) -> None:
        """Offsets and limits must be integers: TypeError on both implementations."""
        with pytest.raises(TypeError):
            core_impl.body_hash(MESSAGE, start, True, limit)


class TestParseTagList:
    def test_tags_in_order(self, core_impl: ModuleType) -> None:
        """Names and values lose their surrounding FWS; order and a trailing ';' are kept."""
        data = b" v=1;\r\n a = rsa-sha256 ;\tb=ab\r\n cd; h= ;"
        assert {"v": "1", "a": "rsa-sha256", "b": "ab\r\n cd", "h": ""} == (
            core_impl._parse_tag_list(data)
        )
        assert ["v", "a", "b", "h"] == list(core_impl._parse_tag_list(data))

    @pytest.mark.parametrize("data", [b"", b"  \r\n ", b";"])
    def test_empty(self, core_impl: ModuleType, data: bytes) -> None:
        """Nothing but FWS is no tag; a lone ';' is a tag without '='."""
        if data == b";":
            with pytest.raises(ValueError, match="has no '='"):
                core_impl._parse_tag_list(data)
        else:
            assert {} == core_impl._parse_tag_list(data)

    @pytest.mark.parametrize(
        ("data", "problem"),
        [
            (b"a=1; b", "tag 'b' has no '='"),
            (b"a=1;; b=2", "tag '' has no '='"),
            (b"1a=1", "invalid tag name '1a'"),
            (b"_a=1", "invalid tag name '_a'"),
            (b"a-b=1", "invalid tag name 'a-b'"),
            (b"=1", "invalid tag name ''"),
            (b"a=1; a=2", "duplicate tag 'a'"),
            (b"a=\xe9", "non-ASCII byte"),
        ],
    )
    def test_malformed(self, core_impl: ModuleType, data: bytes, problem: str) -> None:
        """A malformed list is a ValueError whose message names the problem."""
        with pytest.raises(ValueError, match=re.escape(problem)):
            core_impl._parse_tag_list(data)


class TestB64Value:
    @pytest.mark.parametrize(
        ("value", "expected"),
        [
            (b"", b""),
            (b"QUJD", b"ABC"),
            (b"QUI=", b"AB"),
            (b"QQ==", b"A"),
            (b" QU\r\n JD\tRA = = ", b"ABCD"),
        ],
    )
    def test_decodes_ignoring_fws(
        self, core_impl: ModuleType, value: bytes, expected: bytes
    ) -> None:
        """Canonical base64 decodes; folding whitespace anywhere is ignored."""
        assert expected == core_impl._b64_value(value)

    @pytest.mark.parametrize(
        "value",
        [
            b"Q",
            b"QUJ",
            b"QR==",
            b"QUJ=D",
            b"QQ===",
            b"QUJD=",
            b"QU-D",
            b"QU\x0bJD",
            b"=QUJ",
            b"QQ=A",
        ],
    )
    def test_rejects_anything_else(self, core_impl: ModuleType, value: bytes) -> None:
        """Bad length, stray or misplaced padding, set unused bits, other bytes: None."""
        assert core_impl._b64_value(value) is None


class TestParseSignature:
    def test_parts(self, core_impl: ModuleType) -> None:
        """Tags, the field with b= emptied, and the decoded b= and bh= values."""
        field = b"DKIM-Signature: v=1; bh=QUJD;\r\n b=QU\r\n JD ; d=x\r\n"
        tags, unsigned, b, bh = core_impl.parse_signature(field)
        assert {"v": "1", "bh": "QUJD", "b": "QU\r\n JD", "d": "x"} == tags
        assert core_impl._strip_b_value(field) == unsigned
        assert (b"ABC", b"ABC") == (b, bh)

    @pytest.mark.parametrize(
        ("field", "expected"),
        [
            (b"DKIM-Signature: v=1", (None, None, None)),
            (b"DKIM-Signature: b=Q; bh=@", (b"DKIM-Signature: b=; bh=@", None, None)),
            (b"DKIM-Signature: b=; bh=", (b"DKIM-Signature: b=; bh=", b"", b"")),
        ],
    )
    def test_absent_or_not_base64(
        self, core_impl: ModuleType, field: bytes, expected: tuple[object, ...]
    ) -> None:
        """An absent tag or a value that is not exactly base64 decodes to None."""
        assert expected == core_impl.parse_signature(field)[1:]

    @pytest.mark.parametrize(
        ("field", "problem"),
        [(b"no colon", "no colon"), (b"X: a=\xe9", "non-ASCII"), (b"X: a=1; a=2", "duplicate")],
    )
    def test_errors(self, core_impl: ModuleType, field: bytes, problem: str) -> None:
        """A field that cannot be read is a ValueError naming the problem."""
        with pytest.raises(ValueError, match=problem):
            core_impl.parse_signature(field)


class TestStripBValue:
    def test_value_and_its_whitespace_go(self, core_impl: ModuleType) -> None:
        """The b= value goes with its folding; bh= and the rest stay byte for byte."""
        field = b"DKIM-Signature: v=1; bh=abc;\r\n b=AAAA\r\n BBBB ; x=1\r\n"
        assert b"DKIM-Signature: v=1; bh=abc;\r\n b=; x=1" == core_impl._strip_b_value(field)

    def test_last_b_tag(self, core_impl: ModuleType) -> None:
        """b= as the last tag, without a final CRLF."""
        assert b"X: a=1; b=" == core_impl._strip_b_value(b"X: a=1; b=zz")

    @pytest.mark.parametrize("field", [b"X: a=1; bh=2\r\n", b"no colon b=1", b"X:"])
    def test_no_b_tag(self, core_impl: ModuleType, field: bytes) -> None:
        """No b tag after the colon gives None."""
        assert core_impl._strip_b_value(field) is None


def _stream(impl: ModuleType, data: bytes, cuts: list[int], relaxed: bool) -> tuple[bytes, int]:
    hasher = impl._BodyHasher(relaxed)
    last = 0
    for cut in sorted(c % (len(data) + 1) for c in cuts):
        hasher.update(data[last:cut])
        last = cut
    hasher.update(data[last:])
    return hasher.digest()  # type: ignore[no-any-return]


class TestBodyHasher:
    @pytest.mark.parametrize("relaxed", [True, False])
    @pytest.mark.parametrize(
        "body",
        [
            b"",
            b"\r\n",
            b"\r\n\r\n",
            b"abc",
            b"a  b \r\n\r\n\r\n",
            b"x\r",
            b"  \r\n\t",
            b"line one \r\n\r\n  \r\nline two\t\r\n\r\n" * 300,
        ],
    )
    def test_chunks_give_the_one_shot_hash(
        self, core_impl: ModuleType, relaxed: bool, body: bytes
    ) -> None:
        """Any chunking of the body gives the hash and length of body_hash."""
        expected = core_impl.body_hash(body, 0, relaxed)
        for step in (1, 2, 3, 7, 1000):
            cuts = list(range(step, len(body), step))
            assert expected == _stream(core_impl, body, cuts, relaxed), step

    def test_finished(self, core_impl: ModuleType) -> None:
        """digest() can be repeated; update() after it is a CanonicalizationError."""
        hasher = core_impl._BodyHasher(True)
        hasher.update(b"abc\r\n")
        assert hasher.digest() == hasher.digest()
        with pytest.raises(CanonicalizationError, match="finished"):
            hasher.update(b"more")

    def test_rejects_text(self, core_impl: ModuleType) -> None:
        """A str chunk is a TypeError."""
        with pytest.raises(TypeError):
            core_impl._BodyHasher(False).update("text")

    @settings(max_examples=200, deadline=None)
    @given(_TEXT_BYTES, st.lists(st.integers(0, 2000), max_size=6), st.booleans())
    def test_streaming_matches_one_shot(self, data: bytes, cuts: list[int], relaxed: bool) -> None:
        """Streaming in arbitrary chunks equals the twin's one-shot body hash, on each core
        present (the compiled one is compared only when it is loaded)."""
        expected = _core_py.body_hash(data, 0, relaxed)
        assert expected == _stream(_core_py, data, cuts, relaxed)
        if _hot.USING_EXTENSIONS:
            assert expected == _stream(_hot.core, data, cuts, relaxed)


@pytest.mark.skipif(not _hot.USING_EXTENSIONS, reason="only the twin is present")
class TestTwinAgreement:
    @pytest.mark.parametrize("relaxed", [True, False])
    def test_header_hash_input_agrees_on_many_fields_and_names(self, relaxed: bool) -> None:
        """Thousands of fields and h= names (some repeated, absent, other case) give one result."""
        fields = [
            (f"x-h{i % 300}".encode(), f"X-H{i % 300}: value {i}\r\n".encode()) for i in range(4000)
        ]
        names = [f"X-h{(i * 7) % 400}".encode() for i in range(5000)]
        sig = b"DKIM-Signature: v=1; b="
        expected = _core_py._header_hash_input(fields, names, sig, relaxed)
        assert expected == _hot.core._header_hash_input(fields, names, sig, relaxed)
        per_name = {k: sum(1 for i in range(4000) if i % 300 == k) for k in range(300)}
        wanted = {k: names.count(f"X-h{k}".encode()) for k in range(300)}
        assert sum(min(per_name[k], wanted[k]) for k in range(300)) == expected.count(b"value")

    @settings(max_examples=300, deadline=None)
    @given(_ANY_BYTES)
    def test_split_agrees(self, data: bytes) -> None:
        """Both implementations split any bytes alike, or fail alike."""
        assert _outcome(_core_py._split_message, data) == _outcome(_hot.core._split_message, data)

    @settings(max_examples=300, deadline=None)
    @given(_ANY_BYTES)
    def test_canon_header_agrees(self, data: bytes) -> None:
        """Relaxed header canonicalization agrees on any bytes."""
        assert _outcome(_core_py._canon_header_relaxed, data) == _outcome(
            _hot.core._canon_header_relaxed, data
        )

    @settings(max_examples=300, deadline=None)
    @given(_TEXT_BYTES)
    def test_relaxed_body_agrees_on_text(self, data: bytes) -> None:
        """Relaxed body canonicalization agrees on long text-like bodies."""
        assert _core_py._canon_body_relaxed(data) == _hot.core._canon_body_relaxed(data)
        assert _core_py.body_hash(data, 0, True) == _hot.core.body_hash(data, 0, True)

    @settings(max_examples=300, deadline=None)
    @given(
        st.lists(_CLEAN_LINE, max_size=30).map(
            lambda lines: (
                b"".join(lines)
                .replace(b"\r\n", b"\x01")
                .replace(b"\n", b"")
                .replace(b"\x01", b"\r\n")
            )
        ),
        st.integers(0, 3000),
        st.sampled_from([b"", b"\r", b"\n", b"\r\r\n", b"\n\r"]),
    )
    def test_normalize_agrees_on_crlf_text_with_a_stray_byte(
        self, text: bytes, where: int, stray: bytes
    ) -> None:
        """CRLF text with a stray CR or LF anywhere (any 64-byte block edge) normalizes alike."""
        cut = where % (len(text) + 1)
        data = text[:cut] + stray + text[cut:]
        expected = _core_py.normalize_line_endings(data)
        assert expected == _hot.core.normalize_line_endings(data)
        assert (expected == data) == (_hot.core.normalize_line_endings(data) is data)

    @settings(max_examples=300, deadline=None)
    @given(_MOSTLY_CLEAN, st.integers(-1, 900))
    def test_relaxed_body_hash_agrees_on_mostly_clean_text(self, data: bytes, limit: int) -> None:
        """Relaxed body hashes agree when canonical lines come first, for any limit."""
        assert _core_py.body_hash(data, 0, True, limit) == _hot.core.body_hash(data, 0, True, limit)

    @settings(max_examples=300, deadline=None)
    @given(_ANY_BYTES, st.integers(-2, 320), st.booleans(), st.integers(-1, 400))
    def test_body_hash_agrees(self, data: bytes, start: int, relaxed: bool, limit: int) -> None:
        """Body hashes agree for any bytes, offset, mode and limit."""
        assert _outcome(_core_py.body_hash, data, start, relaxed, limit) == _outcome(
            _hot.core.body_hash, data, start, relaxed, limit
        )

    @settings(max_examples=300, deadline=None)
    @given(
        _ANY_BYTES,
        st.one_of(st.integers(-2, 320), _INT_LIMITS),
        st.booleans(),
        st.one_of(st.integers(-1, 400), _INT_LIMITS),
    )
    def test_body_hash_agrees_at_integer_limits(
        self, data: bytes, start: int, relaxed: bool, limit: int
    ) -> None:
        """Offsets and l= limits at and past C integer limits (2**31, 2**63, 2**64,
        76 digits, either sign) give the same result or error on both, never an
        OverflowError."""
        expected = _int_outcome(_core_py.body_hash, data, start, relaxed, limit)
        assert expected == _int_outcome(_hot.core.body_hash, data, start, relaxed, limit)
        assert "OverflowError" != expected[0]

    @settings(max_examples=200, deadline=None)
    @given(
        st.lists(st.tuples(st.sampled_from([b"a", b"B", b"c"]), _ANY_BYTES), max_size=6),
        st.lists(st.sampled_from([b"a", b"b", b"C", b"d"]), max_size=8),
        _ANY_BYTES,
        st.booleans(),
    )
    def test_header_hash_input_agrees(
        self, fields: list[tuple[bytes, bytes]], names: list[bytes], sig: bytes, relaxed: bool
    ) -> None:
        """The header-hash input agrees for any fields, h= list and signature field."""
        assert _outcome(_core_py._header_hash_input, fields, names, sig, relaxed) == _outcome(
            _hot.core._header_hash_input, fields, names, sig, relaxed
        )

    @settings(max_examples=300, deadline=None)
    @given(st.one_of(_TAG_BYTES, st.binary(max_size=80)))
    def test_tag_list_agrees(self, data: bytes) -> None:
        """Tag lists parse alike, or fail with the same message, on any bytes."""
        assert _tags_outcome(_core_py._parse_tag_list, data) == _tags_outcome(
            _hot.core._parse_tag_list, data
        )

    @settings(max_examples=400, deadline=None)
    @given(
        st.one_of(
            st.binary(max_size=60).map(lambda raw: base64.b64encode(raw)),
            st.lists(
                st.sampled_from([b"QU", b"Jk", b"+/", b"=", b"==", b" ", b"\r\n ", b"A", b"-"]),
                max_size=16,
            ).map(b"".join),
            st.binary(max_size=40),
        ),
        st.integers(0, 80),
        st.sampled_from([b"", b" ", b"\r\n\t", b"="]),
    )
    def test_b64_value_agrees(self, value: bytes, where: int, insert: bytes) -> None:
        """Base64 tag values decode alike (or are refused alike) on any bytes."""
        cut = where % (len(value) + 1)
        data = value[:cut] + insert + value[cut:]
        assert _core_py._b64_value(data) == _hot.core._b64_value(data)

    @settings(max_examples=300, deadline=None)
    @given(st.one_of(_TAG_BYTES, _ANY_BYTES))
    def test_strip_b_value_agrees(self, data: bytes) -> None:
        """Emptying b= gives the same bytes (or None) on any bytes."""
        for field in (data, b"DKIM-Signature:" + data):
            assert _core_py._strip_b_value(field) == _hot.core._strip_b_value(field)

    @settings(max_examples=300, deadline=None)
    @given(
        st.one_of(_TAG_BYTES, _ANY_BYTES, _SIGNATURE_FIELDS),
        st.sampled_from([b"DKIM-Signature:", b"", b"x: "]),
    )
    def test_parse_signature_agrees(self, data: bytes, name: bytes) -> None:
        """Reading a signature field in one call gives the same parts (or error) on any bytes."""
        field = name + data
        assert _tags_outcome(_core_py.parse_signature, field) == _tags_outcome(
            _hot.core.parse_signature, field
        )

    @settings(max_examples=200, deadline=None)
    @given(_ANY_BYTES)
    def test_split_fields_concatenate_to_header(self, data: bytes) -> None:
        """The raw fields plus the empty line are exactly the bytes before the body; a
        message that is only a header (no empty line) is its fields, with an empty body."""
        try:
            fields, start = _hot.core._split_message(data)
        except CanonicalizationError:
            return
        header = b"".join(raw for _, raw in fields)
        if data[:start] != header + b"\r\n":  # only a header: the body starts at its end
            assert (len(data), data) == (start, header)


class TestBadArguments:
    @pytest.mark.parametrize(
        "call",
        [
            lambda m: m._split_message("text"),
            lambda m: m._canon_header_relaxed(None),
            lambda m: m.body_hash("text", 0, True),
            lambda m: m._header_hash_input([], [], "text", True),
            lambda m: m._parse_tag_list("a=1"),
            lambda m: m._strip_b_value(None),
            lambda m: m._b64_value("QUJD"),
            lambda m: m.parse_signature("a: b=QUJD"),
        ],
    )
    def test_non_bytes_is_type_error(self, core_impl: ModuleType, call: object) -> None:
        """A str or None where bytes belong is a TypeError, never a crash."""
        with pytest.raises(TypeError):
            call(core_impl)  # type: ignore[operator]


def _views(data: bytes) -> list[tuple[str, object]]:
    """The same bytes behind buffers of other shapes, and buffers the core must refuse."""
    padded = data + b" " * (-len(data) % 4)
    return [
        ("bytearray", bytearray(data)),
        ("memoryview", memoryview(data)),
        ("char view", memoryview(data).cast("c")),
        ("reversed", memoryview(data[::-1])[::-1]),
        ("every second", memoryview(bytes(b for x in data for b in (x, 0))).cast("B")[::2]),
        ("array I", memoryview(array("I", padded))),
        ("array b", array("b", data)),
        ("two dims", memoryview(padded).cast("B", (2, len(padded) // 2)) if padded else b""),
    ]


_BUFFER_CALLS = {
    "_split_message": lambda m, b: m._split_message(b),
    "_canon_header_relaxed": lambda m, b: m._canon_header_relaxed(b),
    "_canon_body_simple": lambda m, b: m._canon_body_simple(b),
    "_canon_body_relaxed": lambda m, b: m._canon_body_relaxed(b),
    "normalize_line_endings": lambda m, b: m.normalize_line_endings(b),
    "body_hash": lambda m, b: m.body_hash(b, 0, True),
    "_header_hash_input": lambda m, b: m._header_hash_input([(b"a", b)], [b"a"], b, False),
    "_header_hash_input name": lambda m, b: m._header_hash_input([(b, b"a:1")], [b], b"s:", False),
    "_parse_tag_list": lambda m, b: m._parse_tag_list(b),
    "_strip_b_value": lambda m, b: m._strip_b_value(b),
    "_b64_value": lambda m, b: m._b64_value(b),
    "parse_signature": lambda m, b: m.parse_signature(b),
    "_BodyHasher.update": lambda m, b: m._BodyHasher(True).update(b),
    "split_header": lambda m, b: (lambda h: (h.fields(), h.names, h.body_start))(m.split_header(b)),
    "Header.digest": lambda m, b: m.split_header(b"a: 1\r\n\r\n").digest((0,), b, False),
    "SignPlan.finish": lambda m, b: m.SignPlan(b"h", [], [], True, True, False).finish(b, b, b),
}


def _buffer_outcome(call: object, module: ModuleType, buf: object) -> tuple[str, object]:
    try:
        return ("ok", call(module, buf))  # type: ignore[operator]
    except CanonicalizationError as exc:
        return ("error", str(exc))
    except (BufferError, ValueError, TypeError) as exc:
        return ("refused", type(exc).__name__)


class TestBufferShapes:
    @pytest.mark.parametrize("name", sorted(_BUFFER_CALLS))
    def test_contiguous_byte_buffers_read_as_bytes(self, core_impl: ModuleType, name: str) -> None:
        """A bytearray, memoryview or char view gives what the same bytes give."""
        data = b"a=QUJD; b:c\r\n d\r\n\r\nbody  \r\n"
        call = _BUFFER_CALLS[name]
        expected = _buffer_outcome(call, core_impl, data)
        for kind, buf in _views(data)[:3]:
            assert (kind, expected) == (kind, _buffer_outcome(call, core_impl, buf))

    @pytest.mark.parametrize("name", sorted(_BUFFER_CALLS))
    def test_other_buffers_refused(self, core_impl: ModuleType, name: str) -> None:
        """Strided, reversed, multi-dimensional and non-byte buffers are refused, never misread."""
        call = _BUFFER_CALLS[name]
        expected = {
            "reversed": "BufferError",
            "every second": "BufferError",
            "array I": "ValueError",
            "array b": "ValueError",
            "two dims": "ValueError",
        }
        got = {
            kind: _buffer_outcome(call, core_impl, buf)[1]
            for kind, buf in _views(b"a=QUJD; b:c\r\n\r\nbody\r\n")[3:]
        }
        assert expected == got

    @pytest.mark.skipif(not _hot.USING_EXTENSIONS, reason="only the twin is present")
    @settings(max_examples=60, deadline=None)
    @given(_ANY_BYTES, st.sampled_from(sorted(_BUFFER_CALLS)))
    def test_both_implementations_agree(self, data: bytes, name: str) -> None:
        """On every buffer shape both implementations return the same or refuse alike."""
        call = _BUFFER_CALLS[name]
        for kind, buf in _views(data):
            assert (kind, _buffer_outcome(call, _core_py, buf)) == (
                kind,
                _buffer_outcome(call, _hot.core, buf),
            )


def _header_crlf(core: ModuleType, data: bytes) -> object:
    """``split_header(data).crlf()``, or the error's type and text."""
    try:
        return core.split_header(data).crlf()
    except CanonicalizationError as exc:
        return (type(exc), str(exc))


def _scan_levels() -> list[str]:
    if not _hot.USING_EXTENSIONS:
        return []
    best = _hot.core._scan_level()[1]
    levels = ["portable", "avx2", "avx512bw", "avx512vbmi2"]
    return levels[: levels.index(best) + 1]


@contextmanager
def _at_level(level: str) -> Iterator[None]:
    before = _hot.core._scan_level()[0]
    _hot.core._scan_level(level)
    try:
        yield
    finally:
        _hot.core._scan_level(before)


@pytest.mark.skipif(not _hot.USING_EXTENSIONS, reason="only the twin is present")
class TestScanLevels:
    """Every whole-buffer scan path this CPU runs gives what the twin gives."""

    @pytest.mark.parametrize("level", _scan_levels())
    def test_level_is_selected(self, level: str) -> None:
        """The selected level is the one in use, and the previous one comes back."""
        before = _hot.core._scan_level()
        with _at_level(level):
            assert level == _hot.core._scan_level()[0]
        assert before == _hot.core._scan_level()

    def test_unknown_level_refused(self) -> None:
        """A level that is not a scan path is a ValueError, and nothing changes."""
        before = _hot.core._scan_level()
        with pytest.raises(ValueError, match="scan level 'sse9'"):
            _hot.core._scan_level("sse9")
        assert before == _hot.core._scan_level()

    @pytest.mark.parametrize("level", _scan_levels())
    @settings(max_examples=300, deadline=None)
    @given(data=_WS_HEAVY, cut=st.integers(0, 400), limit=st.integers(-1, 600))
    def test_whitespace_runs_agree_with_twin(
        self, level: str, data: bytes, cut: int, limit: int
    ) -> None:
        """Relaxed canonicalization of whitespace-heavy bodies (runs crossing blocks,
        before CRLF, bare CR or the end) agrees with the twin on every scan path: in
        one piece, hashed with a limit, and streamed in two chunks."""
        core = _hot.core
        with _at_level(level):
            assert _core_py._canon_body_relaxed(data) == core._canon_body_relaxed(data)
            assert _core_py.body_hash(data, 0, True, limit) == core.body_hash(data, 0, True, limit)
            for relaxed in (True, False):
                assert _core_py.body_hash(data, 0, relaxed, limit, check=True) == core.body_hash(
                    data, 0, relaxed, limit, check=True
                )
            hasher = core._BodyHasher(True)
            hasher.update(data[:cut])
            hasher.update(data[cut:])
            assert _core_py.body_hash(data, 0, True) == hasher.digest()

    @pytest.mark.parametrize("level", _scan_levels())
    @settings(max_examples=150, deadline=None)
    @given(data=st.one_of(_MOSTLY_CLEAN, _TEXT_BYTES), pad=st.integers(0, 130))
    def test_scans_agree_with_twin(self, level: str, data: bytes, pad: int) -> None:
        """Line-end checks, relaxed body hashes and sign plans agree with the twin."""
        body = b"w" * pad + b"\r\n" + data
        message = b"From: a@example.com\r\n\r\n" + body
        core = _hot.core
        plans = [
            m.SignPlan(b"DKIM-Signature: v=1;", [b"from"], [], True, True, True)
            for m in (_core_py, core)
        ]
        with _at_level(level):
            assert _core_py.normalize_line_endings(body) == core.normalize_line_endings(body)
            assert _core_py.body_hash(body, 0, True) == core.body_hash(body, 0, True)
            assert _core_py.body_hash(body, 0, True, check=True) == core.body_hash(
                body, 0, True, check=True
            )
            head = b"From: a\r\n " + data + b"\r\n\r\n"
            assert _header_crlf(_core_py, head) == _header_crlf(core, head)
            assert _core_py._canon_body_relaxed(body) == core._canon_body_relaxed(body)
            assert plans[0].prepare(message, b"") == plans[1].prepare(message, b"")
