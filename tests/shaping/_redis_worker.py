"""Worker processes for the shared-shaper tests (importable by multiprocessing's spawn)."""

from __future__ import annotations

import time
from typing import Any


def hammer(url: str, count: int, per: float, seconds: float, queue: Any) -> None:
    """Acquire one key flat out for ``seconds``; report Redis's time of every admission."""
    import redis

    from mailscale.shaping import Limit, RedisShaper

    shaper = RedisShaper(redis.Redis.from_url(url), {"api:key": Limit(count, per)})
    admitted = []
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        for d in shaper.acquire_many(["api:key"] * 4):
            if d.allowed:
                admitted.append(shaper.last_server_time)
    queue.put(admitted)


def spin(url: str) -> None:
    """Acquire forever (until killed)."""
    import redis

    from mailscale.shaping import Limit, RedisShaper

    shaper = RedisShaper(redis.Redis.from_url(url), {"api:*": Limit(50, 0.5, burst=5)})
    while True:
        shaper.acquire_many(["api:a", ("api:a", "api:b"), "api:b"] * 20)
