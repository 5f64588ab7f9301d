"""Helpers for ratio gates: time mailscale and a reference side by side in one run.

``ratio(fast, reference)`` is the one way every gate compares two callables:

* **Interleaved rounds.** Each round times ``fast`` and then ``reference`` (the
  order flips every round, A B B A A B ..., so that neither side always runs
  second, on a warm cache or after the other's garbage), each over a loop long
  enough to last ``min_time``. Both sides of a round see the same moment of a
  shared machine.
* **One statistic for both sides: the median of the per-round ratios.** A round's
  ratio compares two timings taken back to back, so a slow spell that covers the
  round cancels out; a burst that hits only one side of a round moves that
  round's ratio, and the median of an odd number of rounds drops it. Best-of
  per side would pair the best moment of one side with the best moment of the
  other, taken at different times, and favours whichever side has the longer
  tail; the median of paired ratios has no such bias.
* **A clock chosen per gate.** ``clock="cpu"`` reads this thread's CPU time
  (``time.thread_time``): for single-threaded CPU work it leaves out the time
  other processes hold the core, which on a loaded 2-core machine is most of the
  noise. Work that waits on a peer (sockets, threads, subprocesses) must use
  ``clock="wall"`` (``time.perf_counter``), since CPU time would not count the wait.

The returned ratio is a throughput ratio: rate of ``fast`` over rate of
``reference`` (above 1 when ``fast`` is faster).

Slowdown injection (``MAILSCALE_BENCH_SLOWDOWN``), read only here, never by the
library: with ``MAILSCALE_BENCH_SLOWDOWN=2``, every timed call of ``fast`` (the
mailscale side) also runs ``own`` once more (``own`` is a copy of mailscale's own
per-call work beyond the reference: for DKIM, the canonicalization and hashing
of the same messages); gates that pass no ``own`` repeat ``fast`` itself. It
shows what the floors catch: ``MAILSCALE_BENCH_SLOWDOWN=2 pytest benchmarks -m
gate`` must fail the DKIM gates (docs/performance.md records the outcome).
"""

from __future__ import annotations

import os
import statistics
import time
from collections.abc import Callable

CLOCKS: dict[str, Callable[[], float]] = {"cpu": time.thread_time, "wall": time.perf_counter}

#: Rounds a gate measures unless it says otherwise (odd, so the median is one round).
ROUNDS = 7


def slowdown() -> int:
    """The injected slowdown factor of mailscale's side (1: none); see the module docstring."""
    raw = os.environ.get("MAILSCALE_BENCH_SLOWDOWN", "1")
    try:
        factor = int(raw)
    except ValueError as exc:
        raise ValueError(f"MAILSCALE_BENCH_SLOWDOWN must be an integer >= 1, got {raw!r}") from exc
    if factor < 1:
        raise ValueError(f"MAILSCALE_BENCH_SLOWDOWN must be an integer >= 1, got {raw!r}")
    return factor


def slowed(
    fast: Callable[[], object], own: Callable[[], object] | None = None
) -> Callable[[], object]:
    """``fast`` with the injected slowdown: ``own`` (or ``fast``) run ``factor - 1`` more times."""
    extra = slowdown() - 1
    if not extra:
        return fast
    more = own if own is not None else fast

    def run() -> object:
        out = fast()
        for _ in range(extra):
            more()
        return out

    return run


def _loops(fn: Callable[[], object], clock: Callable[[], float], min_time: float) -> int:
    """Calls of ``fn`` per timed loop, so that one loop lasts at least ``min_time``."""
    n = 1
    while True:
        start = clock()
        for _ in range(n):
            fn()
        if clock() - start >= min_time:
            return n
        n *= 2


def _time(fn: Callable[[], object], n: int, clock: Callable[[], float]) -> float:
    start = clock()
    for _ in range(n):
        fn()
    return (clock() - start) / n


def ratios(
    fast: Callable[[], object],
    reference: Callable[[], object],
    *,
    rounds: int = ROUNDS,
    min_time: float = 0.02,
    clock: str | Callable[[], float] = "wall",
    own: Callable[[], object] | None = None,
    ops: float = 1,
) -> list[float]:
    """The per-round throughput ratios ``fast`` / ``reference`` (see the module docstring).

    ``clock`` is ``"cpu"``, ``"wall"`` or a callable returning seconds (tests inject one).
    ``ops`` is accepted for symmetry with :func:`best_rate`; both sides do the
    same operations per call, so it cancels out of a ratio.
    """
    del ops
    tick = CLOCKS[clock] if isinstance(clock, str) else clock
    fast = slowed(fast, own)
    n_fast, n_ref = _loops(fast, tick, min_time), _loops(reference, tick, min_time)
    out = []
    for i in range(int(rounds)):
        if i % 2:
            t_ref = _time(reference, n_ref, tick)
            t_fast = _time(fast, n_fast, tick)
        else:
            t_fast = _time(fast, n_fast, tick)
            t_ref = _time(reference, n_ref, tick)
        out.append(t_ref / max(t_fast, 1e-12))
    return out


def ratio(
    fast: Callable[[], object],
    reference: Callable[[], object],
    *,
    rounds: int = ROUNDS,
    min_time: float = 0.02,
    clock: str | Callable[[], float] = "wall",
    own: Callable[[], object] | None = None,
    ops: float = 1,
) -> float:
    """Rate of ``fast`` over rate of ``reference``: the median of interleaved rounds."""
    return statistics.median(
        ratios(fast, reference, rounds=rounds, min_time=min_time, clock=clock, own=own, ops=ops)
    )


def best_rate(
    fn: Callable[[], object],
    *,
    ops: float = 1,
    rounds: int = 5,
    min_time: float = 0.05,
    clock: str = "wall",
) -> float:
    """Best observed rate of ``fn`` in operations per second (figures only, never a gate).

    ``ops`` is how many operations one call does.
    """
    tick = CLOCKS[clock]
    n = _loops(fn, tick, min_time)
    return n * ops / min(_time(fn, n, tick) for _ in range(int(rounds)))


def gate(name: str, r: float, floor: float) -> None:
    """Print a gate's measured ratio (``GATE name: ratio``) and assert its floor."""
    print(f"GATE {name}: {r:.3f} (floor {floor})")
    assert r >= floor, f"{name}: ratio {r:.3f} below the floor {floor}"


def gates(*checks: tuple[str, float, float]) -> None:
    """Several ``(name, ratio, floor)`` gates of one test: print every line, then assert."""
    for name, r, floor in checks:
        print(f"GATE {name}: {r:.3f} (floor {floor})")
    low = [
        f"{name}: ratio {r:.3f} below the floor {floor}" for name, r, floor in checks if r < floor
    ]
    assert not low, "; ".join(low)
