"""The in-process ``Shaper``: GCRA over every key a message touches."""

from __future__ import annotations

import email.utils
import math
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from types import ModuleType
from typing import Any

from mailscale import _hot
from mailscale._hot import Decision, GCRATable
from mailscale.errors import ShapingError
from mailscale.shaping._limit import MAX_PER, Limit, RuleTable, default_burst
from mailscale.shaping._waiting import WaitingBase
from mailscale.shaping._waiting import seconds as _seconds

__all__ = ["Decision", "Shaper", "parse_rate_headers"]

_UNLIMITED_BURST = 1_000_000_000


class Shaper(WaitingBase):
    """Rate limits over keys (API key, sending IP, destination domain), all-or-nothing.

    Keys map to limits through patterns: an exact key (``"sendgrid:key1"``)
    wins over a prefix rule ending in ``*`` (``"domain:*"``), the longest
    prefix wins among prefix rules, and ``"*"`` is the default. A key matching
    no pattern is an error in strict mode (the default) and unlimited
    otherwise. Each key has its own state; a rule's limit is shared by
    reference, so reconfiguring a rule applies to its keys at once.

    ``acquire``, ``reserve`` and ``acquire_many`` go straight to the compiled
    table (or its pure-Python twin):

    - ``acquire(keys, n=1) -> Decision``: charge ``n`` on every key or on none.
    - ``reserve(keys, n=1) -> float``: charge unconditionally; return the clock
      time at which the send may go.
    - ``acquire_many(batch, n=1) -> list[Decision]``: decide a batch in order,
      each item a key or a tuple of keys, at one instant.

    Keys whose state has fully drained are evicted every ``sweep_interval``
    seconds and whenever the table has to grow (eviction never changes a
    decision), so memory follows the number of recently active keys.

    Args:
        limits: pattern → ``Limit``.
        strict: reject keys that match no pattern (``ShapingError``).
        clock: monotonic seconds; injectable for tests.
        sleep: blocking sleep used by ``wait``.
        wall_clock: epoch seconds, to read ``X-RateLimit-Reset`` timestamps.
        sweep_interval: seconds between evictions of idle keys.
        implementation: the core module to use (tests); default the selected one.

    Raises:
        ShapingError: a pattern mapped to something that is not a ``Limit``;
            with ``strict``, ``acquire`` of a key that matches no pattern.
    """

    def __init__(
        self,
        limits: Mapping[str, Limit] | None = None,
        *,
        strict: bool = True,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], object] = time.sleep,
        wall_clock: Callable[[], float] = time.time,
        sweep_interval: float = 60.0,
        implementation: ModuleType | None = None,
    ) -> None:
        core = implementation if implementation is not None else _hot.core
        self._clock = clock
        self._sleep = sleep
        self._wall_clock = wall_clock
        self._strict = bool(strict)
        #: pattern → (limit, its parameter slot in the table)
        self._rules: RuleTable[tuple[Limit, int]] = RuleTable()
        self._rules_lock = threading.RLock()
        self._table: GCRATable = core.GCRATable(self._resolve, clock, sweep_interval)
        self._unlimited = self._table.add_param(0, 0, _UNLIMITED_BURST)
        self.acquire = self._table.acquire
        self.reserve = self._table.reserve
        self.acquire_many = self._table.acquire_many
        for pattern, limit in (limits or {}).items():
            self.set_limit(pattern, limit)

    # Signatures of the methods bound to the table in __init__ (for readers and type checkers).
    acquire: Callable[..., Decision]
    reserve: Callable[..., float]
    acquire_many: Callable[..., list[Decision]]

    # -- rules --------------------------------------------------------------

    def _resolve(self, key: str) -> int:
        hit = self._rules.lookup(key)
        if hit is not None:
            return hit[1]
        if self._strict:
            raise ShapingError(f"no limit configured for key {key!r} (strict mode)")
        return int(self._unlimited)

    def limit_for(self, key: str) -> Limit | None:
        """The limit that applies to ``key``, or None when it is unlimited."""
        if type(key) is not str:
            raise ShapingError(f"keys must be str, got {type(key).__name__}")
        hit = self._rules.lookup(key)
        return None if hit is None else hit[0]

    @property
    def rules(self) -> dict[str, Limit]:
        """A copy of the configured pattern → limit mapping."""
        return {pattern: v[0] for pattern, v in self._rules.patterns().items()}

    def _reroute(self, prefix: str | None) -> None:
        """Make keys that may now match a new rule resolve again (their state is kept)."""
        t = self._table
        prefixes = self._rules.prefix
        for other, (limit, pid) in list(prefixes.items()):
            if prefix is None or prefix.startswith(other):
                prefixes[other] = (limit, t.add_param(*self._params(limit)))
                t.free_param(pid)
        if prefix is None or not self._strict:
            old = self._unlimited
            self._unlimited = t.add_param(0, 0, _UNLIMITED_BURST)
            t.free_param(old)

    @staticmethod
    def _params(limit: Limit) -> tuple[int, int, int]:
        return (limit.interval_ns, limit.tolerance_ns, limit.burst)

    def set_limit(self, pattern: str, limit: Limit) -> None:
        """Add or reconfigure the limit for an exact key or a ``prefix*`` rule.

        Reconfiguring keeps each key's state; the window guarantee of the new
        limit holds from one window after the change.
        """
        pattern = RuleTable.check_pattern(pattern)
        if not isinstance(limit, Limit):
            raise ShapingError(f"expected a Limit, got {type(limit).__name__}")
        with self._rules_lock:
            self._set_limit(pattern, limit)

    def _set_limit(self, pattern: str, limit: Limit) -> None:
        t = self._table
        known = self._rules.get(pattern)
        if known is not None:
            t.set_param(known[1], *self._params(limit))
            self._rules.set(pattern, (limit, known[1]))
            return
        if pattern.endswith("*"):
            self._reroute(pattern[:-1])
            self._rules.set(pattern, (limit, t.add_param(*self._params(limit))))
            return
        pid = t.add_param(*self._params(limit))
        self._rules.set(pattern, (limit, pid))
        t.bind(pattern, pid)

    def drop_limit(self, pattern: str) -> None:
        """Remove a pattern; its keys fall back to the next matching rule."""
        pattern = RuleTable.check_pattern(pattern)
        with self._rules_lock:
            self._drop_limit(pattern)

    def _drop_limit(self, pattern: str) -> None:
        t = self._table
        entry = self._rules.pop(pattern)
        if entry is None:
            raise ShapingError(f"no limit is configured for pattern {pattern!r}")
        t.free_param(entry[1])

    def forget(self, key: str) -> bool:
        """Drop a key's state (its limit rule stays); return whether it was live."""
        return bool(self._table.forget(key))

    def sweep(self) -> int:
        """Evict keys whose state has drained; return how many."""
        return int(self._table.sweep())

    def __len__(self) -> int:
        return len(self._table)

    # -- adaptive backoff ---------------------------------------------------

    def throttle(self, key: str, factor: float, duration: float) -> None:
        """Cut ``key``'s rate to ``factor`` (0.01 to 1), recovering linearly over ``duration`` s.

        Use after a 429, an SMTP 421 or a 4.7.x deferral. The burst is not
        raised, so the key's window guarantee still holds throughout.
        """
        d = _seconds(duration, "throttle duration")
        if not 0 < d <= MAX_PER:
            raise ShapingError(f"throttle duration must be in (0, 366 days], got {duration!r}")
        self._table.throttle(key, factor, math.floor(d * 1e9 + 0.5))

    def block_for(self, key: str, seconds: float) -> None:
        """Admit nothing on ``key`` for ``seconds`` (a server's Retry-After)."""
        s = _seconds(seconds, "block duration")
        if s > MAX_PER:
            raise ShapingError(f"block duration must be at most 366 days, got {seconds!r}")
        t = self._table
        t.block_until(key, t.now_ns() + math.floor(s * 1e9 + 0.5))

    def observe_headers(
        self, key: str, headers: Mapping[str, str] | Iterable[tuple[str, str]]
    ) -> None:
        """Learn from a provider's rate-limit response headers for ``key``.

        ``Retry-After`` (seconds or an HTTP date) blocks the key that long.
        ``X-RateLimit-Remaining: 0`` with ``X-RateLimit-Reset`` (seconds, or an
        epoch timestamp) blocks it until the reset. ``X-RateLimit-Limit``
        different from the configured count sets an exact limit for the key
        with the server's count over the configured period; like any exact
        rule it stays until ``drop_limit(key)``.
        """
        info = parse_rate_headers(headers, wall_clock=self._wall_clock)
        if "limit" in info:
            current = self.limit_for(key)
            count = int(info["limit"])
            if current is not None and count != current.count:
                burst = min(current.burst, default_burst(count, current.per))
                self.set_limit(key, Limit(count, current.per, burst=burst, unit=current.unit))
        block = 0.0
        if "retry_after" in info:
            block = info["retry_after"]
        if info.get("remaining") == 0 and "reset" in info:
            block = max(block, info["reset"])
        if block > 0:
            self.block_for(key, min(block, MAX_PER))


