"""The plan as sentences: the reasoning `Plan.explain` returns, one step per line."""

from __future__ import annotations

from mailscale.planning._data import Capacity
from mailscale.planning._format import kpi_value, money, money_range, number, plural, quantity
from mailscale.planning._model import Derived, Plan
from mailscale.planning._sizing import Sizing
from mailscale.planning._workload import Workload

__all__ = ["derived_figures", "explain_lines", "servers_rule", "sizing_rules", "tco_note"]

_USE_CASE_WORDS = {
    "transactional": "transactional",
    "cold_outreach": "cold outreach",
    "bulk_marketing": "bulk marketing",
    "enterprise": "enterprise",
}


def _rate_words(source: str) -> str:
    return "planning guide" if source == "brief" else source


def derived_figures(w: Workload, s: Sizing, capacity: Capacity) -> tuple[Derived, ...]:
    """The derived figures of ``s``, each with its rule in words."""
    return (
        Derived("daily_volume", float(s.daily), "emails/day",
                f"{quantity(w.monthly_volume, 'emails/month')} x 12 / 365"),
        Derived("peak_hour_messages", s.peak_hour, "emails",
                f"ceil({number(s.daily)}/day x {number(s.share * 100)}% peak-hour share)"),
        Derived("peak_per_minute", float(s.per_minute), "emails/minute",
                f"{s.peak_hour:,} / 60"),
        Derived("sending_cores", float(s.sending_cores), "cores",
                f"{number(s.per_minute)}/minute / {number(s.rate)} emails/minute/core "
                f"({_rate_words(s.rate_source)})"),
        Derived("db_queries_per_second", float(s.qps), "queries/s",
                f"{s.peak_hour:,}/hour x {number(capacity.db_queries_per_message)} "
                "queries/email / 3600"),
        Derived("database_cores", float(s.db_cores), "cores",
                f"{number(s.qps)} queries/s / {number(capacity.db_queries_per_second_per_core)}"
                " queries/s/core"),
        Derived("stored_emails", s.stored, "emails",
                f"ceil({number(s.daily)}/day x {w.retention_days} retention days)"),
    )


def sizing_rules(w: Workload, s: Sizing, capacity: Capacity) -> dict[str, str]:
    """The rule in words behind each derived requirement, by resource."""
    address_note = "" if w.active_addresses is not None else (
        f" (active addresses default to the monthly volume / "
        f"{number(w.sends_per_address_per_month)} sends per address per month)")
    size_note = (f"1 GB per {number(capacity.stored_emails_per_gb)} stored emails"
                 if s.gb_per_email == s.guide_gb_per_email
                 else f"{number(w.message_size_bytes)} bytes per stored email")
    return {
        "vcpu": f"ceil(sending cores {number(s.sending_cores, 3)} + database cores "
                f"{number(s.db_cores, 3)})",
        "ram_gb": f"ceil({plural(s.addresses, 'active address', 'active addresses')} / "
                  f"{number(capacity.active_addresses_per_gb_ram)} per GB){address_note}",
        "storage_gb": f"ceil({plural(s.stored, 'stored email')} at {size_note})",
        "dedicated_ips": "no derived rule: the tier's figure",
    }


def servers_rule(vcpu: int, ram_gb: int, capacity: Capacity) -> str:
    """The rule in words behind the server count."""
    return (f"max(ceil({vcpu:,} vCPU / {capacity.max_vcpu_per_server} per server), "
            f"ceil({ram_gb:,} GB / {capacity.max_ram_gb_per_server} GB per server))")


