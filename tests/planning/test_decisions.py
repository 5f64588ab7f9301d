"""Self-hosted vs managed, TCO arithmetic, and the roadmap's tailoring."""

from __future__ import annotations

from typing import Any

import pytest

from mailscale.planning import Plan, Workload, plan

from .planning_brief import TCO_HOURS

ALL_MET: dict[str, Any] = {
    "monthly_volume": 500_000,
    "team_expertise": "strong",
    "custom_integration": True,
    "compliance_resources": True,
}


def tasks(p: Plan) -> list[str]:
    return [task for phase in p.roadmap for task in phase.tasks]


class TestHosting:
    def test_all_criteria_met_self_hosts(self) -> None:
        """500K+/month, strong team, custom integration, compliance → self-hosted."""
        hosting = plan(Workload(**ALL_MET)).hosting
        assert ("self_hosted", 4, 4) == (hosting.recommendation, hosting.met, hosting.required)
        assert all(c.met for c in hosting.criteria)

    @pytest.mark.parametrize(
        ("change", "criterion", "setup"),
        [
            ({"monthly_volume": 499_999}, "volume", "managed"),
            ({"team_expertise": "some"}, "team", "managed"),
            ({"team_expertise": "none"}, "team", "managed"),
            ({"custom_integration": False}, "custom_integration", "hybrid"),
            ({"compliance_resources": False}, "compliance", "hybrid"),
        ],
    )
    def test_one_missing_criterion(
        self, change: dict[str, Any], criterion: str, setup: str
    ) -> None:
        """Missing any one criterion means no self-hosting, and names it; with the volume and
        the team there (the hybrid criteria), bulk mail is self-hosted, transactional not."""
        p = plan(Workload(**{**ALL_MET, **change}))
        hosting = p.hosting
        assert (setup, setup) == (hosting.recommendation, p.setup.kind)
        assert [criterion] == [c.key for c in hosting.criteria if not c.met]
        assert 3 == hosting.met
        if setup == "hybrid":
            assert ("postmark", "hybrid") == (p.setup.esp, p.recommended.option)

    def test_defaults_meet_nothing(self) -> None:
        """A small workload with default answers meets none of the criteria."""
        hosting = plan(Workload(monthly_volume=10_000)).hosting
        assert (0, "managed") == (hosting.met, hosting.recommendation)

    def test_threshold_override(self) -> None:
        """With min_criteria_met = 3, three of four criteria are enough."""
        w = Workload(**{**ALL_MET, "compliance_resources": False})
        hosting = plan(w, overrides={"hosting": {"min_criteria_met": 3}}).hosting
        assert ("self_hosted", 3) == (hosting.recommendation, hosting.required)


class TestTco:
    @pytest.mark.parametrize("rate", [0, 50, 75, 150.5])
    def test_arithmetic(self, rate: float) -> None:
        """Total = infrastructure + hours x hourly cost + compliance, low and high; the hours
        are the guide's per option + half an hour of upkeep per server (2 here), the
        compliance the guide's."""
        p = plan(Workload(monthly_volume=250_000, hourly_cost_usd=rate))
        for option in p.tco:
            hours, (comp_lo, comp_hi) = TCO_HOURS[option.option]
            hours += 2 * 0.5
            infra = option.infrastructure_usd[0]
            assert pytest.approx(option.esp_usd + option.servers_usd) == infra
            assert (
                infra + hours * rate + comp_lo,
                infra + hours * rate + comp_hi,
            ) == pytest.approx(option.total_usd)
            assert hours * rate == pytest.approx(option.engineering_usd)
        assert ["self_hosted", "sendgrid", "mailgun", "postmark", "ses"] == [
            o.option for o in p.tco
        ]

    def test_prices_at_the_volume(self) -> None:
        """250K/month from the price lists: SES 250 x $0.10; Mailgun Scale $90 + 150 x $0.80;
        SendGrid Pro $89.95 + 150 x $1.10; Postmark Platform $18 + 240 x $1.20; plus the
        pipeline's 2 Vultr servers ($40); self-hosted: the servers alone."""
        p = plan(Workload(monthly_volume=250_000))
        esp = {o.option: o.esp_usd for o in p.tco}
        assert (
            pytest.approx(
                {"self_hosted": 0, "ses": 25, "mailgun": 210, "sendgrid": 254.95, "postmark": 306}
            )
            == esp
        )
        assert {40} == {o.servers_usd for o in p.tco}

    def test_costs_follow_the_volume(self) -> None:
        """The issue's example: the rows differ at 5K, 250K and 2M a month."""
        rows = [
            tuple(o.total_usd for o in plan(Workload(monthly_volume=v)).tco)
            for v in (5_000, 250_000, 2_000_000)
        ]
        assert len(set(rows)) == 3
        for option in range(5):
            assert rows[0][option][0] < rows[2][option][0]

    def test_cheapest_by_midpoint(self) -> None:
        """At $75/h Mailgun ($900-1,200) is cheapest, and only it is marked."""
        p = plan(Workload(monthly_volume=250_000))
        mid = {o.option: sum(o.total_usd) / 2 for o in p.tco}
        assert min(mid, key=mid.__getitem__) == p.cheapest.option
        assert ["mailgun"] == [o.option for o in p.tco if o.cheapest]
        assert (900, 1_200) == p.cheapest.total_usd

    def test_recommended_not_cheapest_says_why(self) -> None:
        """250K: SendGrid is recommended (the guide's band), Mailgun is cheaper: one line why."""
        p = plan(Workload(monthly_volume=250_000))
        assert ["sendgrid"] == [o.option for o in p.tco if o.recommended]
        assert p.recommendation_note == (
            "SendGrid ($945-1,245/month) is recommended over the cheaper Mailgun ($900-1,200): "
            "the guide's choice: the volume band 200K-500K picks SendGrid; the bulk marketing "
            "use case follows the volume band."
        )

    def test_recommended_cheapest_says_nothing(self) -> None:
        """5K: Postmark ties with Mailgun; the recommended option wins the tie, no note."""
        p = plan(Workload(monthly_volume=5_000))
        assert ("postmark", "postmark", None) == (
            p.recommended.option,
            p.cheapest.option,
            p.recommendation_note,
        )

    def test_own_prices_change_cheapest(self) -> None:
        """No SES hours but upkeep (1 h, $75) and less compliance make SES the cheapest:
        $65 + $75 + $100-200."""
        p = plan(
            Workload(monthly_volume=250_000),
            overrides={
                "tco": {"options": {"ses": {"engineering_hours": 0, "compliance_usd": [100, 200]}}}
            },
        )
        assert ("ses", (240, 340)) == (p.cheapest.option, p.cheapest.total_usd)


