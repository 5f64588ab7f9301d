"""`plan`: a workload in, a `Plan` out, every figure with the rule behind it."""

from __future__ import annotations

import math
from collections.abc import Mapping
from fractions import Fraction
from typing import Any

import attrs

from mailscale.errors import PlanningError
from mailscale.planning._data import (
    TEAM_LEVELS,
    EspLimits,
    PlanningData,
    TierSpec,
    VpsSize,
    load_data,
)
from mailscale.planning._explain import (
    derived_figures,
    fleet_rule,
    infrastructure_note,
    recommendation_note,
    servers_rule,
    sizing_rules,
)
from mailscale.planning._format import compact, number, plural, plurals
from mailscale.planning._kpi import KpiTarget
from mailscale.planning._measurements import Measurements
from mailscale.planning._model import (
    Assumption,
    Criterion,
    DedicatedIps,
    EspChoice,
    Feasibility,
    Fleet,
    HostingDecision,
    Phase,
    Plan,
    Requirement,
    Setup,
    TcoEstimate,
    TierChoice,
    VpsQuote,
)
from mailscale.planning._sizing import (
    ServerFit,
    Sizing,
    esp_cost,
    fit_servers,
    fleet_load,
    ip_need,
)
from mailscale.planning._sizing import ceil as _ceil
from mailscale.planning._sizing import exact as _exact
from mailscale.planning._sizing import size as _size
from mailscale.planning._validate import check_number
from mailscale.planning._workload import MAX_MONTHLY_VOLUME, Workload

__all__ = ["plan", "tier_for"]

_USE_CASE_WORDS = {
    "transactional": "transactional",
    "cold_outreach": "cold outreach",
    "bulk_marketing": "bulk marketing",
    "enterprise": "enterprise",
}


def _checked_data(data: object) -> PlanningData:
    """``data`` if it is `load_data`'s result (None: the planning guide's), else `PlanningError`."""
    if data is None:
        return load_data()
    if not isinstance(data, PlanningData):
        raise PlanningError(
            f"data must be the PlanningData that load_data returns, got {type(data).__name__}; "
            "pass a mapping of figures as overrides= instead",
            field="data",
        )
    return data


def tier_for(monthly_volume: int, data: PlanningData | None = None) -> TierSpec:
    """The tier whose lower-inclusive band holds ``monthly_volume``.

    Volumes below the smallest tier's lower bound get the smallest tier. The
    volume is checked as `Workload` checks it (`PlanningError` naming ``monthly_volume``).
    """
    volume = check_number(
        monthly_volume, "monthly_volume", integer=True, maximum=MAX_MONTHLY_VOLUME
    )
    tiers = _checked_data(data).tiers
    chosen = tiers[0]
    for tier in tiers:
        if volume >= tier.min_volume:
            chosen = tier
    return chosen


def _band_label(low: int, high: int | None) -> str:
    return f"{compact(low)}+" if high is None else f"{compact(low)}-{compact(high)}"


def _tier_choice(workload: Workload, data: PlanningData) -> TierChoice:
    spec = tier_for(workload.monthly_volume, data)
    fields = attrs.asdict(spec, recurse=False)
    del fields["key"], fields["min_volume"], fields["max_volume"]
    return TierChoice(
        key=spec.key,
        label=_band_label(spec.min_volume, spec.max_volume),
        min_volume=spec.min_volume,
        max_volume=spec.max_volume,
        below_smallest=workload.monthly_volume < data.tiers[0].min_volume,
        **fields,
    )


_RESOURCE_LABELS = {
    "vcpu": "vCPU",
    "ram_gb": "RAM",
    "storage_gb": "storage",
    "dedicated_ips": "dedicated IPs",
    "servers": "servers",
}


def _requirement(
    resource: str, unit: str, tier: float, derived: int | None, rule: str
) -> Requirement:
    tier_value = math.ceil(tier)
    label = _RESOURCE_LABELS[resource]
    if derived is not None and derived > tier_value:
        return Requirement(resource, label, unit, tier_value, derived, derived, "derived", rule)
    return Requirement(resource, label, unit, tier_value, derived, tier_value, "tier", rule)


