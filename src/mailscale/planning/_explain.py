"""The plan as sentences: the reasoning `Plan.explain` returns, one step per line."""

from __future__ import annotations

from mailscale.planning._data import Capacity, Measured
from mailscale.planning._format import (
    dollars,
    kpi_value,
    money,
    money_range,
    number,
    plural,
    quantity,
)
from mailscale.planning._model import Derived, Fleet, Plan, VpsQuote
from mailscale.planning._sizing import Sizing
from mailscale.planning._workload import Workload

__all__ = [
    "derived_figures",
    "explain_lines",
    "fleet_rule",
    "infrastructure_note",
    "recommendation_note",
    "servers_rule",
    "sizing_rules",
]

_USE_CASE_WORDS = {
    "transactional": "transactional",
    "cold_outreach": "cold outreach",
    "bulk_marketing": "bulk marketing",
    "enterprise": "enterprise",
}


def _rate_words(s: Sizing, capacity: Capacity) -> str:
    guide = f"the planning guide's figure is {number(capacity.emails_per_minute_per_core)}"
    if s.rate_source == "measured":
        return f"measured; {guide}"
    if s.rate_source == "documented":
        return f"{number(s.worker_ms, 4)} ms CPU per email measured (docs/performance.md); {guide}"
    return s.rate_source.replace("_", " ")


def fleet_rule(f: Fleet, measured: Measured | None) -> str:
    """The fleet's capacity at the peak in words, each per-message cost with its source."""
    cpu = f"worker CPU {number(f.worker_cpu_ms, 4)} ms/email ({f.worker_cpu_origin})"
    if f.shared_redis and measured is not None:
        m = measured.shaper_cpu_us
        cpu += (
            f" + Redis shaper {number(f.shaper_cpu_us)} us/email (measured: {m.source}, {m.date})"
        )
    text = (
        f"{cpu}; peak {number(f.peak_per_second, 3)}/s -> {number(f.cores, 3)} cores, "
        f"{plural(f.sending_servers, 'sending server')} by CPU; "
        f"{plural(f.servers, 'server')} x {f.vcpu_per_server} vCPU take "
        f"{number(round(f.capacity_per_second))}/s ({number(round(f.headroom))}x the peak)"
    )
    if f.shared_redis and measured is not None:
        text += (
            f"; shared Redis for shaping ({plural(f.servers, 'server')}): "
            f"{number(f.redis_round_trips_per_second, 3)} round trips/s of "
            f"{number(measured.redis_batch_messages.value)} emails, "
            f"{number(f.redis_load * 100, 3)}% of one client's measured "
            f"{number(measured.redis_messages_per_second.value)}/s, "
            f"{plural(f.redis_instances, 'Redis instance')}"
        )
    elif not f.shared_redis:
        text += "; one server: shaping in process, no shared Redis"
    return text


def derived_figures(w: Workload, s: Sizing, capacity: Capacity) -> tuple[Derived, ...]:
    """The derived figures of ``s``, each with its rule in words."""
    return (
        Derived(
            "daily_volume",
            float(s.daily),
            "emails/day",
            f"{quantity(w.monthly_volume, 'emails/month')} x 12 / 365",
        ),
        Derived(
            "peak_hour_messages",
            s.peak_hour,
            "emails",
            f"ceil({number(s.daily)}/day x {number(s.share * 100)}% peak-hour share)",
        ),
        Derived("peak_per_minute", float(s.per_minute), "emails/minute", f"{s.peak_hour:,} / 60"),
        Derived(
            "sending_cores",
            float(s.sending_cores),
            "cores",
            f"{number(s.per_minute)}/minute / {round(s.rate):,} emails/minute/core "
            f"({_rate_words(s, capacity)})",
        ),
        Derived(
            "db_queries_per_second",
            float(s.qps),
            "queries/s",
            f"{s.peak_hour:,}/hour x {number(capacity.db_queries_per_message)} "
            "queries/email / 3600",
        ),
        Derived(
            "database_cores",
            float(s.db_cores),
            "cores",
            f"{number(s.qps)} queries/s / {number(capacity.db_queries_per_second_per_core)}"
            " queries/s/core",
        ),
        Derived(
            "stored_emails",
            s.stored,
            "emails",
            f"ceil({number(s.daily)}/day x {w.retention_days} retention days)",
        ),
    )


