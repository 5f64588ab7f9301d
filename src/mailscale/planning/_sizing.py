"""The arithmetic of a plan: figures from a workload, exact, with no text.

`size` turns a `Workload` and the capacity figures into a `Sizing` of exact
fractions; the explanation (`_explain`) turns the same figures into rules in
words, and `plan` assembles both into a `Plan`.
"""

from __future__ import annotations

import math
from fractions import Fraction

import attrs

from mailscale.planning._data import Capacity
from mailscale.planning._workload import Workload

__all__ = ["Sizing", "ceil", "exact", "size"]

MONTHS_PER_YEAR = 12
DAYS_PER_YEAR = 365
BYTES_PER_GB = 10**9


def exact(value: float) -> Fraction:
    """The decimal a float was written as (``0.1`` → 1/10), for exact ceilings."""
    return Fraction(repr(float(value)))


def ceil(value: Fraction) -> int:
    return math.ceil(value)


@attrs.frozen
class Sizing:
    """The figures derived from a workload, before the tier's figures are applied."""

    rate: float
    rate_source: str
    daily: Fraction
    share: Fraction
    peak_hour: int
    per_minute: Fraction
    sending_cores: Fraction
    qps: Fraction
    db_cores: Fraction
    cores: int
    addresses: int
    ram_gb: int
    stored: int
    gb_per_email: Fraction
    guide_gb_per_email: Fraction
    storage_gb: int


def size(workload: Workload, capacity: Capacity) -> Sizing:
    """The derived figures of ``workload`` with ``capacity``'s per-core figures."""
    if workload.per_core_rate is None:
        rate, rate_source = capacity.emails_per_minute_per_core, "brief"
    else:
        rate, rate_source = workload.per_core_rate, "measured"
    share = exact(workload.peak_hour_share)
    daily = Fraction(workload.monthly_volume * MONTHS_PER_YEAR, DAYS_PER_YEAR)
    peak_hour = ceil(daily * share)
    per_minute = Fraction(peak_hour, 60)
    sending_cores = per_minute / exact(rate)
    qps = peak_hour * exact(capacity.db_queries_per_message) / 3600
    db_cores = qps / exact(capacity.db_queries_per_second_per_core)
    addresses = workload.addresses
    stored = ceil(daily * workload.retention_days)
    guide_gb_per_email = 1 / exact(capacity.stored_emails_per_gb)
    gb_per_email = max(guide_gb_per_email,
                       Fraction(workload.message_size_bytes, BYTES_PER_GB))
    return Sizing(
        rate=rate,
        rate_source=rate_source,
        daily=daily,
        share=share,
        peak_hour=peak_hour,
        per_minute=per_minute,
        sending_cores=sending_cores,
        qps=qps,
        db_cores=db_cores,
        cores=ceil(sending_cores + db_cores),
        addresses=addresses,
        ram_gb=ceil(addresses / exact(capacity.active_addresses_per_gb_ram)),
        stored=stored,
        gb_per_email=gb_per_email,
        guide_gb_per_email=guide_gb_per_email,
        storage_gb=ceil(stored * gb_per_email),
    )
