"""Figures measured on a running stack, handed to `plan` as data.

Planning measures nothing and imports nothing it plans for (signing, shaping,
transports): whoever measures (``mailscale plan --calibrate``, the sending
pipeline) builds a `Measurements` and passes it to `plan`.
"""

from __future__ import annotations

from typing import Any

import attrs

from mailscale.planning._validate import check_per_core_rate, check_text

__all__ = ["Measurements"]


def _rate(value: Any) -> float:
    return check_per_core_rate(value, "emails_per_minute_per_core")


def _method(value: Any) -> str:
    return check_text(value, "method")


@attrs.frozen(kw_only=True)
class Measurements:
    """Measured figures that replace the planning guide's.

    Attributes:
        emails_per_minute_per_core: the measured sending rate of one core, which the
            plan divides the peak rate by instead of the guide's 1,000.
        method: what was measured, in words (shown beside the figure).
    """

    emails_per_minute_per_core: float = attrs.field(converter=_rate)
    method: str = attrs.field(default="measured", converter=_method)
