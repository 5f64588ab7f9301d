"""The in-process Shaper: rules, reconfiguration, backoff, waiting, eviction, bad input."""

from __future__ import annotations

import asyncio
from types import ModuleType

import pytest

from mailscale.errors import ShapingError
from mailscale.shaping import Limit, Shaper, Unit, parse_rate_headers, presets

from ._clock import FakeClock


def _burst_size(shaper: Shaper, key: str, limit: int = 100) -> int:
    """How many single units the key admits right now, back to back."""
    got = 0
    while got < limit and shaper.acquire(key).allowed:
        got += 1
    return got


def _admitted_over(shaper: Shaper, clock: FakeClock, key: str, seconds: float, step: float) -> int:
    """How many single units the key admits, trying every ``step`` seconds for ``seconds``."""
    got = 0
    end = clock.us + round(seconds * 1e6)
    while clock.us < end:
        got += shaper.acquire(key).allowed
        clock.advance(step)
    return got


class TestLimit:
    @pytest.mark.parametrize(
        ("count", "per", "burst"),
        [
            (1, 1.0, 1),
            (14, 1.0, 1),
            (100, 1.0, 3),
            (50, 1.0, 2),
            (500, 60.0, 5),
            (1000, 1.0, 10),
            (1000, 3600.0, 10),
            (10**6, 1.0, 10),
        ],
    )
    def test_default_burst(self, count: int, per: float, burst: int) -> None:
        """Default burst: 1% of count or 20 ms of jitter, at most 10 and count / 10."""
        assert burst == Limit(count, per).burst

    def test_interval_makes_windows_exact(self) -> None:
        """(count - burst + 1) emission intervals strictly exceed the window."""
        for limit in (Limit(1000, 1.0), Limit(7, 3.0, burst=7), Limit(1, 0.5), Limit(500, 60.0)):
            assert (limit.count - limit.burst + 1) * limit.interval_ns > limit.per_ns
            assert limit.tolerance_ns == limit.burst * limit.interval_ns

    def test_sustained_rate_of_1000_per_second(self) -> None:
        """count 1,000 with the default burst sustains 99.1% of the nominal rate."""
        assert 990 <= Limit(1000, 1.0).sustained_rate < 991

    @pytest.mark.parametrize(
        ("kwargs", "match"),
        [
            ({"count": 0, "per": 1.0}, "count"),
            ({"count": -3, "per": 1.0}, "count"),
            ({"count": 1.5, "per": 1.0}, "count must be an int"),
            ({"count": 5, "per": 0}, "per"),
            ({"count": 5, "per": -1.0}, "per"),
            ({"count": 5, "per": float("nan")}, "per"),
            ({"count": 5, "per": float("inf")}, "per"),
            ({"count": 5, "per": "1"}, "per"),
            ({"count": 5, "per": 1.0, "burst": 6}, "burst"),
            ({"count": 5, "per": 1.0, "burst": 0}, "burst"),
            ({"count": 5, "per": 400 * 86400.0}, "per"),
        ],
    )
    def test_bad_limits_rejected(self, kwargs: dict[str, object], match: str) -> None:
        """Non-positive, NaN, infinite or inconsistent figures raise ShapingError."""
        with pytest.raises(ShapingError, match=match):
            Limit(**kwargs)  # type: ignore[arg-type]


class TestPresets:
    def test_brief_figures(self) -> None:
        """The presets carry the providers' published figures."""
        assert (1000, 3600.0) == (presets.sendgrid().count, presets.sendgrid().per)
        assert (2000, 3600.0) == (presets.mailgun().count, presets.mailgun().per)
        assert (500, 60.0) == (presets.postmark().count, presets.postmark().per)
        ses = presets.ses(14, 50_000)
        assert (14, 1.0, 50_000, 86400.0) == (
            ses.rate.count,
            ses.rate.per,
            ses.daily.count,
            ses.daily.per,
        )

    def test_overridable(self) -> None:
        """Every figure can be overridden."""
        assert Limit(300, 60.0, burst=3, unit="request") == presets.postmark(count=300, burst=3)
        assert Limit(5, 1.0, burst=5, unit="recipient") == presets.ses(5, 100, rate_burst=5).rate

    def test_units(self) -> None:
        """The ESPs' API presets count requests; SES counts recipients (a message to 10
        recipients counts 10); a Limit counts messages unless it says otherwise."""
        assert {Unit.REQUEST} == {
            presets.sendgrid().unit,
            presets.mailgun().unit,
            presets.postmark().unit,
        }
        ses = presets.ses(14, 50_000)
        assert (Unit.RECIPIENT, Unit.RECIPIENT) == (ses.rate.unit, ses.daily.unit)
        assert Unit.MESSAGE == Limit(10, 1.0).unit
        with pytest.raises(ShapingError, match="unit must be one of message, request"):
            Limit(10, 1.0, unit="parcel")


