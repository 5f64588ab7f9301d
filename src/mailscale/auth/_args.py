"""Type checks at the public boundary: a wrong type is an AuthCheckError naming the argument."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from mailscale.errors import AuthCheckError
from mailscale.message import ascii_dns_name

__all__ = ["normalize_domain", "opt_number", "opt_str", "str_arg", "str_items"]


def str_arg(value: object, what: str) -> str:
    """``value`` when it is a string; else AuthCheckError naming ``what``."""
    if not isinstance(value, str):
        raise AuthCheckError(f"{what} must be a string, not {_shown(value)}")
    return value


def opt_str(value: object, what: str) -> str | None:
    """``value`` when it is a string or None."""
    return None if value is None else str_arg(value, what)


def opt_number(value: object, what: str, *, positive: bool = False) -> float | None:
    """``value`` as a float when it is a real number (not a bool) or None."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise AuthCheckError(f"{what} must be a number, not {_shown(value)}")
    number = float(value)
    if number != number or (positive and not number > 0):
        raise AuthCheckError(f"{what} must be a positive number, not {value!r}")
    return number


def str_items(value: object, what: str) -> list[str]:
    """The strings of ``value``: one string is one item, else an iterable of strings.

    A lone string is never iterated character by character (``"s1"`` is ``["s1"]``).
    """
    if isinstance(value, str):
        return [value]
    if isinstance(value, (bytes, bytearray, Mapping)) or not isinstance(value, Iterable):
        raise AuthCheckError(f"{what} must be a list of strings, not {_shown(value)}")
    items = list(value)
    for item in items:
        if not isinstance(item, str):
            raise AuthCheckError(f"{what} must hold strings, not {_shown(item)}")
    return items


def normalize_domain(domain: str, what: str = "domain") -> str:
    """Lower-case ASCII form of a domain name; raises AuthCheckError when malformed.

    Surrounding spaces and a final dot are dropped; labels may hold underscores
    (``_dmarc.example.com``).
    """
    if not isinstance(domain, str) or not domain.strip(". "):
        raise AuthCheckError(f"{what} must be a non-empty domain name, not {domain!r}")
    name = ascii_dns_name(domain.strip().rstrip("."), underscore=True)
    if name is None:
        raise AuthCheckError(f"{what} {domain!r} is not a valid domain name")
    return name.lower()


def _shown(value: Any) -> str:
    """A short description of a wrong value: its type, and its repr when short."""
    text = repr(value)
    kind = type(value).__name__
    return f"{kind} {text}" if len(text) <= 40 else kind
