"""The plan's values: every section of a `Plan` and the `Plan` itself."""

from __future__ import annotations

from collections.abc import Mapping
from fractions import Fraction
from typing import Any

import attrs

from mailscale.errors import PlanningError
from mailscale.planning._kpi import HealthReport, KpiTarget, evaluate_kpis
from mailscale.planning._workload import Workload

__all__ = [
    "Assumption",
    "Criterion",
    "DedicatedIps",
    "Derived",
    "EspChoice",
    "Feasibility",
    "Fleet",
    "HostingDecision",
    "Phase",
    "Plan",
    "Requirement",
    "Setup",
    "TcoEstimate",
    "TierChoice",
    "VpsQuote",
]

SCHEMA_VERSION = 3


@attrs.frozen
class TierChoice:
    """The planning guide's volume tier a workload falls in.

    Attributes:
        key: the tier's name in the data (``starter``, ``growth``, ``scale``, ``high_volume``).
        label: the band, e.g. ``100K-1M`` or ``1M+``.
        min_volume: the band's inclusive lower bound.
        max_volume: the band's exclusive upper bound, None for the top tier.
        below_smallest: the volume is under the smallest tier's lower bound.
    """

    key: str
    label: str
    min_volume: int
    max_volume: int | None
    vcpu: tuple[float, float]
    ram_gb: tuple[float, float]
    ssd_gb: tuple[float, float]
    dedicated_ips: tuple[float, float]
    monthly_cost_usd: tuple[float, float]
    architecture: str
    servers: int
    multi_server: bool
    multi_data_center: bool
    open_ended: bool
    below_smallest: bool


@attrs.frozen
class Derived:
    """A figure derived from the workload, with the rule that produced it."""

    key: str
    value: float
    unit: str
    rule: str


@attrs.frozen
class Requirement:
    """A recommended resource: the larger of the tier's figure and the derived one.

    Attributes:
        resource: ``vcpu``, ``ram_gb``, ``storage_gb``, ``dedicated_ips`` or ``servers``.
        label: the resource in words (``RAM``, ``dedicated IPs``).
        tier: the tier's figure (the high end of its band; servers: its architecture).
        derived: the figure derived from the workload, None when no rule derives it.
        recommended: ``max(tier, derived)``.
        driver: ``"derived"`` when the derived figure is strictly larger, else ``"tier"``.
        rule: the derivation rule, in words.
    """

    resource: str
    label: str
    unit: str
    tier: int
    derived: int | None
    recommended: int
    driver: str
    rule: str


@attrs.frozen
class VpsQuote:
    """A VPS provider's servers for the plan: the shape it sells, priced, and the guide's band.

    Attributes:
        servers: how many servers of the shape hold what the plan needs.
        vcpu, ram_gb, ssd_gb: the shape (as the provider sells it).
        extra_storage_gb: block storage beyond the servers' SSD.
        extra_ips: dedicated IPs beyond one per server.
        total_usd: servers + block storage + extra IPs, per month, at list price.
        upkeep_hours: the servers' upkeep (capacity.server_upkeep_hours each), which the
            cost options add to the guide's engineering hours.
        chosen: the cheapest provider: its servers are the plan's.
        estimated: the shape's price is an estimate, not from a published list.
        size: the guide's size (small, medium, large) that holds the shape.
        per_server_usd, monthly_usd: the guide's band for that size (per server,
            and times ``servers``): its view, shown for comparison.
    """

    provider: str
    name: str
    size: str
    servers: int
    per_server_usd: tuple[float, float]
    monthly_usd: tuple[float, float]
    open_ended: bool
    strengths: tuple[str, ...]
    vcpu: int
    ram_gb: float
    ssd_gb: float
    shape_usd: float
    extra_storage_gb: int
    extra_ips: int
    servers_usd: float
    storage_usd: float
    ips_usd: float
    total_usd: float
    upkeep_hours: float
    chosen: bool
    source: str
    estimated: bool = False


@attrs.frozen
class EspChoice:
    """The ESP picked for the workload, the runner-up, and why."""

    chosen: str
    chosen_name: str
    reason: str
    runner_up: str | None
    runner_up_name: str | None
    runner_up_reason: str
    band_choice: str
    use_case_choice: str | None


@attrs.frozen
class Feasibility:
    """How many keys (users, tokens, accounts) an ESP needs for the peak hour.

    Attributes:
        limit_per_hour: the ESP's limit per key, converted to an hour.
        unbatched_units: what the peak hour counts against the limit sending one
            message per call.
        batched_units: the same with full batches (unchanged when the quota counts
            recipients, as SES's does).
        keys_unbatched: keys needed without batching, ``ceil(units / limit)``.
        keys_batched: keys needed with batching.
    """

    esp: str
    name: str
    scope: str
    limit_per_hour: float
    batch_size: int
    batch_unit: str
    quota_counts: str
    peak_hour_messages: int
    unbatched_units: int
    batched_units: int
    keys_unbatched: int
    keys_batched: int
    chosen: bool


