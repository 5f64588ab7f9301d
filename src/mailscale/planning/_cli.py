"""``mailscale plan``: the planners on the command line."""

from __future__ import annotations

import argparse
import re
import sys
from decimal import Decimal
from pathlib import Path
from typing import Any

from mailscale.errors import PlanningError
from mailscale.planning._data import USE_CASES, load_data, read_overrides
from mailscale.planning._format import (
    compact,
    dollars,
    kpi_value,
    money,
    money_range,
    number,
    plural,
    quantity,
)
from mailscale.planning._model import Plan
from mailscale.planning._plan import plan
from mailscale.planning._workload import Workload

__all__ = ["parse_quantity", "parse_size", "register", "render", "render_comparison"]

_QUANTITY = re.compile(r"^(-?[0-9]*\.?[0-9]+(?:e[+-]?[0-9]+)?)([kmbgt]?)$", re.IGNORECASE)
_SIZE = re.compile(r"^(-?[0-9]*\.?[0-9]+)(b|kb?|mb?|kib|mib)?$", re.IGNORECASE)
# Commas are accepted only as thousands separators: 250,000 and 1,500.5k, not 1,5M.
_GROUPED = re.compile(r"^(-?\d{1,3}(?:,\d{3})+(?:\.\d+)?)(?![\d,])(.*)$")
_MULTIPLIERS = {"": 1, "k": 10**3, "m": 10**6, "b": 10**9, "g": 10**9, "t": 10**12}
_SIZE_MULTIPLIERS = {
    "": 1,
    "b": 1,
    "k": 10**3,
    "kb": 10**3,
    "m": 10**6,
    "mb": 10**6,
    "kib": 2**10,
    "mib": 2**20,
}
# What each field's value looks like, for the error when it is not a number. A
# leading '-' parses, so the range check can say what the field accepts.
_HINTS = {
    "monthly_volume": "emails per month such as 250000, 250k or 1.5M",
    "active_addresses": "a count of addresses such as 40000 or 40k",
    "retention_days": "a number of days such as 30",
    "hourly_cost_usd": "an amount in USD such as 75 or $75",
    "per_core_rate": "emails/minute per core such as 1000 or 64k",
    "sends_per_address_per_month": "emails per address per month such as 4 or 0.5",
    "peak_hour_share": "a share of the day such as 10% or 0.1",
}
_YES = {"yes", "y", "true", "1"}
_NO = {"no", "n", "false", "0"}


def _number(text: Decimal) -> int | float | Decimal:
    if text.adjusted() > 18:  # far beyond any valid figure: the range check refuses it
        return text
    return int(text) if text == text.to_integral_value() else float(text)


def _ungrouped(text: str) -> str | None:
    """``text`` without underscores and thousands commas; None for a misplaced comma."""
    cleaned = text.strip().replace("_", "")
    if "," not in cleaned:
        return cleaned
    match = _GROUPED.match(cleaned)
    if match is None or "," in match.group(2):
        return None
    return match.group(1).replace(",", "") + match.group(2)


def parse_quantity(text: str, field: str) -> int | float | Decimal:
    """``250000``, ``250k``, ``1.5M``, ``2B``, ``1T``, ``250_000`` or ``250,000`` as a number.

    Raises:
        PlanningError: the text is not a quantity; ``field`` names it.
    """
    cleaned = _ungrouped(text)
    match = None if cleaned is None else _QUANTITY.match(cleaned)
    if match is None:
        raise PlanningError(
            f"{field} must be {_HINTS.get(field, 'a number such as 1000 or 1k')}, got {text!r}",
            field=field,
        )
    try:
        value = Decimal(match.group(1)) * _MULTIPLIERS[match.group(2).lower()]
    except ArithmeticError:  # beyond the decimal context: 1e999999999
        raise PlanningError(f"{field} is too large: {text!r}", field=field) from None
    return _number(value)


def parse_size(text: str) -> int | float | Decimal:
    """A message size: ``50000``, ``50KB``, ``50k``, ``1.5MB``, ``64KiB`` (KB = 1,000 bytes)."""
    cleaned = _ungrouped(text.replace(" ", ""))
    match = None if cleaned is None else _SIZE.match(cleaned)
    if match is None:
        raise PlanningError(
            f"message_size_bytes must be a size such as 50000, 50KB or 1.5MB, got {text!r}",
            field="message_size_bytes",
        )
    unit = (match.group(2) or "").lower()
    return _number(Decimal(match.group(1)) * _SIZE_MULTIPLIERS[unit])


