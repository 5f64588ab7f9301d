"""Split headers and signing plans on both implementations, and their agreement."""

from __future__ import annotations

import base64
import hashlib
from types import ModuleType

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mailscale import _hot
from mailscale._hot import _core_py
from mailscale.errors import CanonicalizationError

from .test_core_dkim import _ANY_BYTES, _MAIL_BYTES, MESSAGE, _outcome

HEAD = b"DKIM-Signature: v=1; a=ed25519-sha256; c=relaxed/relaxed;\r\n d=example.com; s=s;"
HEADERS = (b"from", b"to", b"subject", b"date", b"x-list")
OVERSIGN = (b"from", b"subject")

_NAMES = st.lists(
    st.sampled_from([b"from", b"From", b"to", b"subject", b"SUBJECT", b"x-absent", b"date"]),
    max_size=8,
)
# Messages with a From most of the time, the rest of the header and body anything.
_MESSAGES = st.one_of(
    st.tuples(
        st.lists(
            st.sampled_from(
                [
                    b"From: a@example.com\r\n",
                    b"from :  B  <b@x>\r\n",
                    b"To: x,\r\n\ty\r\n",
                    b"Subject:  hi  \t there \r\n",
                    b"X-List: <u>\r\n",
                    b"Date: today\r\n",
                    b"Other: 1\r\n",
                ]
            ),
            max_size=9,
        ).map(b"".join),
        st.sampled_from([b"\r\n", b"", b"\n"]),
        _MAIL_BYTES,
    ).map(b"".join),
    _ANY_BYTES,
)


def _line_end_cases() -> list[bytes]:
    cases = [
        MESSAGE,
        MESSAGE.replace(b"\r\n", b"\n"),
        MESSAGE.replace(b"To: a", b"To:\n a"),
        MESSAGE.replace(b"Subject : second\r\n", b"Subject : second\n"),
        MESSAGE.replace(b"Body line", b"Body\rline"),
        MESSAGE + b"tail\n",
        MESSAGE + b"tail\r",
    ]
    # A bare LF or CR on either side of the 64-byte blocks of the body scans.
    for k in (0, 1, 62, 63, 64, 65, 127, 128, 200):
        for end in (b"\n", b"\r", b"\r\n"):
            cases.append(b"From: a\r\n\r\n" + b"x" * k + end + b"y" * 70 + b"\r\n")
    return cases


_LINE_END_CASES = _line_end_cases()


def _plan(
    core: ModuleType,
    header_relaxed: bool = True,
    body_relaxed: bool = True,
    body_length: bool = False,
    headers: tuple[bytes, ...] = HEADERS,
    oversign: tuple[bytes, ...] = OVERSIGN,
) -> object:
    return core.SignPlan(HEAD, headers, oversign, header_relaxed, body_relaxed, body_length)


def _plan_outcome(core: ModuleType, data: bytes, flags: tuple[bool, bool, bool]) -> object:
    plan = _plan(core, *flags)
    return _outcome(plan.prepare, data, b" t=1;")  # type: ignore[attr-defined]


class TestSplitHeader:
    def test_agrees_with_split_message(self, core_impl: ModuleType) -> None:
        """Fields, names and the body offset are what _split_message gives."""
        fields, start = core_impl._split_message(MESSAGE)
        header = core_impl.split_header(MESSAGE)
        assert (fields, start, len(fields)) == (header.fields(), header.body_start, header.count)
        assert b"from:to:subject:subject" == header.names
        assert [raw for _, raw in fields] == [header.field(i) for i in range(header.count)]
        assert MESSAGE == header.data

    def test_no_fields(self, core_impl: ModuleType) -> None:
        """A message that starts with the empty line has no fields and no names."""
        header = core_impl.split_header(b"\r\nbody")
        assert (0, b"", [], 2, ()) == (
            header.count,
            header.names,
            header.fields(),
            header.body_start,
            header.select([b"from"]),
        )

    @pytest.mark.parametrize("index", [-1, 4, 10**30, True, 1.0, "1", None])
    def test_field_index_checked(self, core_impl: ModuleType, index: object) -> None:
        """An index that is not a field of the header is an IndexError naming it."""
        header = core_impl.split_header(MESSAGE)
        with pytest.raises(IndexError, match="has 4"):
            header.field(index)
        with pytest.raises(IndexError, match="no header field"):
            header.digest([0, index], b"s:", True)

    @pytest.mark.parametrize(
        ("data", "crlf"),
        [
            (MESSAGE, True),
            (b"\r\nbody\n", True),
            (b"From: a\r\n", True),
            (b"From: a\nb\r\nTo: c\r\n\r\nbody", False),
            (b"From: a\rb\r\n\r\n", False),
            (b"From: a\r\n\r\nbare\nbody\r", True),
        ],
    )
    def test_crlf(self, core_impl: ModuleType, data: bytes, crlf: bool) -> None:
        """crlf() tells whether the header section (not the body) has only CRLF line ends."""
        assert crlf == core_impl.split_header(data).crlf()

    def test_same_errors_as_split_message(self, core_impl: ModuleType) -> None:
        """A message that cannot be split raises what _split_message raises."""
        for data in (b"", b"From: a", b"From: a\r\nbad\r\n\r\n", b" x: 1\r\n\r\n"):
            assert (
                _outcome(core_impl._split_message, data)[1]
                == _outcome(core_impl.split_header, data)[1]
            )