def _header_items(headers: Any) -> Iterable[tuple[str, str]]:
    if isinstance(headers, Mapping):
        return list(headers.items())
    try:
        return [(str(k), str(v)) for k, v in headers]
    except (TypeError, ValueError):
        raise ShapingError(
            "headers must be a mapping or an iterable of (name, value) pairs"
        ) from None


def parse_rate_headers(
    headers: Mapping[str, str] | Iterable[tuple[str, str]],
    *,
    wall_clock: Callable[[], float] = time.time,
) -> dict[str, float]:
    """Read ``Retry-After`` and ``X-RateLimit-*`` into seconds and counts.

    Returns a dict with any of ``retry_after`` (s), ``limit``, ``remaining``
    and ``reset`` (s from now). Reset values above 10**9 are epoch timestamps.
    """
    found = {str(k).strip().lower(): str(v).strip() for k, v in _header_items(headers)}
    out: dict[str, float] = {}

    def number(name: str) -> float:
        raw = found[name]
        try:
            value = float(raw)
        except ValueError:
            raise ShapingError(f"header {name} is not a number: {raw[:40]!r}") from None
        if not math.isfinite(value) or value < 0:
            raise ShapingError(f"header {name} must be a finite non-negative number: {raw[:40]!r}")
        return value

    if "retry-after" in found:
        raw = found["retry-after"]
        try:
            out["retry_after"] = max(0.0, number("retry-after"))
        except ShapingError:
            try:
                when = email.utils.parsedate_to_datetime(raw)
            except (TypeError, ValueError):
                raise ShapingError(
                    f"header retry-after is neither seconds nor a date: {raw[:40]!r}"
                ) from None
            out["retry_after"] = max(0.0, when.timestamp() - wall_clock())
    for name in ("limit", "remaining"):
        header = f"x-ratelimit-{name}"
        if header in found:
            value = number(header)
            if value != int(value):
                raise ShapingError(f"header {header} must be an integer: {found[header][:40]!r}")
            out[name] = int(value)
    if "limit" in out and out["limit"] < 1:
        raise ShapingError("header x-ratelimit-limit must be at least 1")
    if "x-ratelimit-reset" in found:
        value = number("x-ratelimit-reset")
        out["reset"] = max(0.0, value - wall_clock()) if value > 1e9 else value
    return out
