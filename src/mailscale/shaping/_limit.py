"""``Limit``: count per period, with a window-exact guarantee."""

from __future__ import annotations

import math
from typing import Any, Generic, TypeVar

import attrs

from mailscale.errors import ShapingError
from mailscale.message import ValueEnum

__all__ = ["MAX_PER", "Limit", "RuleTable", "Unit", "default_burst"]

MAX_PER = 366 * 86400.0
_MAX_TOLERANCE_NS = 1 << 55


def default_burst(count: int, per: float = 1.0) -> int:
    """Burst used when none is given.

    At least 1% of ``count`` and enough to absorb 20 ms of scheduling jitter
    (one extra unit per 20 ms of emission), but never more than 10 nor more
    than a tenth of ``count`` (so a burst never costs more than 10% of the rate).
    """
    if type(count) is not int or count < 1:
        return 1
    try:
        rate = count / float(per)
    except (TypeError, ValueError, ZeroDivisionError):
        return 1
    if not math.isfinite(rate) or rate <= 0:
        return 1
    burst = max(count // 100, 1 + math.ceil(0.02 * rate))
    return max(1, min(burst, 10, count // 10))


def _check_count(_inst: Any, _attr: Any, value: Any) -> None:
    if type(value) is not int:
        raise ShapingError(f"Limit count must be an int, got {type(value).__name__}")
    if not 1 <= value <= 1_000_000_000:
        raise ShapingError(f"Limit count must be between 1 and 10**9, got {value}")


def _check_per(_inst: Any, _attr: Any, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ShapingError(f"Limit per must be a number of seconds, got {type(value).__name__}")
    if not math.isfinite(value) or not 0 < value <= MAX_PER:
        raise ShapingError(
            f"Limit per must be a finite number of seconds in (0, 366 days], got {value!r}"
        )
    if math.floor(float(value) * 1e9 + 0.5) < 1:
        raise ShapingError(f"Limit per must be at least 1 ns, got {value!r}")


class Unit(ValueEnum):
    """What one unit of a :class:`Limit` is: what a caller charges per unit.

    The shaper only counts; the caller (the ``Sender``) reads the unit to decide how
    much to charge: one per provider request, per message or per recipient.
    """

    MESSAGE = "message"
    """One message, whatever its recipients (a destination domain, an IP's budget)."""
    REQUEST = "request"
    """One provider API request, whatever it carries (SendGrid, Mailgun, Postmark)."""
    RECIPIENT = "recipient"
    """One recipient of a message (Amazon SES's sending rate and quota)."""


def _to_unit(value: Any) -> Unit:
    try:
        return Unit(value)
    except ValueError:
        known = ", ".join(u.value for u in Unit)
        raise ShapingError(f"Limit unit must be one of {known}, got {value!r}") from None


@attrs.frozen
class Limit:
    """At most ``count`` units in any window of ``per`` seconds.

    Window-exact guarantee: in every window ``[t, t + per]`` (closed, sliding,
    any ``t``) at most ``count`` units are admitted. It is enforced with GCRA:
    a key may run ``burst`` units ahead, and the emission interval is
    ``per / (count - burst + 1)`` rounded up to the next nanosecond, so a
    saturating sender gets ``(count - burst + 1) / count`` of the nominal rate
    (99.1% for count 1,000 with the default burst of 10).

    Attributes:
        count: units per window, 1 to 10**9.
        per: window length in seconds, up to 366 days.
        burst: units that may go back to back after a quiet period; default
            ``default_burst(count, per)`` (1% of count or 20 ms of jitter at
            the limit's rate, at most 10 and at most count / 10).
        unit: what a unit is (keyword only): :attr:`Unit.MESSAGE` (the default),
            :attr:`Unit.REQUEST` or :attr:`Unit.RECIPIENT`. The shaper counts
            units alike; the ``Sender`` charges a key per message, per provider
            request or per recipient according to its limit's unit.

    Raises:
        ShapingError: a count, window or burst out of range, or an unknown unit.

    Example:
        >>> from mailscale.shaping import Limit
        >>> Limit(600, 60.0).count
        600
    """

    count: int = attrs.field(validator=_check_count)
    per: float = attrs.field(validator=_check_per)
    burst: int = attrs.field(
        default=attrs.Factory(lambda self: default_burst(self.count, self.per), takes_self=True)
    )
    unit: Unit = attrs.field(default=Unit.MESSAGE, converter=_to_unit, kw_only=True)

    @burst.validator
    def _check_burst(self, _attr: Any, value: Any) -> None:
        if type(value) is not int:
            raise ShapingError(f"Limit burst must be an int, got {type(value).__name__}")
        if not 1 <= value <= self.count:
            raise ShapingError(
                f"Limit burst must be between 1 and count ({self.count}), got {value}"
            )
        if self.tolerance_ns > _MAX_TOLERANCE_NS:
            raise ShapingError("Limit burst times per is too large (over a year of lead)")

    @property
    def per_ns(self) -> int:
        """The window in integer nanoseconds."""
        return math.floor(float(self.per) * 1e9 + 0.5)

    @property
    def interval_ns(self) -> int:
        """GCRA emission interval: strictly more than per / (count - burst + 1)."""
        return self.per_ns // (self.count - self.burst + 1) + 1

    @property
    def tolerance_ns(self) -> int:
        """How far ahead of now a key's theoretical arrival time may run: burst intervals."""
        return self.burst * self.interval_ns

    @property
    def sustained_rate(self) -> float:
        """Units per second a saturating sender achieves."""
        return 1e9 / self.interval_ns

    def scaled_units(self, unit_ns: int) -> tuple[int, int]:
        """Interval and tolerance in another time unit (microseconds for Redis), same guarantee."""
        per_u = -(-self.per_ns // unit_ns)
        interval = per_u // (self.count - self.burst + 1) + 1
        return interval, interval * self.burst


V = TypeVar("V")


class RuleTable(Generic[V]):
    """Pattern → value, the one lookup rule of every shaper.

    A pattern is an exact key (``"sendgrid:key1"``) or a prefix rule ending in ``*``
    (``"domain:*"``; ``"*"`` alone is the default). An exact key wins over prefix
    rules, and the longest matching prefix wins among them.
    """

    def __init__(self) -> None:
        #: exact key → value
        self.exact: dict[str, V] = {}
        #: prefix (the pattern without its ``*``) → value
        self.prefix: dict[str, V] = {}
        self._order: list[str] = []

    @staticmethod
    def check_pattern(pattern: Any) -> str:
        """Return ``pattern`` if it is a valid pattern, else raise ShapingError."""
        if type(pattern) is not str or not pattern:
            raise ShapingError(f"a limit pattern must be a non-empty str, got {pattern!r}")
        if "*" in pattern[:-1]:
            raise ShapingError(f"'*' may only end a pattern (prefix rule), got {pattern!r}")
        return pattern

    def lookup(self, key: str) -> V | None:
        """The value of the rule that applies to ``key``, or None when none does."""
        hit = self.exact.get(key)
        if hit is not None:
            return hit
        for prefix in self._order:
            if key.startswith(prefix):
                return self.prefix[prefix]
        return None

    def get(self, pattern: str) -> V | None:
        """The value stored under ``pattern`` itself (no matching)."""
        if pattern.endswith("*"):
            return self.prefix.get(pattern[:-1])
        return self.exact.get(pattern)

    def set(self, pattern: str, value: V) -> None:
        """Store ``value`` under a checked ``pattern``."""
        if pattern.endswith("*"):
            self.prefix[pattern[:-1]] = value
            self._order = sorted(self.prefix, key=len, reverse=True)
        else:
            self.exact[pattern] = value

    def pop(self, pattern: str) -> V | None:
        """Remove ``pattern`` and return its value (None when it was not there)."""
        if pattern.endswith("*"):
            value = self.prefix.pop(pattern[:-1], None)
            self._order = sorted(self.prefix, key=len, reverse=True)
            return value
        return self.exact.pop(pattern, None)

    def patterns(self) -> dict[str, V]:
        """A copy of the pattern → value mapping."""
        out = dict(self.exact)
        out.update({p + "*": v for p, v in self.prefix.items()})
        return out
