"""Checks shared by the workload and the planning data: each names its field."""

from __future__ import annotations

import math
import numbers
from collections.abc import Collection
from decimal import Decimal

from mailscale.errors import PlanningError

__all__ = ["check_bool", "check_choice", "check_number", "check_per_core_rate", "check_text"]


def _shown(value: object) -> str:
    try:
        text = str(value) if isinstance(value, Decimal) else repr(value)
    except ValueError:  # an int beyond the digits limit of int-to-str conversion
        return "a number too large to show"
    return text if len(text) <= 40 else text[:37] + "..."


def _finite(value: numbers.Real | Decimal) -> bool:
    """Whether ``value`` itself is finite (a Decimal or int may lie beyond a float's range)."""
    if isinstance(value, Decimal):
        return value.is_finite()
    return not isinstance(value, float)


def check_number(
    value: object,
    field: str,
    *,
    minimum: float = 0.0,
    maximum: float = 1e12,
    allow_minimum: bool = False,
    integer: bool = False,
) -> float:
    """Return ``value`` as a finite number in range, or raise `PlanningError` naming ``field``.

    Args:
        value: the candidate: a real number or Decimal; bools and strings are refused.
        field: the name used in the error message and ``PlanningError.field``.
        minimum: the lower bound; excluded unless ``allow_minimum``.
        maximum: the upper bound (included); larger values are refused as absurd.
        allow_minimum: accept ``minimum`` itself.
        integer: require a whole number.
    """
    if isinstance(value, bool) or not isinstance(value, (numbers.Real, Decimal)):
        raise PlanningError(
            f"{field} must be a number, got {type(value).__name__} {_shown(value)}", field=field
        )
    try:
        number = float(value)
    except OverflowError:  # a finite int or Fraction beyond a float's range
        number = math.inf if value > 0 else -math.inf  # type: ignore[operator]
    except (ValueError, ArithmeticError):  # a signaling NaN Decimal
        raise PlanningError(
            f"{field} must be a finite number, got {_shown(value)}", field=field
        ) from None
    beyond_float = math.isinf(number) and _finite(value)
    if math.isnan(number) or (math.isinf(number) and not beyond_float):
        raise PlanningError(f"{field} must be a finite number, got {number}", field=field)
    if number < minimum or (number == minimum and not allow_minimum):
        bound = "at least" if allow_minimum else "greater than"
        raise PlanningError(
            f"{field} must be {bound} {minimum:g}, got {_shown(value)}", field=field
        )
    if number > maximum:
        raise PlanningError(
            f"{field} must be at most {maximum:,.0f}, got {_shown(value)}", field=field
        )
    if integer and number != math.floor(number):
        raise PlanningError(f"{field} must be a whole number, got {_shown(value)}", field=field)
    return number


def check_per_core_rate(value: object, field: str) -> float:
    """A per-core rate in emails/minute: from 1 (slower is no working core) to 10**9."""
    rate = check_number(value, field, maximum=1e9)
    if rate < 1:
        raise PlanningError(
            f"{field} must be at least 1 email/minute/core (a slower core is not a working "
            f"sender), got {_shown(value)}",
            field=field,
        )
    return rate


def check_text(value: object, field: str) -> str:
    """Return ``value`` if it is a non-empty string, else raise `PlanningError`."""
    if not isinstance(value, str) or not value.strip():
        raise PlanningError(f"{field} must be a non-empty string, got {_shown(value)}", field=field)
    return value


def check_choice(value: object, field: str, choices: Collection[str]) -> str:
    """Return ``value`` if it is one of ``choices``, else raise `PlanningError`."""
    if not isinstance(value, str) or value not in choices:
        allowed = ", ".join(sorted(choices))
        raise PlanningError(f"{field} must be one of {allowed}; got {_shown(value)}", field=field)
    return value


def check_bool(value: object, field: str) -> bool:
    """Return ``value`` if it is a bool, else raise `PlanningError`."""
    if not isinstance(value, bool):
        raise PlanningError(f"{field} must be true or false, got {_shown(value)}", field=field)
    return value
