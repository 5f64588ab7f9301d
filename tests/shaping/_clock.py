"""A fake clock for the shaping tests."""

from __future__ import annotations

import math


class FakeClock:
    """A clock that moves only when told to, in integer microseconds."""

    def __init__(self, start_us: int = 1_000_000) -> None:
        self.us = start_us

    def __call__(self) -> float:
        return self.us / 1e6

    @property
    def ns(self) -> int:
        return self.us * 1000

    def advance(self, seconds: float) -> None:
        """Move forward by at least ``seconds`` (rounded up to a whole microsecond)."""
        if seconds > 0:
            self.us += max(1, math.ceil(seconds * 1e6 - 1e-6))

    def advance_us(self, us: int) -> None:
        self.us += us