def tco_note(p: Plan) -> str | None:
    """How the self-hosted TCO row's infrastructure (the guide's band) compares with the
    plan's own VPS quotes, which the TCO does not use; None without a self-hosted row."""
    row = next((o for o in p.tco if o.option == "self_hosted"), None)
    if row is None or not p.vps:
        return None
    low = min(q.monthly_usd[0] for q in p.vps)
    high = max(q.monthly_usd[1] for q in p.vps)
    open_ended = any(q.open_ended for q in p.vps)
    band = money_range(*row.infrastructure_usd)
    quotes = money_range(low, high, open_ended=open_ended)
    servers = p.vps[0].servers
    relation = ("above" if high > row.infrastructure_usd[1] or open_ended
                else "within")
    return (f"Self-hosted infrastructure is the planning guide's {band}/month; this plan's "
            f"VPS quotes for {plural(servers, 'server')} are {quotes}/month, {relation} it"
            + (", so the self-hosted total may be higher." if relation == "above" else "."))



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
    where = (f"{w.monthly_volume:,} is below the smallest tier, which applies"
             if t.below_smallest else f"{t.min_volume:,} <= {w.monthly_volume:,}{upper}")
    lines.append(
        f"Tier {t.label}/month ({where}; bands are lower-inclusive): "
        f"{_range(t.vcpu, 'vCPU', t.open_ended)}, {_range(t.ram_gb, 'GB RAM', t.open_ended)}, "
        f"{_range(t.ssd_gb, 'GB SSD', t.open_ended)}, "
        f"{_range(t.dedicated_ips, 'dedicated IPs', t.open_ended)}, {t.architecture}, "
        f"{money_range(*t.monthly_cost_usd, open_ended=t.open_ended)}/month."
    )
    for item in p.derived:
        lines.append(f"Derived {item.key.replace('_', ' ')}: "
                     f"{quantity(item.value, item.unit, 3)} = {item.rule}.")
    for r in p.requirements:
        derived = "none" if r.derived is None else f"{r.derived:,}"
        lines.append(
            f"Recommended {r.label}: {quantity(r.recommended, r.unit)} "
            f"(tier {r.tier:,}, derived {derived}; {r.driver} drove it); rule: {r.rule}."
        )
    lines.append(f"Per server: {p.per_server[0]:,} vCPU, {p.per_server[1]:,} GB RAM "
                 f"({p.vps[0].size} size) x {plural(p.vps[0].servers, 'server')}.")
    for q in p.vps:
        lines.append(
            f"VPS {q.name}: {money_range(*q.monthly_usd, open_ended=q.open_ended)}/month "
            f"({q.servers:,} x {money_range(*q.per_server_usd, open_ended=q.open_ended)}); "
            f"strengths: {', '.join(q.strengths)}."
        )
    e = p.esp
    lines.append(f"ESP: {e.chosen_name}, because {e.reason}.")
    if e.runner_up_name is not None:
        lines.append(f"ESP runner-up: {e.runner_up_name}, because {e.runner_up_reason}.")
    for f in p.feasibility:
        mark = " (chosen)" if f.chosen else ""
        counted = ("recipients count against the quota, so batching saves calls, not quota"
                   if f.quota_counts == "recipients"
                   else f"{plural(f.batched_units, 'batch call')} of {f.batch_size:,} "
                        f"{f.batch_unit}")
        lines.append(
            f"Rate limit {f.name}{mark}: {number(f.limit_per_hour)}/hour per {f.scope}; "
            f"peak hour {plural(f.peak_hour_messages, 'email')} needs "
            f"{plural(f.keys_unbatched, f.scope)} without batching, {f.keys_batched:,} with "
            f"batching ({counted})."
        )
    h = p.hosting
    lines.append(f"Hosting: {h.recommendation.replace('_', '-')} "
                 f"({h.met} of {len(h.criteria)} self-hosting criteria met, "
                 f"{h.required} required).")
    for c in h.criteria:
        lines.append(f"  {'met' if c.met else 'not met'}: {c.label} ({c.detail}).")
    for o in p.tco:
        mark = " (cheapest)" if o.cheapest else ""
        lines.append(
            f"TCO {o.name}{mark}: {money_range(*o.total_usd)}/month = infrastructure "
            f"{money_range(*o.infrastructure_usd)} + {number(o.engineering_hours)} h x "
            f"{money(o.hourly_cost_usd)} + compliance {money_range(*o.compliance_usd)}."
        )
    note = tco_note(p)
    if note is not None:
        lines.append(f"Note: {note}")
    for k in p.kpis:
        source = "" if k.source == "brief" else f" (raised to the {k.source})"
        lines.append(f"KPI {k.label}: {k.comparator} {kpi_value(k.target, k.unit)}{source}.")
    for phase in p.roadmap:
        lines.append(f"Phase {phase.key} (months {phase.months[0]}-{phase.months[1]}):")
        lines.extend(f"  - {task}" for task in phase.tasks)
    return lines