def sizing_rules(w: Workload, s: Sizing, capacity: Capacity) -> dict[str, str]:
    """The rule in words behind each derived requirement, by resource."""
    address_note = (
        ""
        if w.active_addresses is not None
        else (
            f" (active addresses default to the monthly volume / "
            f"{number(w.sends_per_address_per_month)} sends per address per month)"
        )
    )
    overhead_origin = {
        "measured": "measured",
        "override": "your override",
        "none": "not counted",
    }[s.overhead_source]
    size_note = (
        f"{number(w.message_size_bytes)} bytes + "
        f"{number(s.overhead_bytes)} bytes outbox overhead ({overhead_origin}) "
        f"per stored email; the guide's rule of thumb, 1 GB per "
        f"{number(capacity.stored_emails_per_gb)} stored emails, gives "
        f"{s.guide_storage_gb:,} GB"
    )
    return {
        "vcpu": f"ceil(sending cores {number(s.sending_cores, 3)} + database cores "
        f"{number(s.db_cores, 3)})",
        "ram_gb": f"ceil({plural(s.addresses, 'active address', 'active addresses')} / "
        f"{number(capacity.active_addresses_per_gb_ram)} per GB){address_note}",
        "storage_gb": f"ceil({plural(s.stored, 'stored email')} at {size_note})",
    }


def servers_rule(
    chosen: VpsQuote,
    vcpu: int,
    ram_gb: int,
    storage_gb: int,
    ips: int,
    least: int,
    capacity: Capacity,
) -> str:
    """The rule in words behind the server count and shape: the cheapest fit at list prices."""
    holds = f"{vcpu:,} vCPU, {ram_gb:,} GB RAM, {storage_gb:,} GB storage"
    if ips:
        holds += f", {plural(ips, 'IP')}"
    return (
        f"at least {least:,} = max(the tier's servers, ceil({vcpu:,} vCPU / "
        f"{capacity.max_vcpu_per_server}), ceil({ram_gb:,} GB / "
        f"{capacity.max_ram_gb_per_server} GB)); the cheapest servers holding {holds} "
        f"(list price + {number(capacity.server_upkeep_hours)} h upkeep each): "
        f"{_shape_words(chosen)}, {money(chosen.total_usd)}/month"
    )


def _shape_words(q: VpsQuote) -> str:
    return f"{plural(q.servers, 'server')} of {q.vcpu} vCPU / {number(q.ram_gb)} GB RAM at {q.name}"


def infrastructure_note(p: Plan) -> str:
    """The plan's one infrastructure figure, and how it compares with the guide's tier range."""
    t = p.tier
    rec = p.recommended
    band = money_range(*t.monthly_cost_usd, open_ended=t.open_ended)
    servers = rec.servers_usd
    low, high = t.monthly_cost_usd
    if servers > high and not t.open_ended:
        reasons = []
        chosen = next(q for q in p.vps if q.chosen)
        if chosen.servers > t.servers:
            reasons.append(f"{plural(chosen.servers, 'server')} where the tier has {t.servers:,}")
        if chosen.extra_storage_gb:
            reasons.append(f"{chosen.extra_storage_gb:,} GB block storage")
        if chosen.extra_ips:
            reasons.append(plural(chosen.extra_ips, "extra IP"))
        why = ", ".join(reasons) or "list prices above the guide's band"
        relation = f"above the guide's {t.label} tier range {band} ({why})"
    elif servers < low:
        relation = f"below the guide's {t.label} tier range {band}"
    else:
        relation = f"within the guide's {t.label} tier range {band}"
    esp = (
        f" + {p.setup.esp_name if p.setup.kind == 'hybrid' else rec.name} {dollars(rec.esp_usd)}"
        if rec.esp_usd
        else ""
    )
    return (
        f"Infrastructure: {dollars(rec.infrastructure_usd[0])}/month for "
        f"{p.setup.summary}: servers {dollars(servers)}{esp}; the servers are {relation}."
    )


