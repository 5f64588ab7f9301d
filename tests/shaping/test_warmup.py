"""Warm-up schedules and IP pools."""

from __future__ import annotations

import datetime as dt
from collections import Counter

import pytest

from mailscale.errors import ShapingError
from mailscale.shaping import DEFAULT_RAMP, IPPool, Limit, WarmupSchedule

from ._clock import FakeClock


class _Today:
    def __init__(self, day: dt.date) -> None:
        self.day = day

    def __call__(self) -> dt.date:
        return self.day


class TestWarmupSchedule:
    def test_default_ramp(self) -> None:
        """The default ramp starts at 50 a day and climbs as documented, then the IP is warm."""
        s = WarmupSchedule()
        assert [50, 100, 500, 1000, 5000, 10000, 20000, 40000, 70000, 100000] == [
            s.daily_cap(d) for d in range(10)
        ]
        assert s.daily_cap(len(DEFAULT_RAMP)) is None
        assert s.limits(len(DEFAULT_RAMP)) is None

    def test_hourly_spread(self) -> None:
        """A day's cap is spread over spread_hours: ceil(cap / hours) per rolling hour."""
        s = WarmupSchedule(daily=(50, 1000), spread_hours=8)
        assert [7, 125] == [s.hourly_cap(0), s.hourly_cap(1)]
        assert (Limit(1000, 86400.0, burst=125), Limit(125, 3600.0)) == s.limits(1)

    @pytest.mark.parametrize(
        "kwargs",
        [
            {"daily": ()},
            {"daily": (50, 0)},
            {"daily": (50, 1.5)},
            {"spread_hours": 0},
            {"spread_hours": 25},
        ],
    )
    def test_bad_schedules(self, kwargs: dict[str, object]) -> None:
        """Empty ramps, non-positive caps and spreads outside 1..24 hours are rejected."""
        with pytest.raises(ShapingError):
            WarmupSchedule(**kwargs)  # type: ignore[arg-type]

    def test_bad_age(self) -> None:
        """A negative age is an error."""
        with pytest.raises(ShapingError, match="age_days"):
            WarmupSchedule().daily_cap(-1)


