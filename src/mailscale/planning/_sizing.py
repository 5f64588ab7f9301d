"""The arithmetic of a plan: figures from a workload, exact, with no text.

`size` turns a `Workload` and the capacity figures into a `Sizing` of exact
fractions; the explanation (`_explain`) turns the same figures into rules in
words, and `plan` assembles both into a `Plan`.
"""

from __future__ import annotations

import math
from fractions import Fraction

import attrs

from mailscale.planning._data import Capacity, EspPricing, Measured, VpsProvider, VpsShape
from mailscale.planning._workload import Workload

__all__ = [
    "FleetLoad",
    "IpNeed",
    "ServerFit",
    "Sizing",
    "ceil",
    "esp_cost",
    "exact",
    "fit_servers",
    "fleet_load",
    "ip_need",
    "size",
]

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
    worker_ms: Fraction
    overhead_bytes: Fraction
    overhead_source: str
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
    guide_storage_gb: int


def size(
    workload: Workload,
    capacity: Capacity,
    measured_rate: float | None = None,
    measured: Measured | None = None,
    guide_rate_overridden: bool = False,
) -> Sizing:
    """The derived figures of ``workload``.

    The per-core rate is, first found: ``measured_rate`` (a calibration), the workload's
    ``per_core_rate``, ``capacity``'s per-core figure when an override set it
    (``guide_rate_overridden``), the stack's documented worker CPU per message
    (``measured``), the planning guide's per-core figure. The outbox's bytes per stored
    message are ``capacity``'s when an override set them, else the measured figure.
    """
    if measured_rate is not None:
        rate, rate_source = exact(measured_rate), "measured"
    elif workload.per_core_rate is not None:
        rate, rate_source = exact(workload.per_core_rate), "measured"
    elif measured is not None and not guide_rate_overridden:
        rate, rate_source = 60_000 / exact(measured.worker_cpu_ms.value), "documented"
    else:
        rate, rate_source = exact(capacity.emails_per_minute_per_core), "planning_guide"
    if capacity.stored_overhead_bytes_per_message is not None:
        overhead, overhead_source = exact(capacity.stored_overhead_bytes_per_message), "override"
    elif measured is not None:
        overhead, overhead_source = exact(measured.outbox_overhead_bytes.value), "measured"
    else:
        overhead, overhead_source = Fraction(0), "none"
    share = exact(workload.peak_hour_share)
    daily = Fraction(workload.monthly_volume * MONTHS_PER_YEAR, DAYS_PER_YEAR)
    peak_hour = ceil(daily * share)
    per_minute = Fraction(peak_hour, 60)
    sending_cores = per_minute / rate
    qps = peak_hour * exact(capacity.db_queries_per_message) / 3600
    db_cores = qps / exact(capacity.db_queries_per_second_per_core)
    addresses = workload.addresses
    stored = ceil(daily * workload.retention_days)
    guide_gb_per_email = 1 / exact(capacity.stored_emails_per_gb)
    gb_per_email = (workload.message_size_bytes + overhead) / BYTES_PER_GB
    return Sizing(
        rate=float(rate),
        rate_source=rate_source,
        worker_ms=60_000 / rate,
        overhead_bytes=overhead,
        overhead_source=overhead_source,
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
        guide_storage_gb=ceil(stored * guide_gb_per_email),
    )


@attrs.frozen
class IpNeed:
    """Dedicated IPs for a peak hour: how many once warm, and the warm-up at that count.

    Attributes:
        by_peak: ``ceil(peak hour / emails per IP per hour)``.
        ips: ``max(by_peak, min_ips)``.
        per_ip_daily: each IP's share of the daily volume.
        warmup_days: days until the ramp's cap covers ``per_ip_daily`` (1 when the
            first day's cap already does; the ramp's length + 1 when only a warm IP does).
    """

    by_peak: int
    ips: int
    per_ip_daily: Fraction
    warmup_days: int

    @property
    def warmup_weeks(self) -> int:
        return ceil(Fraction(self.warmup_days, 7))


def ip_need(
    peak_hour: int, daily: Fraction, per_ip_per_hour: float, min_ips: int, ramp: tuple[int, ...]
) -> IpNeed:
    """The dedicated IPs a peak hour needs once warm, and how long they take to warm up."""
    by_peak = ceil(Fraction(peak_hour) / exact(per_ip_per_hour))
    ips = max(by_peak, min_ips)
    per_ip_daily = daily / ips
    days = next((day + 1 for day, cap in enumerate(ramp) if cap >= per_ip_daily), len(ramp) + 1)
    return IpNeed(by_peak, ips, per_ip_daily, days)


@attrs.frozen
class ServerFit:
    """The cheapest way one provider's shapes hold what the plan needs."""

    shape: VpsShape
    servers: int
    extra_storage_gb: int
    extra_ips: int
    servers_usd: Fraction
    storage_usd: Fraction
    ips_usd: Fraction
    upkeep_hours: Fraction
    upkeep_usd: Fraction

    @property
    def total_usd(self) -> Fraction:
        """List prices: servers, block storage and extra IPs (upkeep is engineering)."""
        return self.servers_usd + self.storage_usd + self.ips_usd


