"""``mailscale plan``: the planners on the command line."""

from __future__ import annotations

import argparse
import json
import re
import sys
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

import attrs

from mailscale.errors import PlanningError
from mailscale.planning._data import USE_CASES, load_data, read_overrides
from mailscale.planning._format import kpi_value, money, money_range, number
from mailscale.planning._plan import Plan, plan
from mailscale.planning._workload import Workload

__all__ = ["parse_quantity", "parse_size", "register"]

_QUANTITY = re.compile(r"^([0-9]*\.?[0-9]+(?:e[+-]?[0-9]+)?)([kmbgt]?)$", re.IGNORECASE)
_SIZE = re.compile(r"^([0-9]*\.?[0-9]+)(b|kb?|mb?|kib|mib)?$", re.IGNORECASE)
_MULTIPLIERS = {"": 1, "k": 10**3, "m": 10**6, "b": 10**9, "g": 10**9, "t": 10**12}
_SIZE_MULTIPLIERS = {"": 1, "b": 1, "k": 10**3, "kb": 10**3, "m": 10**6, "mb": 10**6,
                     "kib": 2**10, "mib": 2**20}
_YES = {"yes", "y", "true", "1"}
_NO = {"no", "n", "false", "0"}


def _number(text: Decimal) -> int | float:
    return int(text) if text == text.to_integral_value() else float(text)


def parse_quantity(text: str, field: str) -> int | float:
    """``250000``, ``250k``, ``1.5M``, ``2B``, ``1T``, ``250_000`` or ``250,000`` as a number.

    Raises:
        PlanningError: the text is not a quantity; ``field`` names it.
    """
    cleaned = text.strip().replace("_", "").replace(",", "")
    match = _QUANTITY.match(cleaned)
    if match is None:
        raise PlanningError(
            f"{field} must be a number such as 250000, 250k or 1.5M, got {text!r}", field=field
        )
    try:
        value = Decimal(match.group(1)) * _MULTIPLIERS[match.group(2).lower()]
    except InvalidOperation:  # pragma: no cover - the pattern admits only decimals
        raise PlanningError(f"{field} is not a number: {text!r}", field=field) from None
    return _number(value)


def parse_size(text: str) -> int | float:
    """A message size: ``50000``, ``50KB``, ``50k``, ``1.5MB``, ``64KiB`` (KB = 1,000 bytes)."""
    cleaned = text.strip().replace("_", "").replace(",", "").replace(" ", "")
    match = _SIZE.match(cleaned)
    if match is None:
        raise PlanningError(
            f"message_size_bytes must be a size such as 50000, 50KB or 1.5MB, got {text!r}",
            field="message_size_bytes",
        )
    unit = (match.group(2) or "").lower()
    return _number(Decimal(match.group(1)) * _SIZE_MULTIPLIERS[unit])


def _share(text: str) -> int | float:
    cleaned = text.strip()
    if cleaned.endswith("%"):
        value = parse_quantity(cleaned[:-1], "peak_hour_share")
        return _number(Decimal(str(value)) / 100)
    return parse_quantity(cleaned, "peak_hour_share")


def _yes_no(text: str, field: str) -> bool:
    word = text.strip().lower()
    if word in _YES:
        return True
    if word in _NO:
        return False
    raise PlanningError(f"{field} must be yes or no, got {text!r}", field=field)


def _money(text: str, field: str) -> int | float:
    return parse_quantity(text.strip().lstrip("$"), field)


