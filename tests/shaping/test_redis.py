"""RedisShaper against a real redis-server on a free loopback port."""

from __future__ import annotations

import asyncio
import bisect
import itertools
import multiprocessing
import os
import signal
import time
from collections.abc import Iterator
from typing import Any

import pytest

from mailscale.errors import ShaperUnavailable, ShapingError
from mailscale.shaping import Limit, RedisShaper, Shaper

from ._clock import FakeClock

redis = pytest.importorskip("redis", reason="redis-py is not installed (the 'redis' extra)")

from peers.redis_server import RedisServer, redis_server_binary  # noqa: E402


@pytest.fixture(scope="module")
def redis_url() -> Iterator[str]:
    """A private redis-server for this module."""
    if redis_server_binary() is None:
        pytest.skip("redis-server binary not found on PATH (Debian: apt-get install redis-server)")
    with RedisServer() as server:
        yield server.url


@pytest.fixture
def client(redis_url: str) -> Iterator[Any]:
    """A client on an emptied database."""
    c = redis.Redis.from_url(redis_url)
    c.flushdb()
    yield c
    c.close()


def _dead_client(port: int) -> Any:
    """A client for a port nobody listens on, without redis-py's own retries."""
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    return redis.Redis(
        host="127.0.0.1", port=port, socket_connect_timeout=0.2, retry=Retry(NoBackoff(), 0)
    )


def _max_window(times: list[float], per: float) -> int:
    times = sorted(times)
    return max(
        (bisect.bisect_right(times, t + per + 1e-9) - i for i, t in enumerate(times)), default=0
    )


class TestDecisions:
    def test_burst_then_refusal_with_retry(self, client: Any) -> None:
        """A fresh key admits its burst, then refuses with a positive retry_after."""
        shaper = RedisShaper(client, {"api:*": Limit(10, 1.0, burst=3)})
        got = [shaper.acquire("api:k") for _ in range(4)]
        assert [True, True, True, False] == [d.allowed for d in got]
        assert 0 < got[3].retry_after <= 1.0 / 8 + 0.01

    def test_batch_matches_in_process_shaper(self, client: Any) -> None:
        """One batch decided in Redis gives the same answers as the in-process Shaper."""
        limits = {
            "a": Limit(5, 1.0, burst=2),
            "b": Limit(5, 1.0, burst=3),
            "domain:*": Limit(9, 1.0, burst=4),
        }
        batch: list[Any] = [
            "a",
            ("a", "b"),
            "b",
            ("b", "domain:x"),
            "domain:x",
            ("a", "domain:y"),
            "b",
            "b",
            ("domain:y", "domain:x"),
        ] * 2
        expected = [d.allowed for d in Shaper(limits, clock=FakeClock()).acquire_many(batch)]
        got = [d.allowed for d in RedisShaper(client, limits).acquire_many(batch)]
        assert expected == got

    def test_all_or_nothing(self, client: Any) -> None:
        """A refused multi-key request leaves every key untouched."""
        shaper = RedisShaper(client, {"tight": Limit(1, 10.0), "wide": Limit(3, 10.0, burst=3)})
        assert shaper.acquire("tight").allowed
        for _ in range(5):
            assert not shaper.acquire(("wide", "tight")).allowed
        assert [True, True, True, False] == [shaper.acquire("wide").allowed for _ in range(4)]

    def test_non_strict_unknown_keys_are_unlimited(self, client: Any) -> None:
        """With strict=False a key without a rule never limits, even alone in a batch."""
        shaper = RedisShaper(client, {"k": Limit(1, 60.0)}, strict=False)
        assert all(d.allowed for d in shaper.acquire_many(["free"] * 50))
        assert [True, False] == [d.allowed for d in shaper.acquire_many([("k", "free")] * 2)]

    def test_large_batch_in_several_script_calls(self, client: Any) -> None:
        """A batch bigger than batch_size is still decided in order, exactly."""
        shaper = RedisShaper(client, {"k": Limit(100, 60.0, burst=37)}, batch_size=10)
        decisions = shaper.acquire_many(["k"] * 95)
        assert [True] * 37 + [False] * 58 == [d.allowed for d in decisions]

    def test_largest_batch_of_distinct_keys(self, client: Any) -> None:
        """A full batch_size of requests over 20,000 distinct keys is decided in one call."""
        shaper = RedisShaper(client, {"d:*": Limit(5, 60.0, burst=1)}, batch_size=10_000)
        batch = [(f"d:a{i}", f"d:b{i}") for i in range(10_000)]
        assert all(d.allowed for d in shaper.acquire_many(batch))
        again = shaper.acquire_many([*batch[:3], ("d:a0", "d:fresh")])
        assert [False] * 4 == [d.allowed for d in again]
        assert 20_000 == client.dbsize()

    def test_reserve_spaces_sends(self, client: Any) -> None:
        """reserve() charges unconditionally and hands out increasing send times."""
        clock = FakeClock()
        shaper = RedisShaper(client, {"k": Limit(10, 1.0, burst=1)}, clock=clock)
        start = time.monotonic()
        times = [shaper.reserve("k") for _ in range(4)]
        elapsed = time.monotonic() - start
        assert clock() == times[0]
        assert all(b > a for a, b in itertools.pairwise(times))
        # Three emission intervals of 0.1 s, less the real time spent between the calls.
        assert 0.3 - elapsed - 0.001 <= times[3] - times[0] <= 0.3 + 0.001

    def test_keys_share_one_hash_tag_and_expire(self, client: Any) -> None:
        """Every key carries the shaper's hash tag and expires once drained."""
        shaper = RedisShaper(client, {"k:*": Limit(5, 1.0, burst=1)}, hash_tag="tenant1")
        assert shaper.acquire(("k:a", "k:b")).allowed
        names = sorted(k.decode() for k in client.keys("*"))
        assert ["mailscale:gcra:{tenant1}:k:a", "mailscale:gcra:{tenant1}:k:b"] == names
        assert client.pttl(names[0]) <= 201
        time.sleep(0.3)
        assert [] == client.keys("*")  # KEYS skips expired keys; DBSIZE may not


