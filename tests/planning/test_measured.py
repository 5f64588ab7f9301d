"""Per-message costs measured on the stack: the fleet's capacity, the shared Redis,
which figure was used, the assumptions' origins and the prices shown as estimates."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from mailscale.planning import Measurements, Workload, load_data, plan
from mailscale.planning._report import html_report

from .planning_brief import WORKER_CPU_MS, peak_hour

RunCli = Callable[..., tuple[int, str, str]]
SHAPER_US = 12.2
REDIS_PER_SECOND = 47_800


def _measured(key: str, value: float) -> dict[str, Any]:
    return {"measured": {key: {"value": value}}}


class TestFleet:
    def test_multi_server_uses_the_documented_costs(self) -> None:
        """250K/month on 2 servers: worker 2.083 ms + Redis shaper 12.2 us per email, both
        named with their section of docs/performance.md and date."""
        p = plan(Workload(monthly_volume=250_000))
        f = p.fleet
        assert f is not None
        assert (2, True, "documented") == (f.servers, f.shared_redis, f.worker_cpu_source)
        peak = peak_hour(250_000) / 3600
        assert pytest.approx(peak * (float(WORKER_CPU_MS) + SHAPER_US / 1000) / 1000) == f.cores
        assert pytest.approx(peak / REDIS_PER_SECOND) == f.redis_load
        assert pytest.approx(peak / 500) == f.redis_round_trips_per_second
        assert 1 == f.redis_instances
        assert "'Throughput to a real SMTP sink (whole pipeline), per CPU-second', 2026-12-02" in (
            f.rule
        )
        assert "Redis shaper 12.2 us/email (measured: docs/performance.md, 'Rate shaping'" in (
            f.rule
        )
        assert f"Capacity: {f.rule}." in p.explain().splitlines()

    def test_single_server_has_no_shared_redis(self) -> None:
        """One server shapes in process: no Redis figures, no shaper CPU."""
        f = plan(Workload(monthly_volume=5_000)).fleet
        assert f is not None
        assert (1, False, 0.0, 0, 0.0) == (
            f.servers,
            f.shared_redis,
            f.shaper_cpu_us,
            f.redis_instances,
            f.redis_load,
        )
        assert "no shared Redis" in f.rule

    def test_capacity_follows_the_cpu_per_email(self) -> None:
        """The fleet's capacity is its vCPUs / CPU per email: doubling the worker's measured
        CPU (with the shaper's) halves it."""
        base = plan(Workload(monthly_volume=250_000)).fleet
        doubled = plan(
            Workload(monthly_volume=250_000),
            overrides={
                "measured": {
                    "worker_cpu_ms": {"value": 2 * float(WORKER_CPU_MS)},
                    "shaper_cpu_us": {"value": 2 * SHAPER_US},
                }
            },
        ).fleet
        assert base is not None and doubled is not None
        assert pytest.approx(base.capacity_per_second / 2) == doubled.capacity_per_second
        assert pytest.approx(2 * base.cores) == doubled.cores

    def test_redis_load_follows_the_measured_rate(self) -> None:
        """Half the measured Redis rate: twice the load; a tiny one needs more instances."""
        w = Workload(monthly_volume=10_000_000)
        base = plan(w).fleet
        half = plan(w, overrides=_measured("redis_messages_per_second", REDIS_PER_SECOND / 2))
        tiny = plan(w, overrides=_measured("redis_messages_per_second", 1))
        assert base is not None and half.fleet is not None and tiny.fleet is not None
        assert pytest.approx(2 * base.redis_load) == half.fleet.redis_load
        assert 10 == tiny.fleet.redis_instances  # ceil(9.13 emails/s at the peak / 1)

    def test_server_count_follows_the_measured_cpu(self) -> None:
        """A costlier sending path needs more vCPU and so more servers (few addresses, so
        RAM does not drive)."""
        w = Workload(monthly_volume=10**9, active_addresses=1_000)
        base = plan(w).requirement("servers").recommended
        costly = plan(w, overrides=_measured("worker_cpu_ms", 100))
        servers = costly.requirement("servers").recommended
        assert servers > base
        assert costly.fleet is not None and servers >= costly.fleet.sending_servers


class TestWhichFigure:
    def test_calibration_takes_precedence(self) -> None:
        """A calibrated rate replaces the documented CPU per email, and says so."""
        m = Measurements(emails_per_minute_per_core=60_000, method="the pipeline on one core")
        p = plan(Workload(monthly_volume=250_000), measurements=m)
        f = p.fleet
        assert f is not None
        assert (1.0, "measured") == (f.worker_cpu_ms, f.worker_cpu_source)
        assert "calibrated on this machine: the pipeline on one core" == f.worker_cpu_origin
        cpu = next(a for a in p.assumptions if a.key == "worker_cpu_ms")
        assert "calibrated" == cpu.origin
        assert "docs/performance.md" not in f.rule.split(" + ")[0]

    def test_given_rate_is_named(self) -> None:
        p = plan(Workload(monthly_volume=250_000, per_core_rate=6_000))
        assert p.fleet is not None
        assert pytest.approx(10.0) == p.fleet.worker_cpu_ms
        assert "given" == next(a for a in p.assumptions if a.key == "worker_cpu_ms").origin

    def test_terminal_says_which_figure(self, run_cli: RunCli) -> None:
        code, out, _ = run_cli("plan", "250k")
        assert 0 == code
        assert "Per-core rate: 28,805 emails/minute (2.083 ms CPU per email, measured:" in (
            " ".join(out.split())
        )


class TestAssumptions:
    def test_each_assumption_has_its_origin(self) -> None:
        """The four figures the plan assumes or measured, each with its origin."""
        p = plan(Workload(monthly_volume=250_000))
        rows = {a.key: (a.value, a.origin) for a in p.assumptions}
        assert ("25,000", "assumed") == rows["emails_per_ip_per_hour"]
        assert ("270 bytes", "measured") == rows["outbox_overhead_bytes"]
        assert ("0.5 h", "assumed") == rows["server_upkeep_hours"]
        assert ("10%", "assumed") == rows["hybrid_transactional_share"]
        assert "1 GB per 10,000" == rows["ram_per_address"][0]
        assert "planning_guide" == rows["ram_per_address"][1]

    def test_an_override_is_named(self) -> None:
        p = plan(Workload(monthly_volume=250_000), overrides={"ips": {"emails_per_ip_per_hour": 9}})
        assert (
            "override" == next(a for a in p.assumptions if a.key == "emails_per_ip_per_hour").origin
        )

    def test_terminal_and_report_show_them(self, run_cli: RunCli) -> None:
        _, out, _ = run_cli("plan", "250k")
        assert "Assumptions (origin: planning guide, measured, assumed, ...)" in out
        page = html_report(plan(Workload(monthly_volume=250_000)))
        assert "<h2>Assumptions</h2>" in page
        assert "emails per warm IP per hour" in page


def _published_overrides() -> dict[str, Any]:
    """Overrides that mark every default price published (no estimate)."""
    data = load_data()
    return {
        "vps": {
            "providers": {
                p.key: {
                    "shapes": [
                        {"vcpu": s.vcpu, "ram_gb": s.ram_gb, "ssd_gb": s.ssd_gb, "usd": s.usd}
                        for s in p.shapes
                    ]
                }
                for p in data.vps_providers
            }
        },
        "pricing": {
            "esp": {
                e.key: {
                    "dedicated_ip_estimated": False,
                    "plans": [
                        {
                            "name": x.name,
                            "base_usd": x.base_usd,
                            "included": x.included,
                            "per_1000_usd": x.per_1000_usd,
                        }
                        for x in e.plans
                    ],
                }
                for e in data.pricing
            }
        },
    }


class TestEstimates:
    def test_estimated_prices_are_marked(self) -> None:
        """Mailgun's list and the Vultr shapes are estimates: their options say so."""
        p = plan(Workload(monthly_volume=250_000))
        marks = {o.option: o.estimated for o in p.tco}
        assert marks["mailgun"]
        assert all(marks.values())  # the pipeline's servers (Vultr) are estimated
        assert next(q for q in p.vps if q.chosen).estimated
        assert "(estimated)" in html_report(p)

    def test_published_prices_are_not(self) -> None:
        """With every price published, no option, quote or page marks an estimate."""
        data = load_data(_published_overrides())
        p = plan(Workload(monthly_volume=250_000), data=data)
        assert not any(o.estimated for o in p.tco)
        assert not any(q.estimated for q in p.vps)
        assert "(estimated)" not in html_report(p, data=data)

    def test_dedicated_ip_estimate_counts_only_when_asked(self) -> None:
        """An estimated dedicated-IP price marks the option only when its IPs are planned."""
        overrides = _published_overrides()
        overrides["pricing"]["esp"]["sendgrid"]["dedicated_ip_estimated"] = True
        data = load_data(overrides)

        def sendgrid(**fields: Any) -> bool:
            p = plan(Workload(monthly_volume=250_000, **fields), data=data)
            return next(o for o in p.tco if o.option == "sendgrid").estimated

        assert (False, True) == (sendgrid(), sendgrid(esp_dedicated_ips=True))

    def test_terminal_marks_estimates_and_fits_80_columns(self, run_cli: RunCli) -> None:
        code, out, _ = run_cli("plan", "250k")
        assert 0 == code
        assert "est." in out
        assert "est. = a price in it is estimated, not from a published price list" in (
            " ".join(out.split())
        )
        assert max(len(line) for line in out.splitlines()) <= 80