class TestIPPool:
    def test_weights_split_traffic(self, clock: FakeClock) -> None:
        """Warm IPs with weights 3:1 get traffic 3:1."""
        pool = IPPool({"192.0.2.1": 3, "192.0.2.2": 1}, clock=clock)
        counts = Counter(pool.choose("example.com").ip for _ in range(400))
        assert {"192.0.2.1": 300, "192.0.2.2": 100} == dict(counts)

    def test_new_ip_capped_by_its_day_and_hour(self, clock: FakeClock) -> None:
        """A first-day IP never exceeds its hourly share or its day's cap, and is paced."""
        today = _Today(dt.date(2026, 11, 27))
        pool = IPPool(
            clock=clock, today=today, schedule=WarmupSchedule(daily=(48, 96), spread_hours=12)
        )
        pool.add("198.51.100.7", warm_since=today.day)
        got = [pool.choose("gmail.com") for _ in range(10)]
        assert 1 == sum(c.ip is not None for c in got)
        assert 899 < got[-1].retry_after < 901
        sent: list[int] = []
        for _ in range(24 * 60):
            clock.advance(60)
            if pool.choose("gmail.com"):
                sent.append(clock.us // 1_000_000)
        assert 40 <= len(sent) + 1 <= 48
        assert max(sum(1 for t in sent if s <= t <= s + 3600) for s in sent) <= 4

    def test_next_day_raises_the_cap(self, clock: FakeClock) -> None:
        """On day 1 the IP follows the next step of the ramp."""
        today = _Today(dt.date(2026, 11, 27))
        pool = IPPool(
            clock=clock, today=today, schedule=WarmupSchedule(daily=(12, 240), spread_hours=12)
        )
        pool.add("198.51.100.7", warm_since=today.day)
        assert 1 == sum(bool(pool.choose("a.example")) for _ in range(5))
        clock.advance(86400)
        today.day += dt.timedelta(days=1)
        assert 1 == pool.age_days("198.51.100.7")
        sent = 0
        for _ in range(3600):
            sent += bool(pool.choose("a.example"))
            clock.advance(1)
        assert 20 == sent

    def test_warm_ip_takes_over_when_new_one_saturates(self, clock: FakeClock) -> None:
        """When the warming IP is saturated the warm one carries the rest."""
        today = _Today(dt.date(2026, 11, 27))
        pool = IPPool(
            {"192.0.2.1": 1},
            clock=clock,
            today=today,
            schedule=WarmupSchedule(daily=(24,), spread_hours=12),
        )
        pool.add("198.51.100.7", weight=5, warm_since=today.day)
        counts = Counter(pool.choose("example.com").ip for _ in range(100))
        assert 1 == counts["198.51.100.7"]
        assert 99 == counts["192.0.2.1"]

    def test_per_domain_limit_and_earliest_time(self, clock: FakeClock) -> None:
        """With every IP saturated for a domain, choose() returns no IP and the shortest wait."""
        pool = IPPool(["192.0.2.1", "192.0.2.2"], per_domain=Limit(2, 10.0, burst=2), clock=clock)
        assert 4 == sum(bool(pool.choose("gmail.com")) for _ in range(4))
        refused = pool.choose("gmail.com")
        assert refused.ip is None
        assert 10.0 == pytest.approx(refused.retry_after, abs=0.01)
        assert pool.choose("yahoo.com").ip is not None

    def test_ip_graduates_when_warm(self, clock: FakeClock) -> None:
        """Past the end of the ramp the IP is uncapped."""
        today = _Today(dt.date(2026, 11, 1))
        pool = IPPool(clock=clock, today=today, schedule=WarmupSchedule(daily=(1,), spread_hours=1))
        pool.add("2001:db8::1", warm_since=today.day)
        assert [True, False] == [bool(pool.choose("x.example")) for _ in range(2)]
        today.day += dt.timedelta(days=1)
        assert all(bool(pool.choose("x.example")) for _ in range(50))
        assert pool.age_days("2001:db8::1") is None

    @pytest.mark.parametrize(
        ("call", "match"),
        [
            (lambda p: p.add("not-an-ip"), "not an IP"),
            (lambda p: p.add("192.0.2.9", weight=0), "weight"),
            (lambda p: p.add("192.0.2.9", weight=float("nan")), "weight"),
            (lambda p: p.choose(""), "domain"),
            (lambda p: p.choose("a b"), "domain"),
            (lambda p: p.remove("203.0.113.1"), "not in the pool"),
        ],
    )
    def test_bad_input(self, clock: FakeClock, call: object, match: str) -> None:
        """Bad addresses, weights and domains raise ShapingError."""
        pool = IPPool(["192.0.2.1"], clock=clock)
        with pytest.raises(ShapingError, match=match):
            call(pool)  # type: ignore[operator]

    def test_addresses_are_normalised_everywhere(self, clock: FakeClock) -> None:
        """An IPv6 address added in capitals can be looked up and removed in any spelling."""
        pool = IPPool(["192.0.2.1"], clock=clock)
        pool.add("2001:DB8::1", warm_since=dt.date.today())
        assert 0 == pool.age_days("2001:db8:0::1")
        pool.remove("2001:DB8::1")
        with pytest.raises(ShapingError, match="not in the pool"):
            pool.age_days("2001:db8::1")
        with pytest.raises(ShapingError, match="not an IP address"):
            pool.remove("2001:db8::zz")
        assert "192.0.2.1" == pool.choose("example.com").ip

    def test_empty_pool(self, clock: FakeClock) -> None:
        """Choosing from an empty pool is an error, not a silent None."""
        with pytest.raises(ShapingError, match="empty"):
            IPPool(clock=clock).choose("example.com")