class TestRules:
    def test_exact_beats_longest_prefix_beats_default(
        self, core_impl: ModuleType, clock: FakeClock
    ) -> None:
        """Resolution order: exact key, then the longest prefix rule, then '*'."""
        shaper = Shaper(
            {
                "*": Limit(1, 60.0),
                "domain:*": Limit(2, 60.0, burst=2),
                "domain:gmail*": Limit(3, 60.0, burst=3),
                "domain:gmail.com": Limit(4, 60.0, burst=4),
            },
            clock=clock,
            implementation=core_impl,
        )
        assert 4 == _burst_size(shaper, "domain:gmail.com")
        assert 3 == _burst_size(shaper, "domain:gmail.de")
        assert 2 == _burst_size(shaper, "domain:example.org")
        assert 1 == _burst_size(shaper, "ip:192.0.2.1")

    def test_strict_rejects_unknown_keys(self, core_impl: ModuleType, clock: FakeClock) -> None:
        """In strict mode a key without a rule is an error naming the key."""
        shaper = Shaper({"a": Limit(1, 1.0)}, clock=clock, implementation=core_impl)
        with pytest.raises(ShapingError, match="'domain:x'"):
            shaper.acquire(("a", "domain:x"))
        assert shaper.acquire("a").allowed

    def test_non_strict_leaves_unknown_keys_unlimited(
        self, core_impl: ModuleType, clock: FakeClock
    ) -> None:
        """With strict=False an unmatched key never limits."""
        shaper = Shaper({"a": Limit(1, 1.0)}, strict=False, clock=clock, implementation=core_impl)
        assert 100 == _burst_size(shaper, "whatever")

    def test_reconfigure_rule_applies_to_live_keys(
        self, core_impl: ModuleType, clock: FakeClock
    ) -> None:
        """Changing a rule changes the limit of keys already seen, keeping their state."""
        shaper = Shaper(
            {"domain:*": Limit(2, 10.0, burst=2)}, clock=clock, implementation=core_impl
        )
        assert 2 == _burst_size(shaper, "domain:a")
        shaper.set_limit("domain:*", Limit(5, 10.0, burst=5))
        assert 3 == _burst_size(shaper, "domain:a")
        assert 5 == _burst_size(shaper, "domain:b")

    def test_new_rule_takes_over_matching_keys(
        self, core_impl: ModuleType, clock: FakeClock
    ) -> None:
        """A more specific rule added later applies to keys already seen."""
        shaper = Shaper(
            {"domain:*": Limit(3, 10.0, burst=3)}, clock=clock, implementation=core_impl
        )
        assert shaper.acquire("domain:gmail.com").allowed
        shaper.set_limit("domain:gmail.com", Limit(2, 10.0, burst=2))
        assert 1 == _burst_size(shaper, "domain:gmail.com")
        shaper.set_limit("domain:y*", Limit(1, 10.0))
        assert 1 == _burst_size(shaper, "domain:yahoo.com")
        assert Limit(1, 10.0) == shaper.limit_for("domain:yahoo.com")

    def test_drop_rule_falls_back(self, core_impl: ModuleType, clock: FakeClock) -> None:
        """Dropping an exact rule sends the key to the next matching rule; the last one errs."""
        shaper = Shaper(
            {"api:k": Limit(1, 10.0), "api:*": Limit(4, 10.0, burst=4)},
            clock=clock,
            implementation=core_impl,
        )
        assert 1 == _burst_size(shaper, "api:k")
        shaper.drop_limit("api:k")
        assert 3 == _burst_size(shaper, "api:k")
        shaper.drop_limit("api:*")
        with pytest.raises(ShapingError, match="no limit configured"):
            shaper.acquire("api:k")
        with pytest.raises(ShapingError, match="no limit is configured"):
            shaper.drop_limit("api:*")

    def test_dropped_limits_free_their_parameter_slots(
        self, core_impl: ModuleType, clock: FakeClock
    ) -> None:
        """Adding and dropping limits over and over reuses parameter ids instead of growing."""
        shaper = Shaper(
            {"api:*": Limit(5, 1.0), "domain:*": Limit(5, 1.0)},
            clock=clock,
            implementation=core_impl,
        )
        table = shaper._table
        for i in range(3000):
            shaper.set_limit("api:k", Limit(3, 1.0, burst=1))
            shaper.acquire(("api:k", f"domain:d{i % 7}"))
            shaper.drop_limit("api:k")
            shaper.set_limit("domain:x*", Limit(2, 1.0, burst=1))
            shaper.acquire(("api:k", "domain:x1"))
            shaper.drop_limit("domain:x*")
        shaper.set_limit("api:k", Limit(3, 1.0, burst=1))
        # 3000 cycles took ids up to 9,000 when dropped parameters were never reused.
        assert table.key_param("api:k") < 20
        clock.advance(10.0)
        assert 1 == _burst_size(shaper, "api:k")
        assert 1 == _burst_size(shaper, "domain:x1")  # back on domain:* (burst 1)

    @pytest.mark.parametrize("pattern", ["", "a*b", "**", 3])
    def test_bad_patterns(self, pattern: object) -> None:
        """Patterns are non-empty str with '*' only at the end."""
        with pytest.raises(ShapingError):
            Shaper({pattern: Limit(1, 1.0)})  # type: ignore[dict-item]


