"""Number formatting for explanations and tables."""

from __future__ import annotations

from fractions import Fraction

__all__ = ["compact", "kpi_value", "money", "money_range", "number"]


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


def money_range(low: float, high: float, *, open_ended: bool = False) -> str:
    """``(6, 12)`` → ``$6-12``; open-ended ranges end with ``+``."""
    plus = "+" if open_ended else ""
    if low == high:
        return f"{money(low)}{plus}"
    return f"{money(low)}-{money(high).lstrip('$')}{plus}"


def kpi_value(value: float, unit: str) -> str:
    """A KPI figure with its unit; fractions are shown as percentages."""
    if unit == "fraction":
        return f"{number(value * 100)}%"
    return f"{number(value)} {unit}"
