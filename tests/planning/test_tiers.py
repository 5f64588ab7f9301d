"""Volume tiers and their lower-inclusive bands, against the brief's table."""

from __future__ import annotations

import pytest

from mailscale.planning import Workload, plan, tier_for

from .planning_brief import TIER_SERVERS, TIERS, tier_index

BOUNDARY_VOLUMES = [
    1,
    999,
    1_000,
    1_001,
    9_999,
    10_000,
    10_001,
    49_999,
    50_000,
    99_999,
    100_000,
    199_999,
    200_000,
    499_999,
    500_000,
    999_999,
    1_000_000,
    1_000_001,
    10**9,
    10**12,
]


class TestTierBands:
    @pytest.mark.parametrize("volume", BOUNDARY_VOLUMES)
    def test_volume_lands_in_lower_inclusive_band(self, volume: int) -> None:
        """A volume exactly at a tier's lower bound belongs to that tier."""
        low, high, vcpu, ram, ssd, ips, cost, architecture = TIERS[tier_index(volume)]
        tier = plan(Workload(monthly_volume=volume)).tier
        assert (low, high) == (tier.min_volume, tier.max_volume)
        assert vcpu == tier.vcpu
        assert ram == tier.ram_gb
        assert ssd == tier.ssd_gb
        assert ips == tier.dedicated_ips
        assert cost == tier.monthly_cost_usd
        assert architecture == tier.architecture

    @pytest.mark.parametrize(
        ("volume", "label"),
        [
            (10_000, "10K-100K"),
            (9_999, "1K-10K"),
            (100_000, "100K-1M"),
            (999_999, "100K-1M"),
            (1_000_000, "1M+"),
            (500, "1K-10K"),
        ],
    )
    def test_band_label(self, volume: int, label: str) -> None:
        """Each tier is labelled with its band."""
        assert label == plan(Workload(monthly_volume=volume)).tier.label

    @pytest.mark.parametrize("volume", [1, 500, 999])
    def test_below_smallest_tier_gets_smallest(self, volume: int) -> None:
        """Volumes under 1,000/month get the smallest tier, flagged as below it."""
        tier = plan(Workload(monthly_volume=volume)).tier
        assert (1_000, 10_000) == (tier.min_volume, tier.max_volume)
        assert tier.below_smallest

    def test_at_smallest_tier_is_not_below(self) -> None:
        """1,000/month is inside the smallest tier, not below it."""
        assert not plan(Workload(monthly_volume=1_000)).tier.below_smallest

    @pytest.mark.parametrize("volume", BOUNDARY_VOLUMES)
    def test_tier_for_matches_plan(self, volume: int) -> None:
        """tier_for gives the same tier the plan uses."""
        assert plan(Workload(monthly_volume=volume)).tier.key == tier_for(volume).key

    def test_top_tier_is_open_ended(self) -> None:
        """Only the 1M+ tier carries the brief's '+'."""
        opens = [plan(Workload(monthly_volume=t[0])).tier.open_ended for t in TIERS]
        assert [False, False, False, True] == opens

    @pytest.mark.parametrize("index", range(4))
    def test_architecture_flags(self, index: int) -> None:
        """Multi-server from the 100K tier, multi-data-center from 1M."""
        tier = plan(Workload(monthly_volume=TIERS[index][0])).tier
        assert (index >= 2, index >= 3) == (tier.multi_server, tier.multi_data_center)
        assert TIER_SERVERS[index] == tier.servers


class TestTierFiguresInRequirements:
    @pytest.mark.parametrize("index", range(4))
    def test_tier_column_is_high_end_of_band(self, index: int) -> None:
        """The requirement's tier figure is the top of the brief's range."""
        low, _, vcpu, ram, ssd, ips, _, _ = TIERS[index]
        # Few addresses and no retention so the tier's figures are visible.
        p = plan(Workload(monthly_volume=low, active_addresses=1, retention_days=0))
        assert vcpu[1] == p.requirement("vcpu").tier
        assert ram[1] == p.requirement("ram_gb").tier
        assert ssd[1] == p.requirement("storage_gb").tier
        assert ips[1] == p.requirement("dedicated_ips").tier
        assert TIER_SERVERS[index] == p.requirement("servers").tier