@attrs.frozen
class Criterion:
    """One self-hosting criterion of the planning guide, met or not."""

    key: str
    label: str
    met: bool
    detail: str


@attrs.frozen
class HostingDecision:
    """Self-hosted or managed, by the planning guide's criteria."""

    recommendation: str
    criteria: tuple[Criterion, ...]
    met: int
    required: int


@attrs.frozen
class TcoEstimate:
    """Monthly cost of one option at the workload's volume.

    ``total = infrastructure + hours x rate + compliance``; infrastructure is the
    ESP's price list at the volume (plus dedicated IPs when asked for) and the
    servers that run the pipeline, or for self-hosting the servers, storage and IPs.

    Attributes:
        infrastructure_usd: (cost, cost): one figure, kept as a pair like the others.
        esp_usd: the ESP's part of it (0 for self-hosting).
        servers_usd: the servers' part of it.
        detail: what the infrastructure is, in words.
        guide_infrastructure_usd, guide_total_usd: the guide's bands, None when
            it gives none: its view, for comparison.
        recommended: the option of the plan's setup.
        cheapest: the lowest total (midpoint, then low end).
        estimated: a price in it (ESP plan, dedicated IPs, servers) is an estimate.
    """

    option: str
    name: str
    infrastructure_usd: tuple[float, float]
    engineering_hours: float
    hourly_cost_usd: float
    engineering_usd: float
    compliance_usd: tuple[float, float]
    total_usd: tuple[float, float]
    cheapest: bool
    esp_usd: float
    servers_usd: float
    detail: str
    guide_infrastructure_usd: tuple[float, float] | None
    guide_total_usd: tuple[float, float] | None
    recommended: bool
    estimated: bool = False


@attrs.frozen
class Setup:
    """The plan's one verdict: how the mail is sent. Every section follows it.

    Attributes:
        kind: ``managed`` (an ESP sends), ``self_hosted`` (own servers and IPs), or
            ``hybrid`` (own servers for bulk mail, an ESP for transactional mail).
        esp: the ESP's key (managed: the sender; hybrid: for transactional mail),
            None when self-hosted.
        option: the key of the cost option that prices this setup.
        summary: the setup in words, as every section names it.
    """

    kind: str
    esp: str | None
    esp_name: str | None
    option: str
    summary: str


@attrs.frozen
class DedicatedIps:
    """Dedicated IPs: how many the peak hour needs once warm, and the warm-up.

    Attributes:
        used: the setup has dedicated IPs (self-hosted, hybrid, or an ESP's
            add-on asked for); when False the ESP's shared IPs send and ``ips`` is 0.
        ips: the IPs to run, ``max(by_peak, min_ips)`` when used, else 0.
        by_peak: ``ceil(peak hour / per_ip_per_hour)``.
        warmup_days, warmup_weeks: how long the ramp takes until each IP's cap
            covers its share of the daily volume.
        schedule: (day, daily cap of all IPs together) for each day of the ramp.
        guide_band: the guide's tier band, its view.
    """

    used: bool
    ips: int
    by_peak: int
    per_ip_per_hour: float
    min_ips: int
    per_ip_daily: float
    warmup_days: int
    warmup_weeks: int
    schedule: tuple[tuple[int, int], ...]
    guide_band: tuple[float, float]
    reason: str


@attrs.frozen
class Fleet:
    """The sending fleet's capacity at the peak, from the stack's per-message costs.

    Attributes:
        worker_cpu_ms: CPU per message of the sending path (measured: documented in
            docs/performance.md, or calibrated on this machine, or given).
        worker_cpu_source: ``documented``, ``measured`` (calibrated or given) or
            ``planning_guide`` (the guide's per-core rate, when no measurement exists).
        worker_cpu_origin: where the figure comes from, in words.
        shared_redis: the fleet has more than one server, so shaping goes through one
            shared Redis (limits hold across servers).
        shaper_cpu_us: the Redis shaper's client CPU per message (0 without Redis).
        cpu_ms: CPU per message on a sending server: worker + shaper.
        cores: cores busy at the peak, ``peak_per_second x cpu_ms / 1000``.
        sending_servers: servers the peak needs by CPU, ``ceil(cores / vCPU per server)``.
        capacity_per_second: what the plan's servers take at ``cpu_ms``.
        headroom: ``capacity_per_second / peak_per_second``.
        redis_round_trips_per_second: shaping round trips at the peak (batches).
        redis_load: the peak's share of one Redis client's measured rate.
        redis_instances: Redis instances the peak needs (0 without a shared Redis).
        rule: the derivation in words, with the figures' sources.
    """

    worker_cpu_ms: float
    worker_cpu_source: str
    worker_cpu_origin: str
    shared_redis: bool
    shaper_cpu_us: float
    cpu_ms: float
    peak_per_second: float
    cores: float
    servers: int
    vcpu_per_server: int
    sending_servers: int
    capacity_per_second: float
    headroom: float
    redis_round_trips_per_second: float
    redis_load: float
    redis_instances: int
    rule: str