def _share(text: str) -> int | float | Decimal:
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


def _money(text: str, field: str) -> int | float | Decimal:
    cleaned = text.strip()
    sign = "-" if cleaned.startswith("-") else ""
    return parse_quantity(sign + cleaned.removeprefix(sign).removeprefix("$"), field)


def _workload(args: argparse.Namespace, volume: str | None = None) -> Workload:
    fields: dict[str, Any] = {
        "monthly_volume": parse_quantity(
            args.volume if volume is None else volume, "monthly_volume"
        ),
        "use_case": args.use_case,
        "team_expertise": args.team,
        "compliance_resources": _yes_no(args.compliance, "compliance_resources"),
        "custom_integration": _yes_no(args.custom_integration, "custom_integration"),
        "esp_dedicated_ips": _yes_no(args.esp_dedicated_ips, "esp_dedicated_ips"),
    }
    if args.peak_share is not None:
        fields["peak_hour_share"] = _share(args.peak_share)
    if args.message_size is not None:
        fields["message_size_bytes"] = parse_size(args.message_size)
    if args.active_addresses is not None:
        fields["active_addresses"] = parse_quantity(args.active_addresses, "active_addresses")
    if args.sends_per_address is not None:
        fields["sends_per_address_per_month"] = parse_quantity(
            args.sends_per_address, "sends_per_address_per_month"
        )
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


# The flag (or argument) the user typed for each Workload field, for error messages.
_FLAGS = {
    "monthly_volume": "VOLUME",
    "use_case": "--use-case",
    "peak_hour_share": "--peak-share",
    "team_expertise": "--team",
    "compliance_resources": "--compliance",
    "custom_integration": "--custom-integration",
    "esp_dedicated_ips": "--esp-dedicated-ips",
    "message_size_bytes": "--message-size",
    "active_addresses": "--active-addresses",
    "sends_per_address_per_month": "--sends-per-address",
    "retention_days": "--retention-days",
    "hourly_cost_usd": "--hourly-cost",
    "per_core_rate": "--per-core-rate",
    "seconds": "--calibrate",
    "compare": "--compare",
}
_ARG_NAMES = {
    "monthly_volume": "volume",
    "peak_hour_share": "peak_share",
    "message_size_bytes": "message_size",
    "sends_per_address_per_month": "sends_per_address",
    "hourly_cost_usd": "hourly_cost",
    "team_expertise": "team",
    "compliance_resources": "compliance",
    "seconds": "calibrate",
    "esp_dedicated_ips": "esp_dedicated_ips",
}
_GOT = re.compile(r"([,;] got ).*$")


def _as_typed(exc: PlanningError, args: argparse.Namespace) -> PlanningError:
    """``exc`` naming the flag the user typed and the text given to it, not the field."""
    field = exc.field
    flag = _FLAGS.get(field or "")
    if field is None or flag is None:
        return exc
    message = re.sub(rf"\b{re.escape(field)}\b", flag, str(exc), count=1)
    typed = getattr(args, _ARG_NAMES.get(field, field), None)
    if isinstance(typed, str):
        message = _GOT.sub(lambda m: f"{m.group(1)}{typed!r}", message)
    return PlanningError(message, field=field)


def _run(args: argparse.Namespace) -> int:
    try:
        return _plan_and_print(args)
    except PlanningError as exc:
        raise _as_typed(exc, args) from exc


def _compared(args: argparse.Namespace) -> list[Workload]:
    """One workload per ``--compare`` volume, the other flags shared."""
    workloads = []
    for text in args.compare:
        try:
            workloads.append(_workload(args, text))
        except PlanningError as exc:
            if exc.field != "monthly_volume":
                raise
            message = str(exc).replace("monthly_volume", "compare", 1)
            raise PlanningError(message, field="compare") from None
    return workloads