class TestRoadmap:
    def test_three_phases(self) -> None:
        """Foundation 1-3, optimization 3-6, scale 6-12 months."""
        p = plan(Workload(monthly_volume=250_000))
        assert [("foundation", (1, 3)), ("optimization", (3, 6)), ("scale", (6, 12))] == [
            (phase.key, phase.months) for phase in p.roadmap
        ]
        assert all(phase.tasks for phase in p.roadmap)

    def test_ip_rotation_only_with_several_ips(self) -> None:
        """IP rotation appears with several IPs; a single IP gets warm-up only."""
        several = tasks(plan(Workload(**ALL_MET)))
        single = tasks(plan(Workload(**ALL_MET), overrides={"ips": {"min_ips": 1}}))
        managed = tasks(plan(Workload(monthly_volume=250_000)))
        assert any("rotate" in t and "2 dedicated IPs" in t for t in several)
        assert not any("rotate" in t for t in single)
        assert any("Warm up the dedicated IP" in t for t in single)
        assert not any("dedicated IP" in t for t in managed)

    @pytest.mark.parametrize(
        ("volume", "multi"), [(99_999, False), (100_000, True), (1_000_000, True)]
    )
    def test_multi_server_only_from_multi_server_tiers(self, volume: int, multi: bool) -> None:
        """Multi-server tasks appear from the 100K tier on."""
        assert multi == any(
            "across servers and regions" in t for t in tasks(plan(Workload(monthly_volume=volume)))
        )

    @pytest.mark.parametrize(("volume", "multi_dc"), [(999_999, False), (1_000_000, True)])
    def test_data_centers_only_from_top_tier(self, volume: int, multi_dc: bool) -> None:
        """Multi-data-center tasks appear only in the 1M+ tier."""
        assert multi_dc == any(
            "data centers" in t for t in tasks(plan(Workload(monthly_volume=volume)))
        )

    @pytest.mark.parametrize(("volume", "balanced"), [(9_999, False), (10_000, True)])
    def test_load_balancer_with_several_servers(self, volume: int, balanced: bool) -> None:
        """A load balancer task appears once there are two servers."""
        p = plan(Workload(monthly_volume=volume, active_addresses=1))
        assert balanced == any("load balancer" in t for t in tasks(p))

    def test_self_hosted_and_managed_tasks(self) -> None:
        """Self-hosted plans set up MTAs; managed plans open the ESP account."""
        own = tasks(plan(Workload(**ALL_MET)))
        managed = tasks(plan(Workload(monthly_volume=250_000)))
        assert any("mail transfer agents" in t for t in own)
        assert not any("Open the" in t for t in own)
        assert any(
            "Open the SendGrid account; the peak hour needs 1 API key at" in t for t in managed
        )
        assert not any("mail transfer agents" in t for t in managed)

    def test_several_keys_task(self) -> None:
        """100M/month on SES needs 7 accounts' quota: a task spreads the load."""
        found = tasks(plan(Workload(monthly_volume=100_000_000)))
        assert any("across 7 Amazon SES accounts" in t for t in found)
        assert not any(
            "Spread the peak hour" in t for t in tasks(plan(Workload(monthly_volume=250_000)))
        )

    def test_compliance_tasks(self) -> None:
        """Without compliance resources the plan says to get them."""
        without = tasks(plan(Workload(monthly_volume=250_000)))
        with_team = tasks(plan(Workload(monthly_volume=250_000, compliance_resources=True)))
        assert any("Assign or contract compliance" in t for t in without)
        assert any("with the compliance team" in t for t in with_team)
        assert not any("Assign or contract" in t for t in with_team)

    def test_custom_integration_task(self) -> None:
        """A custom integration gets its own foundation task."""
        assert any(
            "custom integration" in t
            for t in tasks(plan(Workload(monthly_volume=250_000, custom_integration=True)))
        )
        assert not any(
            "custom integration" in t for t in tasks(plan(Workload(monthly_volume=250_000)))
        )
