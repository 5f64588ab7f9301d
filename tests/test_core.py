"""The compiled core and its pure-Python twin: presence and agreement."""

from __future__ import annotations

import os
import sys
from types import ModuleType

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mailscale import _hot
from mailscale._hot import _core_py

# Bytes that exercise the canonicalization rules: line ends, whitespace, text.
_MAIL_BYTES = st.lists(
    st.sampled_from([b"\r\n", b"\r", b"\n", b" ", b"\t", b"a", b"Z", b"\x00", b"\xff", b"  \t "]),
    max_size=60,
).map(b"".join)


class TestExtensionGuard:
    def test_extension_loaded_when_expected(self) -> None:
        """The compiled core is in use unless the twin was asked for."""
        wanted = not os.environ.get("MAILSCALE_NO_EXTENSIONS") and (
            sys.implementation.name == "cpython"
        )
        assert wanted == _hot.USING_EXTENSIONS
        if wanted:
            assert _hot.core.__name__ == "mailscale._hot._core"
            assert _hot.core.__file__ is not None
            assert not _hot.core.__file__.endswith(".py")
        else:
            assert _hot.core is _core_py

    def test_public_surface_is_what_the_library_calls(self, core_impl: ModuleType) -> None:
        """Both cores export the names signing and shaping call, and nothing else public."""
        public = {n for n in dir(core_impl) if not n.startswith("_")} - {"annotations"}
        assert {
            "GCRATable",
            "Header",
            "SignPlan",
            "body_hash",
            "normalize_line_endings",
            "parse_signature",
            "split_header",
            "verify_step",
        } == public

    def test_same_public_names(self) -> None:
        """The compiled core exposes every name of the twin."""
        if not _hot.USING_EXTENSIONS:
            pytest.skip("MAILSCALE_NO_EXTENSIONS is set: only the twin is present")
        missing = [name for name in _core_py.__all__ if not hasattr(_hot.core, name)]
        assert [] == missing


class TestBodyCanonicalization:
    @pytest.mark.parametrize(
        ("body", "expected"),
        [
            (b"", b"\r\n"),
            (b"\r\n", b"\r\n"),
            (b"\r\n\r\n\r\n", b"\r\n"),
            (b"abc", b"abc\r\n"),
            (b"abc\r\n", b"abc\r\n"),
            (b"abc\r\n\r\n\r\n", b"abc\r\n"),
            (b" C \r\nD \t E\r\n\r\n\r\n", b" C \r\nD \t E\r\n"),  # RFC 6376 3.4.5
            (b"a  \r\n\r\n b", b"a  \r\n\r\n b\r\n"),
        ],
    )
    def test_simple(self, core_impl: ModuleType, body: bytes, expected: bytes) -> None:
        """Simple body canonicalization keeps bytes and trims trailing empty lines."""
        assert expected == core_impl._canon_body_simple(body)

    @pytest.mark.parametrize(
        ("body", "expected"),
        [
            (b"", b""),
            (b"\r\n", b""),
            (b" \t \r\n\r\n", b""),
            (b"abc", b"abc\r\n"),
            (b" C \r\nD \t E\r\n\r\n\r\n", b" C\r\nD E\r\n"),  # RFC 6376 3.4.5
            (b"a\t\tb  \r\n  \r\nc", b"a b\r\n\r\nc\r\n"),
            (b"x\r\n \t", b"x\r\n"),
            (b"bare\rcr\nlf \r\n", b"bare\rcr\nlf\r\n"),
            # Runs across the 64-byte blocks of the compiled core, before a bare
            # CR, a CRLF or the end of the data.
            (b"x" * 62 + b"  \t  y\r\n", b"x" * 62 + b" y\r\n"),
            (b"x" * 63 + b" \r\n" + b"\t" * 70 + b"z", b"x" * 63 + b"\r\n z\r\n"),
            (b"a" + b" " * 200 + b"\rb \t", b"a \rb\r\n"),
            (b"\t\t<td>\r\n" * 9 + b" " * 65, b" <td>\r\n" * 9),
        ],
    )
    def test_relaxed(self, core_impl: ModuleType, body: bytes, expected: bytes) -> None:
        """Relaxed body canonicalization compresses and trims whitespace."""
        assert expected == core_impl._canon_body_relaxed(body)

    @pytest.mark.parametrize(
        ("data", "expected"),
        [
            (b"", b""),
            (b"a\nb\rc\r\nd", b"a\r\nb\r\nc\r\nd"),
            (b"\n\n", b"\r\n\r\n"),
            (b"\r\r\n", b"\r\n\r\n"),
            (b"\n\r", b"\r\n\r\n"),
        ],
    )
    def test_normalize_line_endings(
        self, core_impl: ModuleType, data: bytes, expected: bytes
    ) -> None:
        """Bare CR and bare LF become CRLF; CRLF stays."""
        assert expected == core_impl.normalize_line_endings(data)

    @pytest.mark.parametrize(
        "func", ["_canon_body_simple", "_canon_body_relaxed", "normalize_line_endings"]
    )
    @pytest.mark.parametrize("bad", ["text", None, 12])
    def test_non_bytes_rejected(self, core_impl: ModuleType, func: str, bad: object) -> None:
        """Anything but a bytes-like object is a TypeError, never a crash."""
        with pytest.raises(TypeError):
            getattr(core_impl, func)(bad)

    def test_accepts_buffers(self, core_impl: ModuleType) -> None:
        """bytearray and memoryview give the same result as bytes."""
        body = b"a  b \r\n\r\n"
        expected = core_impl._canon_body_relaxed(body)
        assert expected == core_impl._canon_body_relaxed(bytearray(body))
        assert expected == core_impl._canon_body_relaxed(memoryview(body))


@pytest.mark.skipif(not _hot.USING_EXTENSIONS, reason="only the twin is present")
class TestTwinAgreement:
    @settings(max_examples=400, deadline=None)
    @given(st.one_of(st.binary(max_size=300), _MAIL_BYTES))
    def test_body_canonicalization_agrees(self, data: bytes) -> None:
        """The compiled core and the twin return identical bytes for any input."""
        c = _hot.core
        for name in ("_canon_body_simple", "_canon_body_relaxed", "normalize_line_endings"):
            assert getattr(_core_py, name)(data) == getattr(c, name)(data), name

    @settings(max_examples=200, deadline=None)
    @given(_MAIL_BYTES)
    def test_relaxed_is_idempotent(self, data: bytes) -> None:
        """Canonicalizing a canonical body changes nothing."""
        once = _hot.core._canon_body_relaxed(data)
        assert once == _hot.core._canon_body_relaxed(once)


class TestIntegersIntoTheCore:
    @pytest.mark.parametrize("until", [-(2**63) - 1, -(10**76), -(2**62)])
    def test_block_until_far_past(self, core_impl: ModuleType, until: int) -> None:
        """A block_until time far in the past, below any int64, blocks nothing on both
        cores (no OverflowError)."""
        table = core_impl.GCRATable(lambda key: 0, lambda: 5.0)
        pid = table.add_param(10**9, 10**9, 1)
        table.bind("k", pid)
        table.acquire("k")
        before = table.tat("k")
        table.block_until("k", until)
        assert before == table.tat("k")
