"""The data files: the brief's figures, loaded once, overridable, validated."""

from __future__ import annotations

from typing import Any

import pytest

from mailscale.errors import PlanningError
from mailscale.planning import Workload, load_data, plan, read_overrides

from .planning_brief import ESP_BANDS, ESP_LIMITS, KPIS, TCO, TIERS, VPS


class TestDefaults:
    def test_loaded_once(self) -> None:
        """Without overrides the same validated data is returned every time."""
        assert load_data() is load_data()

    def test_tiers_are_the_brief(self) -> None:
        """The tier table matches the brief's."""
        tiers = load_data().tiers
        assert [(t[0], t[1], t[2], t[3], t[4], t[5], t[6]) for t in TIERS] == [
            (
                t.min_volume,
                t.max_volume,
                t.vcpu,
                t.ram_gb,
                t.ssd_gb,
                t.dedicated_ips,
                t.monthly_cost_usd,
            )
            for t in tiers
        ]

    def test_vps_prices_are_the_brief(self) -> None:
        """Each provider's three price points match the brief's."""
        data = load_data()
        assert VPS == {p.key: tuple(price for _, price in p.prices) for p in data.vps_providers}

    def test_esp_figures_are_the_brief(self) -> None:
        """ESP limits, batch sizes and volume bands match the brief's."""
        data = load_data()
        assert ESP_LIMITS == {
            e.key: (e.requests, e.window_seconds, e.batch_size, e.quota_counts == "recipients")
            for e in data.esps
        }
        assert ESP_BANDS == list(data.esp_bands)

    def test_tco_and_kpis_are_the_brief(self) -> None:
        """TCO components and KPI targets match the brief's."""
        data = load_data()
        assert TCO == {
            o.key: (o.infrastructure_usd, o.engineering_hours, o.compliance_usd)
            for o in data.tco
            if o.key != "postmark"
        }
        # Not in the guide: Postmark has the managed-ESP hours and compliance, no bands.
        postmark = data.tco_spec("postmark")
        assert postmark is not None
        assert (None, 5, (200, 500), None) == (
            postmark.infrastructure_usd,
            postmark.engineering_hours,
            postmark.compliance_usd,
            postmark.guide_total_usd,
        )

    def test_price_lists_are_dated_with_sources(self) -> None:
        """Every ESP has a price list with its source; the lists and servers carry a date."""
        data = load_data()
        assert "2026-12-02" == data.pricing_checked == data.vps_checked
        assert {e.key for e in data.esps} == {p.key for p in data.pricing}
        assert all(p.source.startswith("https://") for p in data.pricing)
        assert all(v.source.startswith("https://") for v in data.vps_providers)
        assert KPIS == {k.key: (k.comparator, k.target) for k in data.kpis}


