"""``DeliverySchedule``: when a deferred message is tried again, and when it is given up.

Like an MTA's queue, not like an in-process retry: the interval grows
geometrically from ``first`` up to ``max_interval`` (Postfix's
``minimal_backoff_time`` / ``maximal_backoff_time``), a provider's
``Retry-After`` is honoured when it asks for longer, and a message that is
still undelivered ``max_age`` seconds after it was submitted expires (Postfix's
``maximal_queue_lifetime``; three days by default here). The last try is made
at the deadline itself rather than skipped. Pure arithmetic on the times given:
no clock, no randomness, so a schedule is reproducible in tests.
"""

from __future__ import annotations

import math
from typing import Any

import attrs

from mailscale.errors import ConfigurationError

__all__ = ["DeliverySchedule"]


def _positive(inst: Any, attribute: attrs.Attribute[Any], value: float) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigurationError(f"{attribute.name} must be a number, got {type(value).__name__}")
    if not (math.isfinite(value) and value > 0):
        raise ConfigurationError(f"{attribute.name} must be a positive number, got {value!r}")


def _factor(inst: Any, attribute: attrs.Attribute[Any], value: float) -> None:
    _positive(inst, attribute, value)
    if value < 1:
        raise ConfigurationError(f"factor must be at least 1, got {value!r}")


@attrs.frozen(kw_only=True)
class DeliverySchedule:
    """Retry intervals over hours, then expiry.

    Attributes:
        first: seconds before the first retry (default 60).
        factor: growth of the interval per attempt (default 2).
        max_interval: the longest interval between attempts (default 4,000 s, Postfix's).
        max_age: seconds after submission at which an undelivered message expires
            (default 3 days).
    """

    first: float = attrs.field(default=60.0, validator=_positive)
    factor: float = attrs.field(default=2.0, validator=_factor)
    max_interval: float = attrs.field(default=4000.0, validator=_positive)
    max_age: float = attrs.field(default=3 * 86400.0, validator=_positive)

    def interval(self, attempts: int) -> float:
        """Seconds to wait after the *attempts*-th failed attempt (1 for the first)."""
        exponent = max(0, attempts - 1)
        # Capped before exponentiation: a large attempt count never overflows.
        if self.factor > 1 and exponent > math.log(self.max_interval / self.first, self.factor) + 1:
            return self.max_interval
        return min(self.first * self.factor**exponent, self.max_interval)

    def deadline(self, created_at: float) -> float:
        """When a message submitted at *created_at* expires."""
        return created_at + self.max_age

    def next_attempt(
        self,
        *,
        attempts: int,
        created_at: float,
        now: float,
        retry_after: float | None = None,
    ) -> float | None:
        """When to try again after the *attempts*-th failed attempt, or None: expire now.

        Args:
            attempts: failed attempts so far, this one included.
            created_at: when the message was submitted.
            now: the current time.
            retry_after: seconds the provider asked to wait, when it did.
        """
        deadline = self.deadline(created_at)
        if now >= deadline:
            return None
        delay = self.interval(attempts)
        if retry_after is not None and retry_after > delay:
            delay = retry_after
        return min(now + delay, deadline)

    def intervals(self, until: float | None = None) -> list[float]:
        """The successive intervals of a message never delivered (for docs and planning)."""
        total = 0.0
        out: list[float] = []
        limit = self.max_age if until is None else until
        attempts = 1
        while total < limit:
            step = min(self.interval(attempts), limit - total)
            out.append(step)
            total += step
            attempts += 1
        return out
