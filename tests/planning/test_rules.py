"""Derived requirements: each rule, the larger-of choice, and VPS cost bands."""

from __future__ import annotations

import math
from fractions import Fraction

import pytest

from mailscale.planning import Workload, load_data, plan

from .planning_brief import (
    ADDRESSES_PER_GB_RAM,
    EMAILS_PER_MINUTE_PER_CORE,
    ESP_STRENGTHS,
    QUERIES_PER_MESSAGE,
    QUERIES_PER_SECOND_PER_CORE,
    SELF_HOSTED,
    STORED_OVERHEAD_BYTES,
    TIERS,
    VPS,
    VPS_STRENGTHS,
    WORKER_CPU_MS,
    default_addresses,
    peak_hour,
    tier_index,
)


def expected_cores(volume: int, share: str = "0.1", rate: int | None = None) -> int:
    """Sending cores at ``rate`` emails/minute/core, else at the measured CPU per message."""
    peak = peak_hour(volume, share)
    if rate is None:
        sending = peak * Fraction(WORKER_CPU_MS) / 3_600_000
    else:
        sending = Fraction(peak, 60) / rate
    database = Fraction(peak * QUERIES_PER_MESSAGE, 3600) / QUERIES_PER_SECOND_PER_CORE
    return math.ceil(sending + database)


class TestPeakHour:
    def test_worked_example(self) -> None:
        """250,000/month at 10%: 250,000 x 12 / 365 x 0.1 = 821.9, rounded up to 822."""
        assert 822 == plan(Workload(monthly_volume=250_000)).derived_value("peak_hour_messages")

    @pytest.mark.parametrize("volume", [1, 999, 36_500, 250_000, 1_500_000, 10**9])
    @pytest.mark.parametrize("share", ["0.1", "0.25", "1"])
    def test_formula(self, volume: int, share: str) -> None:
        """Peak hour = monthly x 12 / 365 x share, rounded up."""
        p = plan(Workload(monthly_volume=volume, peak_hour_share=float(share)))
        assert peak_hour(volume, share) == p.derived_value("peak_hour_messages")

    def test_exact_product_is_not_rounded_up(self) -> None:
        """36,500/month is exactly 1,200/day; at 10% the peak hour is exactly 120."""
        assert 120 == plan(Workload(monthly_volume=36_500)).derived_value("peak_hour_messages")

    def test_per_minute(self) -> None:
        """The peak per minute is the peak hour divided by 60."""
        p = plan(Workload(monthly_volume=250_000))
        assert 822 / 60 == pytest.approx(p.derived_value("peak_per_minute"))