def _plan_and_print(args: argparse.Namespace) -> int:
    if args.volume is None and args.compare is None:
        args.parser.error("the following arguments are required: VOLUME")
    if args.volume is not None and args.compare is not None:
        args.parser.error("give VOLUME or --compare VOLUME VOLUME ..., not both")
    if args.compare is not None:
        if args.calibrate is not None or args.html is not None:
            flag = "--calibrate" if args.calibrate is not None else "--html"
            raise PlanningError(
                f"{flag} is for one volume; give it without --compare", field="volume"
            )
        data = load_data(_overrides(args.data))
        plans = [plan(w, data=data) for w in _compared(args)]
        if args.json:
            import json

            print(
                json.dumps(
                    {
                        "plans": [p.to_dict() for p in plans],
                        "schema_version": plans[0].to_dict()["schema_version"],
                    },
                    indent=2,
                    sort_keys=True,
                )
            )
        else:
            render_comparison(plans)
        return 0
    workload = _workload(args)
    if args.calibrate is not None:
        if args.per_core_rate is not None:
            raise PlanningError(
                "give --per-core-rate or --calibrate, not both", field="per_core_rate"
            )
        from mailscale._calibrate import measure_per_core_rate

        size = min(max(int(workload.message_size_bytes), 1_000), 10_000_000)
        calibration = measure_per_core_rate(
            seconds=args.calibrate, message_size=size, algorithm=args.calibrate_algorithm
        )
        print(f"calibration: {calibration.explain()}", file=sys.stderr)
        measured = calibration.to_measurements()
    else:
        measured = None
    data = load_data(_overrides(args.data))
    result = plan(workload, data=data, measurements=measured)
    if args.html is not None:
        from mailscale.planning._report import html_report

        page = html_report(result, data=data)
        Path(args.html).write_text(page, encoding="utf-8")
        print(f"mailscale plan: wrote {args.html}")
        return 0
    if args.json:
        import json

        print(json.dumps(result.to_dict(), indent=2, sort_keys=True))
    else:
        render(result)
    return 0


def _table(title: str, columns: tuple[str, ...], rows: list[tuple[str, ...]], width: int) -> Any:
    """A table whose columns never shrink below their longest word, so no word is cut;
    narrower than that, one block per row with a ``column: value`` line per cell."""
    from rich.console import Group
    from rich.table import Table

    minimums = [
        max(
            (len(word) for text in (column, *(row[i] for row in rows)) for word in text.split()),
            default=1,
        )
        for i, column in enumerate(columns)
    ]
    if sum(minimums) + 3 * len(columns) + 1 > width:
        lines = [f"[bold]{title}[/bold]"]
        for row in rows:
            lines.append(f"- {columns[0]}: {row[0]}")
            lines.extend(
                f"  {column}: {cell}" for column, cell in zip(columns[1:], row[1:], strict=True)
            )
        return Group(*lines)
    # Each column as wide as its longest line, then the widest slack taken off one
    # character at a time until the table fits (rich alone may crop instead).
    widths = [
        max(
            len(line)
            for text in (column, *(row[i] for row in rows))
            for line in text.splitlines() or [""]
        )
        for i, column in enumerate(columns)
    ]
    room = width - 3 * len(columns) - 1
    while sum(widths) > room:
        i = max(range(len(widths)), key=lambda j: widths[j] - minimums[j])
        widths[i] -= 1
    table = Table(title=title)
    for column, size in zip(columns, widths, strict=True):
        table.add_column(column, width=size)
    for row in rows:
        table.add_row(*row)
    return table


def _setup_line(p: Plan) -> str:
    return f"[bold]Setup[/bold]: {p.setup.summary}."


