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

from benchmarks._ratio import best_rate, ratio
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
        r = ratio(lambda: shaper.acquire_many(_MESSAGES), _limits_three_checks(), ops=BATCH)
        rate = best_rate(lambda: shaper.acquire_many(_MESSAGES), ops=BATCH)
        print(f"\nacquire_many 3 keys: {rate:,.0f} msgs/s; vs limits x3: {r:.1f}x")
        assert r >= 40

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

        r = ratio(ours, naive, ops=1000)
        print(
            f"\nsingle-key acquire vs naive bucket: {r:.2f}x ({best_rate(ours, ops=1000):,.0f}/s)"
        )
        assert r >= 1.1

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


def _redis_rates(client: Any, seconds: float = 0.6) -> tuple[float, float, float]:
    """(batched msgs/s, batched msgs per client CPU second, one-at-a-time msgs/s)."""
    shaper = _redis_shaper(client)
    batch = _MESSAGES[:500]
    shaper.acquire_many(batch)
    n, wall, cpu = 0, time.perf_counter(), time.process_time()
    while time.perf_counter() - wall < seconds:
        shaper.acquire_many(batch)
        n += len(batch)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    m, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds / 2:
        for keys in batch[:100]:
            shaper.acquire(keys)
        m += 100
    single = m / (time.perf_counter() - start)
    return n / wall, n / max(cpu, 1e-9), single


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
        """Batching decisions into one script call beats one round trip each by >= 3x."""
        batched, per_cpu, single = _redis_rates(redis_client)
        print(
            f"\nRedis batched: {batched:,.0f} msgs/s ({per_cpu:,.0f} per client CPU-second); "
            f"one at a time: {single:,.0f} msgs/s; ratio {batched / single:.1f}x"
        )
        assert batched / single >= 3