def _esp_choice(workload: Workload, data: PlanningData) -> EspChoice:
    bands = data.esp_bands
    index = 0
    for i, (low, _) in enumerate(bands):
        if workload.monthly_volume >= low:
            index = i
    band_esp = bands[index][1]
    high = bands[index + 1][0] if index + 1 < len(bands) else None
    band_text = (
        f"the volume band {_band_label(bands[index][0], high)} picks {data.esp(band_esp).name}"
    )
    preferred = dict(data.esp_use_cases)[workload.use_case]
    use_words = _USE_CASE_WORDS[workload.use_case]
    if preferred == "volume":
        chosen = band_esp
        reason = f"{band_text}; the {use_words} use case follows the volume band"
    elif preferred == band_esp:
        chosen = band_esp
        reason = f"{band_text}, which the {use_words} use case prefers too"
    else:
        chosen = preferred
        strengths = ", ".join(data.esp(preferred).strengths)
        reason = (
            f"the {use_words} use case prefers {data.esp(preferred).name} "
            f"({strengths}) over the volume band's {data.esp(band_esp).name}"
        )
    runner_up: str | None
    if chosen != band_esp:
        runner_up = band_esp
        runner_reason = band_text
    else:
        runner_up, runner_reason = _neighbour(workload.monthly_volume, index, data)
    return EspChoice(
        chosen=chosen,
        chosen_name=data.esp(chosen).name,
        reason=reason,
        runner_up=runner_up,
        runner_up_name=None if runner_up is None else data.esp(runner_up).name,
        runner_up_reason=runner_reason,
        band_choice=band_esp,
        use_case_choice=None if preferred == "volume" else preferred,
    )


def _neighbour(volume: int, index: int, data: PlanningData) -> tuple[str | None, str]:
    """The adjacent band's ESP whose boundary is nearer (by ratio; ties go up)."""
    bands = data.esp_bands
    candidates: list[tuple[Fraction, int, str, str]] = []
    if index + 1 < len(bands):
        start, esp = bands[index + 1]
        text = f"the next band starts at {start:,}/month with {data.esp(esp).name}"
        candidates.append((Fraction(start, volume), 0, esp, text))
    if index > 0 and bands[index][0] > 0:
        start = bands[index][0]
        esp = bands[index - 1][1]
        text = f"the band below ends at {start:,}/month with {data.esp(esp).name}"
        candidates.append((Fraction(volume, start), 1, esp, text))
    if not candidates:
        return None, "no other volume band"
    _, _, esp, text = min(candidates)
    return esp, text


def _feasibility(esp: EspLimits, peak_hour: int, chosen: str) -> Feasibility:
    per_hour = _exact(esp.requests) * 3600 / _exact(esp.window_seconds)
    if esp.quota_counts == "requests":
        batched = _ceil(Fraction(peak_hour, esp.batch_size))
    else:
        batched = peak_hour
    return Feasibility(
        esp=esp.key,
        name=esp.name,
        scope=esp.scope,
        limit_per_hour=float(per_hour),
        batch_size=esp.batch_size,
        batch_unit=esp.batch_unit,
        quota_counts=esp.quota_counts,
        peak_hour_messages=peak_hour,
        unbatched_units=peak_hour,
        batched_units=batched,
        keys_unbatched=_ceil(peak_hour / per_hour),
        keys_batched=_ceil(batched / per_hour),
        chosen=esp.key == chosen,
    )