def recommendation_note(p: Plan) -> str | None:
    """Why the recommended option is not the cheapest, in one line; None when it is."""
    rec, cheap = p.recommended, p.cheapest
    if rec.option == cheap.option:
        return None
    h = p.hosting
    costs = (
        f"{rec.name} ({dollars(*rec.total_usd)}/month) is recommended over the cheaper "
        f"{cheap.name} ({dollars(*cheap.total_usd)})"
    )
    unmet = [c.label for c in h.criteria if not c.met]
    if cheap.option in ("self_hosted", "hybrid") and p.setup.kind == "managed":
        why = (
            f"self-hosting needs {h.required} of the guide's {len(h.criteria)} criteria "
            f"and {h.met} are met (missing: {', '.join(unmet)})"
        )
    elif p.setup.kind == "managed":
        why = f"the guide's choice: {p.esp.reason}"
    elif p.setup.kind == "hybrid":
        why = (
            f"the volume and team suit own servers for bulk mail, but {len(unmet)} of "
            f"the guide's self-hosting criteria are not met ({', '.join(unmet)}), so "
            f"transactional mail goes through {p.setup.esp_name}"
        )
    else:
        why = (
            f"all {h.required} of the guide's self-hosting criteria are met, so the "
            "guide self-hosts"
        )
    return f"{costs}: {why}."


def _range(pair: tuple[float, float], unit: str = "", open_ended: bool = False) -> str:
    plus = "+" if open_ended else ""
    low, high = number(pair[0]), number(pair[1])
    text = low if low == high else f"{low}-{high}"
    return f"{text}{plus}{' ' + unit if unit else ''}"