@attrs.frozen
class Assumption:
    """A figure the plan rests on, with its origin.

    Attributes:
        origin: ``planning_guide``, ``measured`` (docs/performance.md), ``calibrated``
            (measured on this machine), ``given`` (a workload field you set),
            ``assumed`` (mailscale's assumption) or ``override`` (your data override).
        source: where it comes from, in words (document and section, data file).
    """

    key: str
    label: str
    value: str
    origin: str
    source: str


@attrs.frozen
class Phase:
    """A roadmap phase with the tasks kept for this plan."""

    key: str
    months: tuple[int, int]
    tasks: tuple[str, ...]


def _plain(value: Any) -> Any:
    """Plain JSON types with sorted keys; whole floats become ints."""
    if attrs.has(type(value)):
        return _plain(attrs.asdict(value, recurse=False))
    if isinstance(value, Mapping):
        return {str(k): _plain(value[k]) for k in sorted(value, key=str)}
    if isinstance(value, frozenset):
        return sorted(_plain(v) for v in value)
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, bool) or value is None or isinstance(value, (str, int)):
        return value
    if isinstance(value, (float, Fraction)):
        as_float = float(value)
        return int(as_float) if as_float.is_integer() else round(as_float, 6)
    raise TypeError(f"cannot serialize {type(value).__name__}")  # pragma: no cover


@attrs.frozen
class Plan:
    """The infrastructure plan for a `Workload`: build it with `plan`.

    Every section keeps the rule that produced it; `explain` renders them as
    text and `to_dict` as stable, JSON-serializable data.
    """

    workload: Workload
    tier: TierChoice
    per_core_rate: float
    per_core_rate_source: str
    guide_per_core_rate: float
    measurement_method: str | None
    derived: tuple[Derived, ...]
    requirements: tuple[Requirement, ...]
    per_server: tuple[int, float]
    vps: tuple[VpsQuote, ...]
    esp: EspChoice
    feasibility: tuple[Feasibility, ...]
    hosting: HostingDecision
    tco: tuple[TcoEstimate, ...]
    kpis: tuple[KpiTarget, ...]
    roadmap: tuple[Phase, ...]
    setup: Setup
    dedicated_ips: DedicatedIps
    infrastructure_usd: float
    infrastructure_note: str
    recommendation_note: str | None
    fleet: Fleet | None = None
    assumptions: tuple[Assumption, ...] = ()

    def requirement(self, resource: str) -> Requirement:
        """The requirement for ``resource`` (``vcpu``, ``ram_gb``, ...), else `PlanningError`."""
        for requirement in self.requirements:
            if requirement.resource == resource:
                return requirement
        raise _unknown("resource", resource, [r.resource for r in self.requirements])

    def derived_value(self, key: str) -> float:
        """The derived figure ``key`` (``peak_hour_messages``, ...); unknown: `PlanningError`."""
        for item in self.derived:
            if item.key == key:
                return item.value
        raise _unknown("key", key, [item.key for item in self.derived])

    @property
    def cheapest(self) -> TcoEstimate:
        """The TCO option marked cheapest."""
        return next(option for option in self.tco if option.cheapest)

    @property
    def recommended(self) -> TcoEstimate:
        """The TCO option of the plan's setup."""
        return next(option for option in self.tco if option.recommended)

    def feasibility_for(self, esp: str) -> Feasibility:
        """The rate-limit feasibility of ``esp``; an unknown ESP raises `PlanningError`."""
        for item in self.feasibility:
            if item.esp == esp:
                return item
        raise _unknown("esp", esp, [item.esp for item in self.feasibility])

    def evaluate_kpis(self, observed: Mapping[str, object]) -> HealthReport:
        """Compare observed KPIs with this plan's targets (see `evaluate_kpis`)."""
        return evaluate_kpis(observed, targets=self.kpis)

    def to_dict(self) -> dict[str, Any]:
        """The plan as plain JSON types: keys sorted, whole numbers as ints."""
        data = {field.name: getattr(self, field.name) for field in attrs.fields(Plan)}
        data["workload"] = self.workload.to_dict()
        data["schema_version"] = SCHEMA_VERSION
        plain: dict[str, Any] = _plain(data)
        return plain

    def explain(self) -> str:
        """The reasoning, one step per line (``.splitlines()`` gives the list)."""
        from mailscale.planning._explain import explain_lines

        return "\n".join(explain_lines(self))


def _unknown(field: str, value: object, known: list[str]) -> PlanningError:
    return PlanningError(f"{field} {value!r} is not known; known: {', '.join(known)}", field=field)
