"""The plan as one self-contained HTML page: inline SVG charts, no scripts, no network.

`html_report` renders a `Plan` with the recommendation and why, the cost of every
option from 1K to 10M emails a month (log axis, the workload's volume marked),
capacity headroom at the peak, ESP rate-limit feasibility, the IP warm-up, KPI
thresholds and the roadmap as a timeline. The page prints on paper as it shows.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from html import escape

import attrs

from mailscale.planning._data import PlanningData
from mailscale.planning._format import compact, dollars, kpi_value, number, plural, quantity
from mailscale.planning._model import Plan

__all__ = ["COST_VOLUMES", "html_report"]

#: The volumes the cost chart plans for: 1K to 10M a month, four per decade.
COST_VOLUMES: tuple[int, ...] = tuple(round(10 ** (3 + i / 4)) for i in range(17))

_COLOURS = ("#1b6ca8", "#d1495b", "#2e8b57", "#8e6c8a", "#e08e0b", "#555555")
_W, _H = 720, 300
_LEFT, _RIGHT, _TOP, _BOTTOM = 70, 160, 20, 40


def _e(value: object) -> str:
    return escape(str(value), quote=True)


def _svg(body: str, title: str, height: int = _H) -> str:
    return (
        f'<svg role="img" aria-label="{_e(title)}" viewBox="0 0 {_W} {height}" '
        f'width="100%" xmlns="http://www.w3.org/2000/svg">'
        f"<title>{_e(title)}</title>{body}</svg>"
    )


def _cost_chart(p: Plan, curves: Sequence[Plan]) -> str:
    options = list(dict.fromkeys(o.option for c in curves for o in c.tco))
    names = {o.option: o.name for c in curves for o in c.tco}
    points: dict[str, list[tuple[int, float]]] = {key: [] for key in options}
    for c in curves:
        for o in c.tco:
            points[o.option].append((c.workload.monthly_volume, sum(o.total_usd) / 2))
    costs = [cost for series in points.values() for _, cost in series]
    low_y = math.floor(math.log10(max(min(costs), 1)))
    high_y = max(math.ceil(math.log10(max(max(costs), 1))), low_y + 1)
    low_x, high_x = math.log10(COST_VOLUMES[0]), math.log10(COST_VOLUMES[-1])
    plot_w, plot_h = _W - _LEFT - _RIGHT, _H - _TOP - _BOTTOM

    def x(volume: float) -> float:
        where = math.log10(min(max(volume, COST_VOLUMES[0]), COST_VOLUMES[-1])) - low_x
        return _LEFT + where / (high_x - low_x) * plot_w

    def y(cost: float) -> float:
        where = math.log10(max(cost, 10**low_y)) - low_y
        return _TOP + plot_h - where / (high_y - low_y) * plot_h

    parts = [
        f'<rect x="{_LEFT}" y="{_TOP}" width="{plot_w}" height="{plot_h}" '
        'fill="none" stroke="#999"/>'
    ]
    for exponent in range(3, 8):
        gx = x(10**exponent)
        parts.append(
            f'<line x1="{gx:.1f}" y1="{_TOP}" x2="{gx:.1f}" y2="{_TOP + plot_h}" stroke="#ddd"/>'
        )
        parts.append(
            f'<text x="{gx:.1f}" y="{_H - 22}" text-anchor="middle" '
            f'font-size="12">{compact(10**exponent)}</text>'
        )
    for exponent in range(low_y, high_y + 1):
        cost = 10**exponent
        parts.append(
            f'<line x1="{_LEFT}" y1="{y(cost):.1f}" x2="{_LEFT + plot_w}" '
            f'y2="{y(cost):.1f}" stroke="#ddd"/>'
        )
        parts.append(
            f'<text x="{_LEFT - 6}" y="{y(cost) + 4:.1f}" text-anchor="end" '
            f'font-size="12">{_e(dollars(cost))}</text>'
        )
    parts.append(
        f'<text x="{_LEFT + plot_w / 2:.1f}" y="{_H - 4}" text-anchor="middle" '
        'font-size="12">emails per month; cost per month (both log scales)</text>'
    )
    for i, key in enumerate(options):
        colour = _COLOURS[i % len(_COLOURS)]
        path = " ".join(f"{x(v):.1f},{y(cost):.1f}" for v, cost in points[key])
        width = 3 if key == p.setup.option else 1.5
        parts.append(
            f'<polyline points="{path}" fill="none" stroke="{colour}" stroke-width="{width}"/>'
        )
        label = names[key] + (" *" if key == p.setup.option else "")
        parts.append(
            f'<rect x="{_W - _RIGHT + 12}" y="{_TOP + 8 + i * 20}" width="12" '
            f'height="12" fill="{colour}"/><text x="{_W - _RIGHT + 30}" '
            f'y="{_TOP + 18 + i * 20}" font-size="12">{_e(label)}</text>'
        )
    mark = x(p.workload.monthly_volume)
    parts.append(
        f'<line x1="{mark:.1f}" y1="{_TOP}" x2="{mark:.1f}" y2="{_TOP + plot_h}" '
        'stroke="#000" stroke-dasharray="4 3"/>'
    )
    parts.append(
        f'<text x="{mark + 4:.1f}" y="{_TOP + 14}" font-size="12">'
        f"{_e(compact(p.workload.monthly_volume))}/month</text>"
    )
    return _svg("".join(parts), "Monthly cost of each option from 1K to 10M emails a month")


def _bars(rows: Sequence[tuple[str, float, str]], title: str, unit: str) -> str:
    """Horizontal bars: (label, value, colour) each, scaled to the largest."""
    top = max((value for _, value, _ in rows), default=1) or 1
    height = 30 * len(rows) + 20
    plot_w = _W - 220 - 180
    parts = []
    for i, (label, value, colour) in enumerate(rows):
        ty = 10 + i * 30
        parts.append(
            f'<text x="210" y="{ty + 15}" text-anchor="end" font-size="12">{_e(label)}</text>'
        )
        parts.append(
            f'<rect x="220" y="{ty}" width="{max(value / top * plot_w, 1):.1f}" '
            f'height="20" fill="{colour}"/>'
        )
        parts.append(
            f'<text x="{224 + value / top * plot_w:.1f}" y="{ty + 15}" '
            f'font-size="12">{_e(quantity(value, unit, 3))}</text>'
        )
    return _svg("".join(parts), title, height)


def _warmup_chart(p: Plan) -> str:
    ips = p.dedicated_ips
    if not ips.used:
        return (
            "<p>No dedicated IPs: the ESP's shared IPs send, so there is no warm-up "
            "(ask for the ESP's dedicated-IP add-on with --esp-dedicated-ips).</p>"
        )
    daily = p.derived_value("daily_volume")
    rows = [(f"day {day}", float(cap), _COLOURS[0]) for day, cap in ips.schedule]
    rows.append(("daily volume", daily, _COLOURS[1]))
    return (
        f"<p>{plural(ips.ips, 'dedicated IP')} warm up in "
        f"{plural(ips.warmup_days, 'day')} ({plural(ips.warmup_weeks, 'week')}): the "
        "daily cap of all IPs together, day by day, until it covers the daily volume."
        "</p>" + _bars(rows, "IP warm-up schedule", "emails/day")
    )


def _roadmap_chart(p: Plan) -> str:
    months = max(phase.months[1] for phase in p.roadmap)
    plot_w = _W - 160 - 20
    parts = []
    for m in range(months + 1):
        gx = 160 + m / months * plot_w
        parts.append(
            f'<line x1="{gx:.1f}" y1="10" x2="{gx:.1f}" '
            f'y2="{20 + 30 * len(p.roadmap)}" stroke="#eee"/>'
        )
        parts.append(
            f'<text x="{gx:.1f}" y="{36 + 30 * len(p.roadmap)}" font-size="11" '
            f'text-anchor="middle">{m}</text>'
        )
    for i, phase in enumerate(p.roadmap):
        start, end = phase.months
        x0 = 160 + (start - 1) / months * plot_w
        x1 = 160 + end / months * plot_w
        parts.append(
            f'<text x="150" y="{29 + 30 * i}" text-anchor="end" font-size="12">'
            f"{_e(phase.key)}</text>"
        )
        parts.append(
            f'<rect x="{x0:.1f}" y="{14 + 30 * i}" width="{x1 - x0:.1f}" '
            f'height="20" fill="{_COLOURS[i % len(_COLOURS)]}"/>'
        )
    return _svg("".join(parts), "Roadmap by month", 50 + 30 * len(p.roadmap))


def _table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    head = "".join(f"<th>{_e(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{_e(c)}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2rem auto; max-width: 60rem;
       color: #222; line-height: 1.4; padding: 0 1rem; }
h1 { font-size: 1.6rem; } h2 { font-size: 1.2rem; margin-top: 2rem;
     border-bottom: 1px solid #ccc; }
table { border-collapse: collapse; width: 100%; font-size: 0.9rem; }
th, td { border: 1px solid #ccc; padding: 0.25rem 0.5rem; text-align: left;
         vertical-align: top; }
th { background: #f2f2f2; }
.verdict { font-size: 1.15rem; background: #eef5fb; padding: 0.75rem;
           border-left: 4px solid #1b6ca8; }
section { page-break-inside: avoid; break-inside: avoid; }
@media print { body { margin: 0; max-width: none; } .verdict { background: none; } }
"""


