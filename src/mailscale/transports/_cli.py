"""``mailscale transports``: list built-in, plugin, broken and shadowed transports."""

from __future__ import annotations

import argparse
import json
from typing import Any

import attrs

__all__ = ["register"]


def register(subparsers: Any) -> None:
    """Add the ``transports`` sub-command."""
    parser = subparsers.add_parser(
        "transports",
        help="list available transports (built-in, plugins, broken plugins)",
        description="List the transports this installation can build from a URL: built-ins, "
        "plugins from the 'mailscale.transports' entry-point group, and plugins that "
        "failed to load (with the reason).",
    )
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.add_argument(
        "--strict", action="store_true", help="exit with status 1 when a plugin is broken"
    )
    parser.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from mailscale.transports.registry import available_transports

    infos = available_transports()
    if args.json:
        print(json.dumps([attrs.asdict(i) for i in infos], indent=2))
    else:
        rows = [("NAME", "KIND", "PROVIDED BY", "TARGET / ERROR")]
        for info in infos:
            detail = info.target if info.error is None else f"{info.target}: {info.error}"
            rows.append((info.name, info.kind, info.distribution or "mailscale", detail))
        widths = [max(len(r[i]) for r in rows) for i in range(3)]
        for row in rows:
            cells = [cell.ljust(w) for cell, w in zip(row, widths, strict=False)]
            print("  ".join([*cells, row[3]]))
    broken = any(i.kind == "broken" for i in infos)
    return 1 if args.strict and broken else 0