def _hosting(workload: Workload, data: PlanningData) -> HostingDecision:
    rules = data.hosting
    volume_met = workload.monthly_volume >= rules.min_monthly_volume
    team_met = TEAM_LEVELS.index(workload.team_expertise) >= TEAM_LEVELS.index(rules.team_expertise)
    criteria = (
        Criterion(
            "volume",
            f"{rules.min_monthly_volume:,}+ emails/month",
            volume_met,
            f"{workload.monthly_volume:,}/month",
        ),
        Criterion(
            "team",
            f"{rules.team_expertise} email-infrastructure team",
            team_met,
            f"team expertise: {workload.team_expertise}",
        ),
        Criterion(
            "custom_integration",
            "needs a custom integration",
            workload.custom_integration,
            "custom integration needed"
            if workload.custom_integration
            else "no custom integration needed",
        ),
        Criterion(
            "compliance",
            "dedicated compliance resources",
            workload.compliance_resources,
            "compliance resources available"
            if workload.compliance_resources
            else "no dedicated compliance resources",
        ),
    )
    met = sum(criterion.met for criterion in criteria)
    hybrid = bool(rules.hybrid_criteria) and all(
        c.met for c in criteria if c.key in rules.hybrid_criteria
    )
    recommendation = (
        "self_hosted" if met >= rules.min_criteria_met else "hybrid" if hybrid else "managed"
    )
    return HostingDecision(recommendation, criteria, met, rules.min_criteria_met)


def _transactional_esp(data: PlanningData) -> str:
    """The ESP the transactional use case prefers (its volume band's when it follows it)."""
    preferred = dict(data.esp_use_cases)["transactional"]
    return preferred if preferred != "volume" else data.esp_bands[0][1]


def _setup(
    hosting: HostingDecision, esp: EspChoice, data: PlanningData, servers: int, ips: int
) -> Setup:
    on = f"{plural(servers, 'server')} with {plural(ips, 'dedicated IP')}"
    if hosting.recommendation == "self_hosted":
        return Setup("self_hosted", None, None, "self_hosted", f"self-hosted on {on}")
    if hosting.recommendation == "hybrid":
        key = _transactional_esp(data)
        name = data.esp(key).name
        return Setup(
            "hybrid",
            key,
            name,
            "hybrid",
            f"hybrid: bulk mail self-hosted on {on}, transactional mail through {name}",
        )
    return Setup(
        "managed", esp.chosen, esp.chosen_name, esp.chosen, f"managed ESP {esp.chosen_name}"
    )


def _dedicated_ips(
    workload: Workload, sizing: Sizing, data: PlanningData, tier: TierChoice, used: bool
) -> DedicatedIps:
    rules = data.ips
    need = ip_need(
        sizing.peak_hour,
        sizing.daily,
        rules.emails_per_ip_per_hour,
        rules.min_ips,
        rules.warmup_daily_caps,
    )
    ips = need.ips if used else 0
    schedule = tuple(
        (day + 1, cap * ips) for day, cap in enumerate(rules.warmup_daily_caps[: need.warmup_days])
    )
    reason = (
        f"max(ceil({plural(sizing.peak_hour, 'email')} at the peak hour / "
        f"{number(rules.emails_per_ip_per_hour)} per warm IP per hour), "
        f"{rules.min_ips} for failover)"
        if used
        else "none: the ESP's shared IPs send (ask for its dedicated-IP add-on "
        "with --esp-dedicated-ips)"
    )
    return DedicatedIps(
        used=used,
        ips=ips,
        by_peak=need.by_peak,
        per_ip_per_hour=rules.emails_per_ip_per_hour,
        min_ips=rules.min_ips,
        per_ip_daily=float(need.per_ip_daily) if used else 0.0,
        warmup_days=need.warmup_days if used else 0,
        warmup_weeks=need.warmup_weeks if used else 0,
        schedule=schedule if used else (),
        guide_band=tier.dedicated_ips,
        reason=reason,
    )


def _guide_size(data: PlanningData, vcpu: int, ram_gb: float) -> VpsSize:
    return next(
        (size for size in data.vps_sizes if vcpu <= size.max_vcpu and ram_gb <= size.max_ram_gb),
        data.vps_sizes[-1],
    )