def html_report(p: Plan, *, data: PlanningData | None = None) -> str:
    """``p`` as one self-contained HTML page (see the module's documentation).

    Args:
        p: the plan; the cost curves re-plan its workload at `COST_VOLUMES`.
        data: the figures ``p`` was planned with (default: the planning guide's).
    """
    from mailscale.planning._plan import plan as plan_

    w = p.workload
    curves = [plan_(attrs.evolve(w, monthly_volume=v), data=data) for v in COST_VOLUMES]
    chosen = next(q for q in p.vps if q.chosen)
    cores = chosen.servers * chosen.vcpu
    peak = p.derived_value("peak_per_minute")
    fleet = p.fleet
    if fleet is not None:
        capacity = fleet.capacity_per_second * 60
        rate_words = (
            f"{number(fleet.cpu_ms, 4)} ms CPU per email, {fleet.worker_cpu_origin}; the "
            f"planning guide's figure is {number(p.guide_per_core_rate)} emails/minute/core"
        )
    else:
        capacity = cores * p.per_core_rate
        rate_words = "the planning guide's figure"
    estimated = any(o.estimated for o in p.tco)
    sections = [
        f"<h1>Email infrastructure plan: {_e(quantity(w.monthly_volume, 'emails/month'))}, "
        f"{_e(w.use_case.replace('_', ' '))}</h1>",
        f'<p class="verdict"><strong>Setup: {_e(p.setup.summary)}.</strong></p>',
        f"<p>{_e(p.infrastructure_note)}</p>",
        ("" if p.recommendation_note is None else f"<p>Why: {_e(p.recommendation_note)}</p>"),
        "<section><h2>Cost of every option</h2>",
        f"<p>Monthly cost (midpoint of the compliance range) at volumes from 1K to 10M a "
        f"month, with this workload's other figures; the dashed line is "
        f"{_e(compact(w.monthly_volume))}/month, * the recommended option (bold line).</p>",
        _cost_chart(p, curves),
        _table(
            ("option", "infrastructure", "engineering", "compliance", "total", "the guide's view"),
            [
                (
                    o.name
                    + (" (recommended)" if o.recommended else "")
                    + (" (cheapest)" if o.cheapest else ""),
                    dollars(o.infrastructure_usd[0]),
                    f"{number(o.engineering_hours)} h = {dollars(o.engineering_usd)}",
                    dollars(*o.compliance_usd),
                    dollars(*o.total_usd) + (" (estimated)" if o.estimated else ""),
                    "-" if o.guide_total_usd is None else dollars(*o.guide_total_usd),
                )
                for o in p.tco
            ],
        ),
        (
            "<p>(estimated): a price in the option (ESP plan, dedicated IPs or servers) is "
            "mailscale's estimate, not read from a published price list; the data files "
            "pricing.toml and vps.toml give each price's source and date.</p>"
            if estimated
            else ""
        ),
        "</section><section><h2>Capacity headroom at the peak</h2>",
        f"<p>{_e(plural(cores, 'vCPU'))} at {_e(f'{p.per_core_rate:,.0f}')} "
        f"emails/minute/core ({_e(rate_words)}) on {_e(plural(chosen.servers, 'server'))} of "
        f"{chosen.vcpu} vCPU / {_e(number(chosen.ram_gb))} GB at {_e(chosen.name)}.</p>",
        "" if fleet is None else f"<p>{_e(fleet.rule)}.</p>",
        _bars(
            [("peak rate", peak, _COLOURS[1]), ("capacity", capacity, _COLOURS[0])],
            "Peak rate against capacity",
            "emails/minute",
        ),
        "</section><section><h2>ESP rate-limit feasibility at the peak hour</h2>",
        _table(
            ("ESP", "limit per hour", "keys unbatched", "keys batched"),
            [
                (
                    f.name + (" (the setup's)" if f.chosen else ""),
                    f"{number(f.limit_per_hour)} per {f.scope}",
                    f"{f.keys_unbatched:,}",
                    f"{f.keys_batched:,}",
                )
                for f in p.feasibility
            ],
        ),
        _bars(
            [
                (f.name, float(f.keys_unbatched), _COLOURS[i % len(_COLOURS)])
                for i, f in enumerate(p.feasibility)
            ],
            "Keys needed at the peak hour without batching",
            "keys",
        ),
        "</section><section><h2>IP warm-up</h2>",
        _warmup_chart(p),
        "</section><section><h2>Assumptions</h2>",
        _table(
            ("figure", "value", "origin", "source"),
            [(a.label, a.value, a.origin.replace("_", " "), a.source) for a in p.assumptions],
        ),
        "</section><section><h2>KPI thresholds</h2>",
        _table(
            ("KPI", "target", "source"),
            [
                (
                    k.label,
                    f"{k.comparator} {kpi_value(k.target, k.unit)}",
                    k.source.replace("_", " "),
                )
                for k in p.kpis
            ],
        ),
        "</section><section><h2>Roadmap</h2>",
        _roadmap_chart(p),
        "".join(
            f"<h3>{_e(phase.key)} (months {phase.months[0]}-{phase.months[1]})</h3><ul>"
            + "".join(f"<li>{_e(task)}</li>" for task in phase.tasks)
            + "</ul>"
            for phase in p.roadmap
        ),
        "</section>",
    ]
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>mailscale plan: {_e(compact(w.monthly_volume))}/month</title>"
        f"<style>{_STYLE}</style></head><body>" + "".join(sections) + "</body></html>\n"
    )
