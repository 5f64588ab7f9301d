"""GCRA rate-limit table, pure-Python twin of the compiled ``_core_gcra.pxi``.

One table holds the state of every live key: its theoretical arrival time
(TAT, integer nanoseconds) and the id of the parameters (emission interval,
tolerance, burst) it is limited by. Keys are identified by ``hash(key)``, the
same in both implementations, so that one slot costs a few bytes. Parameters
are shared: every key matched by one rule points at the same parameter id, so
reconfiguring a rule is O(1). A throttled key also points at its own throttle
(factor, start, end), which scales the live parameters of its rule at decision
time, so a rule change reaches throttled keys too. A key whose TAT lies in the past is exactly as
if it had never been seen, so such keys are evicted (``sweep``) without
changing any decision.

Times are integer nanoseconds internally: ``floor(seconds * 1e9 + 0.5)`` of
the injected clock, the same operation in both implementations.
"""

from __future__ import annotations

import heapq
import math
import threading
from collections.abc import Callable
from typing import Any

from mailscale._hot._decision import ALLOWED, MAX_KEYS_PER_CALL, Decision
from mailscale.errors import ShapingError

__all__ = ["GCRATable"]

# Largest accepted clock value (ns) and largest lead of a TAT over now (ns):
# together with the parameter bounds enforced by ``add_param`` they keep every
# sum below 2**63, so the compiled table never overflows.
_MAX_NOW = 1 << 61
_MAX_AHEAD = 1 << 60
_MAX_PARAM = 1 << 55
_MIN_CAP = 256
_THROTTLED_MIN = 0.01
_NEVER = -(1 << 63)  # end of a throttle that never was: before any clock value


def _to_ns(t: Any) -> int:
    try:
        x = float(t)
    except (TypeError, ValueError):
        raise ShapingError(f"clock returned a non-number: {type(t).__name__}") from None
    if not math.isfinite(x) or not -_MAX_NOW < x * 1e9 < _MAX_NOW:
        raise ShapingError(f"clock returned an unusable time: {t!r}")
    return math.floor(x * 1e9 + 0.5)