def _workload(args: argparse.Namespace) -> Workload:
    fields: dict[str, Any] = {
        "monthly_volume": parse_quantity(args.volume, "monthly_volume"),
        "use_case": args.use_case,
        "team_expertise": args.team,
        "compliance_resources": _yes_no(args.compliance, "compliance_resources"),
        "custom_integration": _yes_no(args.custom_integration, "custom_integration"),
    }
    if args.peak_share is not None:
        fields["peak_hour_share"] = _share(args.peak_share)
    if args.message_size is not None:
        fields["message_size_bytes"] = parse_size(args.message_size)
    if args.active_addresses is not None:
        fields["active_addresses"] = parse_quantity(args.active_addresses, "active_addresses")
    if args.retention_days is not None:
        fields["retention_days"] = parse_quantity(args.retention_days, "retention_days")
    if args.hourly_cost is not None:
        fields["hourly_cost_usd"] = _money(args.hourly_cost, "hourly_cost_usd")
    if args.per_core_rate is not None:
        fields["per_core_rate"] = parse_quantity(args.per_core_rate, "per_core_rate")
    return Workload(**fields)


def _overrides(path: str | None) -> dict[str, Any] | None:
    if path is None:
        return None
    try:
        text = Path(path).read_text("utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise PlanningError(f"cannot read the data file {path}: {reason}", field="data") from None
    return read_overrides(text, source=path)


def _run(args: argparse.Namespace) -> int:
    workload = _workload(args)
    if args.calibrate is not None:
        if args.per_core_rate is not None:
            raise PlanningError(
                "give --per-core-rate or --calibrate, not both", field="per_core_rate"
            )
        from mailscale.planning.calibrate import measure_per_core_rate

        size = min(max(int(workload.message_size_bytes), 1_000), 10_000_000)
        calibration = measure_per_core_rate(seconds=args.calibrate, message_size=size)
        print(f"calibration: {calibration.explain()}", file=sys.stderr)
        workload = attrs.evolve(workload, per_core_rate=calibration.emails_per_minute)
    result = plan(workload, data=load_data(_overrides(args.data)))
    if args.json:
        print(json.dumps(result.to_dict(), indent=2, sort_keys=True))
    else:
        _render(result)
    return 0


def _render(p: Plan) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console(file=sys.stdout, highlight=False, soft_wrap=False)
    w, t = p.workload, p.tier
    console.print(
        f"[bold]mailscale plan[/bold]: {w.monthly_volume:,} emails/month, "
        f"{w.use_case.replace('_', ' ')}; peak hour {p.derived_value('peak_hour_messages'):,.0f} "
        f"emails ({number(w.peak_hour_share * 100)}% of a day)"
    )
    band = "below the smallest tier: " if t.below_smallest else ""
    table = Table(title=f"Tier {t.label}/month ({band}{t.architecture}, "
                        f"{money_range(*t.monthly_cost_usd, open_ended=t.open_ended)}/month)")
    for column in ("resource", "tier", "derived", "recommended", "driven by", "rule"):
        table.add_column(column)
    for r in p.requirements:
        table.add_row(r.label, f"{r.tier:,}", "-" if r.derived is None else f"{r.derived:,}",
                      f"{r.recommended:,} {r.unit}", r.driver, r.rule)
    console.print(table)

    table = Table(title=f"VPS providers ({p.vps[0].servers:,} x {p.vps[0].size} server: "
                        f"{p.per_server[0]:,} vCPU, {p.per_server[1]:,} GB RAM)")
    for column in ("provider", "per server", "per month", "strengths"):
        table.add_column(column)
    for q in p.vps:
        table.add_row(q.name, money_range(*q.per_server_usd, open_ended=q.open_ended),
                      money_range(*q.monthly_usd, open_ended=q.open_ended),
                      ", ".join(q.strengths))
    console.print(table)

    e = p.esp
    console.print(f"ESP: [bold]{e.chosen_name}[/bold], because {e.reason}.")
    if e.runner_up_name is not None:
        console.print(f"Runner-up: {e.runner_up_name}, because {e.runner_up_reason}.")
    table = Table(title="Rate-limit feasibility at the peak hour")
    for column in ("ESP", "limit/hour", "per", "batch", "keys unbatched", "keys batched"):
        table.add_column(column)
    for f in p.feasibility:
        table.add_row(f"{f.name}{' *' if f.chosen else ''}", number(f.limit_per_hour), f.scope,
                      f"{f.batch_size:,} {f.batch_unit}", f"{f.keys_unbatched:,}",
                      f"{f.keys_batched:,}")
    console.print(table)

    h = p.hosting
    table = Table(title=f"Hosting: {h.recommendation.replace('_', '-')} "
                        f"({h.met} of 4 self-hosting criteria met, {h.required} required)")
    for column in ("criterion", "met", "workload"):
        table.add_column(column)
    for c in h.criteria:
        table.add_row(c.label, "yes" if c.met else "no", c.detail)
    console.print(table)

    table = Table(title=f"TCO per month (engineering at {money(w.hourly_cost_usd)}/h)")
    for column in ("option", "infrastructure", "engineering", "compliance", "total"):
        table.add_column(column)
    for o in p.tco:
        table.add_row(f"{o.name}{' (cheapest)' if o.cheapest else ''}",
                      money_range(*o.infrastructure_usd),
                      f"{number(o.engineering_hours)} h = {money(o.engineering_usd)}",
                      money_range(*o.compliance_usd), money_range(*o.total_usd))
    console.print(table)

    table = Table(title="KPI targets")
    for column in ("KPI", "target", "source"):
        table.add_column(column)
    for k in p.kpis:
        table.add_row(k.label, f"{k.comparator} {kpi_value(k.target, k.unit)}", k.source)
    console.print(table)

    table = Table(title="Roadmap")
    for column in ("phase", "months", "tasks"):
        table.add_column(column)
    for phase in p.roadmap:
        table.add_row(phase.key, f"{phase.months[0]}-{phase.months[1]}",
                      "\n".join(f"- {task}" for task in phase.tasks))
    console.print(table)


def register(subparsers: Any) -> None:
    """Add the ``plan`` sub-command."""
    parser = subparsers.add_parser(
        "plan",
        help="plan the infrastructure for a monthly email volume",
        description="Plan servers, IPs, ESP, rate-limit feasibility, hosting, cost, KPIs "
                    "and roadmap for a monthly email volume, with the reasoning.",
    )
    parser.add_argument("volume", help="emails per month: 250000, 250k, 1.5M")
    parser.add_argument("--use-case", default="bulk_marketing", metavar="CASE",
                        help=f"{' | '.join(USE_CASES)} (default bulk_marketing)")
    parser.add_argument("--peak-share", metavar="SHARE",
                        help="share of a day's volume in the peak hour: 10%% or 0.1 (default 10%%)")
    parser.add_argument("--team", default="none", metavar="LEVEL",
                        help="email-infrastructure expertise: none | some | strong (default none)")
    parser.add_argument("--compliance", default="no", metavar="YES/NO",
                        help="dedicated compliance resources (default no)")
    parser.add_argument("--custom-integration", default="no", metavar="YES/NO",
                        help="a custom integration is needed (default no)")
    parser.add_argument("--message-size", metavar="SIZE",
                        help="average message size: 50KB, 1.5MB, 50000 (default 50KB)")
    parser.add_argument("--active-addresses", metavar="N",
                        help="active addresses (default: the monthly volume)")
    parser.add_argument("--retention-days", metavar="DAYS",
                        help="days sent messages are kept (default 30)")
    parser.add_argument("--hourly-cost", metavar="USD",
                        help="engineering cost per hour in USD (default 75)")
    parser.add_argument("--per-core-rate", metavar="RATE",
                        help="measured emails/minute per core (default: the brief's 1,000)")
    parser.add_argument("--calibrate", nargs="?", const=1.0, type=float, metavar="SECONDS",
                        help="measure this machine's per-core rate (DKIM signing, shaping and "
                             "hand-off of messages of --message-size) and plan with it "
                             "instead of the brief's")
    parser.add_argument("--data", metavar="FILE.toml",
                        help="override figures: a TOML file with the data files' layout")
    parser.add_argument("--json", action="store_true", help="print the plan as JSON")
    parser.set_defaults(func=_run)
