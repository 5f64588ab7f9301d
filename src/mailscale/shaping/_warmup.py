"""IP warm-up schedules and pools of sending IPs."""

from __future__ import annotations

import datetime as dt
import ipaddress
import math
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import attrs

from mailscale.errors import ShapingError
from mailscale.shaping._limit import Limit
from mailscale.shaping._shaper import Shaper

__all__ = ["DEFAULT_RAMP", "IPPool", "PoolChoice", "WarmupSchedule"]

#: Messages per day by day of age (day 0 is the first day); warm afterwards.
DEFAULT_RAMP: tuple[int, ...] = (
    50, 100, 500, 1_000, 5_000, 10_000, 20_000, 40_000, 70_000, 100_000,
    150_000, 250_000, 400_000, 600_000, 1_000_000,
)  # fmt: skip


def _check_ramp(_inst: Any, _attr: Any, value: Any) -> None:
    if not isinstance(value, tuple) or not value:
        raise ShapingError("a warm-up ramp must be a non-empty tuple of daily caps")
    for cap in value:
        if type(cap) is not int or not 1 <= cap <= 1_000_000_000:
            raise ShapingError(f"warm-up daily caps must be ints in [1, 10**9], got {cap!r}")


def _check_spread(_inst: Any, _attr: Any, value: Any) -> None:
    if type(value) is not int or not 1 <= value <= 24:
        raise ShapingError(f"spread_hours must be an int from 1 to 24, got {value!r}")


@attrs.frozen(kw_only=True)
class WarmupSchedule:
    """How much a new sending IP may send per day of age, and how evenly.

    ``daily[d]`` caps day ``d`` of the IP's life: no rolling 24 hours carries
    more than that. ``spread_hours`` spreads it: no rolling hour carries more
    than ``ceil(cap / spread_hours)``, paced through the hour. The day limit
    may run one hour's share ahead, so its long-run pace is even through the
    day at ``(cap - hourly + 1)`` per 24 hours. Past the end of the ramp the
    IP is warm and uncapped.
    """

    daily: tuple[int, ...] = attrs.field(
        default=DEFAULT_RAMP, converter=tuple, validator=_check_ramp
    )
    spread_hours: int = attrs.field(default=12, validator=_check_spread)

    def daily_cap(self, age_days: int) -> int | None:
        """Cap for an IP ``age_days`` old (0 on its first day); None once warm."""
        if type(age_days) is not int or age_days < 0:
            raise ShapingError(f"age_days must be a non-negative int, got {age_days!r}")
        return self.daily[age_days] if age_days < len(self.daily) else None

    def hourly_cap(self, age_days: int) -> int | None:
        """Cap for any rolling hour; None once warm."""
        cap = self.daily_cap(age_days)
        return None if cap is None else math.ceil(cap / self.spread_hours)

    def limits(self, age_days: int) -> tuple[Limit, Limit] | None:
        """The (daily, hourly) limits for that age, or None once warm."""
        day, hour = self.daily_cap(age_days), self.hourly_cap(age_days)
        if day is None or hour is None:
            return None
        return Limit(day, 86400.0, burst=min(hour, day)), Limit(hour, 3600.0)


@attrs.frozen
class PoolChoice:
    """The answer of ``IPPool.choose``: an IP to send from, or when to ask again.

    Attributes:
        ip: the chosen address (its warm-up budget is already charged), or None.
        retry_after: seconds until some IP frees up (0.0 when ``ip`` is set).
    """

    ip: str | None
    retry_after: float

    def __bool__(self) -> bool:
        return self.ip is not None


@attrs.define
class _PoolIP:
    address: str
    weight: float
    warm_since: dt.date | None
    current: float = 0.0
    last_saturated: float = -math.inf
    age: int | None = None


def _normalise(address: Any) -> str:
    """The canonical text of an IP address (``2001:DB8::1`` → ``2001:db8::1``)."""
    try:
        return str(ipaddress.ip_address(address))
    except ValueError:
        raise ShapingError(f"not an IP address: {address!r}") from None