class TestSelect:
    def test_bottom_up(self, core_impl: ModuleType) -> None:
        """Repeated names take instances bottom up; absent and used-up names take nothing."""
        header = core_impl.split_header(MESSAGE)
        wanted = [b"Subject", b"from", b"subject", b"subject", b"x-absent", b"from", b"TO"]
        assert (3, 0, 2, 1) == header.select(wanted)

    @settings(max_examples=150, deadline=None)
    @given(_MESSAGES, _NAMES, st.booleans(), st.sampled_from([b"DKIM-Signature: b=", b"x"]))
    def test_digest_is_header_hash_input(
        self, data: bytes, names: list[bytes], relaxed: bool, tail: bytes
    ) -> None:
        """digest(select(h=)) is the SHA-256 of _header_hash_input, on both implementations."""
        for core in _cores():
            try:
                fields, _ = core._split_message(data)
            except CanonicalizationError:
                continue
            header = core.split_header(data)
            expected = _outcome(_hashed_input, core, fields, names, tail, relaxed)
            assert expected == _outcome(header.digest, header.select(names), tail, relaxed)


class TestSignPlan:
    def test_template_and_digest(self, core_impl: ModuleType) -> None:
        """The template carries the tags, the folded h= and bh=; the digest covers it."""
        plan = _plan(core_impl)
        template, digest, wire = plan.prepare(MESSAGE, b" t=1;")  # type: ignore[attr-defined]
        fields, start = core_impl._split_message(MESSAGE)
        bh, _ = core_impl.body_hash(MESSAGE, start, True)
        h_list = [b"from", b"to", b"subject", b"subject", b"from", b"subject"]
        expected = (
            HEAD
            + b" t=1;\r\n h=from:to:subject:subject:from:subject;\r\n bh="
            + base64.b64encode(bh)
            + b";\r\n b="
        )
        assert expected == template
        signed = core_impl._header_hash_input(fields, h_list, template, True)
        assert hashlib.sha256(signed).digest() == digest
        assert MESSAGE == wire

    def test_h_list(self, core_impl: ModuleType) -> None:
        """Present names as often as they occur, in the plan's order, then the over-signed."""
        plan = _plan(core_impl)
        assert (b"from", b"subject", b"subject", b"from", b"subject") == plan.h_list(  # type: ignore[attr-defined]
            b"subject:other:from:subject"
        )

    def test_no_from(self, core_impl: ModuleType) -> None:
        """A message without From cannot be signed."""
        with pytest.raises(CanonicalizationError, match="no From field"):
            _plan(core_impl).prepare(b"To: a\r\n\r\nbody\r\n", b"")  # type: ignore[attr-defined]

    def test_body_length_tag(self, core_impl: ModuleType) -> None:
        """With body_length the canonical body length follows the other tags."""
        template, _, _ = _plan(core_impl, body_length=True).prepare(MESSAGE, b" i=@x;")  # type: ignore[attr-defined]
        _, start = core_impl._split_message(MESSAGE)
        _, length = core_impl.body_hash(MESSAGE, start, True)
        assert template.startswith(HEAD + b" i=@x; l=%d;\r\n h=from:" % length)

    def test_known_body_hash_is_used_and_filled(self, core_impl: ModuleType) -> None:
        """A ``known`` dict receives the body hash, and a hash found there is used as it is."""
        known: dict[bool, tuple[bytes, int]] = {}
        plan = _plan(core_impl)
        first = plan.prepare(MESSAGE, b"", known)  # type: ignore[attr-defined]
        _, start = core_impl._split_message(MESSAGE)
        assert {True: core_impl.body_hash(MESSAGE, start, True)} == known
        assert first == plan.prepare(MESSAGE, b"", known)  # type: ignore[attr-defined]
        known[True] = (b"\x00" * 32, 5)
        template, _, _ = plan.prepare(MESSAGE, b"", known)  # type: ignore[attr-defined]
        assert b"bh=" + base64.b64encode(b"\x00" * 32) + b";" in template

    @pytest.mark.parametrize("body_relaxed", [True, False])
    @pytest.mark.parametrize(
        "data", [b"From: a@x\r\nSubject: s\r\n", b"From: a@x\nSubject: s\n", b"From: a@x\r\n"]
    )
    def test_header_without_body(
        self, core_impl: ModuleType, body_relaxed: bool, data: bytes
    ) -> None:
        """A header with no empty line signs as an empty body (RFC 6376 section 3.4.3/3.4.4)."""
        template, digest, wire = _plan(core_impl, True, body_relaxed, True).prepare(data, b"")  # type: ignore[attr-defined]
        empty = b"\r\n" if not body_relaxed else b""
        bh = base64.b64encode(hashlib.sha256(empty).digest())
        assert data.replace(b"\n", b"\r\n").replace(b"\r\r", b"\r") == wire
        assert b" l=%d;" % len(empty) in template
        assert template.endswith(b"bh=" + bh + b";\r\n b=")
        fields, _ = core_impl._split_message(wire)
        signed = core_impl._header_hash_input(
            fields, [b"from"] * (1 + wire.count(b"From")) + [b"subject"] * 2, template, True
        )
        assert hashlib.sha256(signed).digest() == digest

    def test_known_length_of_any_size(self, core_impl: ModuleType) -> None:
        """A caller's known body length is written into l= as it is, however large."""
        known = {True: (b"\0" * 32, 2**70)}
        template, _, _ = _plan(core_impl, body_length=True).prepare(MESSAGE, b"", known)  # type: ignore[attr-defined]
        assert b" l=%d;" % 2**70 in template

    @pytest.mark.parametrize(
        "bad",
        [
            (b"\0" * 5, 5),
            (123, 5),
            [b"\0" * 32, 5],
            (b"\0" * 32, -1),
            (b"\0" * 32,),
            "x",
            (b"\0" * 32, 1.0),
        ],
    )
    def test_known_must_hold_digests(self, core_impl: ModuleType, bad: object) -> None:
        """A known body hash that is not a 32-byte digest and a length is a TypeError."""
        with pytest.raises(TypeError, match="32-byte"):
            _plan(core_impl).prepare(MESSAGE, b"", {True: bad})  # type: ignore[attr-defined]

    @pytest.mark.parametrize("flags", [(True, True), (True, False), (False, True), (False, False)])
    @pytest.mark.parametrize("data", _LINE_END_CASES)
    def test_line_ends_made_crlf(
        self, core_impl: ModuleType, flags: tuple[bool, bool], data: bytes
    ) -> None:
        """Bare CR and LF anywhere are made CRLF: the result is that of the wire form."""
        plan = _plan(core_impl, *flags)
        wire = core_impl.normalize_line_endings(data)
        got = plan.prepare(data, b" t=1;")  # type: ignore[attr-defined]
        assert (wire, plan.prepare(wire, b" t=1;")) == (got[2], got)  # type: ignore[attr-defined]

    def test_known_takes_the_wire_form_as_it_is(self, core_impl: ModuleType) -> None:
        """With ``known`` the message is used as given (callers pass the wire form)."""
        data = MESSAGE.replace(b"Body line", b"Body\nline")
        _, _, wire = _plan(core_impl).prepare(data, b"", {})  # type: ignore[attr-defined]
        assert data is wire or data == wire

    @pytest.mark.parametrize(
        "args",
        [("text", b""), (bytearray(MESSAGE), b""), (MESSAGE, "t=1"), (MESSAGE, b"", [1])],
    )
    def test_bad_arguments(self, core_impl: ModuleType, args: tuple[object, ...]) -> None:
        """Message and tags must be bytes, known a dict: a TypeError, never a crash."""
        with pytest.raises(TypeError):
            _plan(core_impl).prepare(*args)  # type: ignore[attr-defined]

    @pytest.mark.parametrize("size", [0, 1, 2, 3, 32, 53, 54, 55, 64, 108, 256, 512])
    def test_finish_folds_b(self, core_impl: ModuleType, size: int) -> None:
        """b= is the base64 signature in lines of 72 characters; the data follows the CRLF."""
        signature = bytes(range(256))[:size] * (1 + size // 256)
        signature = signature[:size]
        out = _plan(core_impl).finish(b"T: b=", signature, b"DATA")  # type: ignore[attr-defined]
        assert out.startswith(b"T: b=") and out.endswith(b"\r\nDATA")
        folded = out[len(b"T: b=") : -len(b"\r\nDATA")]
        lines = folded.split(b"\r\n ")
        assert all(len(line) == 72 for line in lines[:-1]) and len(lines[-1]) <= 72
        assert base64.b64encode(signature) == b"".join(lines)


def _hashed_input(
    core: ModuleType, fields: object, names: list[bytes], tail: bytes, relaxed: bool
) -> bytes:
    return hashlib.sha256(core._header_hash_input(fields, names, tail, relaxed)).digest()


def _cores() -> list[ModuleType]:
    return [_core_py, _hot.core] if _hot.USING_EXTENSIONS else [_core_py]


@pytest.mark.skipif(not _hot.USING_EXTENSIONS, reason="only the twin is present")
class TestBothAgree:
    @settings(max_examples=200, deadline=None)
    @given(_MESSAGES, st.tuples(st.booleans(), st.booleans(), st.booleans()))
    def test_prepare(self, data: bytes, flags: tuple[bool, bool, bool]) -> None:
        """Both implementations give the same template and digest, or the same error."""
        assert _plan_outcome(_core_py, data, flags) == _plan_outcome(_hot.core, data, flags)

    @settings(max_examples=150, deadline=None)
    @given(_MESSAGES)
    def test_split_header(self, data: bytes) -> None:
        """Both give the same fields, names and body offset, or the same error."""

        def view(core: ModuleType) -> object:
            header = core.split_header(data)
            return (header.fields(), header.names, header.body_start, header.count, header.crlf())

        assert _outcome(view, _core_py) == _outcome(view, _hot.core)

    @settings(max_examples=150, deadline=None)
    @given(st.binary(max_size=600), st.binary(max_size=200), st.binary(max_size=100))
    def test_finish(self, signature: bytes, template: bytes, data: bytes) -> None:
        """Both fold and join alike, for any signature length."""
        assert _plan(_core_py).finish(template, signature, data) == _plan(_hot.core).finish(  # type: ignore[attr-defined]
            template, signature, data
        )


class TestShapeCacheBound:
    """A plan remembers at most 512 header shapes, each keyed by at most 1 KiB of names."""

    @staticmethod
    def _message(names_bytes: int) -> bytes:
        # "from:" + "x1:x2:..." until Header.names is exactly ``names_bytes`` long.
        fields = [b"From: a@example.com\r\n"]
        size = len(b"from")
        i = 0
        while size < names_bytes:
            name = b"x%d" % i
            if size + 1 + len(name) + 2 > names_bytes:  # the last name is never empty
                name = b"y" * (names_bytes - size - 1)
            fields.append(name + b": v\r\n")
            size += 1 + len(name)
            i += 1
        return b"".join(fields) + b"\r\nbody\r\n"

    @pytest.mark.parametrize("size", [1024, 1025, 64 << 10])
    def test_long_name_sequences_are_not_kept(self, core_impl: ModuleType, size: int) -> None:
        """A sequence of field names over 1 KiB is signed alike but not remembered."""
        plan = _plan(core_impl)
        data = self._message(size)
        assert size == len(core_impl.split_header(data).names)
        first = plan.prepare(data, b"")  # type: ignore[attr-defined]
        assert first == plan.prepare(data, b"")  # type: ignore[attr-defined]
        expected = (1, 1024) if size == 1024 else (0, 0)
        assert expected == plan._cache_info()  # type: ignore[attr-defined]
        assert first == _plan(_core_py).prepare(data, b"")  # type: ignore[attr-defined]

    def test_entries_and_bytes_bounded(self, core_impl: ModuleType) -> None:
        """Distinct shapes fill 512 entries, never more, and never more than 512 KiB of keys."""
        plan = _plan(core_impl)
        for i in range(600):
            data = b"X-%d: 1\r\n" % i + self._message(900 + i % 24)
            plan.prepare(data, b"")  # type: ignore[attr-defined]
        entries, key_bytes = plan._cache_info()  # type: ignore[attr-defined]
        assert 512 == entries
        assert key_bytes <= 512 * 1024