def render(p: Plan, console: Any = None) -> None:
    """Print ``p`` as tables that read at 80 columns and when piped (words are never cut)."""
    from rich.table import Table

    if console is None:
        from mailscale.cli import make_console

        console = make_console()
    w, t = p.workload, p.tier
    width = console.width
    console.print(
        f"[bold]mailscale plan[/bold]: {quantity(w.monthly_volume, 'emails/month')}, "
        f"{w.use_case.replace('_', ' ')}; peak hour "
        f"{quantity(p.derived_value('peak_hour_messages'), 'emails')} "
        f"({number(w.peak_hour_share * 100)}% of a day)"
    )
    console.print(_setup_line(p))
    if p.per_core_rate_source == "measured":
        console.print(
            f"Per-core rate: {p.per_core_rate:,.0f} emails/minute measured "
            f"({p.measurement_method}); the planning guide's figure is "
            f"{number(p.guide_per_core_rate)}."
        )
    elif p.per_core_rate_source == "documented" and p.fleet is not None:
        console.print(
            f"Per-core rate: {p.per_core_rate:,.0f} emails/minute "
            f"({number(p.fleet.worker_cpu_ms, 4)} ms CPU per email, "
            f"{p.fleet.worker_cpu_origin}); the planning guide's figure is "
            f"{number(p.guide_per_core_rate)}."
        )
    band = "below the smallest tier: " if t.below_smallest else ""
    console.print(
        _table(
            f"Tier {t.label}/month ({band}{t.architecture}, "
            f"{money_range(*t.monthly_cost_usd, open_ended=t.open_ended)}/month)",
            ("resource", "tier", "derived", "recommended", "driven by"),
            [
                (
                    r.label,
                    f"{r.tier:,}",
                    "-" if r.derived is None else f"{r.derived:,}",
                    quantity(r.recommended, r.unit),
                    r.driver,
                )
                for r in p.requirements
            ],
            width,
        )
    )
    # The rules are sentences: below the table, wrapped at word boundaries.
    rules = Table.grid(padding=(0, 1))
    rules.add_column(no_wrap=True)
    rules.add_column()
    for r in p.requirements:
        rules.add_row(f"{r.label}:", r.rule)
    console.print("Rules:")
    console.print(rules)
    ips = p.dedicated_ips
    if ips.used:
        console.print(
            f"Dedicated IPs: {ips.ips:,}, warmed up in {plural(ips.warmup_weeks, 'week')} "
            f"({plural(ips.warmup_days, 'day')}); the guide's tier band is "
            f"{_pair(ips.guide_band)}."
        )

    console.print(
        _table(
            "Servers at list prices (* = the plan's; the guide's band for comparison)",
            ("provider", "servers", "per month", "guide's band"),
            [
                (
                    f"{q.name}{' *' if q.chosen else ''}",
                    f"{q.servers:,} x {q.vcpu} vCPU / {number(q.ram_gb)} GB"
                    + (f" + {q.extra_storage_gb:,} GB" if q.extra_storage_gb else "")
                    + (f" + {plural(q.extra_ips, 'IP')}" if q.extra_ips else ""),
                    money(q.total_usd) + (" est." if q.estimated else ""),
                    money_range(*q.monthly_usd, open_ended=q.open_ended),
                )
                for q in p.vps
            ],
            width,
        )
    )
    if p.fleet is not None:
        console.print(f"Capacity: {p.fleet.rule}.")

    e = p.esp
    if p.setup.kind == "managed":
        console.print(f"ESP: [bold]{e.chosen_name}[/bold], because {e.reason}.")
        if e.runner_up_name is not None:
            console.print(f"Runner-up: {e.runner_up_name}, because {e.runner_up_reason}.")
    elif p.setup.kind == "hybrid":
        console.print(
            f"ESP for transactional mail: [bold]{p.setup.esp_name}[/bold], the one "
            "the transactional use case prefers."
        )
    else:
        console.print(f"ESP: none sends. If managed instead: {e.chosen_name}, because {e.reason}.")
    console.print(
        _table(
            "Rate-limit feasibility at the peak hour (* = the setup's ESP)",
            ("ESP", "limit per hour", "batch", "keys unbatched / batched"),
            [
                (
                    f"{f.name}{' *' if f.chosen else ''}",
                    f"{number(f.limit_per_hour)} per {f.scope}",
                    f"{f.batch_size:,} {f.batch_unit}",
                    f"{f.keys_unbatched:,} / {f.keys_batched:,}",
                )
                for f in p.feasibility
            ],
            width,
        )
    )

    h = p.hosting
    console.print(
        _table(
            f"Hosting: {h.recommendation.replace('_', '-')} ({h.met} of "
            f"{len(h.criteria)} self-hosting criteria met, {h.required} required)",
            ("criterion", "met", "workload"),
            [(c.label, "yes" if c.met else "no", c.detail) for c in h.criteria],
            width,
        )
    )

    console.print(
        _table(
            f"Cost per month at {compact(w.monthly_volume)}/month (engineering at "
            f"{money(w.hourly_cost_usd)}/h; * = recommended)",
            ("option", "infra", "hours", "compliance", "total", "guide's view"),
            [
                (
                    f"{o.name}{' *' if o.recommended else ''}{' (cheapest)' if o.cheapest else ''}",
                    dollars(o.infrastructure_usd[0]),
                    f"{number(o.engineering_hours)} h {dollars(o.engineering_usd)}",
                    money_range(*o.compliance_usd),
                    dollars(*o.total_usd) + (" est." if o.estimated else ""),
                    "-" if o.guide_total_usd is None else money_range(*o.guide_total_usd),
                )
                for o in p.tco
            ],
            width,
        )
    )
    if any(o.estimated for o in p.tco) or any(q.estimated for q in p.vps):
        console.print(
            "est. = a price in it is estimated, not from a published price list "
            "(see data/pricing.toml and data/vps.toml)."
        )
    if p.recommendation_note is not None:
        console.print(f"Why: {p.recommendation_note}")
    console.print(p.infrastructure_note)

    console.print(
        _table(
            "Assumptions (origin: planning guide, measured, assumed, ...)",
            ("figure", "value", "origin"),
            [(a.label, a.value, a.origin.replace("_", " ")) for a in p.assumptions],
            width,
        )
    )
    sources = Table.grid(padding=(0, 1))
    sources.add_column(no_wrap=True)
    sources.add_column()
    for a in p.assumptions:
        if a.origin in ("measured", "calibrated"):
            sources.add_row(f"{a.label}:", a.source)
    if sources.row_count:
        console.print("Measured figures:")
        console.print(sources)

    console.print(
        _table(
            "KPI targets",
            ("KPI", "target", "source"),
            [
                (
                    k.label,
                    f"{k.comparator} {kpi_value(k.target, k.unit)}",
                    k.source.replace("_", " "),
                )
                for k in p.kpis
            ],
            width,
        )
    )

    console.print(
        _table(
            "Roadmap",
            ("phase", "months", "tasks"),
            [
                (
                    phase.key,
                    f"{phase.months[0]}-{phase.months[1]}",
                    "\n".join(f"- {task}" for task in phase.tasks),
                )
                for phase in p.roadmap
            ],
            width,
        )
    )