def _quotes(data: PlanningData, fits: list[ServerFit]) -> tuple[VpsQuote, ...]:
    best = min(
        range(len(fits)), key=lambda i: (fits[i].total_usd + fits[i].upkeep_usd, fits[i].servers, i)
    )
    quotes = []
    for i, (provider, fit) in enumerate(zip(data.vps_providers, fits, strict=True)):
        size = _guide_size(data, fit.shape.vcpu, fit.shape.ram_gb)
        band = provider.price(size.key)
        quotes.append(
            VpsQuote(
                provider=provider.key,
                name=provider.name,
                size=size.key,
                servers=fit.servers,
                per_server_usd=band,
                monthly_usd=(band[0] * fit.servers, band[1] * fit.servers),
                open_ended=size.key in provider.open_ended,
                strengths=provider.strengths,
                vcpu=fit.shape.vcpu,
                ram_gb=fit.shape.ram_gb,
                ssd_gb=fit.shape.ssd_gb,
                shape_usd=fit.shape.usd,
                extra_storage_gb=fit.extra_storage_gb,
                extra_ips=fit.extra_ips,
                servers_usd=float(fit.servers_usd),
                storage_usd=float(fit.storage_usd),
                ips_usd=float(fit.ips_usd),
                total_usd=float(fit.total_usd),
                upkeep_hours=float(fit.upkeep_hours),
                chosen=i == best,
                source=provider.source,
                estimated=fit.shape.estimated,
            )
        )
    return tuple(quotes)


def _option(
    key: str,
    name: str,
    workload: Workload,
    data: PlanningData,
    esp_usd: Fraction,
    servers: VpsQuote,
    detail: str,
    hours_from: tuple[str, ...],
    estimated: bool = False,
) -> TcoEstimate:
    specs = [spec for k in hours_from if (spec := data.tco_spec(k)) is not None]
    hours = sum((_exact(spec.engineering_hours) for spec in specs), _exact(servers.upkeep_hours))
    servers_usd = _exact(servers.total_usd)
    compliance = (
        max((c.compliance_usd[0] for c in specs), default=0.0),
        max((c.compliance_usd[1] for c in specs), default=0.0),
    )
    own = data.tco_spec(key)
    infrastructure = float(esp_usd + servers_usd)
    engineering = float(hours * _exact(workload.hourly_cost_usd))
    return TcoEstimate(
        option=key,
        name=name,
        infrastructure_usd=(infrastructure, infrastructure),
        engineering_hours=float(hours),
        hourly_cost_usd=workload.hourly_cost_usd,
        engineering_usd=engineering,
        compliance_usd=compliance,
        total_usd=(
            infrastructure + engineering + compliance[0],
            infrastructure + engineering + compliance[1],
        ),
        cheapest=False,
        esp_usd=float(esp_usd),
        servers_usd=float(servers_usd),
        detail=detail,
        guide_infrastructure_usd=None if own is None else own.infrastructure_usd,
        guide_total_usd=None if own is None else own.guide_total_usd,
        recommended=False,
        estimated=estimated or servers.estimated,
    )


def _servers_words(quote: VpsQuote) -> str:
    extras = []
    if quote.extra_storage_gb:
        extras.append(f"{quote.extra_storage_gb:,} GB block storage")
    if quote.extra_ips:
        extras.append(plural(quote.extra_ips, "extra IP"))
    more = f" + {', '.join(extras)}" if extras else ""
    return (
        f"{plural(quote.servers, 'server')} of {quote.vcpu} vCPU / "
        f"{number(quote.ram_gb)} GB at {quote.name}{more}"
    )