class TestGoodOverrides:
    def test_own_vps_price(self) -> None:
        """A caller's own price replaces the brief's."""
        p = plan(
            Workload(monthly_volume=250_000, active_addresses=250_000),
            overrides={"vps": {"providers": {"digitalocean": {"large": [80, 90]}}}},
        )
        quote = next(q for q in p.vps if q.provider == "digitalocean")
        assert (160, 180) == quote.monthly_usd

    def test_new_provider(self) -> None:
        """A complete new provider joins the quotes."""
        p = plan(
            Workload(monthly_volume=1_000),
            overrides={
                "vps": {
                    "providers": {
                        "hetzner": {
                            "name": "Hetzner",
                            "strengths": ["price"],
                            "small": [4, 5],
                            "medium": [8, 16],
                            "large": [30, 40],
                            "open_ended": [],
                            "source": "https://example.com/prices",
                            "storage_usd_per_gb": 0.05,
                            "ips_per_server": 1,
                            "extra_ip_usd": 0,
                            "shapes": [{"vcpu": 1, "ram_gb": 2, "ssd_gb": 40, "usd": 4}],
                        }
                    }
                }
            },
        )
        quote = next(q for q in p.vps if q.provider == "hetzner")
        # 4 + 10 GB block storage beyond its 40 GB SSD (the tier's 50 GB) x $0.05.
        assert ((4, 5), "Hetzner", 4.5, True) == (
            quote.monthly_usd,
            quote.name,
            quote.total_usd,
            quote.chosen,
        )

    def test_own_esp_price(self) -> None:
        """A price list given with --data's layout changes the option's cost."""
        p = plan(
            Workload(monthly_volume=250_000),
            overrides={
                "pricing": {
                    "esp": {
                        "ses": {
                            "plans": [
                                {
                                    "name": "negotiated",
                                    "base_usd": 10,
                                    "included": 0,
                                    "per_1000_usd": 0.05,
                                }
                            ]
                        }
                    }
                }
            },
        )
        ses = next(o for o in p.tco if o.option == "ses")
        assert (22.5, "Amazon SES negotiated") == (ses.esp_usd, ses.detail.split(" + ")[0])

    def test_old_brief_total_key_still_read(self) -> None:
        """`brief_total_usd`, the old name of `guide_total_usd`, is read for one release."""
        data = load_data({"tco": {"options": {"postmark": {"brief_total_usd": [400, 900]}}}})
        spec = data.tco_spec("postmark")
        assert spec is not None and (400, 900) == spec.guide_total_usd

    def test_tier_boundary(self) -> None:
        """Moving the scale tier to 150K puts 100K in the growth tier."""
        p = plan(
            Workload(monthly_volume=100_000),
            overrides={"tiers": {"scale": {"min_volume": 150_000}}},
        )
        assert ("growth", "10K-150K") == (p.tier.key, p.tier.label)

    def test_esp_band_and_use_case(self) -> None:
        """Bands and use-case preferences can be changed."""
        moved = plan(
            Workload(monthly_volume=500_000),
            overrides={"esp": {"selection": {"bands": {"ses": 1_000_000}}}},
        )
        assert "sendgrid" == moved.esp.chosen
        pinned = plan(
            Workload(monthly_volume=5_000),
            overrides={"esp": {"selection": {"use_cases": {"bulk_marketing": "ses"}}}},
        )
        assert ("ses", "postmark") == (pinned.esp.chosen, pinned.esp.runner_up)

    def test_per_core_figure(self) -> None:
        """The per-core rate itself can be overridden in the data."""
        p = plan(
            Workload(monthly_volume=250_000, per_core_rate=None),
            overrides={"capacity": {"emails_per_minute_per_core": 1}},
        )
        assert 14 == p.requirement("vcpu").derived

    def test_data_object_reused(self) -> None:
        """load_data's result can be passed to plan for many workloads."""
        data = load_data({"tco": {"options": {"mailgun": {"engineering_hours": 50}}}})
        p = plan(Workload(monthly_volume=250_000), data=data)
        # 50 h + 2 servers x 0.5 h upkeep.
        assert 51 * 75 == next(o for o in p.tco if o.option == "mailgun").engineering_usd

    def test_overrides_do_not_leak(self) -> None:
        """An override changes only the plan it was given to."""
        plan(
            Workload(monthly_volume=1_000),
            overrides={"vps": {"providers": {"vultr": {"small": [1, 1]}}}},
        )
        quote = next(
            q
            for q in plan(Workload(monthly_volume=1_000, active_addresses=1, retention_days=0)).vps
            if q.provider == "vultr"
        )
        assert (10, 12) == quote.monthly_usd

    def test_toml_overrides(self) -> None:
        """Overrides can be written in TOML with the data files' layout."""
        overrides = read_overrides("[esp.providers.sendgrid]\nrequests = 3000\n")
        p = plan(Workload(monthly_volume=10_000_000), overrides=overrides)
        assert (3_000, 11) == (
            p.feasibility_for("sendgrid").limit_per_hour,
            p.feasibility_for("sendgrid").keys_unbatched,
        )