def render_comparison(plans: list[Plan], console: Any = None) -> None:
    """Print several plans side by side: one column per volume, one row per figure."""
    if console is None:
        from mailscale.cli import make_console

        console = make_console()
    first = plans[0].workload
    console.print(
        f"[bold]mailscale plan --compare[/bold]: {first.use_case.replace('_', ' ')}; "
        f"engineering at {money(first.hourly_cost_usd)}/h; * = recommended"
    )
    rows: list[tuple[str, ...]] = [
        ("setup", *(p.setup.summary for p in plans)),
        ("tier", *(f"{p.tier.label} ({p.tier.architecture})" for p in plans)),
        ("peak hour", *(quantity(p.derived_value("peak_hour_messages"), "emails") for p in plans)),
        ("servers", *(_servers_cell(p) for p in plans)),
        ("storage", *(quantity(p.requirement("storage_gb").recommended, "GB") for p in plans)),
        ("dedicated IPs", *(_ips_cell(p) for p in plans)),
        ("infrastructure", *(f"{dollars(p.infrastructure_usd)}/month" for p in plans)),
    ]
    options = list(dict.fromkeys(o.option for p in plans for o in p.tco))
    for option in options:
        name = next(o.name for p in plans for o in p.tco if o.option == option)
        cells = []
        for p in plans:
            row = next((o for o in p.tco if o.option == option), None)
            cells.append(
                "-"
                if row is None
                else f"{dollars(*row.total_usd)}{' *' if row.recommended else ''}"
                f"{' (cheapest)' if row.cheapest else ''}"
            )
        rows.append((name, *cells))
    console.print(
        _table(
            "Options side by side (cost per month)",
            ("", *(f"{compact(p.workload.monthly_volume)}/month" for p in plans)),
            rows,
            console.width,
        )
    )
    for p in plans:
        if p.recommendation_note is not None:
            console.print(f"{compact(p.workload.monthly_volume)}: {p.recommendation_note}")