def _tco(
    workload: Workload,
    data: PlanningData,
    setup: Setup,
    hosted: VpsQuote,
    pipeline: VpsQuote,
    ips: DedicatedIps,
    need_ips: int,
) -> tuple[TcoEstimate, ...]:
    volume = workload.monthly_volume
    rows = [
        _option(
            "self_hosted",
            "Self-hosted VPS",
            workload,
            data,
            Fraction(0),
            hosted,
            _servers_words(hosted),
            ("self_hosted",),
        )
    ]
    esp_ips = need_ips if workload.esp_dedicated_ips else 0
    for esp in data.esps:
        plan_name, cost, estimated = esp_cost(data.esp_pricing(esp.key), volume, esp_ips)
        ip_words = f" + {plural(esp_ips, 'dedicated IP')}" if esp_ips else ""
        rows.append(
            _option(
                esp.key,
                esp.name,
                workload,
                data,
                cost,
                pipeline,
                f"{esp.name} {plan_name}{ip_words} + {_servers_words(pipeline)}",
                (esp.key,),
                estimated,
            )
        )
    if setup.kind == "hybrid":
        assert setup.esp is not None and setup.esp_name is not None
        share = _exact(data.hosting.hybrid_transactional_share)
        transactional = _ceil(volume * share)
        plan_name, cost, estimated = esp_cost(data.esp_pricing(setup.esp), transactional, 0)
        rows.append(
            _option(
                "hybrid",
                f"Hybrid (self-hosted + {setup.esp_name})",
                workload,
                data,
                cost,
                hosted,
                f"{_servers_words(hosted)} + {setup.esp_name} {plan_name} for "
                f"{plural(transactional, 'transactional email')}",
                ("self_hosted", setup.esp),
                estimated,
            )
        )
    # Cheapest: lowest midpoint, then lowest low end, then the setup's own option (a tie is
    # not a reason to explain), then data order.
    best = min(
        range(len(rows)),
        key=lambda i: (
            sum(rows[i].total_usd),
            rows[i].total_usd[0],
            rows[i].option != setup.option,
            i,
        ),
    )
    return tuple(
        attrs.evolve(row, cheapest=i == best, recommended=row.option == setup.option)
        for i, row in enumerate(rows)
    )


def _worker_origin(sizing: Sizing, data: PlanningData, method: str | None) -> str:
    """Where the plan's CPU per message comes from, in words."""
    if sizing.rate_source == "documented" and data.measured is not None:
        m = data.measured.worker_cpu_ms
        return f"measured: {m.source}, {m.date}"
    if sizing.rate_source == "measured":
        if method == "given":
            return "given (per_core_rate)"
        return f"calibrated on this machine: {method}"
    return "the planning guide's per-core rate"


def _fleet(sizing: Sizing, data: PlanningData, chosen: VpsQuote, method: str | None) -> Fleet:
    shared = chosen.servers >= 2
    load = fleet_load(
        sizing.peak_hour, sizing.worker_ms, chosen.servers, chosen.vcpu, data.measured, shared
    )
    shaper_us = data.measured.shaper_cpu_us.value if shared and data.measured is not None else 0.0
    fleet = Fleet(
        worker_cpu_ms=float(sizing.worker_ms),
        worker_cpu_source=sizing.rate_source,
        worker_cpu_origin=_worker_origin(sizing, data, method),
        shared_redis=shared,
        shaper_cpu_us=shaper_us,
        cpu_ms=float(load.cpu_ms),
        peak_per_second=float(load.peak_per_second),
        cores=float(load.cores),
        servers=chosen.servers,
        vcpu_per_server=chosen.vcpu,
        sending_servers=load.sending_servers,
        capacity_per_second=float(load.capacity_per_second),
        headroom=float(load.capacity_per_second / load.peak_per_second),
        redis_round_trips_per_second=float(load.redis_round_trips),
        redis_load=float(load.redis_load),
        redis_instances=load.redis_instances,
        rule="",
    )
    return attrs.evolve(fleet, rule=fleet_rule(fleet, data.measured))


def _origin(data: PlanningData, path: str, default: str) -> str:
    return "override" if path in data.overridden else default


