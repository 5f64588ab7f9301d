"""Rate shaping: throughput against `limits`, a naive token bucket and Redis round trips.

``pytest benchmarks/bench_shaping.py`` gives pytest-benchmark figures;
``pytest benchmarks/bench_shaping.py -m gate -s --benchmark-disable`` runs the
ratio gates and prints the measured figures.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from benchmarks._ratio import gate, gates, ratio
from mailscale import _hot
from mailscale._hot import _core_py
from mailscale.shaping import Limit, RedisShaper, Shaper

BATCH = 1000
# Generous enough that every request in the hot loop is admitted (the steady-state path).
_HUGE = Limit(10**9, 1.0, burst=10**6)
_DOMAINS = [f"domain:d{i}.example" for i in range(50)]
_MESSAGES = [("sendgrid:key1", "ip:203.0.113.7", _DOMAINS[i % 50]) for i in range(BATCH)]


class NaiveBucket:
    """The 15-line Python token bucket people write first (the single-key reference)."""

    def __init__(self, rate: float, capacity: float, clock: Callable[[], float] = time.monotonic):
        self.rate = rate
        self.capacity = capacity
        self.tokens = capacity
        self.clock = clock
        self.last = clock()

    def acquire(self, n: int = 1) -> bool:
        now = self.clock()
        self.tokens = min(self.capacity, self.tokens + (now - self.last) * self.rate)
        self.last = now
        if self.tokens >= n:
            self.tokens -= n
            return True
        return False


def _shaper(core: Any = None) -> Shaper:
    return Shaper({"sendgrid:*": _HUGE, "ip:*": _HUGE, "domain:*": _HUGE}, implementation=core)


def _limits_three_checks() -> Callable[[], None]:
    """`limits` (memory storage, fixed window) making the same three checks per message."""
    from limits import RateLimitItemPerSecond, storage, strategies

    limiter = strategies.FixedWindowRateLimiter(storage.MemoryStorage())
    item = RateLimitItemPerSecond(10**9)
    hit = limiter.hit

    def run() -> None:
        for a, b, c in _MESSAGES:
            hit(item, a)
            hit(item, b)
            hit(item, c)

    return run


# -- pytest-benchmark figures ------------------------------------------------


class TestFigures:
    def test_acquire_many_3_keys(self, benchmark: Any) -> None:
        """acquire_many over 1,000 messages x 3 keys (selected core)."""
        shaper = _shaper()
        out = benchmark(shaper.acquire_many, _MESSAGES)
        assert all(d.allowed for d in out)

    def test_acquire_many_3_keys_twin(self, benchmark: Any) -> None:
        """The same on the pure-Python twin."""
        shaper = _shaper(_core_py)
        out = benchmark(shaper.acquire_many, _MESSAGES)
        assert all(d.allowed for d in out)

    def test_limits_3_checks(self, benchmark: Any) -> None:
        """`limits`, three hits per message, 1,000 messages."""
        benchmark(_limits_three_checks())

    def test_acquire_single_key(self, benchmark: Any) -> None:
        """One acquire() call on one key."""
        shaper = _shaper()
        assert benchmark(shaper.acquire, "sendgrid:key1").allowed

    def test_naive_bucket(self, benchmark: Any) -> None:
        """The naive Python token bucket, one call."""
        assert benchmark(NaiveBucket(1e9, 1e9).acquire)


# -- ratio gates -------------------------------------------------------------


_COMPILED_ONLY = pytest.mark.skipif(
    not _hot.USING_EXTENSIONS, reason="gate measures the compiled core (twin selected)"
)


@pytest.mark.gate
@_COMPILED_ONLY
class TestGates:
    def test_acquire_many_vs_limits(self) -> None:
        """acquire_many (3 keys per message) beats `limits` making the same checks by >= 40x."""
        shaper = _shaper()
        r = ratio(
            lambda: shaper.acquire_many(_MESSAGES), _limits_three_checks(), rounds=5, clock="cpu"
        )
        gate("acquire_many vs limits", r, 130.0)

    def test_single_acquire_vs_naive_bucket(self) -> None:
        """Single-key acquire() from Python beats a naive Python token bucket (>= 1.1x)."""
        shaper = _shaper()
        bucket = NaiveBucket(1e9, 1e9)
        acquire = shaper.acquire

        def ours() -> None:
            for _ in range(1000):
                acquire("sendgrid:key1")

        def naive() -> None:
            for _ in range(1000):
                bucket.acquire()

        r = ratio(ours, naive, rounds=5, clock="cpu")
        gate("acquire vs naive bucket", r, 2.62)

    def test_live_keys_memory(self) -> None:
        """1 M live keys fit in 128 MB of process memory (compiled core)."""
        mb = _live_keys_mb(1_000_000)
        print(f"\n1 M live keys: {mb:.1f} MB RSS growth")
        assert mb <= 128


_MEMORY_SCRIPT = textwrap.dedent(
    """
    import gc, sys
    from mailscale import _hot
    from mailscale.shaping import Limit, Shaper

    assert _hot.USING_EXTENSIONS, "compiled core not loaded"

    def rss():
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * 4096

    n = int(sys.argv[1])
    shaper = Shaper({"domain:*": Limit(10, 3600.0)})
    gc.collect()
    before = rss()
    for start in range(0, n, 10000):
        shaper.acquire_many([f"domain:d{i}.example" for i in range(start, min(n, start + 10000))])
    gc.collect()
    assert len(shaper) >= n, len(shaper)
    print((rss() - before) / 2**20)
    """
)


def _live_keys_mb(n: int) -> float:
    """RSS growth (MB) of a fresh process holding ``n`` live keys."""
    env = dict(os.environ)
    # The child imports the same mailscale as this process.
    env["PYTHONPATH"] = os.pathsep.join(p for p in sys.path if p)
    out = subprocess.run(
        [sys.executable, "-c", _MEMORY_SCRIPT, str(n)],
        check=True,
        capture_output=True,
        text=True,
        env=env,
    )
    return float(out.stdout.strip())


# -- Redis ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def redis_client() -> Iterator[Any]:
    """A client on a private redis-server (skips when the binary is missing)."""
    redis = pytest.importorskip("redis", reason="redis-py is not installed (the 'redis' extra)")
    from tests.peers.redis_server import RedisServer, redis_server_binary

    if redis_server_binary() is None:
        pytest.skip("redis-server binary not found on PATH (Debian: apt-get install redis-server)")
    with RedisServer() as server:
        client = redis.Redis.from_url(server.url)
        yield client
        client.close()


def _redis_shaper(client: Any) -> RedisShaper:
    return RedisShaper(client, {"sendgrid:*": _HUGE, "ip:*": _HUGE, "domain:*": _HUGE})


def _limits_redis(client: Any, messages: list[tuple[str, str, str]]) -> Callable[[], None]:
    """`limits` on the same redis-server (RedisStorage, fixed window): the three checks
    of every message, one hit (one round trip) each: the outside reference."""
    from limits import RateLimitItemPerSecond, storage, strategies

    kw = client.connection_pool.connection_kwargs
    limiter = strategies.FixedWindowRateLimiter(
        storage.RedisStorage(f"redis://{kw['host']}:{kw['port']}")
    )
    item = RateLimitItemPerSecond(10**9)
    hit = limiter.hit

    def run() -> None:
        for a, b, c in messages:
            hit(item, a)
            hit(item, b)
            hit(item, c)

    return run


class TestRedis:
    def test_redis_batched(self, benchmark: Any, redis_client: Any) -> None:
        """RedisShaper.acquire_many over 500 messages x 3 keys (one round trip)."""
        shaper = _redis_shaper(redis_client)
        out = benchmark(shaper.acquire_many, _MESSAGES[:500])
        assert all(d.allowed for d in out)

    def test_redis_one_at_a_time(self, benchmark: Any, redis_client: Any) -> None:
        """RedisShaper.acquire, one message (3 keys) per round trip."""
        shaper = _redis_shaper(redis_client)
        assert benchmark(shaper.acquire, _MESSAGES[0]).allowed

    @pytest.mark.gate
    def test_batched_vs_one_at_a_time(self, redis_client: Any) -> None:
        """Batching decisions into one script call beats one round trip each (target 3x),
        and both beat `limits`' Redis storage making the same checks on the same server."""
        shaper = _redis_shaper(redis_client)
        batch = _MESSAGES[:500]
        few = _MESSAGES[:100]
        limits_batch = _limits_redis(redis_client, batch)
        limits_few = _limits_redis(redis_client, few)
        limits_batch()

        def batched() -> None:
            shaper.acquire_many(batch)

        def one_at_a_time() -> None:
            for keys in few:
                shaper.acquire(keys)

        kw: dict[str, Any] = {"rounds": 5, "min_time": 0.05, "clock": "wall"}
        # Per message: each side handles ``batch`` (500) or ``few`` (100) messages per call.
        r_self = ratio(batched, one_at_a_time, **kw) * len(batch) / len(few)
        r_batched = ratio(batched, limits_batch, **kw)
        r_single = ratio(one_at_a_time, limits_few, **kw)
        gates(
            ("redis batched vs one at a time", r_self, 1.46),
            ("redis batched vs limits RedisStorage", r_batched, 4.32),
            ("redis one at a time vs limits RedisStorage", r_single, 0.63),
        )