class TestWaiting:
    def test_wait_and_acquire_async_share_the_timeout_rule(self, client: Any) -> None:
        """wait() sleeps until admitted and gives up past its timeout; acquire_async the same."""
        slept: list[float] = []
        shaper = RedisShaper(
            client, {"k": Limit(20, 1.0, burst=1)}, sleep=lambda s: (slept.append(s), time.sleep(s))
        )
        assert shaper.wait("k").allowed
        assert shaper.wait("k").allowed
        assert 1 == len(slept) and 0.0 < slept[0] <= 0.05
        refused = shaper.wait("k", timeout=0.0)
        assert not refused.allowed

        async def main() -> list[bool]:
            first = await shaper.acquire_async("k")
            late = await shaper.acquire_async("k", timeout=0.0)
            return [first.allowed, late.allowed]

        assert [True, False] == asyncio.run(main())


class TestSharedBackoff:
    def test_retry_after_blocks_every_client(self, client: Any) -> None:
        """A Retry-After seen by one client blocks the key for another client too."""
        limits = {"api:*": Limit(100, 1.0)}
        one, two = RedisShaper(client, limits), RedisShaper(client, limits)
        one.observe_headers("api:k", {"Retry-After": "0.3"})
        denied = two.acquire("api:k")
        assert not denied.allowed
        assert 0.0 < denied.retry_after <= 0.3  # shrinks as time passes; never above
        assert two.acquire("api:other").allowed
        time.sleep(denied.retry_after + 0.01)
        assert two.acquire("api:k").allowed

    def test_throttle_is_shared_and_recovers(self, client: Any) -> None:
        """A throttle set by one client slows the key for another, and ends after its duration."""
        limits = {"api:*": Limit(100, 1.0, burst=1)}
        one, two = RedisShaper(client, limits), RedisShaper(client, limits)
        seconds, micros = client.time()
        started = seconds + micros / 1e6  # Redis's clock, at or before the throttle began
        one.throttle("api:k", 0.25, 0.5)
        assert 0 < client.pttl(one.redis_key("api:k")) <= 501  # kept until the throttle ends
        assert two.acquire("api:k").allowed
        # A quarter of 100/s: 40 ms apart, less as recovery goes on (linearly over 0.5 s).
        # Time is Redis's: judged by the server time of the decision, not by sleeping.
        throttled = two.acquire("api:k").retry_after
        assert 0.0 < throttled <= 0.040
        if two.last_server_time - started <= 0.05:  # at most 10% recovered: over 30 ms
            assert 0.0101 < throttled
        assert two.acquire("api:other").allowed
        assert 0.0 < two.acquire("api:other").retry_after <= 0.0101
        two.block_for("api:k", 0.1)  # a block keeps the throttle
        assert b":" in client.get(one.redis_key("api:k"))
        time.sleep(0.55)
        assert two.acquire("api:k").allowed
        assert 0.0 < two.acquire("api:k").retry_after <= 0.0101
        assert b":" not in client.get(one.redis_key("api:k"))

    def test_throttled_key_stays_within_its_window(self, client: Any) -> None:
        """Driven flat out while throttled, no second admits more than the throttled rate allows."""
        shaper = RedisShaper(client, {"api:k": Limit(200, 1.0)})
        shaper.throttle("api:k", 0.2, 60.0)
        times: list[float] = []
        end = time.monotonic() + 1.2
        while time.monotonic() < end:
            if all(d.allowed for d in shaper.acquire_many(["api:k"])):
                times.append(time.monotonic())
        # 200/s at a fifth (recovering by at most 2% in 1.2 s) plus the burst of 2; how
        # many are admitted depends on the machine's speed, so only the ceiling is asserted.
        assert 2 <= _max_window(times, 1.0) <= 0.2 * 1.02 * 200 + 2 + 1

    def test_bad_throttle(self, client: Any) -> None:
        """Factors outside [0.01, 1] and bad durations raise ShapingError; nothing is stored."""
        shaper = RedisShaper(client, {"k": Limit(5, 1.0)})
        for factor, duration in (
            (0.0, 1.0),
            (1.5, 1.0),
            (float("nan"), 1.0),
            (True, 1.0),
            (0.5, 0),
            (0.5, -1.0),
            (0.5, float("inf")),
        ):
            with pytest.raises(ShapingError, match="throttle"):
                shaper.throttle("k", factor, duration)  # type: ignore[arg-type]
        assert 0 == client.dbsize()

    def test_learned_limit_is_local(self, client: Any) -> None:
        """X-RateLimit-Limit changes the observing client's configuration only (the
        learned limit counts what the configured one counted)."""
        limits = {"sendgrid:*": Limit(1000, 3600.0, unit="request")}
        one, two = RedisShaper(client, limits), RedisShaper(client, limits)
        one.observe_headers("sendgrid:k", [("X-RateLimit-Limit", "600")])
        assert Limit(600, 3600.0, burst=6, unit="request") == one.limit_for("sendgrid:k")
        assert Limit(1000, 3600.0, unit="request") == two.limit_for("sendgrid:k")


