"""explain() and to_dict(): the reasoning as text, the plan as stable JSON."""

from __future__ import annotations

import json
from typing import Any

import pytest

from mailscale.planning import Workload, plan

WORKLOADS = [
    Workload(monthly_volume=250_000, use_case="bulk_marketing"),
    Workload(monthly_volume=500, use_case="transactional", active_addresses=200),
    Workload(
        monthly_volume=2_000_000,
        use_case="enterprise",
        team_expertise="strong",
        compliance_resources=True,
        custom_integration=True,
        peak_hour_share=0.25,
        message_size_bytes=2_000_000,
        retention_days=7,
        hourly_cost_usd=120.5,
        per_core_rate=25_000,
    ),
]


def assert_plain_and_sorted(value: Any) -> None:
    if isinstance(value, dict):
        assert sorted(value) == list(value)
        for item in value.values():
            assert_plain_and_sorted(item)
    elif isinstance(value, list):
        for item in value:
            assert_plain_and_sorted(item)
    else:
        assert value is None or type(value) in (str, int, float, bool)


class TestExplain:
    def test_lines_carry_the_reasoning(self) -> None:
        """Each section appears as a plain line with its rule and outcome."""
        lines = plan(WORKLOADS[0]).explain().splitlines()
        text = "\n".join(lines)
        assert lines[0].startswith("Workload: 250,000 emails/month, bulk marketing")
        assert "Tier 100K-1M/month (100,000 <= 250,000 < 1,000,000" in text
        assert "Derived peak hour messages: 822 emails" in text
        assert "Recommended RAM: 8 GB (tier 8, derived 7; tier drove it)" in text
        assert "Recommended storage: 160 GB (tier 160, derived 13; tier drove it)" in text
        assert "Recommended vCPU: 4 vCPU (tier 4, derived 1; tier drove it)" in text
        assert "Recommended dedicated IPs: 0 IPs (tier 20, derived 0; setup drove it)" in text
        assert "Dedicated IPs: none: the ESP's shared IPs send" in text
        assert "Setup: managed ESP SendGrid." in lines
        assert "ESP: SendGrid, because the volume band 200K-500K picks SendGrid" in text
        assert "ESP runner-up: Mailgun" in text
        assert "Rate limit SendGrid (the setup's): 1,000/hour per API key" in text
        assert "Hosting: managed (0 of 4 self-hosting criteria met, 4 required)." in text
        assert "  not met: 500,000+ emails/month (250,000/month)." in lines
        assert (
            "Cost Mailgun (cheapest, estimated prices): $900-1,200/month = infrastructure "
            "$250 (Mailgun Scale 100K + 2 servers of 2 vCPU / 4 GB at Vultr) + 6 h x $75 + "
            "compliance $200-500; the guide's view $500-2,000."
        ) in lines
        assert "Cost SendGrid (recommended, estimated prices): " in text
        assert any(line.startswith("Why: SendGrid ($945-1,245/month)") for line in lines)
        assert "KPI bounce rate: < 1%." in lines
        assert "Phase foundation (months 1-3):" in lines
        assert all(line and "\n" not in line for line in lines)

    def test_below_smallest_tier_is_said(self) -> None:
        """A volume below 1,000 is explained as getting the smallest tier."""
        text = plan(WORKLOADS[1]).explain()
        assert "500 is below the smallest tier, which applies" in text

    def test_measured_rate_is_said(self) -> None:
        """A measured per-core rate is named as such in the reasoning."""
        text = plan(WORKLOADS[2]).explain()
        assert "25,000 emails/minute/core (measured; the planning guide's figure is 1,000)" in (
            text
        )
        assert "Hosting: self-hosted (4 of 4" in text

    @pytest.mark.parametrize("workload", WORKLOADS)
    def test_one_line_per_requirement_and_option(self, workload: Workload) -> None:
        """Every requirement, provider, ESP and TCO option has its line."""
        p = plan(workload)
        lines = p.explain().splitlines()
        assert len(p.requirements) == sum(line.startswith("Recommended ") for line in lines)
        assert len(p.vps) == sum(line.startswith("VPS ") for line in lines)
        assert len(p.feasibility) == sum(line.startswith("Rate limit ") for line in lines)
        assert len(p.tco) == sum(line.startswith("Cost ") for line in lines)
        assert 1 == sum("(cheapest" in line or ", cheapest" in line for line in lines)
        assert 1 == sum("(recommended" in line for line in lines)

    def test_library_prints_nothing(self, capsys: pytest.CaptureFixture[str]) -> None:
        """Planning and explaining write nothing to stdout or stderr."""
        plan(WORKLOADS[0]).explain()
        assert ("", "") == tuple(capsys.readouterr())


class TestToDict:
    @pytest.mark.parametrize("workload", WORKLOADS)
    def test_json_round_trip(self, workload: Workload) -> None:
        """to_dict survives json.dumps/json.loads unchanged."""
        data = plan(workload).to_dict()
        assert data == json.loads(json.dumps(data))

    @pytest.mark.parametrize("workload", WORKLOADS)
    def test_plain_types_sorted_keys(self, workload: Workload) -> None:
        """Only plain JSON types, every mapping's keys sorted."""
        assert_plain_and_sorted(plan(workload).to_dict())

    @pytest.mark.parametrize("workload", WORKLOADS)
    def test_stable(self, workload: Workload) -> None:
        """Two plans of the same workload serialize to the same bytes."""
        assert json.dumps(plan(workload).to_dict()) == json.dumps(plan(workload).to_dict())

    @pytest.mark.parametrize("workload", WORKLOADS)
    def test_workload_round_trip(self, workload: Workload) -> None:
        """The workload section rebuilds the same Workload."""
        assert workload == Workload(**plan(workload).to_dict()["workload"])

    def test_content(self) -> None:
        """The dict holds the plan's decisions under stable names."""
        data = plan(WORKLOADS[0]).to_dict()
        assert 3 == data["schema_version"]
        assert ("managed", "sendgrid") == (data["setup"]["kind"], data["setup"]["esp"])
        assert "documented" == data["per_core_rate_source"]
        assert "measured" == data["fleet"]["worker_cpu_origin"].split(":")[0]
        origins = {a["key"]: a["origin"] for a in data["assumptions"]}
        assert ("measured", "assumed", "assumed", "assumed", "measured") == (
            origins["outbox_overhead_bytes"],
            origins["emails_per_ip_per_hour"],
            origins["server_upkeep_hours"],
            origins["hybrid_transactional_share"],
            origins["worker_cpu_ms"],
        )
        assert ("100K-1M", "sendgrid", "mailgun") == (
            data["tier"]["label"],
            data["esp"]["chosen"],
            data["esp"]["runner_up"],
        )
        ram = next(r for r in data["requirements"] if r["resource"] == "ram_gb")
        assert (8, "tier") == (ram["recommended"], ram["driver"])
        assert [True] == [o["cheapest"] for o in data["tco"] if o["option"] == "mailgun"]
        assert ["foundation", "optimization", "scale"] == [p["key"] for p in data["roadmap"]]
        assert sorted(data) == [
            "assumptions",
            "dedicated_ips",
            "derived",
            "esp",
            "feasibility",
            "fleet",
            "guide_per_core_rate",
            "hosting",
            "infrastructure_note",
            "infrastructure_usd",
            "kpis",
            "measurement_method",
            "per_core_rate",
            "per_core_rate_source",
            "per_server",
            "recommendation_note",
            "requirements",
            "roadmap",
            "schema_version",
            "setup",
            "tco",
            "tier",
            "vps",
            "workload",
        ]