class TestCores:
    def test_worked_example_derived_drives(self) -> None:
        """1B/month: peak 3,287,672/hour x 2.083 ms = 1.90 sending cores + 7.31 database
        cores → 10 vCPU, above the tier's 8."""
        vcpu = plan(Workload(monthly_volume=10**9)).requirement("vcpu")
        assert (8, 10, 10, "derived") == (vcpu.tier, vcpu.derived, vcpu.recommended, vcpu.driver)

    @pytest.mark.parametrize("volume", [1_000, 250_000, 5_000_000, 146_000_000, 10**9, 10**11])
    def test_rule(self, volume: int) -> None:
        """Cores = ceil(peak/hour x 2.083 ms (measured) + peak queries/s / 500)."""
        vcpu = plan(Workload(monthly_volume=volume)).requirement("vcpu")
        tier_vcpu = TIERS[tier_index(volume)][2][1]
        assert expected_cores(volume) == vcpu.derived
        assert max(tier_vcpu, expected_cores(volume)) == vcpu.recommended

    def test_measured_rate_replaces_brief(self) -> None:
        """A measured per-core rate replaces the brief's 1,000 emails/minute."""
        p = plan(Workload(monthly_volume=500_000_000, per_core_rate=100_000))
        assert expected_cores(500_000_000, rate=100_000) == p.requirement("vcpu").derived
        assert 100_000 == p.per_core_rate
        assert "measured" == p.per_core_rate_source

    def test_slow_measured_rate_drives(self) -> None:
        """At 1 email/minute/core, 250K/month needs 14 cores, more than the tier's 4."""
        vcpu = plan(Workload(monthly_volume=250_000, per_core_rate=1)).requirement("vcpu")
        assert (14, "derived") == (vcpu.recommended, vcpu.driver)

    def test_documented_rate_by_default(self) -> None:
        """Without a calibration the CPU per message measured in docs/performance.md is
        used and named; the guide's 1,000 is kept beside it."""
        p = plan(Workload(monthly_volume=250_000))
        assert (60_000 / float(WORKER_CPU_MS), "documented") == (
            pytest.approx(p.per_core_rate),
            p.per_core_rate_source,
        )
        assert EMAILS_PER_MINUTE_PER_CORE == p.guide_per_core_rate

    def test_doubling_the_cpu_per_message_doubles_the_sending_cores(self) -> None:
        """The measured worker CPU is what the sending cores follow."""
        volume = 10**9
        base = plan(Workload(monthly_volume=volume))
        doubled = plan(
            Workload(monthly_volume=volume),
            overrides={"measured": {"worker_cpu_ms": {"value": 2 * float(WORKER_CPU_MS)}}},
        )
        assert pytest.approx(2 * base.derived_value("sending_cores")) == doubled.derived_value(
            "sending_cores"
        )
        f, g = base.fleet, doubled.fleet
        assert f is not None and g is not None
        # The fleet's cores: the worker's part doubles, the Redis shaper's stays.
        assert pytest.approx(f.cores + f.peak_per_second * f.worker_cpu_ms / 1000) == g.cores

    def test_guide_rate_override_wins_over_the_documented_one(self) -> None:
        """An override of the guide's per-core rate is a figure you chose: it is used."""
        p = plan(
            Workload(monthly_volume=250_000),
            overrides={"capacity": {"emails_per_minute_per_core": 1_000}},
        )
        assert (1_000, "planning_guide") == (p.per_core_rate, p.per_core_rate_source)
        assert "override" == next(a for a in p.assumptions if a.key == "worker_cpu_ms").origin

    def test_database_cores(self) -> None:
        """Database cores = peak-hour queries per second / 500."""
        p = plan(Workload(monthly_volume=250_000))
        assert 822 * 4 / 3600 == pytest.approx(p.derived_value("db_queries_per_second"))
        assert 822 * 4 / 3600 / 500 == pytest.approx(p.derived_value("database_cores"))


class TestMemory:
    @pytest.mark.parametrize(
        ("addresses", "ram", "driver"),
        [(123_456, 13, "derived"), (80_000, 8, "tier"), (80_001, 9, "derived"), (1, 8, "tier")],
    )
    def test_one_gb_per_ten_thousand_addresses(self, addresses: int, ram: int, driver: str) -> None:
        """RAM = ceil(active addresses / 10,000) GB; a tie keeps the tier as driver."""
        req = plan(Workload(monthly_volume=250_000, active_addresses=addresses)).requirement(
            "ram_gb"
        )
        assert math.ceil(Fraction(addresses, ADDRESSES_PER_GB_RAM)) == req.derived
        assert (ram, driver) == (req.recommended, req.driver)

    @pytest.mark.parametrize("volume", [80_000, 250_000, 2_000_000, 10_000_000])
    def test_addresses_default_to_volume_over_sends(self, volume: int) -> None:
        """Without active addresses: monthly volume / 4 sends per address per month."""
        req = plan(Workload(monthly_volume=volume)).requirement("ram_gb")
        expected = math.ceil(Fraction(default_addresses(volume), ADDRESSES_PER_GB_RAM))
        assert expected == req.derived
        assert f"{default_addresses(volume):,} active addresses" in req.rule
        assert "4 sends per address per month" in req.rule

    @pytest.mark.parametrize(
        ("sends", "volume"),
        [("1", 250_000), ("0.5", 250_000), ("30", 2_000_000), ("2.5", 1_000_003)],
    )
    def test_sends_per_address_overridable(self, sends: str, volume: int) -> None:
        """The sends-per-address assumption is a workload field."""
        w = Workload(monthly_volume=volume, sends_per_address_per_month=float(sends))
        assert default_addresses(volume, sends) == w.addresses
        req = plan(w).requirement("ram_gb")
        assert math.ceil(Fraction(default_addresses(volume, sends), ADDRESSES_PER_GB_RAM)) == (
            req.derived
        )

    def test_given_addresses_ignore_sends(self) -> None:
        """Given active addresses are used as they are."""
        w = Workload(monthly_volume=250_000, active_addresses=30_000, sends_per_address_per_month=1)
        assert 30_000 == w.addresses
        assert "default" not in plan(w).requirement("ram_gb").rule

    def test_two_million_is_not_ram_bound(self) -> None:
        """2M/month with the default: 500,000 addresses, 50 GB, the tier's 4 servers."""
        p = plan(Workload(monthly_volume=2_000_000))
        assert (50, 4) == (
            p.requirement("ram_gb").recommended,
            p.requirement("servers").recommended,
        )