def _servers_cell(p: Plan) -> str:
    q = next(q for q in p.vps if q.chosen)
    return f"{q.servers:,} x {q.vcpu} vCPU / {number(q.ram_gb)} GB ({q.name})"


def _ips_cell(p: Plan) -> str:
    ips = p.dedicated_ips
    if not ips.used:
        return "none (shared)"
    return f"{ips.ips:,}, warm in {plural(ips.warmup_weeks, 'week')}"


def _pair(pair: tuple[float, float]) -> str:
    low, high = number(pair[0]), number(pair[1])
    return low if low == high else f"{low}-{high}"


def register(subparsers: Any) -> None:
    """Add the ``plan`` sub-command."""
    parser = subparsers.add_parser(
        "plan",
        description="Plan servers, IPs, ESP, rate-limit feasibility, hosting, cost, KPIs "
        "and roadmap for a monthly email volume, with the reasoning.",
    )
    parser.add_argument(
        "volume", metavar="VOLUME", nargs="?", help="emails per month: 250000, 250k, 1.5M"
    )
    parser.add_argument(
        "--compare",
        nargs="+",
        metavar="VOLUME",
        help="plan several volumes and print the options side by side: "
        "--compare 50k 250k 2m (the other flags apply to each)",
    )
    parser.add_argument(
        "--use-case",
        default="bulk_marketing",
        metavar="CASE",
        help=f"{' | '.join(USE_CASES)} (default bulk_marketing)",
    )
    parser.add_argument(
        "--peak-share",
        metavar="SHARE",
        help="share of a day's volume in the peak hour: 10%% or 0.1 (default 10%%)",
    )
    parser.add_argument(
        "--team",
        default="none",
        metavar="LEVEL",
        help="email-infrastructure expertise: none | some | strong (default none)",
    )
    parser.add_argument(
        "--compliance",
        default="no",
        metavar="YES/NO",
        help="dedicated compliance resources (default no)",
    )
    parser.add_argument(
        "--custom-integration",
        default="no",
        metavar="YES/NO",
        help="a custom integration is needed (default no)",
    )
    parser.add_argument(
        "--esp-dedicated-ips",
        default="no",
        metavar="YES/NO",
        help="a managed ESP with its dedicated-IP add-on (default no: shared IPs)",
    )
    parser.add_argument(
        "--message-size",
        metavar="SIZE",
        help="average message size: 50KB, 1.5MB, 50000 (default 50KB)",
    )
    parser.add_argument(
        "--active-addresses",
        metavar="N",
        help="active addresses (default: the monthly volume / --sends-per-address)",
    )
    parser.add_argument(
        "--sends-per-address",
        metavar="N",
        help="emails per active address per month, for the default active "
        "addresses (default 4: a weekly newsletter)",
    )
    parser.add_argument(
        "--retention-days", metavar="DAYS", help="days sent messages are kept (default 30)"
    )
    parser.add_argument(
        "--hourly-cost", metavar="USD", help="engineering cost per hour in USD (default 75)"
    )
    parser.add_argument(
        "--per-core-rate",
        metavar="RATE",
        help="measured emails/minute per core (default: the planning guide's 1,000)",
    )
    parser.add_argument(
        "--calibrate",
        nargs="?",
        const=1.0,
        type=float,
        metavar="SECONDS",
        help="measure this machine's per-core rate with the sending pipeline "
        "(outbox, shaping, DKIM signing, null hand-off of messages of "
        "--message-size) and plan with it instead of the planning "
        "guide's 1,000",
    )
    parser.add_argument(
        "--calibrate-algorithm",
        choices=("rsa", "ed25519"),
        default="rsa",
        help="the DKIM algorithm --calibrate signs with (default rsa: RSA-2048)",
    )
    parser.add_argument(
        "--data",
        metavar="FILE.toml",
        help="override figures: a TOML file with the data files' layout",
    )
    parser.add_argument("--json", action="store_true", help="print the plan as JSON")
    parser.add_argument(
        "--html",
        metavar="FILE.html",
        help="write the plan as one self-contained HTML page with charts",
    )
    parser.set_defaults(func=_run, parser=parser)
