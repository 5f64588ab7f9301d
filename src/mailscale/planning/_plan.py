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
    load_data,
)
from mailscale.planning._explain import derived_figures, servers_rule, sizing_rules
from mailscale.planning._format import (
    compact,
    plural,
    plurals,
)
from mailscale.planning._kpi import KpiTarget
from mailscale.planning._model import (
    Criterion,
    EspChoice,
    Feasibility,
    HostingDecision,
    Phase,
    Plan,
    Requirement,
    TcoEstimate,
    TierChoice,
    VpsQuote,
)
from mailscale.planning._sizing import ceil as _ceil
from mailscale.planning._sizing import exact as _exact
from mailscale.planning._sizing import size as _size
from mailscale.planning._validate import check_number
from mailscale.planning._workload import MAX_MONTHLY_VOLUME, Workload

__all__ = ["plan", "tier_for"]

_MONTHS_PER_YEAR = 12
_DAYS_PER_YEAR = 365
_BYTES_PER_GB = 10**9
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
            "pass a mapping of figures as overrides= instead", field="data",
        )
    return data


def tier_for(monthly_volume: int, data: PlanningData | None = None) -> TierSpec:
    """The tier whose lower-inclusive band holds ``monthly_volume``.

    Volumes below the smallest tier's lower bound get the smallest tier. The
    volume is checked as `Workload` checks it (`PlanningError` naming ``monthly_volume``).
    """
    volume = check_number(monthly_volume, "monthly_volume", integer=True,
                          maximum=MAX_MONTHLY_VOLUME)
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


def _requirement(resource: str, unit: str, tier: float, derived: int | None,
                 rule: str) -> Requirement:
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
    band_text = (f"the volume band {_band_label(bands[index][0], high)} picks "
                 f"{data.esp(band_esp).name}")
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
        reason = (f"the {use_words} use case prefers {data.esp(preferred).name} "
                  f"({strengths}) over the volume band's {data.esp(band_esp).name}")
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
    team_met = TEAM_LEVELS.index(workload.team_expertise) >= TEAM_LEVELS.index(
        rules.team_expertise)
    criteria = (
        Criterion("volume", f"{rules.min_monthly_volume:,}+ emails/month", volume_met,
                  f"{workload.monthly_volume:,}/month"),
        Criterion("team", f"{rules.team_expertise} email-infrastructure team", team_met,
                  f"team expertise: {workload.team_expertise}"),
        Criterion("custom_integration", "needs a custom integration",
                  workload.custom_integration,
                  "custom integration needed" if workload.custom_integration
                  else "no custom integration needed"),
        Criterion("compliance", "dedicated compliance resources",
                  workload.compliance_resources,
                  "compliance resources available" if workload.compliance_resources
                  else "no dedicated compliance resources"),
    )
    met = sum(criterion.met for criterion in criteria)
    recommendation = "self_hosted" if met >= rules.min_criteria_met else "managed"
    return HostingDecision(recommendation, criteria, met, rules.min_criteria_met)


def _tco(workload: Workload, data: PlanningData) -> tuple[TcoEstimate, ...]:
    rate = workload.hourly_cost_usd
    rows = []
    for option in data.tco:
        engineering = float(_exact(option.engineering_hours) * _exact(rate))
        low = option.infrastructure_usd[0] + engineering + option.compliance_usd[0]
        high = option.infrastructure_usd[1] + engineering + option.compliance_usd[1]
        rows.append((option, engineering, (low, high)))
    # Cheapest: lowest midpoint, then lowest low end, then data order.
    best = min(range(len(rows)), key=lambda i: (sum(rows[i][2]), rows[i][2][0], i))
    return tuple(
        TcoEstimate(
            option=option.key,
            name=option.name,
            infrastructure_usd=option.infrastructure_usd,
            engineering_hours=option.engineering_hours,
            hourly_cost_usd=rate,
            engineering_usd=engineering,
            compliance_usd=option.compliance_usd,
            total_usd=total,
            cheapest=i == best,
        )
        for i, (option, engineering, total) in enumerate(rows)
    )


def _kpi_targets(peak_per_minute: Fraction, data: PlanningData) -> tuple[KpiTarget, ...]:
    targets = []
    for spec in data.kpis:
        target, source = spec.target, "brief"
        if spec.key == "processing_rate_per_minute" and spec.comparator in (">", ">="):
            peak = _ceil(peak_per_minute)
            if peak > target:
                target, source = float(peak), "peak rate"
        targets.append(KpiTarget(spec.key, spec.label, spec.comparator, target, spec.unit,
                                 source))
    return tuple(targets)


