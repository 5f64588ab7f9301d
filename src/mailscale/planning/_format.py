"""Number formatting for explanations and tables."""

from __future__ import annotations

import re
from decimal import ROUND_HALF_UP, Decimal
from fractions import Fraction

__all__ = [
    "compact",
    "dollars",
    "kpi_value",
    "money",
    "money_range",
    "number",
    "plural",
    "plurals",
    "quantity",
]

_SINGULAR = {"queries": "query"}
# "N noun(s)": a count, one to three words, and "(s)" (as the roadmap templates write it).
_COUNTED = re.compile(r"(?<![\w.,])(\d[\d,]*(?:\.\d+)?)((?: [\w/-]+){1,3}?)\(s\)")


def number(value: float | Fraction, places: int = 2) -> str:
    """``1234`` → ``1,234``; ``0.01369`` → ``0.014`` (up to ``places`` significant decimals)."""
    value = float(value)
    if value == int(value):
        return f"{int(value):,}"
    if abs(value) >= 1:
        return f"{value:,.{places}f}".rstrip("0").rstrip(".")
    text = f"{value:.{places}g}"
    return text if "e" not in text else f"{value:.{places + 6}f}".rstrip("0")


def compact(volume: int) -> str:
    """``1000`` → ``1K``, ``1500000`` → ``1.5M``, ``250`` → ``250``."""
    for size, suffix in ((10**12, "T"), (10**9, "B"), (10**6, "M"), (10**3, "K")):
        if volume >= size:
            return f"{volume / size:g}{suffix}"
    return str(volume)


def money(value: float) -> str:
    """``1234.5`` → ``$1,234.50``, ``96`` → ``$96``."""
    if value == int(value):
        return f"${int(value):,}"
    return f"${value:,.2f}"


def dollars(low: float, high: float | None = None) -> str:
    """Whole dollars, cents rounded half up: ``854.95`` → ``$855``; a pair as `money_range`."""

    def whole(value: float) -> float:
        return float(Decimal(repr(float(value))).quantize(Decimal(1), rounding=ROUND_HALF_UP))

    return money_range(whole(low), whole(low if high is None else high))


def money_range(low: float, high: float, *, open_ended: bool = False) -> str:
    """``(6, 12)`` → ``$6-12``; open-ended ranges end with ``+``."""
    plus = "+" if open_ended else ""
    if low == high:
        return f"{money(low)}{plus}"
    return f"{money(low)}-{money(high).lstrip('$')}{plus}"


def plural(count: float, word: str, words: str | None = None) -> str:
    """``(1, "server")`` → ``1 server``; ``(2, "server")`` → ``2 servers`` (``words`` if given)."""
    return f"{number(count)} {word if count == 1 else (words or word + 's')}"


def plurals(text: str) -> str:
    """Each ``N noun(s)`` in ``text`` as ``N noun`` (N = 1) or ``N nouns``."""

    def one(match: re.Match[str]) -> str:
        count = float(match.group(1).replace(",", ""))
        return f"{match.group(1)}{match.group(2)}{'' if count == 1 else 's'}"

    return _COUNTED.sub(one, text)


def kpi_value(value: float, unit: str) -> str:
    """A KPI figure with its unit, singular for 1 (``1 second``); fractions as percentages."""
    if unit == "fraction":
        return f"{number(value * 100)}%"
    return quantity(value, unit)


def quantity(value: float | Fraction, unit: str, places: int = 2) -> str:
    """A figure and its plural unit, singular for 1: ``1 second``, ``1 email/month``."""
    head, slash, rest = unit.partition("/")
    if value == 1:
        head = _SINGULAR.get(head, head[:-1] if head.endswith("s") else head)
    return f"{number(value, places)} {head}{slash}{rest}"