class GCRATable:
    """Per-key GCRA state with shared, reconfigurable parameters.

    Args:
        resolver: called with a key the table has not seen (or whose parameters
            were dropped); returns the parameter id limiting it, or raises.
        clock: returns the current time in seconds (float).
        sweep_interval: seconds between automatic evictions of rested keys.
    """

    def __init__(
        self,
        resolver: Callable[[str], int],
        clock: Callable[[], float],
        sweep_interval: float = 60.0,
    ) -> None:
        self._resolver = resolver
        self._clock = clock
        si = float(sweep_interval)
        if not (math.isfinite(si) and 0.0 < si <= 1e6):
            raise ShapingError(
                f"sweep_interval must be a positive number of seconds, got {sweep_interval!r}"
            )
        self._sweep_ns = math.floor(si * 1e9 + 0.5)
        self._next_sweep = -(1 << 62)
        # key hash -> [tat_ns, param id, throttle id (-1: none)]
        self._slots: dict[int, list[int]] = {}
        # The compiled table's capacity, mirrored: when it would fill beyond 5/8, both
        # evict rested keys and resize, so both hold the same keys (and len()) at all times.
        self._cap = _MIN_CAP
        self._gen = 0
        self._interval: list[int] = []
        self._tolerance: list[int] = []
        self._burst: list[int] = []
        self._alive: list[bool] = []
        # How many keys point at each parameter id; a retired id is reused once none does.
        self._refs: list[int] = []
        self._free: list[int] = []
        self._thr_factor: list[float] = []
        self._thr_start: list[int] = []
        self._thr_end: list[int] = []
        self._thr_free: list[int] = []
        # The compiled table is atomic under the GIL (no Python code runs while it
        # decides); the twin takes a lock to behave the same under threads.
        self._lock = threading.RLock()

    # -- parameters ---------------------------------------------------------

    def add_param(self, interval_ns: int, tolerance_ns: int, burst: int) -> int:
        """Register parameters (emission interval, tolerance, burst); return their id."""
        with self._lock:
            self._check_param(interval_ns, tolerance_ns, burst)
            if self._free:
                pid = heapq.heappop(self._free)
                self._interval[pid] = interval_ns
                self._tolerance[pid] = tolerance_ns
                self._burst[pid] = burst
                self._alive[pid] = True
                return pid
            self._interval.append(interval_ns)
            self._tolerance.append(tolerance_ns)
            self._burst.append(burst)
            self._alive.append(True)
            self._refs.append(0)
            return len(self._interval) - 1

    def _ref(self, slot: list[int], pid: int) -> None:
        """Point ``slot`` at ``pid`` (-1 first: a new slot), keeping the reference counts."""
        old = slot[1]
        slot[1] = pid
        self._refs[pid] += 1
        if old >= 0:
            self._unref(old)

    def _unref(self, pid: int) -> None:
        self._refs[pid] -= 1
        if self._refs[pid] == 0 and not self._alive[pid]:
            heapq.heappush(self._free, pid)

    @staticmethod
    def _check_param(interval_ns: int, tolerance_ns: int, burst: int) -> None:
        if not (type(interval_ns) is int and type(tolerance_ns) is int and type(burst) is int):
            raise ShapingError("interval, tolerance and burst must be ints")
        if not (0 <= interval_ns <= _MAX_PARAM and 0 <= tolerance_ns <= _MAX_PARAM):
            raise ShapingError("interval and tolerance must be between 0 and 2**55 ns")
        if not 1 <= burst <= 1_000_000_000:
            raise ShapingError("burst must be between 1 and 10**9")
        if interval_ns * burst > tolerance_ns:
            raise ShapingError("tolerance must cover burst emission intervals")

    def _live_pid(self, pid: int) -> int:
        if not (0 <= pid < len(self._alive)) or not self._alive[pid]:
            raise ShapingError(f"unknown parameter id {pid!r}")
        return pid

    def set_param(self, pid: int, interval_ns: int, tolerance_ns: int, burst: int) -> None:
        """Change parameters in place: every key using them follows at once."""
        with self._lock:
            self._live_pid(pid)
            self._check_param(interval_ns, tolerance_ns, burst)
            self._interval[pid] = interval_ns
            self._tolerance[pid] = tolerance_ns
            self._burst[pid] = burst

    def free_param(self, pid: int) -> None:
        """Retire parameters: keys using them are resolved again on next use.

        A retired id is reused only once no key points at it any more, so a key
        still pointing at one can always tell.
        """
        with self._lock:
            self._live_pid(pid)
            self._alive[pid] = False
            if self._refs[pid] == 0:
                heapq.heappush(self._free, pid)

    def param(self, pid: int) -> tuple[int, int, int]:
        """Return ``(interval_ns, tolerance_ns, burst)`` of a parameter id."""
        self._live_pid(pid)
        return (self._interval[pid], self._tolerance[pid], self._burst[pid])

    def _interval_at(self, iv: int, thr: int, now: int) -> int:
        if thr < 0:
            return iv
        end = self._thr_end[thr]
        if now >= end:
            return iv
        start = self._thr_start[thr]
        f = self._thr_factor[thr]
        frac = float(now - start) / float(end - start)
        if frac < 0.0:
            frac = 0.0
        m = f + (1.0 - f) * frac
        return math.ceil(float(iv) / m)

    # -- keys ---------------------------------------------------------------

    def now_ns(self) -> int:
        """The injected clock, in integer nanoseconds."""
        return _to_ns(self._clock())

    def _release_thr(self, slot: list[int]) -> None:
        thr = slot[2]
        if thr >= 0:
            slot[2] = -1
            heapq.heappush(self._thr_free, thr)

    def _throttled(self, slot: list[int], now: int) -> bool:
        return slot[2] >= 0 and self._thr_end[slot[2]] > now

    def _slot(self, key: Any, now: int) -> list[int]:
        if type(key) is not str:
            raise ShapingError(f"keys must be str, got {type(key).__name__}")
        h = hash(key)
        slot = self._slots.get(h)
        if slot is None:
            pid = self._live_pid(self._resolver(key))
            if (len(self._slots) + 1) * 8 > self._cap * 5:
                self._rebuild(now)
            slot = [now, -1, -1]
            self._ref(slot, pid)
            self._slots[h] = slot
            return slot
        if slot[2] >= 0 and now >= self._thr_end[slot[2]]:
            self._release_thr(slot)
        if not self._alive[slot[1]]:
            self._ref(slot, self._live_pid(self._resolver(key)))
        return slot

    def bind(self, key: str, pid: int) -> None:
        """Make ``key`` use parameter id ``pid`` (its TAT and throttle are kept)."""
        with self._lock:
            now = self.now_ns()
            self._live_pid(pid)
            slot = self._slot(key, now)
            self._ref(slot, pid)

    def key_param(self, key: str) -> int:
        """The parameter id limiting ``key`` (resolving it when new)."""
        with self._lock:
            return self._slot(key, self.now_ns())[1]

    def forget(self, key: str) -> bool:
        """Drop a key's state; return whether it was live (not yet drained, or throttled)."""
        with self._lock:
            if type(key) is not str:
                raise ShapingError(f"keys must be str, got {type(key).__name__}")
            now = self.now_ns()
            slot = self._slots.pop(hash(key), None)
            if slot is None:
                return False
            live = slot[0] >= now or self._throttled(slot, now)
            self._release_thr(slot)
            self._unref(slot[1])
            return live

    def tat(self, key: str) -> int | None:
        """The key's theoretical arrival time in ns, or None when it holds no state."""
        if type(key) is not str:
            raise ShapingError(f"keys must be str, got {type(key).__name__}")
        slot = self._slots.get(hash(key))
        return None if slot is None else slot[0]

    def throttle(self, key: str, factor: float, duration_ns: int) -> None:
        """Lower ``key``'s rate to ``factor`` now, recovering linearly over ``duration_ns``."""
        with self._lock:
            f = float(factor)
            if not (math.isfinite(f) and _THROTTLED_MIN <= f <= 1.0):
                raise ShapingError(f"throttle factor must be between 0.01 and 1, got {factor!r}")
            if type(duration_ns) is not int or not 0 < duration_ns <= _MAX_AHEAD:
                raise ShapingError("throttle duration must be positive and below 2**60 ns")
            now = self.now_ns()
            slot = self._slot(key, now)
            thr = slot[2]
            if thr < 0:
                if self._thr_free:
                    thr = heapq.heappop(self._thr_free)
                else:
                    thr = len(self._thr_end)
                    self._thr_factor.append(1.0)
                    self._thr_start.append(0)
                    self._thr_end.append(_NEVER)
                slot[2] = thr
            self._thr_factor[thr] = f
            self._thr_start[thr] = now
            self._thr_end[thr] = now + duration_ns

    def block_until(self, key: str, until_ns: int) -> None:
        """Admit nothing on ``key`` before ``until_ns`` (server said Retry-After)."""
        with self._lock:
            if type(until_ns) is not int:
                raise ShapingError("until_ns must be an int")
            now = self.now_ns()
            if until_ns - now > _MAX_AHEAD:
                raise ShapingError("cannot block a key for more than 2**60 ns")
            slot = self._slot(key, now)
            pid = slot[1]
            target = until_ns + self._tolerance[pid] - self._interval[pid]
            if target > slot[0]:
                slot[0] = target

    def __len__(self) -> int:
        return len(self._slots)

    def sweep(self) -> int:
        """Evict rested keys (TAT in the past, not throttled); return how many."""
        with self._lock:
            return self._sweep(self.now_ns())

    def _sweep(self, now: int) -> int:
        self._next_sweep = now + self._sweep_ns
        return self._rebuild(now)

    def _rebuild(self, now: int) -> int:
        """Evict rested keys and resize like the compiled table; bump the generation."""
        dead = []
        for h, slot in self._slots.items():
            if slot[0] < now and not self._throttled(slot, now):
                dead.append(h)
        for h in dead:
            slot = self._slots.pop(h)
            self._release_thr(slot)
            self._unref(slot[1])
        cap = _MIN_CAP
        while cap < len(self._slots) * 2 + 2:
            cap *= 2
        self._cap = cap
        self._gen += 1
        return len(dead)

    # -- decisions ----------------------------------------------------------

    def _check_n(self, n: Any) -> int:
        if type(n) is not int:
            raise ShapingError(f"n must be an int, got {type(n).__name__}")
        if n < 1:
            raise ShapingError(f"n must be at least 1, got {n}")
        if n > 1_000_000_000:
            raise ShapingError(f"n={n} exceeds the burst of a key's limit")
        return n

    def _collect(self, keys: Any, n: int, now: int) -> list[list[int]]:
        if type(keys) is str:
            out = [self._slot(keys, now)]
            self._check_burst(keys, out[0], n)
        else:
            if not isinstance(keys, (tuple, list)):
                raise ShapingError(
                    f"keys must be a str or a tuple/list of str, got {type(keys).__name__}"
                )
            if not keys:
                raise ShapingError("keys must name at least one key")
            if len(keys) > MAX_KEYS_PER_CALL:
                raise ShapingError(f"at most {MAX_KEYS_PER_CALL} keys per request, got {len(keys)}")
            while True:
                # A key added to the table may evict (rested) keys collected before it:
                # collect again until no rebuild happened meanwhile.
                gen = self._gen
                out = []
                for key in keys:
                    slot = self._slot(key, now)
                    self._check_burst(key, slot, n)
                    if all(s is not slot for s in out):
                        out.append(slot)
                if gen == self._gen:
                    break
        return out

    def _check_burst(self, key: str, slot: list[int], n: int) -> None:
        if n > self._burst[slot[1]]:
            raise ShapingError(f"n={n} exceeds the burst ({self._burst[slot[1]]}) of key {key!r}")

    def _decide(self, slots: list[list[int]], n: int, now: int, force: bool) -> int:
        """Charge all slots or none; return ns to wait (0 when admitted)."""
        worst = 0
        news = []
        for slot in slots:
            pid = slot[1]
            tat = slot[0] if slot[0] > now else now
            base = self._interval[pid]
            iv = self._interval_at(base, slot[2], now)
            new = tat + n * iv
            # Admit when tat + (n - 1) * iv <= now + tolerance - base interval: the same
            # as new - now <= tolerance unthrottled, and still window-exact when a
            # throttle stretches iv (the tolerance keeps its unthrottled value).
            wait = new - iv + base - self._tolerance[pid] - now
            if wait > worst:
                worst = wait
            news.append(new)
        if force:
            for new in news:
                if new - now > _MAX_AHEAD:
                    raise ShapingError("reservation lies more than 2**60 ns ahead")
        elif worst > 0:
            return worst
        for slot, new in zip(slots, news, strict=True):
            slot[0] = new
        return worst

    def _tick(self) -> int:
        now = self.now_ns()
        if now >= self._next_sweep:
            self._sweep(now)
        return now

    def acquire(self, keys: Any, n: Any = 1) -> Decision:
        """Charge every key's limit by ``n``, or none of them; say when to retry."""
        with self._lock:
            now = self._tick()
            n = self._check_n(n)
            wait = self._decide(self._collect(keys, n, now), n, now, False)
            if wait == 0:
                return ALLOWED
            return Decision(False, wait / 1e9)

    def reserve(self, keys: Any, n: Any = 1) -> float:
        """Charge every key by ``n`` unconditionally; return the clock time the send may go."""
        with self._lock:
            now = self._tick()
            n = self._check_n(n)
            wait = self._decide(self._collect(keys, n, now), n, now, True)
            return (now + wait) / 1e9

    def acquire_many(self, batch: Any, n: Any = 1) -> list[Decision]:
        """Decide a batch of requests (each a key or a tuple of keys) in order, at one instant.

        The whole batch is validated before anything is charged.
        """
        with self._lock:
            now = self._tick()
            n = self._check_n(n)
            if not isinstance(batch, (list, tuple)):
                raise ShapingError(f"batch must be a list or tuple, got {type(batch).__name__}")
            while True:
                gen = self._gen
                collected = [self._collect(keys, n, now) for keys in batch]
                if gen == self._gen:
                    break
            out: list[Decision] = []
            last_wait = 0
            last = ALLOWED
            for slots in collected:
                wait = self._decide(slots, n, now, False)
                if wait == 0:
                    out.append(ALLOWED)
                else:
                    # Refusals at one instant often share their wait: share the (immutable) object.
                    if wait != last_wait:
                        last_wait = wait
                        last = Decision(False, wait / 1e9)
                    out.append(last)
            return out