def _roadmap(plan_: Plan, data: PlanningData) -> tuple[Phase, ...]:
    workload = plan_.workload
    managed = plan_.hosting.recommendation == "managed"
    ips = plan_.requirement("dedicated_ips").recommended
    servers = plan_.requirement("servers").recommended
    chosen = plan_.feasibility_for(plan_.esp.chosen)
    keys = chosen.keys_batched
    conditions = {
        "always": True,
        "self_hosted": not managed,
        "managed": managed,
        "load_balanced": servers >= 2,
        "multi_server": plan_.tier.multi_server,
        "multi_data_center": plan_.tier.multi_data_center,
        "several_ips": ips >= 2,
        "single_ip": ips == 1,
        "several_keys": managed and keys >= 2,
        "custom_integration": workload.custom_integration,
        "compliance_resources": workload.compliance_resources,
        "no_compliance_resources": not workload.compliance_resources,
    }
    hosting = (f"managed ESP {plan_.esp.chosen_name}" if managed
               else f"self-hosted on {plural(servers, 'server')}")
    values = {
        "esp": plan_.esp.chosen_name,
        "keys": f"{keys:,}",
        "scope": chosen.scope,
        "servers": f"{servers:,}",
        "ips": f"{ips:,}",
        "vcpu_per_server": f"{plan_.per_server[0]:,}",
        "ram_gb_per_server": f"{plan_.per_server[1]:,}",
        "storage_gb": f"{plan_.requirement('storage_gb').recommended:,}",
        "hosting": hosting,
    }
    return tuple(
        Phase(spec.key, spec.months,
              tuple(plurals(task.text.format(**values))
                    for task in spec.tasks if conditions[task.when]))
        for spec in data.roadmap
    )


def plan(
    workload: Workload,
    *,
    data: PlanningData | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> Plan:
    """Plan the infrastructure for ``workload``.

    Args:
        workload: what is to be sent.
        data: the figures to plan with (`load_data`); default: the planning guide's.
        overrides: figures to change, in the data files' layout, applied on
            top of ``data`` when ``data`` is not given (see `load_data`).

    Raises:
        PlanningError: ``workload`` is not a `Workload`, or an override is invalid.
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
    capacity = data.capacity
    tier = _tier_choice(workload, data)

    sizing = _size(workload, capacity)
    rules = sizing_rules(workload, sizing, capacity)
    vcpu = _requirement("vcpu", "vCPU", tier.vcpu[1], sizing.cores, rules["vcpu"])
    ram_req = _requirement("ram_gb", "GB", tier.ram_gb[1], sizing.ram_gb, rules["ram_gb"])
    storage_req = _requirement("storage_gb", "GB", tier.ssd_gb[1], sizing.storage_gb,
                               rules["storage_gb"])
    ips = _requirement("dedicated_ips", "IPs", tier.dedicated_ips[1], None,
                       rules["dedicated_ips"])
    server_need = max(
        _ceil(Fraction(vcpu.recommended, capacity.max_vcpu_per_server)),
        _ceil(Fraction(ram_req.recommended, capacity.max_ram_gb_per_server)),
    )
    servers = _requirement("servers", "servers", tier.servers, server_need,
                           servers_rule(vcpu.recommended, ram_req.recommended, capacity))
    requirements = (vcpu, ram_req, storage_req, ips, servers)
    count = servers.recommended
    per_server = (_ceil(Fraction(vcpu.recommended, count)),
                  _ceil(Fraction(ram_req.recommended, count)))
    size = next(s for s in data.vps_sizes
                if per_server[0] <= s.max_vcpu and per_server[1] <= s.max_ram_gb)
    vps = tuple(
        VpsQuote(
            provider=p.key, name=p.name, size=size.key, servers=count,
            per_server_usd=p.price(size.key),
            monthly_usd=(p.price(size.key)[0] * count, p.price(size.key)[1] * count),
            open_ended=size.key in p.open_ended, strengths=p.strengths,
        )
        for p in data.vps_providers
    )
    esp = _esp_choice(workload, data)
    feasibility = tuple(_feasibility(e, sizing.peak_hour, esp.chosen) for e in data.esps)
    draft = Plan(
        workload=workload,
        tier=tier,
        per_core_rate=sizing.rate,
        per_core_rate_source=sizing.rate_source,
        derived=derived_figures(workload, sizing, capacity),
        requirements=requirements,
        per_server=per_server,
        vps=vps,
        esp=esp,
        feasibility=feasibility,
        hosting=_hosting(workload, data),
        tco=_tco(workload, data),
        kpis=_kpi_targets(sizing.per_minute, data),
        roadmap=(),
    )
    return attrs.evolve(draft, roadmap=_roadmap(draft, data))
