"""``wait`` and ``acquire_async``, shared by ``Shaper`` and ``RedisShaper``."""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable, Sequence
from typing import Any

from mailscale.errors import ShapingError

__all__ = ["WaitingBase", "seconds"]


def seconds(value: Any, what: str) -> float:
    """``value`` as a finite, non-negative float of seconds, or ShapingError naming ``what``."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ShapingError(f"{what} must be a number of seconds, got {type(value).__name__}")
    if not math.isfinite(value) or value < 0:
        raise ShapingError(
            f"{what} must be a finite, non-negative number of seconds, got {value!r}"
        )
    return float(value)


class WaitingBase:
    """Blocking and asyncio admission loops over a subclass's ``acquire``.

    Subclasses provide ``acquire(keys, n)``, ``_clock`` and ``_sleep``; they may
    override ``_acquire_off_loop`` when ``acquire`` blocks on I/O.
    """

    acquire: Callable[..., Any]
    _clock: Callable[[], float]
    _sleep: Callable[[float], object]

    async def _acquire_off_loop(self, keys: Any, n: int) -> Any:
        """``acquire`` as called from the event loop (directly: it never blocks)."""
        return self.acquire(keys, n)

    def wait(self, keys: str | Sequence[str], n: int = 1, *, timeout: float | None = None) -> Any:
        """Block until ``keys`` admit ``n`` units; return the Decision.

        With ``timeout``, give up (returning the refusal, nothing charged) when
        admission would come later than ``timeout`` seconds from now.
        """
        limit = None if timeout is None else seconds(timeout, "timeout")
        start = self._clock()
        while True:
            decision = self.acquire(keys, n)
            if decision.allowed or self._too_late(decision, start, limit):
                return decision
            self._sleep(decision.retry_after)

    async def acquire_async(
        self, keys: str | Sequence[str], n: int = 1, *, timeout: float | None = None
    ) -> Any:
        """Await admission of ``n`` units on ``keys`` (asyncio); same rules as ``wait``."""
        limit = None if timeout is None else seconds(timeout, "timeout")
        start = self._clock()
        while True:
            decision = await self._acquire_off_loop(keys, n)
            if decision.allowed or self._too_late(decision, start, limit):
                return decision
            await asyncio.sleep(decision.retry_after)

    def _too_late(self, decision: Any, start: float, limit: float | None) -> bool:
        return limit is not None and self._clock() - start + decision.retry_after > limit