class TestBadRequests:
    @pytest.mark.parametrize(
        ("keys", "n", "match"),
        [
            ("k", 0, "at least 1"),
            ("k", -2, "at least 1"),
            ("k", 1.0, "must be an int"),
            ("k", 3, "exceeds the burst"),
            ((), 1, "at least one key"),
            (("k", b"x"), 1, "must be str"),
            (42, 1, "str or a tuple/list"),
            (tuple(f"k{i}" for i in range(40)), 1, "at most 32 keys"),
        ],
    )
    def test_rejected_with_message(
        self, core_impl: ModuleType, clock: FakeClock, keys: object, n: object, match: str
    ) -> None:
        """Each malformed request raises ShapingError naming the problem."""
        shaper = Shaper({"k*": Limit(5, 1.0, burst=2)}, clock=clock, implementation=core_impl)
        with pytest.raises(ShapingError, match=match):
            shaper.acquire(keys, n)  # type: ignore[arg-type]
        assert 2 == _burst_size(shaper, "k")

    def test_clock_returning_nan(self, core_impl: ModuleType) -> None:
        """A broken clock is reported, not turned into a decision."""
        with pytest.raises(ShapingError, match="clock"):
            Shaper({"k": Limit(5, 1.0)}, clock=lambda: float("nan"), implementation=core_impl)
        ticks = iter([1.0, 1.0, "soon"])
        shaper = Shaper({"k": Limit(5, 1.0)}, clock=lambda: next(ticks), implementation=core_impl)
        assert shaper.acquire("k").allowed
        with pytest.raises(ShapingError, match="clock"):
            shaper.acquire("k")


