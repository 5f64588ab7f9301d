"""Rate shaping: throughput against `limits`, a naive token bucket and Redis round trips.

``pytest benchmarks/bench_shaping.py`` gives pytest-benchmark figures;
``pytest benchmarks/bench_shaping.py -m gate -s --benchmark-disable`` runs the
ratio gates and prints the measured figures.
"""

from __future__ import annotations

import multiprocessing
import os
import statistics
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


# -- Redis from several processes ------------------------------------------------

#: Processes acquiring at once, and messages (3 keys each) per process per round.
PROCS = 4
PER_PROC = 300
#: Rounds of the multi-process gate (each runs both sides once, alternating which first).
PROC_ROUNDS = 5


def _proc_worker(url: str, index: int, conn: Any) -> None:
    """One acquiring process: on ``(side, n)`` from the parent, acquire ``n`` messages
    (three keys each) one at a time, and send back (start, end) on the monotonic clock,
    which is the same in every process of the machine; ``None`` ends it."""
    import redis
    from limits import RateLimitItemPerHour, storage, strategies

    client = redis.Redis.from_url(url)
    shaper = _redis_shaper(client)
    limiter = strategies.MovingWindowRateLimiter(storage.RedisStorage(url))
    item = RateLimitItemPerHour(10**9)
    hit = limiter.hit
    acquire = shaper.acquire
    # Each process its own messages (its own domains, the shared account and IP keys),
    # as senders of one account on several hosts would have.
    messages = [
        ("sendgrid:key1", "ip:203.0.113.7", f"domain:p{index}-d{i % 50}.example")
        for i in range(PER_PROC)
    ]
    conn.send("ready")
    while (order := conn.recv()) is not None:
        side, n = order
        start = time.perf_counter()
        if side == "mailscale":
            for keys in messages[:n]:
                if not acquire(keys).allowed:
                    raise AssertionError("the generous limit refused a message")
        else:
            for a, b, c in messages[:n]:
                if not (hit(item, a) and hit(item, b) and hit(item, c)):
                    raise AssertionError("the generous limit refused a message")
        conn.send((start, time.perf_counter()))
    client.close()


class _Procs:
    """``PROCS`` acquiring processes (spawned, so they share nothing with this one)."""

    def __init__(self, url: str, count: int = PROCS) -> None:
        ctx = multiprocessing.get_context("spawn")
        self.pipes = []
        self.procs = []
        for index in range(count):
            parent, child = ctx.Pipe()
            proc = ctx.Process(target=_proc_worker, args=(url, index, child), daemon=True)
            proc.start()
            self.pipes.append(parent)
            self.procs.append(proc)
        for pipe in self.pipes:
            if not pipe.poll(120) or pipe.recv() != "ready":
                self.close()
                raise RuntimeError("an acquiring process did not start")

    def rate(self, side: str, n: int = PER_PROC) -> float:
        """Messages per second of all processes acquiring ``n`` messages each at once:
        from the first start to the last end (wall clock)."""
        for pipe in self.pipes:
            pipe.send((side, n))
        spans = []
        for pipe in self.pipes:
            if not pipe.poll(300):
                raise RuntimeError("an acquiring process did not answer")
            spans.append(pipe.recv())
        return len(self.pipes) * n / (max(e for _, e in spans) - min(s for s, _ in spans))

    def close(self) -> None:
        for pipe in self.pipes:
            try:
                pipe.send(None)
            except OSError:
                pass
        for proc in self.procs:
            proc.join(10)
            if proc.is_alive():
                proc.terminate()
                proc.join(5)


def multiprocess_ratio(url: str, rounds: int = PROC_ROUNDS) -> tuple[float, float, float]:
    """The median per-round ratio of mailscale's rate over `limits`' rate, with the
    median rates (messages/s) of each side: ``PROCS`` processes at once, sides
    alternating which goes first."""
    procs = _Procs(url)
    try:
        procs.rate("mailscale", 50)  # warm up: scripts loaded, connections open
        procs.rate("limits", 50)
        ours, theirs = [], []
        for i in range(rounds):
            if i % 2:
                theirs.append(procs.rate("limits"))
                ours.append(procs.rate("mailscale"))
            else:
                ours.append(procs.rate("mailscale"))
                theirs.append(procs.rate("limits"))
    finally:
        procs.close()
    ratios = [a / b for a, b in zip(ours, theirs, strict=True)]
    return statistics.median(ratios), statistics.median(ours), statistics.median(theirs)


@pytest.mark.gate
def test_multiprocess_vs_limits(redis_client: Any) -> None:
    """Four processes acquiring one message (three keys) at a time through RedisShaper on
    one redis-server beat four processes making the same checks through `limits`'
    RedisStorage with its moving window (exact over any window, as GCRA is)."""
    kw = redis_client.connection_pool.connection_kwargs
    r, ours, theirs = multiprocess_ratio(f"redis://{kw['host']}:{kw['port']}/0")
    print(f"\nredis {PROCS} processes: mailscale {ours:,.0f} vs limits {theirs:,.0f} messages/s")
    gate(f"redis {PROCS} processes vs limits moving window", r, 0.8)