class TestStorage:
    def test_worked_example(self) -> None:
        """250K/month kept 30 days: 246,576 stored emails x (50,000 + 270 bytes) → 13 GB,
        below the tier's 160 GB; the guide's rule of thumb (247 GB) is named in the rule."""
        p = plan(Workload(monthly_volume=250_000))
        assert 246_576 == p.derived_value("stored_emails")
        req = p.requirement("storage_gb")
        assert (160, 13, 160, "tier") == (req.tier, req.derived, req.recommended, req.driver)
        assert "the guide's rule of thumb, 1 GB per 1,000 stored emails, gives 247 GB" in req.rule

    @pytest.mark.parametrize("days", [0, 1, 7, 90, 365])
    def test_retention_rule(self, days: int) -> None:
        """Storage = ceil(monthly x 12 / 365 x retention days x (size + overhead) / 10^9) GB."""
        stored = math.ceil(Fraction(80_000 * 12, 365) * days)
        req = plan(Workload(monthly_volume=80_000, retention_days=days)).requirement("storage_gb")
        assert math.ceil(Fraction(stored * (50_000 + STORED_OVERHEAD_BYTES), 10**9)) == (
            req.derived
        )
        assert max(80, req.derived or 0) == req.recommended

    def test_large_messages_scale_storage(self) -> None:
        """5 MB messages: 246,576 stored x 5,000,270 bytes → 1,233 GB."""
        p = plan(Workload(monthly_volume=250_000, message_size_bytes=5_000_000))
        assert math.ceil(Fraction(246_576 * 5_000_270, 10**9)) == (
            p.requirement("storage_gb").derived
        )

    @pytest.mark.parametrize(("size", "gb"), [(5_000, 2), (50_000, 13), (1_000_000, 247)])
    def test_storage_follows_message_size(self, size: int, gb: int) -> None:
        """5 KB, 50 KB and 1 MB messages give different storage (the issue's example)."""
        p = plan(Workload(monthly_volume=250_000, message_size_bytes=size))
        assert gb == p.requirement("storage_gb").derived


class TestServersAndIps:
    def test_managed_plan_has_no_dedicated_ips(self) -> None:
        """A managed ESP plan sends from the ESP's shared IPs: 0 IPs, the guide's band kept."""
        p = plan(Workload(monthly_volume=250_000))
        req = p.requirement("dedicated_ips")
        assert (20, 0, 0, "setup") == (req.tier, req.derived, req.recommended, req.driver)
        assert (False, 0, (10, 20)) == (
            p.dedicated_ips.used,
            p.dedicated_ips.ips,
            p.dedicated_ips.guide_band,
        )

    def test_self_hosted_ips_from_peak_and_warmup(self) -> None:
        """Self-hosted 10M/month: peak hour 32,877 → ceil(/25,000) = 2 IPs; each warms
        until the ramp's cap covers 164,384 emails/day: day 12 (250,000), 2 weeks."""
        p = plan(Workload(monthly_volume=10_000_000, **SELF_HOSTED))
        ips = p.dedicated_ips
        assert (True, 2, 2, 12, 2) == (
            ips.used,
            ips.by_peak,
            ips.ips,
            ips.warmup_days,
            ips.warmup_weeks,
        )
        assert 12 == len(ips.schedule)
        assert (12, 500_000) == ips.schedule[-1]
        assert 2 == p.requirement("dedicated_ips").recommended

    def test_esp_dedicated_ip_add_on(self) -> None:
        """Asked for, the ESP's dedicated-IP add-on is planned and priced."""
        p = plan(Workload(monthly_volume=250_000, esp_dedicated_ips=True))
        assert (True, 2) == (p.dedicated_ips.used, p.dedicated_ips.ips)
        sendgrid = next(o for o in p.tco if o.option == "sendgrid")
        # Pro 100K $89.95 + 150 x $1.10 + 2 IPs x $30 (estimated).
        assert pytest.approx(89.95 + 165 + 60) == sendgrid.esp_usd
        assert sendgrid.estimated

    def test_ram_adds_servers(self) -> None:
        """100 GB RAM at 16 GB per server needs 7 servers, more than the tier's 2;
        each holds ceil(4/7) = 1 vCPU and ceil(100/7) = 15 GB: Vultr's 6 vCPU / 16 GB."""
        p = plan(Workload(monthly_volume=250_000, active_addresses=1_000_000))
        req = p.requirement("servers")
        assert (2, 7, 7, "derived") == (req.tier, req.derived, req.recommended, req.driver)
        assert (6, 16) == p.per_server

    def test_tier_servers_when_enough(self) -> None:
        """250K/month fits the tier's two servers of a shape a provider sells (2 vCPU, 4 GB)."""
        p = plan(Workload(monthly_volume=250_000))
        assert (2, "tier") == (
            p.requirement("servers").recommended,
            p.requirement("servers").driver,
        )
        assert (2, 4) == p.per_server