def fit_servers(
    provider: VpsProvider,
    *,
    vcpu: int,
    ram_gb: int,
    storage_gb: int,
    ips: int,
    min_servers: int,
    upkeep_hours: float,
    hourly_usd: float,
) -> ServerFit:
    """The cheapest count (at least ``min_servers``) and shape of ``provider``'s servers
    holding the vCPU, RAM and IPs, counting each server's upkeep hours at ``hourly_usd``.

    Storage beyond the shapes' SSD is block storage; IPs beyond one per server are extra
    IPs. Per shape the cost is convex in the count, so the fewest servers that hold the
    needs and the counts where block storage or extra IPs run out are the candidates:
    the result is the cheapest over every count, so it never falls as the needs grow.
    """
    upkeep = exact(upkeep_hours) * exact(hourly_usd)
    best: tuple[Fraction, int, ServerFit] | None = None
    for shape in provider.shapes:
        least = max(
            min_servers,
            1,
            ceil(Fraction(vcpu, shape.vcpu)),
            ceil(exact(ram_gb) / exact(shape.ram_gb)),
            ceil(Fraction(ips, provider.ips_per_server)),
        )
        counts = {least, max(least, ips)}
        if shape.ssd_gb > 0:
            full = exact(storage_gb) / exact(shape.ssd_gb)
            counts |= {max(least, math.floor(full)), max(least, ceil(full))}
        for count in counts:
            extra_storage = max(0, storage_gb - math.floor(count * exact(shape.ssd_gb)))
            extra_ips = max(0, ips - count)
            fit = ServerFit(
                shape=shape,
                servers=count,
                extra_storage_gb=extra_storage,
                extra_ips=extra_ips,
                servers_usd=count * exact(shape.usd),
                storage_usd=extra_storage * exact(provider.storage_usd_per_gb),
                ips_usd=extra_ips * exact(provider.extra_ip_usd),
                upkeep_hours=count * exact(upkeep_hours),
                upkeep_usd=count * upkeep,
            )
            key = (fit.total_usd + fit.upkeep_usd, count, fit)
            if best is None or key[:2] < best[:2]:
                best = key
    assert best is not None  # the data refuses a provider without shapes
    return best[2]


def esp_cost(pricing: EspPricing, volume: int, ips: int) -> tuple[str, Fraction, bool]:
    """The cheapest plan of an ESP's price list at ``volume``, plus ``ips`` dedicated IPs,
    and whether a price in it is an estimate."""
    costs = []
    for i, plan in enumerate(pricing.plans):
        if plan.max_volume is not None and volume > plan.max_volume:
            continue
        extra = max(0, volume - plan.included)
        costs.append((exact(plan.base_usd) + extra * exact(plan.per_1000_usd) / 1000, i))
    cost, index = min(costs)
    chosen = pricing.plans[index]
    estimated = chosen.estimated or (ips > 0 and pricing.dedicated_ip_estimated)
    return chosen.name, cost + ips * exact(pricing.dedicated_ip_usd), estimated


@attrs.frozen
class FleetLoad:
    """The sending fleet's load at the peak from the per-message costs.

    Attributes:
        cpu_ms: CPU per message on a sending server: the worker's, plus the Redis
            shaper's client CPU when the fleet shares a Redis.
        cores: ``peak per second x cpu_ms / 1000``.
        sending_servers: ``ceil(cores / vCPU per server)``, at least 1.
        capacity_per_second: messages per second the fleet's vCPUs take at ``cpu_ms``.
        redis_round_trips: Redis round trips per second at the peak (0 without one).
        redis_load: the peak's share of one Redis client's measured rate.
    """

    peak_per_second: Fraction
    cpu_ms: Fraction
    cores: Fraction
    sending_servers: int
    capacity_per_second: Fraction
    redis_round_trips: Fraction
    redis_load: Fraction
    redis_instances: int


def fleet_load(
    peak_hour: int,
    worker_ms: Fraction,
    servers: int,
    vcpu_per_server: int,
    measured: Measured | None,
    shared_redis: bool,
) -> FleetLoad:
    """The fleet's load at the peak hour: cores, capacity and the shared Redis's share."""
    peak = Fraction(peak_hour, 3600)
    shaper_ms = (
        exact(measured.shaper_cpu_us.value) / 1000
        if shared_redis and measured is not None
        else Fraction(0)
    )
    cpu_ms = worker_ms + shaper_ms
    cores = peak * cpu_ms / 1000
    if shared_redis and measured is not None:
        round_trips = peak / exact(measured.redis_batch_messages.value)
        load = peak / exact(measured.redis_messages_per_second.value)
    else:
        round_trips = load = Fraction(0)
    return FleetLoad(
        peak_per_second=peak,
        cpu_ms=cpu_ms,
        cores=cores,
        sending_servers=max(1, ceil(cores / vcpu_per_server)),
        capacity_per_second=servers * vcpu_per_server * 1000 / cpu_ms,
        redis_round_trips=round_trips,
        redis_load=load,
        redis_instances=max(1, ceil(load)) if shared_redis else 0,
    )
