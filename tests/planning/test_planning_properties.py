"""Properties that hold for any valid workload."""

from __future__ import annotations

import json

from hypothesis import given, settings
from hypothesis import strategies as st
from planning_brief import TIERS, peak_hour, tier_index

from mailscale.planning import Workload, plan

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
)


class TestAnyWorkload:
    @settings(max_examples=150, deadline=None)
    @given(workloads)
    def test_plan_is_consistent(self, workload: Workload) -> None:
        """Recommendations cover tier and derived figures; the dict is JSON; one cheapest."""
        p = plan(workload)
        assert TIERS[tier_index(workload.monthly_volume)][0] == p.tier.min_volume
        assert peak_hour(workload.monthly_volume, repr(workload.peak_hour_share)) == (
            p.derived_value("peak_hour_messages"))
        for r in p.requirements:
            assert r.recommended == max(r.tier, r.derived or 0)
            assert r.driver == ("derived" if (r.derived or 0) > r.tier else "tier")
        servers = p.requirement("servers").recommended
        assert p.per_server[0] * servers >= p.requirement("vcpu").recommended
        assert p.per_server[1] * servers >= p.requirement("ram_gb").recommended
        assert 1 == sum(o.cheapest for o in p.tco)
        for f in p.feasibility:
            assert 1 <= f.keys_batched <= f.keys_unbatched
        data = p.to_dict()
        assert data == json.loads(json.dumps(data))
