"""The JSON providers' cache of decoded bodies is bounded in bytes as well as entries."""

from __future__ import annotations

import gc
import tracemalloc

from mailscale.message import Envelope
from mailscale.transports._mime import BodyCache, decompose


def _envelope(seed: int, size: int) -> Envelope:
    word = b"%d " % seed
    body = word * (size // len(word)) + b"\r\n"
    return Envelope(
        sender="a@example.org",
        recipients=["b@example.com"],
        message=b"From: a@example.org\r\nSubject: x\r\n\r\n" + body,
    )


class TestBodyCacheBounds:
    def test_large_distinct_bodies_stay_within_the_byte_bound(self) -> None:
        """Many large, distinct bodies keep the cache within max_bytes (raw and decoded
        counted), and memory grows by no more than the cache accounts for."""
        cache = BodyCache(maxsize=64, max_bytes=4 << 20)
        envelopes = [_envelope(seed, 400_000) for seed in range(40)]
        gc.collect()
        tracemalloc.start()
        try:
            before = tracemalloc.get_traced_memory()[0]
            for env in envelopes:
                decompose(env, cache)
                assert cache.accounted <= cache.max_bytes
            gc.collect()
            grown = tracemalloc.get_traced_memory()[0] - before
        finally:
            tracemalloc.stop()
        assert 0 < len(cache._items) < 40
        assert grown <= cache.accounted + (256 << 10)

    def test_a_body_above_a_quarter_of_the_bound_is_not_kept(self) -> None:
        """A body larger than max_bytes / 4 is decoded but not cached."""
        cache = BodyCache(max_bytes=1 << 20)
        parts = decompose(_envelope(1, 400_000), cache)
        assert parts.text is not None and 0 == len(cache._items) == cache.accounted
        decompose(_envelope(2, 1_000), cache)
        assert 1 == len(cache._items)

    def test_default_bound(self) -> None:
        """The transports' default: 64 bodies and 32 MiB."""
        cache = BodyCache()
        assert (64, 32 << 20) == (cache.maxsize, cache.max_bytes)