def explain_lines(p: Plan) -> list[str]:
    w, t = p.workload, p.tier
    lines = [
        f"Workload: {quantity(w.monthly_volume, 'emails/month')}, "
        f"{_USE_CASE_WORDS[w.use_case]}; "
        f"peak hour carries {number(w.peak_hour_share * 100)}% of a day's volume.",
    ]
    upper = "" if t.max_volume is None else f" < {t.max_volume:,}"
    where = (
        f"{w.monthly_volume:,} is below the smallest tier, which applies"
        if t.below_smallest
        else f"{t.min_volume:,} <= {w.monthly_volume:,}{upper}"
    )
    lines.append(
        f"Tier {t.label}/month ({where}; bands are lower-inclusive): "
        f"{_range(t.vcpu, 'vCPU', t.open_ended)}, {_range(t.ram_gb, 'GB RAM', t.open_ended)}, "
        f"{_range(t.ssd_gb, 'GB SSD', t.open_ended)}, "
        f"{_range(t.dedicated_ips, 'dedicated IPs', t.open_ended)}, {t.architecture}, "
        f"{money_range(*t.monthly_cost_usd, open_ended=t.open_ended)}/month."
    )
    for item in p.derived:
        lines.append(
            f"Derived {item.key.replace('_', ' ')}: "
            f"{quantity(item.value, item.unit, 3)} = {item.rule}."
        )
    for r in p.requirements:
        derived = "none" if r.derived is None else f"{r.derived:,}"
        lines.append(
            f"Recommended {r.label}: {quantity(r.recommended, r.unit)} "
            f"(tier {r.tier:,}, derived {derived}; {r.driver} drove it); rule: {r.rule}."
        )
    ips = p.dedicated_ips
    if ips.used:
        lines.append(
            f"Dedicated IPs: {plural(ips.ips, 'IP')} = {ips.reason}; warm-up "
            f"{plural(ips.warmup_days, 'day')} ({plural(ips.warmup_weeks, 'week')}) until each "
            f"IP's daily cap covers its {number(ips.per_ip_daily)} emails/day; the guide's "
            f"tier band: {_range(ips.guide_band)}."
        )
    else:
        lines.append(f"Dedicated IPs: {ips.reason}.")
    for q in p.vps:
        mark = " (chosen)" if q.chosen else ""
        est = " (estimated price)" if q.estimated else ""
        lines.append(
            f"VPS {q.name}{mark}: {money(q.total_usd)}/month{est} for {_shape_words(q)} "
            f"({money(q.shape_usd)} each"
            + (
                f", {q.extra_storage_gb:,} GB block storage {money(q.storage_usd)}"
                if q.extra_storage_gb
                else ""
            )
            + (f", {plural(q.extra_ips, 'extra IP')} {money(q.ips_usd)}" if q.extra_ips else "")
            + f"); the guide's {q.size} band: "
            f"{money_range(*q.monthly_usd, open_ended=q.open_ended)}/month; "
            f"strengths: {', '.join(q.strengths)}."
        )
    if p.fleet is not None:
        lines.append(f"Capacity: {p.fleet.rule}.")
    lines.append(f"Setup: {p.setup.summary}.")
    e = p.esp
    if p.setup.kind == "managed":
        lines.append(f"ESP: {e.chosen_name}, because {e.reason}.")
        if e.runner_up_name is not None:
            lines.append(f"ESP runner-up: {e.runner_up_name}, because {e.runner_up_reason}.")
    elif p.setup.kind == "hybrid":
        lines.append(
            f"ESP for transactional mail: {p.setup.esp_name}, the one the "
            "transactional use case prefers."
        )
    else:
        lines.append(f"ESP: none sends; if managed instead, {e.chosen_name}, because {e.reason}.")
    for f in p.feasibility:
        mark = " (the setup's)" if f.chosen else ""
        counted = (
            "recipients count against the quota, so batching saves calls, not quota"
            if f.quota_counts == "recipients"
            else f"{plural(f.batched_units, 'batch call')} of {f.batch_size:,} {f.batch_unit}"
        )
        lines.append(
            f"Rate limit {f.name}{mark}: {number(f.limit_per_hour)}/hour per {f.scope}; "
            f"peak hour {plural(f.peak_hour_messages, 'email')} needs "
            f"{plural(f.keys_unbatched, f.scope)} without batching, {f.keys_batched:,} with "
            f"batching ({counted})."
        )
    h = p.hosting
    lines.append(
        f"Hosting: {h.recommendation.replace('_', '-')} "
        f"({h.met} of {len(h.criteria)} self-hosting criteria met, "
        f"{h.required} required)."
    )
    for c in h.criteria:
        lines.append(f"  {'met' if c.met else 'not met'}: {c.label} ({c.detail}).")
    for o in p.tco:
        marks = [
            m
            for m, on in (
                ("recommended", o.recommended),
                ("cheapest", o.cheapest),
                ("estimated prices", o.estimated),
            )
            if on
        ]
        mark = f" ({', '.join(marks)})" if marks else ""
        guide = (
            "the guide gives none"
            if o.guide_total_usd is None
            else f"the guide's view {money_range(*o.guide_total_usd)}"
        )
        lines.append(
            f"Cost {o.name}{mark}: {money_range(*o.total_usd)}/month = infrastructure "
            f"{money(o.infrastructure_usd[0])} ({o.detail}) + {number(o.engineering_hours)} h x "
            f"{money(o.hourly_cost_usd)} + compliance {money_range(*o.compliance_usd)}; "
            f"{guide}."
        )
    if p.recommendation_note is not None:
        lines.append(f"Why: {p.recommendation_note}")
    lines.append(p.infrastructure_note)
    for a in p.assumptions:
        lines.append(f"Assumption {a.label}: {a.value} ({a.origin.replace('_', ' ')}: {a.source}).")
    for k in p.kpis:
        source = "" if k.source == "planning_guide" else f" (raised to the {k.source})"
        lines.append(f"KPI {k.label}: {k.comparator} {kpi_value(k.target, k.unit)}{source}.")
    for phase in p.roadmap:
        lines.append(f"Phase {phase.key} (months {phase.months[0]}-{phase.months[1]}):")
        lines.extend(f"  - {task}" for task in phase.tasks)
    return lines