def _assumptions(
    workload: Workload, sizing: Sizing, data: PlanningData, fleet: Fleet
) -> tuple[Assumption, ...]:
    """Every figure the plan rests on that the workload does not give, with its origin."""
    capacity, m = data.capacity, data.measured
    rate_origin = {
        "documented": "measured",
        "measured": "given" if fleet.worker_cpu_origin.startswith("given") else "calibrated",
        "planning_guide": _origin(data, "capacity.emails_per_minute_per_core", "planning_guide"),
    }[sizing.rate_source]
    if sizing.rate_source == "documented":
        rate_origin = _origin(data, "measured.worker_cpu_ms.value", rate_origin)
    if sizing.rate_source == "documented" and m is not None:
        w = m.worker_cpu_ms
        rate_source = f"{w.source}, {w.date}: {w.detail}"
    elif rate_origin == "given":
        rate_source = "the workload's per_core_rate"
    elif rate_origin == "calibrated":
        rate_source = fleet.worker_cpu_origin.removeprefix("calibrated on this machine: ")
    else:
        rate_source = "capacity.toml"
    rows = [
        Assumption(
            "worker_cpu_ms",
            "CPU per email (sending path)",
            f"{number(sizing.worker_ms, 4)} ms = {round(sizing.rate):,} emails/minute/core",
            rate_origin,
            f"{rate_source}; the planning guide's figure: "
            f"{number(capacity.emails_per_minute_per_core)} emails/minute/core",
        ),
    ]
    if sizing.overhead_source == "override":
        rows.append(
            Assumption(
                "outbox_overhead_bytes",
                "outbox bytes per stored email",
                f"{number(sizing.overhead_bytes)} bytes",
                "override",
                "capacity.stored_overhead_bytes_per_message",
            )
        )
    elif m is not None:
        o = m.outbox_overhead_bytes
        rows.append(
            Assumption(
                "outbox_overhead_bytes",
                "outbox bytes per stored email",
                f"{number(o.value)} bytes",
                _origin(data, "measured.outbox_overhead_bytes.value", "measured"),
                f"{o.source}, {o.date}: {o.detail}",
            )
        )
    if fleet.shared_redis and m is not None:
        rows.append(
            Assumption(
                "redis_shaper",
                "shared Redis shaper",
                f"{number(m.shaper_cpu_us.value)} us client CPU/email; "
                f"{number(m.redis_messages_per_second.value)} emails/s per client; "
                f"{number(m.redis_batch_messages.value)} per round trip",
                "measured",
                f"{m.shaper_cpu_us.source}, {m.shaper_cpu_us.date}",
            )
        )
    rows += [
        Assumption(
            "db_queries",
            "database queries",
            f"{number(capacity.db_queries_per_message)} per email at "
            f"{number(capacity.db_queries_per_second_per_core)}/s per core",
            _origin(data, "capacity.db_queries_per_message", "assumed"),
            "4 per email (enqueue, lease, acknowledge, outcome): mailscale's assumption; "
            "500 queries/s per core: the planning guide",
        ),
        Assumption(
            "ram_per_address",
            "RAM per active address",
            f"1 GB per {number(capacity.active_addresses_per_gb_ram)}",
            _origin(data, "capacity.active_addresses_per_gb_ram", "planning_guide"),
            "capacity.toml",
        ),
        Assumption(
            "sends_per_address",
            "emails per address per month",
            "-"
            if workload.active_addresses is not None
            else number(workload.sends_per_address_per_month),
            "given"
            if workload.active_addresses is not None or workload.sends_per_address_per_month != 4
            else "assumed",
            "used for the active addresses when they are not given (a weekly newsletter)",
        ),
        Assumption(
            "emails_per_ip_per_hour",
            "emails per warm IP per hour",
            number(data.ips.emails_per_ip_per_hour),
            _origin(data, "ips.emails_per_ip_per_hour", "assumed"),
            "ips.toml: under the big mailbox providers' per-IP throttling",
        ),
        Assumption(
            "min_ips",
            "dedicated IPs at least",
            f"{data.ips.min_ips:,}",
            _origin(data, "ips.min_ips", "assumed"),
            "ips.toml: one spare for failover",
        ),
        Assumption(
            "server_upkeep_hours",
            "upkeep per server per month",
            f"{number(capacity.server_upkeep_hours)} h",
            _origin(data, "capacity.server_upkeep_hours", "assumed"),
            "capacity.toml: patching and monitoring, added to the guide's hours",
        ),
        Assumption(
            "hybrid_transactional_share",
            "transactional share (hybrid)",
            f"{number(data.hosting.hybrid_transactional_share * 100)}%",
            _origin(data, "hosting.hybrid_transactional_share", "assumed"),
            "hosting.toml: priced at the transactional ESP in a hybrid setup",
        ),
        Assumption(
            "largest_server",
            "largest server",
            f"{capacity.max_vcpu_per_server} vCPU / {capacity.max_ram_gb_per_server} GB",
            _origin(data, "capacity.max_vcpu_per_server", "planning_guide"),
            "the planning guide's largest tier figures",
        ),
    ]
    return tuple(rows)


