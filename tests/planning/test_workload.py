"""Workload validation: every bad input raises PlanningError naming its field."""

from __future__ import annotations

from decimal import Decimal
from fractions import Fraction
from typing import Any

import pytest

from mailscale.errors import MailscaleError, PlanningError
from mailscale.planning import (
    DEFAULT_HOURLY_COST_USD,
    DEFAULT_MESSAGE_SIZE_BYTES,
    DEFAULT_PEAK_HOUR_SHARE,
    DEFAULT_RETENTION_DAYS,
    DEFAULT_SENDS_PER_ADDRESS_PER_MONTH,
    Workload,
    plan,
)

BAD_NUMBERS = [
    0,
    -1,
    -250_000,
    float("nan"),
    float("inf"),
    float("-inf"),
    "250000",
    None,
    True,
    False,
    10**12 + 1,
    1e300,
    2.5,
    [1],
    Decimal("NaN"),
    complex(1, 0),
]


class TestDefaults:
    def test_documented_defaults(self) -> None:
        """Defaults: 10% peak share, 50 KB, 30 days, $75/h, bulk marketing, no team."""
        w = Workload(monthly_volume=1_000)
        assert (0.10, 50_000, 30, 75.0) == (
            w.peak_hour_share,
            w.message_size_bytes,
            w.retention_days,
            w.hourly_cost_usd,
        )
        assert (
            DEFAULT_PEAK_HOUR_SHARE,
            DEFAULT_MESSAGE_SIZE_BYTES,
            DEFAULT_RETENTION_DAYS,
            DEFAULT_HOURLY_COST_USD,
        ) == (0.10, 50_000, 30, 75.0)
        assert 4 == w.sends_per_address_per_month == DEFAULT_SENDS_PER_ADDRESS_PER_MONTH
        assert ("bulk_marketing", "none", False, False, None, None) == (
            w.use_case,
            w.team_expertise,
            w.compliance_resources,
            w.custom_integration,
            w.active_addresses,
            w.per_core_rate,
        )

    def test_whole_floats_and_fractions_accepted(self) -> None:
        """A float, Fraction or Decimal with a whole value is a valid volume."""
        assert 250_000 == Workload(monthly_volume=250_000.0).monthly_volume
        assert 3 == Workload(monthly_volume=Fraction(6, 2)).monthly_volume
        assert 1_000 == Workload(monthly_volume=Decimal("1000")).monthly_volume

    def test_use_case_spelling(self) -> None:
        """Hyphens, spaces and case are normalised in the use case."""
        assert "cold_outreach" == Workload(monthly_volume=1, use_case="Cold-Outreach").use_case
        assert "bulk_marketing" == Workload(monthly_volume=1, use_case="bulk marketing").use_case

    def test_largest_volume_accepted(self) -> None:
        """10**12 emails/month is the largest volume planned."""
        assert 10**12 == plan(Workload(monthly_volume=10**12)).workload.monthly_volume

    def test_peak_share_even_spread_accepted(self) -> None:
        """A peak hour of exactly 1/24 of the day (even spread) is accepted."""
        assert 1 / 24 == Workload(monthly_volume=1, peak_hour_share=1 / 24).peak_hour_share


class TestBadInput:
    @pytest.mark.parametrize("value", BAD_NUMBERS)
    def test_monthly_volume(self, value: Any) -> None:
        """Zero, negative, NaN, inf, strings, bools, fractions of a message, absurd → error."""
        with pytest.raises(PlanningError) as info:
            Workload(monthly_volume=value)
        assert "monthly_volume" == info.value.field
        assert "monthly_volume" in str(info.value)
        assert isinstance(info.value, MailscaleError)
        assert isinstance(info.value, ValueError)

    @pytest.mark.parametrize(
        ("field", "value"),
        [
            ("peak_hour_share", 0),
            ("peak_hour_share", 0.04),
            ("peak_hour_share", 1.01),
            ("peak_hour_share", float("nan")),
            ("peak_hour_share", "10%"),
            ("message_size_bytes", 0),
            ("message_size_bytes", -5),
            ("message_size_bytes", 100_000_001),
            ("message_size_bytes", 1.5),
            ("active_addresses", 0),
            ("active_addresses", -3),
            ("active_addresses", 10**13),
            ("active_addresses", "many"),
            ("retention_days", -1),
            ("retention_days", 3_651),
            ("retention_days", 1.5),
            ("retention_days", True),
            ("use_case", "spam"),
            ("use_case", 3),
            ("use_case", None),
            ("team_expertise", "expert"),
            ("team_expertise", 2),
            ("compliance_resources", "yes"),
            ("compliance_resources", 1),
            ("custom_integration", None),
            ("hourly_cost_usd", -1),
            ("hourly_cost_usd", float("inf")),
            ("hourly_cost_usd", 100_001),
            ("hourly_cost_usd", "75"),
            ("per_core_rate", 0),
            ("per_core_rate", -100),
            ("per_core_rate", float("nan")),
            ("per_core_rate", 1e10),
            ("sends_per_address_per_month", 0),
            ("sends_per_address_per_month", -4),
            ("sends_per_address_per_month", 0.05),
            ("sends_per_address_per_month", 10_001),
            ("sends_per_address_per_month", float("nan")),
            ("sends_per_address_per_month", "4"),
        ],
    )
    def test_each_field(self, field: str, value: Any) -> None:
        """Every field refuses bad values with PlanningError naming the field."""
        with pytest.raises(PlanningError) as info:
            Workload(monthly_volume=250_000, **{field: value})
        assert field == info.value.field
        assert field in str(info.value)

    def test_zero_retention_and_cost_are_valid(self) -> None:
        """Keeping no messages and free engineering time are valid inputs."""
        w = Workload(monthly_volume=1_000, retention_days=0, hourly_cost_usd=0)
        assert (0, 0.0) == (w.retention_days, w.hourly_cost_usd)

    def test_plan_needs_a_workload(self) -> None:
        """plan() refuses anything but a Workload."""
        with pytest.raises(PlanningError) as info:
            plan({"monthly_volume": 250_000})  # type: ignore[arg-type]
        assert "workload" == info.value.field

    def test_frozen(self) -> None:
        """A workload cannot be changed after validation."""
        w = Workload(monthly_volume=1_000)
        with pytest.raises(AttributeError):
            w.monthly_volume = 0  # type: ignore[misc]
