"""Accuracy of rate limiters driven flat out: 100 per 1 s for 5 s.

For mailscale's Shaper, `limits` (fixed window, moving window, sliding-window
counter) and `pyrate-limiter`, a single thread asks for one unit as fast as it
can for 5 seconds and records the time of every admission. Reported: the
admitted count and the worst 1-second window (most admissions in any closed
window [t, t + 1 s] over the admitted timestamps).

An admission's time is the limiter's own clock reading when the clock can be
injected (mailscale), otherwise the clock read just before the call (the
decision follows within microseconds unless the thread is preempted).

Run: python benchmarks/accuracy_shaping.py [seconds]
"""

from __future__ import annotations

import bisect
import sys
import time
from collections.abc import Callable

COUNT, PER = 100, 1.0


def worst_window(times: list[float], per: float) -> int:
    """Most admissions in any closed window of length ``per``."""
    times = sorted(times)
    return max((bisect.bisect_right(times, t + per) - i for i, t in enumerate(times)), default=0)


class _Clock:
    """time.monotonic that remembers its last reading."""

    def __init__(self) -> None:
        self.last = 0.0

    def __call__(self) -> float:
        self.last = time.monotonic()
        return self.last


def drive(
    try_once: Callable[[], bool], seconds: float, decided_at: _Clock | None = None
) -> list[float]:
    """Call ``try_once`` flat out for ``seconds``; return the admission times."""
    admitted: list[float] = []
    clock = time.monotonic
    end = clock() + seconds
    while True:
        now = clock()
        if now >= end:
            return admitted
        if try_once():
            admitted.append(decided_at.last if decided_at is not None else now)


Contender = Callable[[], tuple[Callable[[], bool], "_Clock | None"]]


def contenders() -> dict[str, Contender]:
    """Name → factory of a fresh ``try_once`` callable (and its clock, when injectable)."""

    def mailscale_shaper() -> tuple[Callable[[], bool], _Clock | None]:
        from mailscale.shaping import Limit, Shaper

        clock = _Clock()
        shaper = Shaper({"k": Limit(COUNT, PER)}, clock=clock)
        return (lambda: shaper.acquire("k").allowed), clock

    def limits_strategy(name: str) -> Contender:
        def make() -> tuple[Callable[[], bool], _Clock | None]:
            from limits import RateLimitItemPerSecond, storage, strategies

            limiter = getattr(strategies, name)(storage.MemoryStorage())
            item = RateLimitItemPerSecond(COUNT, int(PER))
            return (lambda: bool(limiter.hit(item, "k"))), None

        return make

    def pyrate() -> tuple[Callable[[], bool], _Clock | None]:
        from pyrate_limiter import Duration, Limiter, Rate

        limiter = Limiter(Rate(COUNT, Duration.SECOND))
        return (lambda: bool(limiter.try_acquire("k", blocking=False))), None

    return {
        "mailscale Shaper (GCRA, window-exact)": mailscale_shaper,
        "limits FixedWindowRateLimiter": limits_strategy("FixedWindowRateLimiter"),
        "limits MovingWindowRateLimiter": limits_strategy("MovingWindowRateLimiter"),
        "limits SlidingWindowCounterRateLimiter": limits_strategy(
            "SlidingWindowCounterRateLimiter"
        ),
        "pyrate-limiter Limiter (in-memory bucket)": pyrate,
    }


def run(seconds: float = 5.0) -> list[tuple[str, int, int]]:
    """Drive every contender; return (name, admitted, worst 1-s window)."""
    out = []
    for name, make in contenders().items():
        try_once, clock = make()
        times = drive(try_once, seconds, clock)
        out.append((name, len(times), worst_window(times, PER)))
    return out


def main(argv: list[str]) -> int:
    seconds = float(argv[1]) if len(argv) > 1 else 5.0
    print(
        f"{COUNT} per {PER:g} s, driven flat out for {seconds:g} s "
        f"(ideal: {COUNT * seconds:.0f} admitted, worst window {COUNT})"
    )
    print("| limiter | admitted | worst 1-s window |")
    print("|---|---|---|")
    for name, admitted, worst in run(seconds):
        print(f"| {name} | {admitted} | {worst} |")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