class TestBackoff:
    def test_throttle_then_gradual_recovery(self, core_impl: ModuleType, clock: FakeClock) -> None:
        """After throttle(0.25, 10 s) the rate starts at a quarter and climbs back to full."""
        shaper = Shaper({"api:k": Limit(100, 1.0, burst=1)}, clock=clock, implementation=core_impl)
        shaper.throttle("api:k", 0.25, 10.0)

        def admitted_in(seconds: float) -> int:
            got = 0
            end = clock.us + round(seconds * 1e6)
            while clock.us < end:
                got += shaper.acquire("api:k").allowed
                clock.advance_us(500)
            return got

        first, middle, after = admitted_in(1.0), (clock.advance(4.0), admitted_in(1.0))[1], None
        clock.advance(5.0)
        after = admitted_in(1.0)
        assert 20 <= first <= 35
        assert first < middle < after
        assert 95 <= after <= 100

    def test_throttled_key_follows_a_rule_change(
        self, core_impl: ModuleType, clock: FakeClock
    ) -> None:
        """A rule lowered during a throttle applies to the throttled key at once."""
        shaper = Shaper({"api:*": Limit(1000, 1.0)}, clock=clock, implementation=core_impl)
        shaper.throttle("api:k", 0.9, 60.0)
        shaper.set_limit("api:*", Limit(10, 1.0, burst=1))
        got = 0
        for _ in range(5000):
            got += shaper.acquire("api:k").allowed
            clock.advance_us(1000)
        # 5 s at (at most) 10/s plus the old state's burst; 4,468 when the change was ignored.
        assert got <= 5 * 10 + 10

    def test_throttled_key_of_a_dropped_rule_is_rejected(
        self, core_impl: ModuleType, clock: FakeClock
    ) -> None:
        """In strict mode a throttled key whose only rule was dropped raises, like any other."""
        shaper = Shaper({"api:k": Limit(100, 1.0)}, clock=clock, implementation=core_impl)
        shaper.throttle("api:k", 0.5, 60.0)
        assert shaper.acquire("api:k").allowed
        shaper.drop_limit("api:k")
        with pytest.raises(ShapingError, match="no limit configured"):
            shaper.acquire("api:k")

    def test_throttle_survives_a_rule_change(self, core_impl: ModuleType, clock: FakeClock) -> None:
        """The throttle factor still applies after the key's rule changes."""
        shaper = Shaper({"api:*": Limit(100, 1.0, burst=1)}, clock=clock, implementation=core_impl)
        shaper.throttle("api:k", 0.5, 600.0)
        shaper.set_limit("api:*", Limit(200, 1.0, burst=1))
        assert shaper.acquire("api:k").allowed
        # Half of 200/s: about 10 ms apart (200/s unthrottled would be 5 ms).
        assert 0.0099 < shaper.acquire("api:k").retry_after < 0.0101

    def test_bad_throttle(self, core_impl: ModuleType, clock: FakeClock) -> None:
        """Factors outside [0.01, 1] and non-positive durations are rejected."""
        shaper = Shaper({"k": Limit(5, 1.0)}, clock=clock, implementation=core_impl)
        for factor, duration in (
            (0.0, 1.0),
            (1.5, 1.0),
            (float("nan"), 1.0),
            (0.5, 0),
            (0.5, -1.0),
        ):
            with pytest.raises(ShapingError):
                shaper.throttle("k", factor, duration)

    def test_retry_after_blocks_key(self, core_impl: ModuleType, clock: FakeClock) -> None:
        """Retry-After: 30 admits nothing for 30 s, then the key works again."""
        shaper = Shaper({"api:k": Limit(100, 1.0)}, clock=clock, implementation=core_impl)
        shaper.observe_headers("api:k", {"Retry-After": "30"})
        denied = shaper.acquire("api:k")
        assert not denied.allowed
        assert 30.0 == pytest.approx(denied.retry_after, abs=0.02)
        clock.advance(29.9)
        assert not shaper.acquire("api:k").allowed
        clock.advance(0.2)
        assert shaper.acquire("api:k").allowed

    def test_remaining_zero_blocks_until_reset(
        self, core_impl: ModuleType, clock: FakeClock
    ) -> None:
        """X-RateLimit-Remaining: 0 with an epoch Reset blocks until that moment."""
        shaper = Shaper(
            {"api:k": Limit(100, 1.0)},
            clock=clock,
            wall_clock=lambda: 1_800_000_000.0,
            implementation=core_impl,
        )
        shaper.observe_headers(
            "api:k", [("X-RateLimit-Remaining", "0"), ("X-RateLimit-Reset", "1800000012")]
        )
        assert 12.0 == pytest.approx(shaper.acquire("api:k").retry_after, abs=0.02)

    def test_learns_limit_from_headers(self, core_impl: ModuleType, clock: FakeClock) -> None:
        """X-RateLimit-Limit different from the configured count becomes the key's limit
        (counting what the configured limit counted)."""
        shaper = Shaper({"sendgrid:*": presets.sendgrid()}, clock=clock, implementation=core_impl)
        shaper.observe_headers(
            "sendgrid:k1", {"x-ratelimit-limit": "600", "x-ratelimit-remaining": "599"}
        )
        assert Limit(600, 3600.0, burst=6, unit="request") == shaper.limit_for("sendgrid:k1")
        assert presets.sendgrid() == shaper.limit_for("sendgrid:k2")
        assert 6 == _burst_size(shaper, "sendgrid:k1")
        assert 10 == _burst_size(shaper, "sendgrid:k2")
        # One hour later: 600 more units on k1 at most (the learned count), 1,000 on k2.
        assert 600 >= _admitted_over(shaper, clock, "sendgrid:k1", 3600.0, 0.5) >= 590
        assert 1000 >= _admitted_over(shaper, clock, "sendgrid:k2", 3600.0, 0.5) >= 985

    def test_learned_limit_reaches_a_throttled_key(
        self, core_impl: ModuleType, clock: FakeClock
    ) -> None:
        """X-RateLimit-Limit learned while a key is throttled applies to it at once."""
        shaper = Shaper({"api:k": Limit(1000, 1.0, burst=1)}, clock=clock, implementation=core_impl)
        shaper.throttle("api:k", 0.5, 600.0)
        shaper.observe_headers("api:k", {"X-RateLimit-Limit": "100"})
        # Half of the learned 100/s (about 50 per second); 501 when it was ignored.
        assert 45 <= _admitted_over(shaper, clock, "api:k", 1.0, 0.001) <= 52

    @pytest.mark.parametrize(
        "headers",
        [
            {"Retry-After": "soon"},
            {"X-RateLimit-Limit": "-1"},
            {"X-RateLimit-Remaining": "1.5"},
            {"X-RateLimit-Reset": "nan"},
        ],
    )
    def test_bad_headers(self, headers: dict[str, str]) -> None:
        """Unparseable rate-limit headers raise ShapingError naming the header."""
        with pytest.raises(ShapingError, match="header"):
            parse_rate_headers(headers)

    def test_http_date_retry_after(self) -> None:
        """Retry-After may be an HTTP date."""
        info = parse_rate_headers(
            {"Retry-After": "Fri, 31 Dec 1999 23:59:59 GMT"}, wall_clock=lambda: 946684799.0 - 5
        )
        assert 5.0 == pytest.approx(info["retry_after"])