class TestBadOverrides:
    @pytest.mark.parametrize(
        ("overrides", "field"),
        [
            (
                {"esp": {"providers": {"sendgrid": {"requests": -5}}}},
                "esp.providers.sendgrid.requests",
            ),
            (
                {"esp": {"providers": {"sendgrid": {"requests": "lots"}}}},
                "esp.providers.sendgrid.requests",
            ),
            (
                {"esp": {"providers": {"sendgrid": {"requets": 5}}}},
                "esp.providers.sendgrid.requets",
            ),
            (
                {"esp": {"providers": {"postmark": {"batch_size": 2.5}}}},
                "esp.providers.postmark.batch_size",
            ),
            (
                {"esp": {"providers": {"ses": {"quota_counts": "bytes"}}}},
                "esp.providers.ses.quota_counts",
            ),
            (
                {"vps": {"providers": {"digitalocean": {"small": [12, 6]}}}},
                "vps.providers.digitalocean.small",
            ),
            (
                {"vps": {"providers": {"digitalocean": {"small": [6]}}}},
                "vps.providers.digitalocean.small",
            ),
            (
                {"vps": {"providers": {"digitalocean": {"small": [float("nan"), 6]}}}},
                "vps.providers.digitalocean.small[0]",
            ),
            (
                {"vps": {"providers": {"hetzner": {"name": "Hetzner"}}}},
                "vps.providers.hetzner.small",
            ),
            (
                {"vps": {"providers": {"vultr": {"open_ended": ["huge"]}}}},
                "vps.providers.vultr.open_ended[0]",
            ),
            ({"tiers": {"growth": {"min_volume": 1_000}}}, "tiers.growth.min_volume"),
            ({"tiers": {"growth": {"vcpu": 2}}}, "tiers.growth.vcpu"),
            ({"tiers": {"growth": {"servers": 0}}}, "tiers.growth.servers"),
            ({"nonsense": {}}, "nonsense"),
            ({"esp": {"selection": {"bands": {"brevo": 1_000}}}}, "esp.selection.bands.brevo"),
            ({"esp": {"selection": {"bands": {"ses": 1_000}}}}, "esp.selection.bands.ses"),
            (
                {"esp": {"selection": {"use_cases": {"transactional": "brevo"}}}},
                "esp.selection.use_cases.transactional",
            ),
            ({"hosting": {"min_criteria_met": 5}}, "hosting.min_criteria_met"),
            ({"hosting": {"team_expertise": "guru"}}, "hosting.team_expertise"),
            ({"kpi": {"queue_depth": {"comparator": "=="}}}, "kpi.queue_depth.comparator"),
            (
                {"roadmap": {"scale": {"tasks": [{"when": "sometimes", "text": "x"}]}}},
                "roadmap.scale.tasks[0].when",
            ),
            (
                {"roadmap": {"scale": {"tasks": [{"when": "always", "text": "{secret}"}]}}},
                "roadmap.scale.tasks[0].text",
            ),
            ({"roadmap": {"scale": {"months": [0, 2]}}}, "roadmap.scale.months[0]"),
            ({"roadmap": {"scale": {"months": [1.5, 2]}}}, "roadmap.scale.months"),
            (
                {"capacity": {"emails_per_minute_per_core": 0}},
                "capacity.emails_per_minute_per_core",
            ),
            ({"capacity": {"db_queries_per_message": True}}, "capacity.db_queries_per_message"),
            ({"capacity": 5}, "capacity"),
            ({"capacity": {"max_vcpu_per_server": 64}}, "vps.sizes.large"),
            (
                {"tco": {"options": {"ses": {"engineering_hours": -1}}}},
                "tco.options.ses.engineering_hours",
            ),
            (
                {"tco": {"options": {"ses": {"infrastructure_usd": [0, 1e10]}}}},
                "tco.options.ses.infrastructure_usd[1]",
            ),
        ],
    )
    def test_names_the_field(self, overrides: dict[str, Any], field: str) -> None:
        """A bad override raises PlanningError whose field is its dotted path."""
        with pytest.raises(PlanningError) as info:
            plan(Workload(monthly_volume=250_000), overrides=overrides)
        assert field == info.value.field
        assert field in str(info.value)

    def test_not_a_mapping(self) -> None:
        """Overrides must be a mapping of sections."""
        with pytest.raises(PlanningError) as info:
            load_data([("esp", {})])  # type: ignore[arg-type]
        assert "overrides" == info.value.field

    def test_data_and_overrides_together(self) -> None:
        """plan() takes either prepared data or overrides, not both."""
        with pytest.raises(PlanningError) as info:
            plan(
                Workload(monthly_volume=1),
                data=load_data(),
                overrides={"hosting": {"min_criteria_met": 1}},
            )
        assert "overrides" == info.value.field

    def test_bad_toml(self) -> None:
        """Override text that is not TOML raises PlanningError."""
        with pytest.raises(PlanningError) as info:
            read_overrides("[esp\nrequests = ", source="mine.toml")
        assert "mine.toml" == info.value.field
