"""RedisShaper's cache of limit parameters per key is bounded in bytes as well as keys."""

from __future__ import annotations

import pytest
import redis

from mailscale.shaping import Limit, RedisShaper, _redis


def _shaper() -> RedisShaper:
    # The parameters are worked out locally: no command reaches this (unconnected) client.
    client = redis.Redis(host="127.0.0.1", port=1)
    return RedisShaper(client, {"domain:*": Limit(10, 1.0)})


class TestParameterCacheBounds:
    def test_long_distinct_keys_stay_within_the_byte_bound(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """Many distinct long keys keep the accounted bytes within _CACHE_MAX_BYTES, and
        the accounting matches the keys held."""
        monkeypatch.setattr(_redis, "_CACHE_MAX_BYTES", 64_000)
        shaper = _shaper()
        expected = shaper._params("domain:example.com")
        for i in range(500):
            key = f"domain:{i}-" + "x" * 900
            assert expected == shaper._params(key)
            assert shaper._cache_bytes <= 64_000
            assert shaper._cache_bytes == sum(160 + len(k) for k in shaper._cache)
        assert 0 < len(shaper._cache) < 500

    def test_a_very_long_key_is_not_kept(self) -> None:
        """A key above _CACHE_MAX_KEY characters is worked out each time, not cached."""
        shaper = _shaper()
        key = "domain:" + "y" * 5_000
        assert shaper._params("domain:a") == shaper._params(key)
        assert (["domain:a"], 160 + 8) == (list(shaper._cache), shaper._cache_bytes)

    def test_non_ascii_keys_count_four_bytes_a_character(self) -> None:
        """Non-ASCII keys are accounted at 4 bytes per character."""
        shaper = _shaper()
        shaper._params("domain:\u00e9t\u00e9")
        assert 160 + 4 * len("domain:\u00e9t\u00e9") == shaper._cache_bytes