class TestWaiting:
    def test_wait_sleeps_until_admitted(self, core_impl: ModuleType, clock: FakeClock) -> None:
        """wait() sleeps exactly the retry time and then admits."""
        shaper = Shaper(
            {"k": Limit(10, 1.0, burst=1)},
            clock=clock,
            sleep=clock.advance,
            implementation=core_impl,
        )
        start = clock()
        for _ in range(5):
            assert shaper.wait("k").allowed
        assert 0.4 <= clock() - start < 0.41

    def test_wait_timeout_gives_up_without_charging(
        self, core_impl: ModuleType, clock: FakeClock
    ) -> None:
        """With a timeout shorter than the retry time, wait() returns the refusal at once."""
        shaper = Shaper(
            {"k": Limit(1, 10.0)}, clock=clock, sleep=clock.advance, implementation=core_impl
        )
        assert shaper.acquire("k").allowed
        decision = shaper.wait("k", timeout=1.0)
        assert not decision.allowed
        assert 1.0 < clock() + decision.retry_after - 1.0

    def test_acquire_async(self, core_impl: ModuleType) -> None:
        """acquire_async awaits admission on the event loop."""
        shaper = Shaper({"k": Limit(100, 1.0, burst=1)}, implementation=core_impl)

        async def main() -> list[bool]:
            return [(await shaper.acquire_async("k")).allowed for _ in range(3)]

        assert [True, True, True] == asyncio.run(main())


class TestEviction:
    def test_idle_keys_are_evicted(self, core_impl: ModuleType, clock: FakeClock) -> None:
        """Keys whose state drained disappear at the next sweep; busy keys stay."""
        shaper = Shaper(
            {"domain:*": Limit(1, 1.0)}, clock=clock, sweep_interval=5.0, implementation=core_impl
        )
        shaper.acquire_many([f"domain:d{i}.example" for i in range(5000)])
        assert 5000 <= len(shaper)
        clock.advance(0.5)
        shaper.acquire("domain:d0.example")
        clock.advance(5.0)
        shaper.acquire("domain:busy")
        assert len(shaper) <= 2

    def test_growth_evicts_drained_keys(self, core_impl: ModuleType, clock: FakeClock) -> None:
        """When the table grows, drained keys go at once, without waiting for the sweep."""
        shaper = Shaper(
            {"domain:*": Limit(1, 1.0)}, clock=clock, sweep_interval=600.0, implementation=core_impl
        )
        shaper.acquire_many([f"domain:old{i}" for i in range(150)])
        clock.advance(2.0)
        shaper.acquire_many([f"domain:new{i}" for i in range(150)])
        assert 150 == len(shaper)

    def test_eviction_does_not_change_decisions(
        self, core_impl: ModuleType, clock: FakeClock
    ) -> None:
        """A key evicted after draining behaves exactly like one that was kept."""
        shaper = Shaper({"k": Limit(3, 1.0, burst=3)}, clock=clock, implementation=core_impl)
        assert 3 == _burst_size(shaper, "k")
        clock.advance(3.5)
        assert shaper.sweep() >= 1
        assert 3 == _burst_size(shaper, "k")

    def test_throttled_key_survives_sweep(self, core_impl: ModuleType, clock: FakeClock) -> None:
        """A throttled key keeps its throttle across sweeps until it has recovered."""
        shaper = Shaper({"k": Limit(100, 1.0, burst=1)}, clock=clock, implementation=core_impl)
        shaper.throttle("k", 0.1, 60.0)
        clock.advance(1.0)
        shaper.sweep()
        assert shaper.acquire("k").allowed
        # Rate at 1/60 of the recovery: 0.1 + 0.9 / 60 of full, so about 87 ms apart.
        assert 0.086 < shaper.acquire("k").retry_after < 0.088


