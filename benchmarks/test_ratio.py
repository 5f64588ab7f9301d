"""The ratio harness itself, on an injected clock (runs with the gates: ``-m gate``)."""

from __future__ import annotations

import pytest

from ._ratio import ratio, ratios

pytestmark = pytest.mark.gate


@pytest.fixture(autouse=True)
def _no_slowdown(monkeypatch: pytest.MonkeyPatch) -> None:
    """The harness is tested without an injected slowdown, whatever the run sets."""
    monkeypatch.delenv("MAILSCALE_BENCH_SLOWDOWN", raising=False)


class FakeClock:
    """A clock that advances only when a timed callable says it spent time."""

    def __init__(self) -> None:
        self.now = 0.0
        self.calls: list[str] = []

    def __call__(self) -> float:
        return self.now

    def work(self, name: str, seconds: float):  # type: ignore[no-untyped-def]
        def run() -> None:
            self.calls.append(name)
            self.now += seconds

        return run


def test_ratio_is_the_median_of_interleaved_rounds_with_alternating_order() -> None:
    clock = FakeClock()
    # Binary fractions, so that the clock's sums are exact.
    fast, ref = clock.work("A", 0.25), clock.work("B", 0.75)
    assert [3.0] * 5 == pytest.approx(ratios(fast, ref, rounds=5, min_time=0.5, clock=clock))
    # Calibration (A: 1 then 2 calls, B: 1), then rounds of 2 A and 1 B: AB, BA, AB, BA, AB.
    assert "AAAB" + "AAB" + "BAA" + "AAB" + "BAA" + "AAB" == "".join(clock.calls)


def test_one_slow_round_of_one_side_does_not_move_the_median() -> None:
    clock = FakeClock()
    state = {"n": 0}

    def fast() -> None:
        state["n"] += 1
        clock.now += 8.0 if state["n"] == 3 else 0.25  # one burst, in round 2

    r = ratio(fast, clock.work("B", 0.5), rounds=5, min_time=0.25, clock=clock)
    assert 2.0 == pytest.approx(r)


def test_slowdown_injection_runs_own_work_again(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = FakeClock()
    fast, ref, own = clock.work("A", 0.25), clock.work("B", 0.25), clock.work("O", 0.25)
    assert 1.0 == pytest.approx(ratio(fast, ref, rounds=3, min_time=0.25, clock=clock, own=own))
    monkeypatch.setenv("MAILSCALE_BENCH_SLOWDOWN", "2")
    assert 0.5 == pytest.approx(ratio(fast, ref, rounds=3, min_time=0.25, clock=clock, own=own))
    monkeypatch.setenv("MAILSCALE_BENCH_SLOWDOWN", "3")
    assert 1 / 3 == pytest.approx(ratio(fast, ref, rounds=3, min_time=0.25, clock=clock))
    monkeypatch.setenv("MAILSCALE_BENCH_SLOWDOWN", "0")
    with pytest.raises(ValueError, match="MAILSCALE_BENCH_SLOWDOWN must be an integer >= 1"):
        ratio(fast, ref, clock=clock)
