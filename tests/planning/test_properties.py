"""Properties that hold for any valid workload."""

from __future__ import annotations

import json

import attrs
from hypothesis import given, settings
from hypothesis import strategies as st

from mailscale.planning import Workload, plan

from .planning_brief import TIERS, peak_hour, tier_index

workloads = st.builds(
    Workload,
    monthly_volume=st.integers(1, 10**12),
    use_case=st.sampled_from(["transactional", "cold_outreach", "bulk_marketing", "enterprise"]),
    peak_hour_share=st.floats(1 / 24, 1.0),
    message_size_bytes=st.integers(1, 100_000_000),
    active_addresses=st.none() | st.integers(1, 10**12),
    retention_days=st.integers(0, 3_650),
    team_expertise=st.sampled_from(["none", "some", "strong"]),
    compliance_resources=st.booleans(),
    custom_integration=st.booleans(),
    hourly_cost_usd=st.floats(0, 100_000),
    per_core_rate=st.none() | st.floats(1, 1e9),
    esp_dedicated_ips=st.booleans(),
)


class TestAnyWorkload:
    @settings(max_examples=150, deadline=None)
    @given(workloads)
    def test_plan_is_consistent(self, workload: Workload) -> None:
        """Recommendations cover tier and derived figures; the dict is JSON; one cheapest."""
        p = plan(workload)
        assert TIERS[tier_index(workload.monthly_volume)][0] == p.tier.min_volume
        assert peak_hour(workload.monthly_volume, repr(workload.peak_hour_share)) == (
            p.derived_value("peak_hour_messages")
        )
        for r in p.requirements:
            if r.resource == "dedicated_ips":
                continue
            assert r.recommended == max(r.tier, r.derived or 0)
            assert r.driver == ("derived" if (r.derived or 0) > r.tier else "tier")
        ips = p.requirement("dedicated_ips")
        assert (ips.recommended, ips.derived) == (p.dedicated_ips.ips, p.dedicated_ips.ips)
        servers = p.requirement("servers").recommended
        assert p.per_server[0] * servers >= p.requirement("vcpu").recommended
        assert p.per_server[1] * servers >= p.requirement("ram_gb").recommended
        assert 1 == sum(o.cheapest for o in p.tco)
        assert 1 == sum(o.recommended for o in p.tco)
        for f in p.feasibility:
            assert 1 <= f.keys_batched <= f.keys_unbatched
        data = p.to_dict()
        assert data == json.loads(json.dumps(data))

    @settings(max_examples=40, deadline=None)
    @given(workloads)
    def test_every_section_names_the_same_setup(self, workload: Workload) -> None:
        """One verdict: hosting, cost, IPs, rate limits, explanation and roadmap agree."""
        p = plan(workload)
        setup = p.setup
        assert setup.kind == p.hosting.recommendation
        assert setup.option == p.recommended.option
        assert [setup.esp] == [f.esp for f in p.feasibility if f.chosen] or (
            setup.esp is None and not any(f.chosen for f in p.feasibility)
        )
        own = setup.kind in ("self_hosted", "hybrid")
        assert p.dedicated_ips.used == (own or workload.esp_dedicated_ips)
        assert (p.dedicated_ips.ips > 0) == p.dedicated_ips.used
        lines = p.explain().splitlines()
        assert f"Setup: {setup.summary}." in lines
        esp_lines = [line for line in lines if line.startswith("ESP")]
        if setup.kind == "self_hosted":
            assert all(line.startswith("ESP: none sends;") for line in esp_lines[:1])
            assert "dedicated IP" in setup.summary and "server" in setup.summary
        else:
            assert setup.esp_name is not None and setup.esp_name in esp_lines[0]
        assert p.roadmap[0].tasks[0] == f"Choose the sending setup: {setup.summary}."
        assert setup.summary in p.infrastructure_note
        servers = p.requirement("servers").recommended
        assert [servers] == [q.servers for q in p.vps if q.chosen]

    @settings(max_examples=40, deadline=None)
    @given(workloads, st.integers(1, 10**12))
    def test_cost_never_decreases_with_volume(self, workload: Workload, other: int) -> None:
        """For one option, a larger volume never costs less in total (low and high ends).

        The infrastructure part alone may fall: the fleet is the cheapest counting upkeep
        hours, so one larger server at a tiny volume can give way to two smaller ones."""
        low, high = sorted((workload.monthly_volume, other))
        small = plan(attrs.evolve(workload, monthly_volume=low))
        large = plan(attrs.evolve(workload, monthly_volume=high))
        before = {o.option: o for o in small.tco}
        for option in large.tco:
            if option.option in before:
                was = before[option.option]
                assert was.total_usd[0] <= option.total_usd[0]
                assert was.total_usd[1] <= option.total_usd[1]

    @settings(max_examples=40, deadline=None)
    @given(workloads, st.integers(1, 100_000_000))
    def test_storage_grows_with_message_size(self, workload: Workload, other: int) -> None:
        """Larger messages never need less storage; the guide's rule of thumb does not move."""
        low, high = sorted((workload.message_size_bytes, other))
        first = plan(attrs.evolve(workload, message_size_bytes=low))
        small = first.requirement("storage_gb")
        large = plan(attrs.evolve(workload, message_size_bytes=high)).requirement("storage_gb")
        assert (small.derived or 0) <= (large.derived or 0)
        assert small.recommended <= large.recommended
        if first.derived_value("stored_emails") * (high - low) >= 2 * 10**9:
            assert (small.derived or 0) < (large.derived or 0)
