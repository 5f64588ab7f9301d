"""Property tests of the GCRA table on both implementations, with a fake clock."""

from __future__ import annotations

import bisect
from collections import defaultdict
from types import ModuleType
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mailscale import _hot
from mailscale._hot import _core_py
from mailscale.errors import ShapingError
from mailscale.shaping import Limit, Shaper

from ._clock import FakeClock

_SETTINGS = settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


def _max_window(admitted: list[tuple[int, int]], per_ns: int) -> int:
    """Largest number of units admitted in any closed window [t, t + per_ns]."""
    admitted = sorted(admitted)
    times = [t for t, _ in admitted]
    prefix = [0]
    for _, n in admitted:
        prefix.append(prefix[-1] + n)
    best = 0
    for i, (t, _) in enumerate(admitted):
        j = bisect.bisect_right(times, t + per_ns)
        best = max(best, prefix[j] - prefix[i])
    return best


@st.composite
def _limits(draw: Any) -> Limit:
    count = draw(st.integers(1, 40))
    per = draw(st.sampled_from([0.001, 0.01, 0.5, 1.0, 3.0]))
    burst = draw(st.integers(1, count))
    return Limit(count, per, burst=burst)


def _steps(limit: Limit) -> Any:
    """Clock steps (µs) that land on the limit's edges as well as in between."""
    interval_us = max(1, limit.interval_ns // 1000)
    per_us = max(1, limit.per_ns // 1000)
    edges = [0, 1, interval_us - 1, interval_us, interval_us + 1, per_us - 1, per_us, per_us + 1]
    return st.one_of(st.sampled_from(edges), st.integers(0, 2 * per_us))


class TestWindowExact:
    @_SETTINGS
    @given(data=st.data())
    def test_no_window_admits_more_than_count(self, core_impl: ModuleType, data: Any) -> None:
        """For any arrival schedule, no closed window of length per admits more than count."""
        limit = data.draw(_limits())
        clock = FakeClock()
        shaper = Shaper({"k": limit}, clock=clock, implementation=core_impl)
        admitted: list[tuple[int, int]] = []
        for _ in range(data.draw(st.integers(1, 80))):
            clock.advance_us(data.draw(_steps(limit)))
            n = data.draw(st.integers(1, limit.burst))
            if data.draw(st.booleans()):
                if shaper.acquire("k", n).allowed:
                    admitted.append((clock.ns, n))
            else:
                batch = shaper.acquire_many(["k"] * data.draw(st.integers(1, 5)), n)
                admitted.extend((clock.ns, n) for d in batch if d.allowed)
        assert _max_window(admitted, limit.per_ns) <= limit.count

    @_SETTINGS
    @given(data=st.data())
    def test_throttles_and_rule_changes_keep_the_window(
        self, core_impl: ModuleType, data: Any
    ) -> None:
        """Under throttles, before and after a rule change, each limit's windows hold."""
        limits = [data.draw(_limits()), data.draw(_limits())]
        clock = FakeClock()
        shaper = Shaper({"k": limits[0]}, clock=clock, implementation=core_impl)
        admitted: list[list[tuple[int, int]]] = [[], []]
        phase = 0
        for _ in range(data.draw(st.integers(1, 80))):
            clock.advance_us(data.draw(_steps(limits[phase])))
            action = data.draw(st.integers(0, 9))
            if action == 0:
                factor = data.draw(st.floats(0.01, 1.0))
                shaper.throttle("k", factor, data.draw(st.sampled_from([0.001, 0.5, 5.0])))
            elif action == 1 and phase == 0:
                phase = 1
                shaper.set_limit("k", limits[1])
            else:
                n = data.draw(st.integers(1, limits[phase].burst))
                if shaper.acquire("k", n).allowed:
                    admitted[phase].append((clock.ns, n))
        for limit, units in zip(limits, admitted, strict=True):
            assert _max_window(units, limit.per_ns) <= limit.count

    @_SETTINGS
    @given(data=st.data())
    def test_reserved_send_times_respect_the_window(self, core_impl: ModuleType, data: Any) -> None:
        """Sends made at the times reserve() returns never overfill a window."""
        limit = data.draw(_limits())
        clock = FakeClock()
        shaper = Shaper({"k": limit}, clock=clock, implementation=core_impl)
        sends: list[tuple[int, int]] = []
        for _ in range(data.draw(st.integers(1, 80))):
            clock.advance_us(data.draw(_steps(limit)))
            n = data.draw(st.integers(1, limit.burst))
            at = shaper.reserve("k", n)
            assert at >= clock()
            sends.append((round(at * 1e9), n))
        assert _max_window(sends, limit.per_ns) <= limit.count

    @pytest.mark.parametrize("count", [1000, 4000])
    def test_saturating_sender_gets_99_percent(self, core_impl: ModuleType, count: int) -> None:
        """A sender asking flat out gets at least 99% of count per window (count >= 1,000)."""
        clock = FakeClock()
        limit = Limit(count, 1.0)
        shaper = Shaper({"k": limit}, clock=clock, implementation=core_impl)
        admitted = 0
        windows = 5
        step_us = max(1, 1_000_000 // (count * 3))
        end = clock.us + windows * 1_000_000
        while clock.us < end:
            admitted += sum(d.allowed for d in shaper.acquire_many(["k"] * 4))
            clock.advance_us(step_us)
        assert admitted >= 0.99 * count * windows
        assert admitted <= count * windows

    def test_burst_then_exact_spacing(self, core_impl: ModuleType, clock: FakeClock) -> None:
        """A rested key admits burst at once, then one per emission interval."""
        limit = Limit(10, 1.0, burst=3)
        shaper = Shaper({"k": limit}, clock=clock, implementation=core_impl)
        assert [True, True, True, False] == [shaper.acquire("k").allowed for _ in range(4)]
        denied = shaper.acquire("k")
        assert limit.interval_ns / 1e9 == pytest.approx(denied.retry_after, abs=1e-6)
        clock.advance(denied.retry_after)
        assert shaper.acquire("k").allowed
        assert not shaper.acquire("k").allowed


class TestAllOrNothing:
    @_SETTINGS
    @given(data=st.data())
    def test_never_half_charges(self, core_impl: ModuleType, data: Any) -> None:
        """A multi-key request changes every key's state or none of them."""
        names = ["a", "b", "c", "d"]
        limits = {k: data.draw(_limits()) for k in names}
        clock = FakeClock()
        shaper = Shaper(limits, clock=clock, implementation=core_impl)
        table = shaper._table
        per_key: dict[str, list[tuple[int, int]]] = defaultdict(list)
        for _ in range(data.draw(st.integers(1, 60))):
            clock.advance_us(data.draw(st.integers(0, 300_000)))
            keys = data.draw(st.lists(st.sampled_from(names), min_size=1, max_size=4))
            n = data.draw(st.integers(1, min(limits[k].burst for k in keys)))
            # A key without state is the same as one whose TAT lies in the past.
            before = {k: max(table.tat(k) or 0, clock.ns) for k in names}
            decision = shaper.acquire(tuple(keys), n)
            after = {k: max(table.tat(k) or 0, clock.ns) for k in names}
            changed = {k for k in names if before[k] != after[k]}
            if decision.allowed:
                assert decision.retry_after == 0.0
                assert set(keys) == changed
                for k in set(keys):
                    per_key[k].append((clock.ns, n))
            else:
                assert decision.retry_after > 0
                assert set() == changed
        for k, admitted in per_key.items():
            assert _max_window(admitted, limits[k].per_ns) <= limits[k].count

    def test_denied_request_leaves_other_keys_free(
        self, core_impl: ModuleType, clock: FakeClock
    ) -> None:
        """When one key refuses, the others keep their full capacity."""
        shaper = Shaper(
            {"tight": Limit(1, 1.0), "wide": Limit(3, 1.0, burst=3)},
            clock=clock,
            implementation=core_impl,
        )
        assert shaper.acquire("tight").allowed
        for _ in range(5):
            assert not shaper.acquire(("wide", "tight")).allowed
        assert [True, True, True] == [shaper.acquire("wide").allowed for _ in range(3)]

    def test_batch_validated_before_charging(self, core_impl: ModuleType, clock: FakeClock) -> None:
        """A bad item anywhere in a batch raises before any item is charged."""
        shaper = Shaper({"k": Limit(5, 1.0, burst=5)}, clock=clock, implementation=core_impl)
        with pytest.raises(ShapingError, match="no limit configured"):
            shaper.acquire_many(["k", "k", ("k", "unknown")])
        assert 5 == sum(d.allowed for d in shaper.acquire_many(["k"] * 6))


_OPS = st.lists(
    st.one_of(
        st.tuples(st.just("advance"), st.integers(0, 400_000), st.just(0)),
        st.tuples(
            st.just("acquire"),
            st.lists(
                st.sampled_from(["x", "y", "domain:a", "domain:b", "zz"]), min_size=0, max_size=4
            ),
            st.integers(0, 4),
        ),
        st.tuples(
            st.just("many"),
            st.lists(st.sampled_from(["x", "y", "domain:a", ("x", "domain:b")]), max_size=6),
            st.integers(1, 3),
        ),
        st.tuples(st.just("reserve"), st.sampled_from(["x", "domain:c"]), st.integers(1, 2)),
        st.tuples(
            st.just("throttle"),
            st.sampled_from(["x", "domain:a"]),
            st.sampled_from([0.01, 0.3, 1.0, 2.0]),
        ),
        st.tuples(
            st.just("block"), st.sampled_from(["y", "domain:b"]), st.sampled_from([0.0, 0.2, 1.5])
        ),
        st.tuples(
            st.just("relimit"), st.sampled_from(["domain:*", "x", "domain:b"]), st.integers(1, 6)
        ),
        st.tuples(st.just("drop"), st.sampled_from(["domain:b", "x"]), st.just(0)),
        st.tuples(st.just("forget"), st.sampled_from(["x", "y", "domain:a"]), st.just(0)),
        st.tuples(st.just("sweep"), st.just(""), st.just(0)),
    ),
    max_size=80,
)


def _run(core: ModuleType, ops: list[tuple[Any, ...]]) -> list[object]:
    clock = FakeClock()
    shaper = Shaper(
        {"x": Limit(3, 1.0, burst=2), "y": Limit(5, 0.5), "domain:*": Limit(4, 1.0, burst=2)},
        clock=clock,
        sweep_interval=0.7,
        implementation=core,
    )
    out: list[object] = []
    for op, arg, num in ops:
        try:
            if op == "advance":
                clock.advance_us(arg)
                res: object = None
            elif op == "acquire":
                res = shaper.acquire(arg[0] if len(arg) == 1 else tuple(arg), num)
            elif op == "many":
                res = shaper.acquire_many(list(arg), num)
            elif op == "reserve":
                res = shaper.reserve(arg, num)
            elif op == "throttle":
                res = shaper.throttle(arg, num, 2.0)
            elif op == "block":
                res = shaper.block_for(arg, num)
            elif op == "relimit":
                res = shaper.set_limit(arg, Limit(num, 1.0, burst=min(num, 2)))
            elif op == "drop":
                res = shaper.drop_limit(arg)
            elif op == "forget":
                res = shaper.forget(arg)
            else:
                res = shaper.sweep() >= 0
        except ShapingError as exc:
            res = ("error", str(exc))
        out.append((res, len(shaper)))
    return out


@pytest.mark.skipif(not _hot.USING_EXTENSIONS, reason="only the twin is present")
class TestTwinAgreement:
    @settings(max_examples=300, deadline=None)
    @given(_OPS)
    def test_same_decisions_on_random_schedules(self, ops: list[tuple[Any, ...]]) -> None:
        """The compiled table and the twin make identical decisions and raise identical errors."""
        assert _run(_core_py, ops) == _run(_hot.core, ops)


_MANY_OPS = st.lists(
    st.one_of(
        st.tuples(st.just("advance"), st.integers(0, 300_000)),
        st.tuples(
            st.just("many"),
            st.lists(
                st.one_of(
                    st.integers(0, 3000),
                    st.tuples(st.integers(0, 3000), st.integers(0, 3000)),
                ),
                max_size=400,
            ),
        ),
        st.tuples(st.just("forget"), st.lists(st.integers(0, 3000), max_size=50)),
        st.tuples(st.just("sweep"), st.just(0)),
    ),
    max_size=25,
)


def _key(i: int) -> str:
    return f"domain:d{i}.example"


def _run_many(core: ModuleType, ops: list[tuple[Any, ...]]) -> list[object]:
    clock = FakeClock()
    shaper = Shaper({"domain:*": Limit(3, 0.5, burst=2)}, clock=clock, implementation=core)
    out: list[object] = []
    for op, arg in ops:
        if op == "advance":
            clock.advance_us(arg)
        elif op == "many":
            batch = [
                _key(item) if isinstance(item, int) else (_key(item[0]), _key(item[1]))
                for item in arg
            ]
            out.append([d.retry_after for d in shaper.acquire_many(batch)])
        elif op == "forget":
            out.append([shaper.forget(_key(i)) for i in arg])
        else:
            shaper.sweep()
        out.append(len(shaper))
    # Every key's effective state (a key without state is one whose TAT is past).
    table = shaper._table
    out.append([max(table.tat(_key(i)) or 0, clock.ns) for i in range(3001)])
    return out


@pytest.mark.skipif(not _hot.USING_EXTENSIONS, reason="only the twin is present")
class TestTwinAgreementManyKeys:
    @settings(max_examples=60, deadline=None)
    @given(_MANY_OPS)
    def test_table_growth_eviction_and_deletion_agree(self, ops: list[tuple[Any, ...]]) -> None:
        """Thousands of keys (growth, rebuilds mid-batch, deletions): same results and len()."""
        assert _run_many(_core_py, ops) == _run_many(_hot.core, ops)

    def test_large_fixed_schedule_agrees(self) -> None:
        """A fixed schedule that forces several rebuilds mid-batch and long probe chains."""
        rng = __import__("random").Random(7)
        ops: list[tuple[Any, ...]] = []
        for _ in range(6):
            ops.append(("many", [rng.randrange(3001) for _ in range(1500)]))
            ops.append(("forget", [rng.randrange(3001) for _ in range(400)]))
            ops.append(("advance", rng.randrange(0, 200_000)))
            ops.append(("many", [(rng.randrange(3001), rng.randrange(3001)) for _ in range(700)]))
        ops.append(("advance", 400_000))
        ops.append(("sweep", 0))
        ops.append(("many", list(range(3001))))
        py, c = _run_many(_core_py, ops), _run_many(_hot.core, ops)
        assert py == c
        assert any(w > 0 for w in py[0])  # type: ignore[attr-defined]