class TestThreads:
    def test_threads_hammering_one_shaper(self, core_impl: ModuleType) -> None:
        """Threads adding thousands of keys while sharing one key stay within its limit."""
        import threading
        import time

        shaper = Shaper(
            {"api:shared": Limit(50, 1.0, burst=5), "domain:*": Limit(2, 1.0)},
            sweep_interval=0.05,
            implementation=core_impl,
        )
        admitted = [0] * 4
        errors: list[BaseException] = []
        stop = time.monotonic() + 0.5

        def work(t: int) -> None:
            i = 0
            try:
                while time.monotonic() < stop:
                    batch = [("api:shared", f"domain:t{t}-{i + j}") for j in range(300)]
                    i += 300
                    admitted[t] += sum(d.allowed for d in shaper.acquire_many(batch))
                    shaper.forget(f"domain:t{t}-{i - 7}")
            except BaseException as exc:  # pragma: no cover - reported below
                errors.append(exc)

        start = time.monotonic()
        threads = [threading.Thread(target=work, args=(t,)) for t in range(4)]
        for th in threads:
            th.start()
        for th in threads:
            th.join()
        elapsed = time.monotonic() - start
        assert [] == errors
        limit = Limit(50, 1.0, burst=5)
        assert 0 < sum(admitted) <= limit.burst + elapsed * limit.sustained_rate + 1


class TestClockRange:
    def test_negative_clock_values(self, core_impl: ModuleType) -> None:
        """An injected clock may run at negative times; decisions stay exact."""
        clock = FakeClock(start_us=-5_000_000)
        shaper = Shaper({"k": Limit(2, 1.0, burst=2)}, clock=clock, implementation=core_impl)
        assert [True, True, False] == [shaper.acquire("k").allowed for _ in range(3)]
        clock.advance(1.0)  # one emission interval is 1 s + 1 ns
        assert not shaper.acquire("k").allowed
        clock.advance(0.001)
        assert shaper.acquire("k").allowed
        shaper.throttle("k", 0.5, 3.0)
        assert not shaper.acquire("k").allowed


class TestRuleTable:
    """One pattern → limit lookup shared by Shaper and RedisShaper (see test_redis.py)."""

    def test_precedence(self) -> None:
        """Exact beats the longest prefix, which beats shorter ones and the ``*`` default."""
        from mailscale.shaping._limit import RuleTable

        table: RuleTable[str] = RuleTable()
        for pattern in ("*", "d:*", "d:gmail*", "d:gmail.com"):
            table.set(RuleTable.check_pattern(pattern), pattern)
        assert ["d:gmail.com", "d:gmail*", "d:*", "*"] == [
            table.lookup(k) for k in ("d:gmail.com", "d:gmail.de", "d:yahoo.com", "x")
        ]
        assert "d:gmail*" == table.pop("d:gmail*")
        assert "d:*" == table.lookup("d:gmail.de")
        assert None is table.pop("d:gmail*")
        assert {"*": "*", "d:*": "d:*", "d:gmail.com": "d:gmail.com"} == table.patterns()

    @pytest.mark.parametrize("pattern", ["", "a*b", "**", 3])
    def test_bad_pattern(self, pattern: object) -> None:
        """A pattern that is not a str, is empty, or has '*' before its end is refused."""
        from mailscale.shaping._limit import RuleTable

        with pytest.raises(ShapingError, match="pattern"):
            RuleTable.check_pattern(pattern)