class TestVpsQuotes:
    @pytest.mark.parametrize(
        ("volume", "servers"),
        [(1_000, 1), (10_000, 2), (100_000, 2), (1_000_000, 4)],
    )
    def test_tier_spec_bands(self, volume: int, servers: int) -> None:
        """Each provider's guide band is servers x its price for the size holding the shape."""
        p = plan(Workload(monthly_volume=volume, active_addresses=1, retention_days=0))
        sizes = ["small", "medium", "large"]
        for quote in p.vps:
            index = sizes.index(quote.size)
            low, high = VPS[quote.provider][index]
            assert (low * quote.servers, high * quote.servers) == quote.monthly_usd
            assert servers == quote.servers

    def test_shapes_are_sold_ones(self) -> None:
        """Every quoted server is a shape its provider sells, priced at its list price."""
        data = load_data()
        for volume in (5_000, 250_000, 2_000_000, 50_000_000):
            for quote in plan(Workload(monthly_volume=volume)).vps:
                provider = next(p for p in data.vps_providers if p.key == quote.provider)
                shapes = {(s.vcpu, s.ram_gb): s.usd for s in provider.shapes}
                assert shapes[(quote.vcpu, quote.ram_gb)] == quote.shape_usd
                assert pytest.approx(quote.servers * quote.shape_usd) == quote.servers_usd

    def test_strengths_from_brief(self) -> None:
        """Each VPS provider carries exactly its strengths from the brief."""
        quotes = {q.provider: q for q in plan(Workload(monthly_volume=250_000)).vps}
        assert VPS_STRENGTHS == {key: set(q.strengths) for key, q in quotes.items()}

    def test_esp_strengths_from_brief(self) -> None:
        """Each ESP carries exactly its strengths from the brief."""
        data = load_data()
        assert ESP_STRENGTHS == {esp.key: set(esp.strengths) for esp in data.esps}


class TestMeasuredOverhead:
    def test_outbox_overhead_is_the_measured_figure(self) -> None:
        """Storage counts the SQLite outbox's measured bytes per stored email, and says so."""
        p = plan(Workload(monthly_volume=250_000, message_size_bytes=1_000))
        stored = p.derived_value("stored_emails")
        assert math.ceil(Fraction(int(stored) * (1_000 + STORED_OVERHEAD_BYTES), 10**9)) == (
            p.requirement("storage_gb").derived
        )
        assert "270 bytes outbox overhead (measured)" in p.requirement("storage_gb").rule

    def test_a_larger_measured_overhead_grows_storage(self) -> None:
        """The measured figure is read from the data: a larger one gives more storage."""
        w = Workload(monthly_volume=10_000_000, message_size_bytes=1_000)
        base = plan(w).requirement("storage_gb").derived or 0
        more = plan(w, overrides={"measured": {"outbox_overhead_bytes": {"value": 10_718}}})
        assert (more.requirement("storage_gb").derived or 0) > 5 * base

    def test_old_overhead_field_still_wins_for_one_release(self) -> None:
        """capacity.stored_overhead_bytes_per_message, when an override sets it, is used."""
        p = plan(
            Workload(monthly_volume=250_000),
            overrides={"capacity": {"stored_overhead_bytes_per_message": 2_000}},
        )
        assert "2,000 bytes outbox overhead (your override)" in p.requirement("storage_gb").rule
        assert (
            "override" == next(a for a in p.assumptions if a.key == "outbox_overhead_bytes").origin
        )