def _kpi_targets(peak_per_minute: Fraction, data: PlanningData) -> tuple[KpiTarget, ...]:
    targets = []
    for spec in data.kpis:
        target, source = spec.target, "planning_guide"
        if spec.key == "processing_rate_per_minute" and spec.comparator in (">", ">="):
            peak = _ceil(peak_per_minute)
            if peak > target:
                target, source = float(peak), "peak rate"
        targets.append(KpiTarget(spec.key, spec.label, spec.comparator, target, spec.unit, source))
    return tuple(targets)


def _roadmap(plan_: Plan, data: PlanningData) -> tuple[Phase, ...]:
    workload = plan_.workload
    setup = plan_.setup
    own_servers = setup.kind != "managed"
    through_esp = setup.kind != "self_hosted"
    ips = plan_.dedicated_ips.ips
    servers = plan_.requirement("servers").recommended
    chosen = plan_.feasibility_for(setup.esp or plan_.esp.chosen)
    keys = chosen.keys_batched
    conditions = {
        "always": True,
        "self_hosted": own_servers,
        "managed": through_esp,
        "load_balanced": servers >= 2,
        "multi_server": plan_.tier.multi_server and servers >= 2,
        "multi_data_center": plan_.tier.multi_data_center and servers >= 2,
        "several_ips": ips >= 2,
        "single_ip": ips == 1,
        "several_keys": through_esp and keys >= 2,
        "custom_integration": workload.custom_integration,
        "compliance_resources": workload.compliance_resources,
        "no_compliance_resources": not workload.compliance_resources,
    }
    values = {
        "esp": setup.esp_name or plan_.esp.chosen_name,
        "keys": f"{keys:,}",
        "scope": chosen.scope,
        "servers": f"{servers:,}",
        "ips": f"{ips:,}",
        "vcpu_per_server": number(plan_.per_server[0]),
        "ram_gb_per_server": number(plan_.per_server[1]),
        "storage_gb": f"{plan_.requirement('storage_gb').recommended:,}",
        "hosting": setup.summary,
    }
    return tuple(
        Phase(
            spec.key,
            spec.months,
            tuple(
                plurals(task.text.format(**values)) for task in spec.tasks if conditions[task.when]
            ),
        )
        for spec in data.roadmap
    )


