"""Body canonicalization: the compiled core against its pure-Python twin.

Run: ``python -m pytest benchmarks/bench_core.py`` (figures) or with ``-m gate``
(the ratio gate only).
"""

from __future__ import annotations

import random

import pytest

from mailscale import _hot
from mailscale._hot import _core_py

from ._ratio import gate, ratio

pytestmark = pytest.mark.skipif(not _hot.USING_EXTENSIONS, reason="compiled core not built")


def _body(size: int) -> bytes:
    rng = random.Random(42)
    words = [b"hello", b"world", b"  spaced ", b"\ttabbed", b"mail", b"scale"]
    out = bytearray()
    while len(out) < size:
        line = b" ".join(rng.choice(words) for _ in range(rng.randint(3, 14)))
        out += line + (b"  \r\n" if rng.random() < 0.3 else b"\r\n")
    return bytes(out[:size]) + b"\r\n\r\n"


BODY_100K = _body(100_000)


@pytest.mark.parametrize("impl", ["c", "py"])
def test_relaxed_100k(benchmark: pytest.FixtureRequest, impl: str) -> None:
    mod = _hot.core if impl == "c" else _core_py
    out = benchmark(mod._canon_body_relaxed, BODY_100K)  # type: ignore[operator]
    assert out.endswith(b"\r\n")


@pytest.mark.gate
def test_gate_relaxed_canonicalization_vs_twin() -> None:
    """Compiled relaxed canonicalization of 100 KB is well ahead of the twin (target 10x)."""
    assert _hot.core._canon_body_relaxed(BODY_100K) == _core_py._canon_body_relaxed(BODY_100K)
    r = ratio(
        lambda: _hot.core._canon_body_relaxed(BODY_100K),
        lambda: _core_py._canon_body_relaxed(BODY_100K),
        rounds=5,
        clock="cpu",
    )
    gate("core canonicalization", r, 175.0)