class TestFailures:
    def test_unreachable_redis_raises_typed_error(self) -> None:
        """With Redis down and no fallback the caller gets ShaperUnavailable, never an admission."""
        from peers.redis_server import _free_port

        dead = _dead_client(_free_port())
        shaper = RedisShaper(dead, {"k": Limit(5, 1.0)})
        with pytest.raises(ShaperUnavailable):
            shaper.acquire("k")
        with pytest.raises(ShaperUnavailable):
            shaper.acquire_many(["k", "k"])
        with pytest.raises(ShaperUnavailable):
            shaper.reserve("k")

    def test_explicit_fallback_decides_while_down(self) -> None:
        """A fallback Shaper chosen by the caller decides, with its own smaller limit."""
        from peers.redis_server import _free_port

        dead = _dead_client(_free_port())
        local = Shaper({"k": Limit(2, 60.0, burst=2)}, clock=FakeClock())
        shaper = RedisShaper(dead, {"k": Limit(50, 60.0)}, fallback=local)
        assert [True, True, False] == [d.allowed for d in shaper.acquire_many(["k"] * 3)]

    def test_script_error_is_not_unavailability(self, client: Any) -> None:
        """Redis rejecting the script raises ShapingError; the fallback does not take over."""
        local = Shaper({"k": Limit(50, 60.0, burst=1)}, clock=FakeClock())
        shaper = RedisShaper(client, {"k": Limit(5, 60.0)}, fallback=local)
        client.set(shaper.redis_key("k"), "not a number")
        for call in (lambda: shaper.acquire("k"), lambda: shaper.acquire_many(["k"] * 3)):
            with pytest.raises(ShapingError, match="rejected the shaping script") as info:
                call()
            assert not isinstance(info.value, ShaperUnavailable)
        assert local.acquire("k").allowed  # the fallback was never charged

    @pytest.mark.parametrize(
        ("call", "match"),
        [
            (lambda s: s.acquire("nope"), "no limit configured"),
            (lambda s: s.acquire("k", 0), "at least 1"),
            (lambda s: s.acquire("k", 99), "exceeds the burst"),
            (lambda s: s.acquire(()), "at least one key"),
            (lambda s: s.acquire(("k", 3)), "must be str"),
            (lambda s: s.acquire_many("k"), "list or tuple"),
        ],
    )
    def test_bad_input(self, client: Any, call: Any, match: str) -> None:
        """Malformed requests raise ShapingError naming the problem, and charge nothing."""
        shaper = RedisShaper(client, {"k": Limit(5, 1.0, burst=2)})
        with pytest.raises(ShapingError, match=match):
            call(shaper)
        assert 0 == client.dbsize()

    def test_bad_configuration(self, client: Any) -> None:
        """A hash tag with braces is rejected (it would break Cluster slot routing)."""
        with pytest.raises(ShapingError, match="hash_tag"):
            RedisShaper(client, {}, hash_tag="a}b")


