"""Providers' published API limits as ``Limit`` values (defaults; every figure overridable).

Real limits vary by account: override the figures, or let
``Shaper.observe_headers`` learn them from the provider's responses.
"""

from __future__ import annotations

from typing import NamedTuple

from mailscale.shaping._limit import Limit

__all__ = ["SESLimits", "mailgun", "postmark", "sendgrid", "ses"]


def sendgrid(count: int = 1000, per: float = 3600.0, burst: int | None = None) -> Limit:
    """SendGrid: 1,000 API requests per hour per key."""
    return Limit(count, per) if burst is None else Limit(count, per, burst=burst)


def mailgun(count: int = 2000, per: float = 3600.0, burst: int | None = None) -> Limit:
    """Mailgun: 2,000 requests per hour per user."""
    return Limit(count, per) if burst is None else Limit(count, per, burst=burst)


def postmark(count: int = 500, per: float = 60.0, burst: int | None = None) -> Limit:
    """Postmark: 500 requests per minute per token."""
    return Limit(count, per) if burst is None else Limit(count, per, burst=burst)


class SESLimits(NamedTuple):
    """Amazon SES's two account quotas: the send rate and the 24-hour send quota."""

    rate: Limit
    daily: Limit


def ses(
    max_send_rate: int,
    max_24h: int,
    *,
    rate_burst: int | None = None,
    daily_burst: int | None = None,
) -> SESLimits:
    """Amazon SES: ``max_send_rate`` messages per second and ``max_24h`` per rolling 24 hours.

    Both figures come from the account (``GetSendQuota`` / ``GetAccount``).
    """
    rate = (
        Limit(max_send_rate, 1.0)
        if rate_burst is None
        else Limit(max_send_rate, 1.0, burst=rate_burst)
    )
    daily = (
        Limit(max_24h, 86400.0)
        if daily_burst is None
        else Limit(max_24h, 86400.0, burst=daily_burst)
    )
    return SESLimits(rate, daily)
