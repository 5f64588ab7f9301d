"""``mailscale shaping``: show the rate-limit presets and what a limit means."""

from __future__ import annotations

import argparse
import json
from typing import Any

from mailscale.shaping import presets
from mailscale.shaping._limit import Limit

__all__ = ["register"]

_COLUMNS = ("NAME", "COUNT", "PER (s)", "BURST", "SUSTAINED PER WINDOW", "INTERVAL (ms)")


def _rows(named: list[tuple[str, Limit]]) -> list[str]:
    """A header row and one aligned row per limit (names left, figures right)."""
    cells = [_COLUMNS] + [
        (
            name,
            f"{limit.count:,}",
            f"{limit.per:g}",
            f"{limit.burst:,}",
            f"{limit.sustained_rate * limit.per:,.1f}",
            f"{limit.interval_ns / 1e6:,.3f}",
        )
        for name, limit in named
    ]
    widths = [max(len(row[i]) for row in cells) for i in range(len(_COLUMNS))]
    return [
        "  ".join(
            cell.ljust(w) if i == 0 else cell.rjust(w)
            for i, (cell, w) in enumerate(zip(row, widths, strict=True))
        ).rstrip()
        for row in cells
    ]


def _as_dict(name: str, limit: Limit) -> dict[str, Any]:
    return {
        "name": name,
        "count": limit.count,
        "per_seconds": limit.per,
        "burst": limit.burst,
        "sustained_per_second": limit.sustained_rate,
        "interval_ms": limit.interval_ns / 1e6,
    }


def _presets(args: argparse.Namespace) -> int:
    ses = presets.ses(args.ses_rate, args.ses_daily)
    rows = [
        ("sendgrid", presets.sendgrid()),
        ("mailgun", presets.mailgun()),
        ("postmark", presets.postmark()),
        ("ses rate", ses.rate),
        ("ses 24h", ses.daily),
    ]
    if args.json:
        print(json.dumps([_as_dict(name, limit) for name, limit in rows], indent=2))
        return 0
    print("\n".join(_rows(rows)))
    return 0


def _limit(args: argparse.Namespace) -> int:
    limit = (
        Limit(args.count, args.per)
        if args.burst is None
        else Limit(args.count, args.per, burst=args.burst)
    )
    guarantee = f"at most {limit.count:,} in any {limit.per:g}-second window"
    if args.json:
        print(json.dumps({**_as_dict("limit", limit), "guarantee": guarantee}, indent=2))
        return 0
    print("\n".join(_rows([("limit", limit)])))
    print(f"guarantee: {guarantee}")
    return 0


def register(subparsers: Any) -> None:
    """Add the ``shaping`` command and its sub-commands."""
    parser = subparsers.add_parser("shaping", help="rate-limit presets and limit arithmetic")
    sub = parser.add_subparsers(dest="shaping_command", metavar="SUBCOMMAND", required=True)
    p = sub.add_parser("presets", help="list the providers' rate-limit presets")
    p.add_argument("--ses-rate", type=int, default=14, help="SES max send rate (per second)")
    p.add_argument("--ses-daily", type=int, default=50_000, help="SES 24-hour quota")
    p.add_argument("--json", action="store_true", help="print the presets as JSON")
    p.set_defaults(func=_presets)
    p = sub.add_parser("limit", help="show the GCRA parameters of COUNT per PER seconds")
    p.add_argument("count", type=int)
    p.add_argument("per", type=float)
    p.add_argument("--burst", type=int, default=None)
    p.add_argument("--json", action="store_true", help="print the parameters as JSON")
    p.set_defaults(func=_limit)
