"""Helpers for ratio gates: time two callables side by side in one run."""

from __future__ import annotations

import time
from collections.abc import Callable


def best_rate(
    fn: Callable[[], object], *, ops: int = 1, rounds: int = 5, min_time: float = 0.05
) -> float:
    """Return the best observed rate of ``fn`` in operations per second.

    ``fn`` is called in loops of growing length until one loop lasts at least
    ``min_time``; the best of ``rounds`` such loops is kept, which discounts
    the noise of a shared machine. ``ops`` is how many operations one call does.
    """
    loops = 1
    while True:
        start = time.perf_counter()
        for _ in range(loops):
            fn()
        elapsed = time.perf_counter() - start
        if elapsed >= min_time:
            break
        loops *= 2
    best = elapsed
    for _ in range(rounds - 1):
        start = time.perf_counter()
        for _ in range(loops):
            fn()
        best = min(best, time.perf_counter() - start)
    return loops * ops / best


def ratio(fast: Callable[[], object], reference: Callable[[], object], **kw: float) -> float:
    """Rate of ``fast`` divided by the rate of ``reference``, interleaved to share noise."""
    r1 = best_rate(fast, **kw)  # type: ignore[arg-type]
    r2 = best_rate(reference, **kw)  # type: ignore[arg-type]
    r3 = best_rate(fast, **kw)  # type: ignore[arg-type]
    return max(r1, r3) / r2