def plan(
    workload: Workload,
    *,
    data: PlanningData | None = None,
    overrides: Mapping[str, Any] | None = None,
    measurements: Measurements | None = None,
) -> Plan:
    """Plan the infrastructure for ``workload``.

    Args:
        workload: what is to be sent.
        data: the figures to plan with (`load_data`); default: the planning guide's.
        overrides: figures to change, in the data files' layout, applied on
            top of ``data`` when ``data`` is not given (see `load_data`).
        measurements: figures measured on the stack (`Measurements`): the measured
            per-core rate replaces the guide's 1,000 emails/minute/core.

    Raises:
        PlanningError: ``workload`` is not a `Workload`, an override is invalid, or
            both ``measurements`` and ``workload.per_core_rate`` give a rate.
    """
    if not isinstance(workload, Workload):
        raise PlanningError(
            f"workload must be a Workload, got {type(workload).__name__}", field="workload"
        )
    if data is None:
        data = load_data(overrides)
    elif overrides:
        raise PlanningError("pass either data or overrides, not both", field="overrides")
    data = _checked_data(data)
    if measurements is not None:
        if not isinstance(measurements, Measurements):
            raise PlanningError(
                f"measurements must be Measurements, got {type(measurements).__name__}",
                field="measurements",
            )
        if workload.per_core_rate is not None:
            raise PlanningError(
                "give per_core_rate or measurements, not both", field="measurements"
            )
    capacity = data.capacity
    tier = _tier_choice(workload, data)
    sizing = _size(
        workload,
        capacity,
        None if measurements is None else measurements.emails_per_minute_per_core,
        data.measured,
        "capacity.emails_per_minute_per_core" in data.overridden,
    )
    rules = sizing_rules(workload, sizing, capacity)
    vcpu = _requirement("vcpu", "vCPU", tier.vcpu[1], sizing.cores, rules["vcpu"])
    ram_req = _requirement("ram_gb", "GB", tier.ram_gb[1], sizing.ram_gb, rules["ram_gb"])
    storage_req = _requirement(
        "storage_gb", "GB", tier.ssd_gb[1], sizing.storage_gb, rules["storage_gb"]
    )
    hosting = _hosting(workload, data)
    esp = _esp_choice(workload, data)
    own_ips = hosting.recommendation != "managed"
    ips = _dedicated_ips(workload, sizing, data, tier, used=own_ips or workload.esp_dedicated_ips)
    need_ips = ip_need(
        sizing.peak_hour,
        sizing.daily,
        data.ips.emails_per_ip_per_hour,
        data.ips.min_ips,
        data.ips.warmup_daily_caps,
    ).ips

    least = max(
        tier.servers,
        _ceil(Fraction(vcpu.recommended, capacity.max_vcpu_per_server)),
        _ceil(Fraction(ram_req.recommended, capacity.max_ram_gb_per_server)),
    )

    def fits(with_ips: int) -> tuple[VpsQuote, ...]:
        return _quotes(
            data,
            [
                fit_servers(
                    provider,
                    vcpu=vcpu.recommended,
                    ram_gb=ram_req.recommended,
                    storage_gb=storage_req.recommended,
                    ips=with_ips,
                    min_servers=least,
                    upkeep_hours=capacity.server_upkeep_hours,
                    hourly_usd=workload.hourly_cost_usd,
                )
                for provider in data.vps_providers
            ],
        )

    hosted_quotes = fits(need_ips)
    pipeline_quotes = fits(0)
    vps = hosted_quotes if own_ips else pipeline_quotes
    chosen = next(q for q in vps if q.chosen)
    ip_req = Requirement(
        "dedicated_ips",
        "dedicated IPs",
        "IPs",
        math.ceil(tier.dedicated_ips[1]),
        ips.ips,
        ips.ips,
        "derived" if ips.used else "setup",
        ips.reason,
    )
    servers = _requirement(
        "servers",
        "servers",
        tier.servers,
        chosen.servers,
        servers_rule(
            chosen,
            vcpu.recommended,
            ram_req.recommended,
            storage_req.recommended,
            ips.ips,
            least,
            capacity,
        ),
    )
    setup = _setup(hosting, esp, data, chosen.servers, ips.ips)
    tco = _tco(
        workload,
        data,
        setup,
        next(q for q in hosted_quotes if q.chosen),
        next(q for q in pipeline_quotes if q.chosen),
        ips,
        need_ips,
    )
    feasibility = tuple(_feasibility(e, sizing.peak_hour, setup.esp or "") for e in data.esps)
    draft = Plan(
        workload=workload,
        tier=tier,
        per_core_rate=sizing.rate,
        per_core_rate_source=sizing.rate_source,
        guide_per_core_rate=capacity.emails_per_minute_per_core,
        measurement_method=(
            None
            if sizing.rate_source != "measured"
            else "given"
            if measurements is None
            else measurements.method
        ),
        derived=derived_figures(workload, sizing, capacity),
        requirements=(vcpu, ram_req, storage_req, ip_req, servers),
        per_server=(chosen.vcpu, chosen.ram_gb),
        vps=vps,
        esp=esp,
        feasibility=feasibility,
        hosting=hosting,
        tco=tco,
        kpis=_kpi_targets(sizing.per_minute, data),
        roadmap=(),
        setup=setup,
        dedicated_ips=ips,
        infrastructure_usd=0.0,
        infrastructure_note="",
        recommendation_note=None,
    )
    recommended = draft.recommended
    fleet = _fleet(sizing, data, chosen, draft.measurement_method)
    draft = attrs.evolve(
        draft,
        fleet=fleet,
        assumptions=_assumptions(workload, sizing, data, fleet),
        infrastructure_usd=recommended.infrastructure_usd[0],
        infrastructure_note=infrastructure_note(draft),
        recommendation_note=recommendation_note(draft),
    )
    return attrs.evolve(draft, roadmap=_roadmap(draft, data))