class IPPool:
    """Sending IPs with weights and warm-up state.

    ``choose(domain)`` picks an IP by smooth weighted round robin; if that IP
    is saturated (its warm-up day or hour budget, or its per-domain limit) the
    others are tried, least recently saturated first. Budgets live in a
    ``Shaper`` under the keys ``warmup:<ip>:day``, ``warmup:<ip>:hour`` and
    ``ipdomain:<ip>:<domain>``.

    Args:
        ips: address → weight (or just addresses, weight 1); added warm.
        schedule: the warm-up ramp for IPs added with ``warm_since``.
        per_domain: a limit per (IP, destination domain), e.g. for a mailbox
            provider's per-IP tolerance; None for none.
        shaper: the Shaper holding the budgets (default: a private one).
        today: the current date (injectable), to age warming IPs.
    """

    def __init__(
        self,
        ips: Mapping[str, float] | Iterable[str] = (),
        *,
        schedule: WarmupSchedule | None = None,
        per_domain: Limit | None = None,
        shaper: Shaper | None = None,
        today: Callable[[], dt.date] = dt.date.today,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if shaper is not None and not isinstance(shaper, Shaper):
            raise ShapingError("shaper must be a Shaper")
        if per_domain is not None and not isinstance(per_domain, Limit):
            raise ShapingError("per_domain must be a Limit")
        self.schedule = schedule if schedule is not None else WarmupSchedule()
        self._shaper = shaper if shaper is not None else Shaper(clock=clock)
        self._today = today
        self._clock = clock
        self._per_domain = per_domain
        self._ips: dict[str, _PoolIP] = {}
        if per_domain is not None:
            self._shaper.set_limit("ipdomain:*", per_domain)
        items = ips.items() if isinstance(ips, Mapping) else ((ip, 1.0) for ip in ips)
        for address, weight in items:
            self.add(address, weight=weight)

    @property
    def shaper(self) -> Shaper:
        """The Shaper holding the pool's budgets."""
        return self._shaper

    def add(self, address: str, *, weight: float = 1.0, warm_since: dt.date | None = None) -> None:
        """Add (or update) an IP; with ``warm_since`` it follows the warm-up schedule."""
        ip = _normalise(address)
        if isinstance(weight, bool) or not isinstance(weight, (int, float)):
            raise ShapingError(f"weight must be a number, got {type(weight).__name__}")
        if not math.isfinite(weight) or not weight > 0:
            raise ShapingError(f"weight must be positive and finite, got {weight!r}")
        if warm_since is not None and not isinstance(warm_since, dt.date):
            raise ShapingError("warm_since must be a datetime.date")
        old = self._ips.get(ip)
        self._ips[ip] = _PoolIP(ip, float(weight), warm_since)
        if old is not None and old.age is not None:
            self._unlimit(ip)
        self._refresh(self._ips[ip], self._today())

    def remove(self, address: str) -> None:
        """Take an IP out of the pool."""
        ip = _normalise(address)
        entry = self._ips.pop(ip, None)
        if entry is None:
            raise ShapingError(f"{address!r} is not in the pool")
        if entry.age is not None:
            self._unlimit(ip)

    def _unlimit(self, ip: str) -> None:
        for suffix in ("day", "hour"):
            self._shaper.drop_limit(f"warmup:{ip}:{suffix}")

    def age_days(self, address: str) -> int | None:
        """Days since the IP started warming (0 on its first day), or None when warm."""
        entry = self._ips.get(_normalise(address))
        if entry is None:
            raise ShapingError(f"{address!r} is not in the pool")
        if entry.warm_since is None:
            return None
        return max(0, (self._today() - entry.warm_since).days)

    def _refresh(self, entry: _PoolIP, today: dt.date) -> None:
        """Point the IP's warm-up keys at today's caps (or drop them once warm)."""
        if entry.warm_since is None:
            return
        age = max(0, (today - entry.warm_since).days)
        limits = self.schedule.limits(age)
        if limits is None:
            if entry.age is not None:
                self._unlimit(entry.address)
            entry.warm_since = None
            entry.age = None
            return
        if age != entry.age:
            self._shaper.set_limit(f"warmup:{entry.address}:day", limits[0])
            self._shaper.set_limit(f"warmup:{entry.address}:hour", limits[1])
            entry.age = age

    def _keys(self, entry: _PoolIP, domain: str) -> tuple[str, ...]:
        keys: list[str] = []
        if entry.age is not None:
            keys += (f"warmup:{entry.address}:day", f"warmup:{entry.address}:hour")
        if self._per_domain is not None:
            keys.append(f"ipdomain:{entry.address}:{domain}")
        return tuple(keys)

    def choose(self, domain: str, n: int = 1) -> PoolChoice:
        """An IP with capacity for ``n`` messages to ``domain`` (charged), or the wait."""
        if type(domain) is not str or not domain or any(c.isspace() for c in domain):
            raise ShapingError(f"domain must be a non-empty str without whitespace, got {domain!r}")
        if not self._ips:
            raise ShapingError("the IP pool is empty")
        today = self._today()
        for entry in self._ips.values():
            self._refresh(entry, today)
        entries = list(self._ips.values())
        total = sum(e.weight for e in entries)
        for e in entries:
            e.current += e.weight
        pick = max(entries, key=lambda e: e.current)
        pick.current -= total
        rest = sorted(
            (e for e in entries if e is not pick), key=lambda e: (e.last_saturated, -e.weight)
        )
        earliest = math.inf
        for entry in [pick, *rest]:
            keys = self._keys(entry, domain.lower())
            if not keys:
                return PoolChoice(entry.address, 0.0)
            decision = self._shaper.acquire(keys, n)
            if decision.allowed:
                return PoolChoice(entry.address, 0.0)
            entry.last_saturated = self._clock()
            earliest = min(earliest, decision.retry_after)
        return PoolChoice(None, earliest)
