"""Providers' published API limits as ``Limit`` values (defaults; every figure overridable).

Each limit says what it counts (``Limit.unit``): SendGrid, Mailgun and Postmark
count API requests (one request may carry a whole batch: up to 1,000
personalizations for SendGrid, 500 messages for Postmark), Amazon SES counts
recipients. Real limits vary by account: override the figures, or let
``Shaper.observe_headers`` learn them from the provider's responses.
"""

from __future__ import annotations

from typing import NamedTuple

from mailscale.shaping._limit import Limit, Unit

__all__ = ["SESLimits", "mailgun", "postmark", "sendgrid", "ses"]


def _requests(count: int, per: float, burst: int | None) -> Limit:
    if burst is None:
        return Limit(count, per, unit=Unit.REQUEST)
    return Limit(count, per, burst=burst, unit=Unit.REQUEST)


def sendgrid(count: int = 1000, per: float = 3600.0, burst: int | None = None) -> Limit:
    """SendGrid: 1,000 API requests per hour per key (a request carries up to 1,000
    personalizations)."""
    return _requests(count, per, burst)


def mailgun(count: int = 2000, per: float = 3600.0, burst: int | None = None) -> Limit:
    """Mailgun: 2,000 requests per hour per user."""
    return _requests(count, per, burst)


def postmark(count: int = 500, per: float = 60.0, burst: int | None = None) -> Limit:
    """Postmark: 500 requests per minute per token (a batch request carries up to 500
    messages)."""
    return _requests(count, per, burst)


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
    """Amazon SES: ``max_send_rate`` per second and ``max_24h`` per rolling 24 hours.

    Both figures come from the account (``GetSendQuota`` / ``GetAccount``). SES
    counts both per recipient, not per message (a message to 10 recipients counts
    10), so both limits have ``unit=Unit.RECIPIENT``.
    """
    unit = Unit.RECIPIENT
    rate = (
        Limit(max_send_rate, 1.0, unit=unit)
        if rate_burst is None
        else Limit(max_send_rate, 1.0, burst=rate_burst, unit=unit)
    )
    daily = (
        Limit(max_24h, 86400.0, unit=unit)
        if daily_burst is None
        else Limit(max_24h, 86400.0, burst=daily_burst, unit=unit)
    )
    return SESLimits(rate, daily)
