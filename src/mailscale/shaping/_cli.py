"""``mailscale shaping``: show the rate-limit presets and what a limit means."""

from __future__ import annotations

import argparse
from typing import Any

from mailscale.shaping import presets
from mailscale.shaping._limit import Limit

__all__ = ["register"]


def _describe(name: str, limit: Limit) -> str:
    return (
        f"{name:<14} {limit.count:>9,} per {limit.per:>8g} s  burst {limit.burst:>2}  "
        f"sustained {limit.sustained_rate * limit.per:>11,.1f} per {limit.per:g} s  "
        f"(interval {limit.interval_ns / 1e6:,.3f} ms)"
    )


def _presets(args: argparse.Namespace) -> int:
    ses = presets.ses(args.ses_rate, args.ses_daily)
    rows = [
        ("sendgrid", presets.sendgrid()),
        ("mailgun", presets.mailgun()),
        ("postmark", presets.postmark()),
        ("ses rate", ses.rate),
        ("ses 24h", ses.daily),
    ]
    for name, limit in rows:
        print(_describe(name, limit))
    return 0


def _limit(args: argparse.Namespace) -> int:
    limit = (
        Limit(args.count, args.per)
        if args.burst is None
        else Limit(args.count, args.per, burst=args.burst)
    )
    print(_describe("limit", limit))
    print(f"guarantee: at most {limit.count:,} in any {limit.per:g}-second window")
    return 0


def register(subparsers: Any) -> None:
    """Add the ``shaping`` command and its sub-commands."""
    parser = subparsers.add_parser("shaping", help="rate-limit presets and limit arithmetic")
    sub = parser.add_subparsers(dest="shaping_command", metavar="SUBCOMMAND", required=True)
    p = sub.add_parser("presets", help="list the providers' rate-limit presets")
    p.add_argument("--ses-rate", type=int, default=14, help="SES max send rate (per second)")
    p.add_argument("--ses-daily", type=int, default=50_000, help="SES 24-hour quota")
    p.set_defaults(func=_presets)
    p = sub.add_parser("limit", help="show the GCRA parameters of COUNT per PER seconds")
    p.add_argument("count", type=int)
    p.add_argument("per", type=float)
    p.add_argument("--burst", type=int, default=None)
    p.set_defaults(func=_limit)