@pytest.mark.slow
class TestManyProcesses:
    def test_four_processes_stay_within_the_limit(self, client: Any, redis_url: str) -> None:
        """Four processes hammering one limit for 3 s never exceed it in any 1-s window."""
        from ._redis_worker import hammer

        count, per, seconds = 200, 1.0, 3.0
        ctx = multiprocessing.get_context("spawn")
        queue = ctx.Queue()
        procs = [
            ctx.Process(target=hammer, args=(redis_url, count, per, seconds, queue))
            for _ in range(4)
        ]
        for p in procs:
            p.start()
        results = [queue.get(timeout=60) for _ in procs]
        for p in procs:
            p.join(10)
        admitted = [t for r in results for t in r]
        assert all(len(r) > 0 for r in results)
        assert _max_window(admitted, per) <= count

    def test_killed_client_leaves_no_stuck_state(self, client: Any, redis_url: str) -> None:
        """SIGKILL mid-call leaves keys that drain and expire like any other."""
        from ._redis_worker import spin

        ctx = multiprocessing.get_context("spawn")
        proc = ctx.Process(target=spin, args=(redis_url,))
        proc.start()
        deadline = time.monotonic() + 30
        while client.dbsize() == 0 and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.3)
        assert proc.pid is not None
        os.kill(proc.pid, signal.SIGKILL)
        proc.join(10)
        time.sleep(0.6)  # one window: the state has drained and expired
        assert [] == client.keys("*")  # KEYS skips expired keys; DBSIZE may not
        shaper = RedisShaper(client, {"api:*": Limit(50, 0.5, burst=5)})
        assert [True] * 5 + [False] == [
            d.allowed for d in shaper.acquire_many([("api:a", "api:b")] * 6)
        ]


class TestRules:
    def test_same_rules_as_shaper(self, client: Any) -> None:
        """Shaper and RedisShaper share one rule table: the same keys get the same limits."""
        limits = {
            "*": Limit(1, 1.0),
            "d:*": Limit(2, 1.0),
            "d:g*": Limit(3, 1.0),
            "d:g.com": Limit(4, 1.0),
        }
        local, shared = Shaper(limits), RedisShaper(client, limits)
        keys = ("d:g.com", "d:g.de", "d:y.com", "x", "d:")
        expected = [Limit(4, 1.0), Limit(3, 1.0), Limit(2, 1.0), Limit(1, 1.0), Limit(2, 1.0)]
        assert expected == [local.limit_for(k) for k in keys]
        assert expected == [shared.limit_for(k) for k in keys]
        for shaper in (local, shared):
            shaper.drop_limit("d:g*")
        assert [Limit(2, 1.0)] * 2 == [s.limit_for("d:g.de") for s in (local, shared)]
