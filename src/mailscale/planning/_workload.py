"""The workload a plan is made for: validated on construction."""

from __future__ import annotations

import math
from fractions import Fraction
from typing import Any

import attrs

from mailscale.errors import PlanningError
from mailscale.planning._data import TEAM_LEVELS, USE_CASES
from mailscale.planning._validate import (
    check_bool,
    check_choice,
    check_number,
    check_per_core_rate,
)

__all__ = [
    "DEFAULT_HOURLY_COST_USD",
    "DEFAULT_MESSAGE_SIZE_BYTES",
    "DEFAULT_PEAK_HOUR_SHARE",
    "DEFAULT_RETENTION_DAYS",
    "DEFAULT_SENDS_PER_ADDRESS_PER_MONTH",
    "MAX_MONTHLY_VOLUME",
    "MIN_PER_CORE_RATE",
    "Workload",
]

DEFAULT_PEAK_HOUR_SHARE = 0.10
"""Share of a day's volume sent in the busiest hour when none is given (10%)."""

DEFAULT_MESSAGE_SIZE_BYTES = 50_000
"""Average message size when none is given: 50 KB, a typical HTML email."""

DEFAULT_RETENTION_DAYS = 30
"""Days sent messages are kept when none is given."""

DEFAULT_HOURLY_COST_USD = 75.0
"""Engineering cost per hour when none is given (USD)."""

DEFAULT_SENDS_PER_ADDRESS_PER_MONTH = 4.0
"""Emails each active address gets per month when no active addresses are given:
4, a weekly newsletter. The active addresses default to the monthly volume / this."""

MAX_MONTHLY_VOLUME = 10**12
"""Larger monthly volumes are refused as absurd."""

MIN_PER_CORE_RATE = 1.0
"""The smallest per-core rate accepted, in emails/minute: a core that prepares
fewer than one message a minute is not a measurement of a working sender
(the brief's figure is 1,000), and a tinier rate plans absurd vCPU counts."""

MIN_PEAK_HOUR_SHARE = 1 / 24
"""The busiest hour carries at least an even share of the day."""


def _monthly_volume(value: Any) -> int:
    return int(check_number(value, "monthly_volume", integer=True, maximum=MAX_MONTHLY_VOLUME))


def _active_addresses(value: Any) -> int | None:
    if value is None:
        return None
    return int(check_number(value, "active_addresses", integer=True, maximum=MAX_MONTHLY_VOLUME))


def _peak_share(value: Any) -> float:
    share = check_number(value, "peak_hour_share", maximum=1.0)
    if share < MIN_PEAK_HOUR_SHARE:
        raise PlanningError(
            f"peak_hour_share must be at least 1/24 (an even spread over the day), got {share:g}",
            field="peak_hour_share",
        )
    return share


def _message_size(value: Any) -> int:
    return int(check_number(value, "message_size_bytes", integer=True, maximum=100_000_000))


def _retention(value: Any) -> int:
    return int(
        check_number(value, "retention_days", integer=True, allow_minimum=True, maximum=3_650)
    )


def _hourly_cost(value: Any) -> float:
    return check_number(value, "hourly_cost_usd", allow_minimum=True, maximum=100_000)


def _per_core_rate(value: Any) -> float | None:
    if value is None:
        return None
    return check_per_core_rate(value, "per_core_rate")


def _sends_per_address(value: Any) -> float:
    # From once a year to ~330 a day: outside that the figure is a typo, not a workload.
    return check_number(
        value, "sends_per_address_per_month", minimum=1 / 12, allow_minimum=True, maximum=10_000
    )


def _use_case(value: Any) -> str:
    if isinstance(value, str):
        value = value.strip().lower().replace("-", "_").replace(" ", "_")
    return check_choice(value, "use_case", USE_CASES)


def _team(value: Any) -> str:
    if isinstance(value, str):
        value = value.strip().lower()
    return check_choice(value, "team_expertise", TEAM_LEVELS)


def _compliance(value: Any) -> bool:
    return check_bool(value, "compliance_resources")


def _custom(value: Any) -> bool:
    return check_bool(value, "custom_integration")


def _esp_dedicated_ips(value: Any) -> bool:
    return check_bool(value, "esp_dedicated_ips")


@attrs.frozen(kw_only=True)
class Workload:
    """What is to be sent, by whom: the input of `plan`.

    Every field is checked on construction; a bad value raises `PlanningError`
    whose ``field`` names it.

    Attributes:
        monthly_volume: emails per month, 1 to 10**12.
        peak_hour_share: share of a day's volume sent in the busiest hour,
            from 1/24 (even spread) to 1; default 0.10.
        message_size_bytes: average message size in bytes; default 50,000.
        active_addresses: addresses mailed actively; default: the monthly
            volume / ``sends_per_address_per_month``, rounded up.
        sends_per_address_per_month: emails per active address per month,
            used only when ``active_addresses`` is not given; default 4 (a
            weekly newsletter), from 1/12 to 10,000.
        retention_days: days sent messages are kept (0 to 3,650); default 30.
        use_case: ``transactional``, ``cold_outreach``, ``bulk_marketing`` or
            ``enterprise`` (hyphens and spaces are accepted for underscores).
        team_expertise: email-infrastructure expertise: ``none``, ``some``, ``strong``.
        compliance_resources: dedicated compliance resources exist.
        custom_integration: a custom integration is needed.
        hourly_cost_usd: engineering cost per hour (USD); default 75.
        per_core_rate: measured emails/minute per core, replacing the planning
            guide's 1,000; at least 1; default None (use the data's figure).
        esp_dedicated_ips: a managed setup takes the ESP's dedicated-IP add-on
            (priced and warmed up like own IPs); default False (shared IPs).
    """

    monthly_volume: int = attrs.field(converter=_monthly_volume)
    use_case: str = attrs.field(default="bulk_marketing", converter=_use_case)
    peak_hour_share: float = attrs.field(default=DEFAULT_PEAK_HOUR_SHARE, converter=_peak_share)
    message_size_bytes: int = attrs.field(
        default=DEFAULT_MESSAGE_SIZE_BYTES, converter=_message_size
    )
    active_addresses: int | None = attrs.field(default=None, converter=_active_addresses)
    sends_per_address_per_month: float = attrs.field(
        default=DEFAULT_SENDS_PER_ADDRESS_PER_MONTH, converter=_sends_per_address
    )
    retention_days: int = attrs.field(default=DEFAULT_RETENTION_DAYS, converter=_retention)
    team_expertise: str = attrs.field(default="none", converter=_team)
    compliance_resources: bool = attrs.field(default=False, converter=_compliance)
    custom_integration: bool = attrs.field(default=False, converter=_custom)
    hourly_cost_usd: float = attrs.field(default=DEFAULT_HOURLY_COST_USD, converter=_hourly_cost)
    per_core_rate: float | None = attrs.field(default=None, converter=_per_core_rate)
    esp_dedicated_ips: bool = attrs.field(default=False, converter=_esp_dedicated_ips)

    @property
    def addresses(self) -> int:
        """Active addresses: as given, else ceil(monthly volume / sends per address per month)."""
        if self.active_addresses is not None:
            return self.active_addresses
        sends = Fraction(repr(self.sends_per_address_per_month))
        return math.ceil(Fraction(self.monthly_volume) / sends)

    def to_dict(self) -> dict[str, Any]:
        """The fields as plain JSON types, keys sorted."""
        return dict(sorted(attrs.asdict(self).items()))
