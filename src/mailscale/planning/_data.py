"""The planning brief's figures: TOML files under ``data/``, validated, overridable.

Each file ``data/<section>.toml`` becomes the section ``<section>`` of the data
(``tiers``, ``capacity``, ``vps``, ``esp``, ``hosting``, ``tco``, ``kpi``,
``roadmap``). Overrides use the same nesting and replace leaves (lists are
replaced whole); the merged result is validated again, and a bad value raises
`PlanningError` whose ``field`` is the dotted path (``esp.providers.ses.requests``).
"""

from __future__ import annotations

import copy
import functools
import itertools
import string
import sys
from collections.abc import Mapping
from importlib import resources
from typing import Any

import attrs

from mailscale.errors import PlanningError
from mailscale.planning._validate import (
    check_bool,
    check_choice,
    check_number,
    check_per_core_rate,
    check_text,
)

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10 only
    import tomli as tomllib

__all__ = [
    "Capacity",
    "EspLimits",
    "EspPricing",
    "Hosting",
    "IpRules",
    "KpiSpec",
    "Measured",
    "MeasuredFigure",
    "PhaseSpec",
    "PlanningData",
    "PricePlan",
    "TaskSpec",
    "TcoSpec",
    "TierSpec",
    "VpsProvider",
    "VpsShape",
    "VpsSize",
    "load_data",
    "read_overrides",
]

SECTIONS = (
    "capacity",
    "esp",
    "hosting",
    "ips",
    "kpi",
    "measured",
    "pricing",
    "roadmap",
    "tco",
    "tiers",
    "vps",
)
MEASURED_KEYS = (
    "worker_cpu_ms",
    "shaper_cpu_us",
    "redis_messages_per_second",
    "redis_batch_messages",
    "outbox_overhead_bytes",
)
CRITERIA = ("volume", "team", "custom_integration", "compliance")
TEAM_LEVELS = ("none", "some", "strong")
USE_CASES = ("transactional", "cold_outreach", "bulk_marketing", "enterprise")
COMPARATORS = ("<", "<=", ">", ">=")
KPI_KEYS = (
    "queue_depth",
    "processing_rate_per_minute",
    "delivery_p95_seconds",
    "bounce_rate",
    "api_response_seconds",
)
TASK_CONDITIONS = (
    "always",
    "self_hosted",
    "managed",
    "load_balanced",
    "multi_server",
    "multi_data_center",
    "several_ips",
    "single_ip",
    "several_keys",
    "custom_integration",
    "compliance_resources",
    "no_compliance_resources",
)
TASK_PLACEHOLDERS = (
    "esp",
    "keys",
    "scope",
    "servers",
    "ips",
    "vcpu_per_server",
    "ram_gb_per_server",
    "storage_gb",
    "hosting",
)
_MAX_MONEY = 1e9
_MAX_COUNT = 1e12

Pair = tuple[float, float]


@attrs.frozen
class TierSpec:
    """One volume tier of the brief; bands are lower-inclusive."""

    key: str
    min_volume: int
    max_volume: int | None
    vcpu: Pair
    ram_gb: Pair
    ssd_gb: Pair
    dedicated_ips: Pair
    monthly_cost_usd: Pair
    architecture: str
    servers: int
    multi_server: bool
    multi_data_center: bool
    open_ended: bool


@attrs.frozen
class Capacity:
    """Per-core figures of the brief plus mailscale's sizing assumptions."""

    emails_per_minute_per_core: float
    db_queries_per_second_per_core: float
    active_addresses_per_gb_ram: float
    stored_emails_per_gb: float
    db_queries_per_message: float
    max_vcpu_per_server: int
    max_ram_gb_per_server: int
    stored_overhead_bytes_per_message: float | None
    server_upkeep_hours: float = 0.0


@attrs.frozen
class VpsSize:
    """A server size a provider prices: the largest vCPU and RAM it covers."""

    key: str
    max_vcpu: int
    max_ram_gb: int


@attrs.frozen
class MeasuredFigure:
    """A per-message cost measured on this stack, with where and when it was measured.

    Attributes:
        source: the document and section that records the measurement and its command.
        date: the date it was measured there.
        detail: what was measured, in a few words.
    """

    key: str
    value: float
    unit: str
    source: str
    date: str
    detail: str


@attrs.frozen
class Measured:
    """The stack's measured per-message costs (``data/measured.toml``)."""

    worker_cpu_ms: MeasuredFigure
    shaper_cpu_us: MeasuredFigure
    redis_messages_per_second: MeasuredFigure
    redis_batch_messages: MeasuredFigure
    outbox_overhead_bytes: MeasuredFigure


@attrs.frozen
class VpsShape:
    """A server shape a provider sells: vCPU, RAM, included SSD and monthly price.

    Attributes:
        estimated: the price is mailscale's estimate, not read from a published list.
    """

    vcpu: int
    ram_gb: float
    ssd_gb: float
    usd: float
    estimated: bool = False


@attrs.frozen
class VpsProvider:
    """A VPS provider: the guide's price band per size, the shapes it sells, its strengths.

    Attributes:
        prices: the planning guide's [low, high] band per size (its view).
        shapes: the shapes the provider sells, cheapest first.
        storage_usd_per_gb: block storage beyond a shape's SSD, per GB and month.
        ips_per_server: the most public IPs one server can have (the first is included).
        extra_ip_usd: each IP beyond the first on a server, per month.
        source_date: the date of the source as found ("" when unknown).
        note: how the prices were found, and what is estimated.
    """

    key: str
    name: str
    strengths: tuple[str, ...]
    prices: tuple[tuple[str, Pair], ...]
    open_ended: frozenset[str]
    source: str = ""
    shapes: tuple[VpsShape, ...] = ()
    storage_usd_per_gb: float = 0.0
    ips_per_server: int = 1
    extra_ip_usd: float = 0.0
    source_date: str = ""
    note: str = ""

    def price(self, size: str) -> Pair:
        """The monthly [low, high] USD price of one server of ``size``."""
        return dict(self.prices)[size]


@attrs.frozen
class EspLimits:
    """An ESP's API limit, batch size and strengths."""

    key: str
    name: str
    requests: float
    window_seconds: float
    scope: str
    batch_size: int
    batch_unit: str
    quota_counts: str
    strengths: tuple[str, ...]

    @property
    def per_hour(self) -> float:
        """The limit expressed per hour and per scope (key, user, token, account)."""
        return self.requests * 3600.0 / self.window_seconds


@attrs.frozen
class Hosting:
    """The planning guide's self-hosted vs managed criteria, and mailscale's hybrid rule."""

    min_monthly_volume: int
    team_expertise: str
    min_criteria_met: int
    hybrid_criteria: tuple[str, ...] = ()
    hybrid_transactional_share: float = 0.1


@attrs.frozen
class PricePlan:
    """One plan of an ESP's price list: a monthly base with included emails, then overage.

    Attributes:
        estimated: a figure of the plan is mailscale's estimate, not from a published list.
    """

    name: str
    base_usd: float
    included: int
    per_1000_usd: float
    max_volume: int | None = None
    estimated: bool = False

    def cost(self, volume: int) -> float | None:
        """The plan's monthly cost at ``volume``; None when the plan does not go that high."""
        if self.max_volume is not None and volume > self.max_volume:
            return None
        extra = max(0, volume - self.included)
        return self.base_usd + extra * self.per_1000_usd / 1000


@attrs.frozen
class EspPricing:
    """An ESP's price list (see ``data/pricing.toml``).

    Attributes:
        source_date: the date of the source as found ("" when unknown).
        note: how the prices were found, and what is estimated.
        dedicated_ip_estimated: the dedicated-IP price is an estimate.
    """

    key: str
    source: str
    dedicated_ip_usd: float
    plans: tuple[PricePlan, ...]
    source_date: str = ""
    note: str = ""
    dedicated_ip_estimated: bool = False

    def cheapest(self, volume: int) -> tuple[PricePlan, float]:
        """The cheapest plan covering ``volume`` and its monthly cost."""
        costs = [
            (cost, i)
            for i, plan in enumerate(self.plans)
            if (cost := plan.cost(volume)) is not None
        ]
        cost, index = min(costs)
        return self.plans[index], cost


@attrs.frozen
class IpRules:
    """How many dedicated IPs the peak needs once warm, and the warm-up ramp."""

    emails_per_ip_per_hour: float
    min_ips: int
    warmup_daily_caps: tuple[int, ...]


@attrs.frozen
class TcoSpec:
    """One TCO option: engineering hours and compliance, and the guide's bands.

    Attributes:
        infrastructure_usd: the guide's infrastructure band, None when it gives none.
        guide_total_usd: the guide's total band, None when it gives none.
    """

    key: str
    name: str
    infrastructure_usd: Pair | None
    engineering_hours: float
    compliance_usd: Pair
    guide_total_usd: Pair | None


@attrs.frozen
class KpiSpec:
    """One KPI target: observed ``comparator`` target passes."""

    key: str
    label: str
    comparator: str
    target: float
    unit: str


@attrs.frozen
class TaskSpec:
    """A roadmap task template and the condition that keeps it."""

    when: str
    text: str


@attrs.frozen
class PhaseSpec:
    """A roadmap phase: its months and task templates."""

    key: str
    months: tuple[int, int]
    tasks: tuple[TaskSpec, ...]


@attrs.frozen
class PlanningData:
    """Every figure the planners use, validated. Build it with `load_data`."""

    tiers: tuple[TierSpec, ...]
    capacity: Capacity
    vps_sizes: tuple[VpsSize, ...]
    vps_providers: tuple[VpsProvider, ...]
    esps: tuple[EspLimits, ...]
    esp_bands: tuple[tuple[int, str], ...]
    esp_use_cases: tuple[tuple[str, str], ...]
    hosting: Hosting
    tco: tuple[TcoSpec, ...]
    kpis: tuple[KpiSpec, ...]
    roadmap: tuple[PhaseSpec, ...]
    pricing: tuple[EspPricing, ...] = ()
    pricing_checked: str = ""
    vps_checked: str = ""
    ips: IpRules = IpRules(25_000, 2, (1_000_000,))
    measured: Measured | None = None
    overridden: frozenset[str] = frozenset()

    def esp_pricing(self, key: str) -> EspPricing:
        """The price list of the ESP named ``key``."""
        for pricing in self.pricing:
            if pricing.key == key:
                return pricing
        raise KeyError(key)

    def tco_spec(self, key: str) -> TcoSpec | None:
        """The TCO figures of option ``key``, None when the data has none."""
        return next((spec for spec in self.tco if spec.key == key), None)

    def esp(self, key: str) -> EspLimits:
        """The ESP named ``key`` (``sendgrid``, ``mailgun``, ``postmark``, ``ses``)."""
        for esp in self.esps:
            if esp.key == key:
                return esp
        raise KeyError(key)


class _Table:
    """A TOML table being read: every read names its dotted field; leftovers are errors."""

    def __init__(self, raw: object, path: str) -> None:
        if not isinstance(raw, Mapping):
            raise PlanningError(f"{path} must be a table, got {type(raw).__name__}", field=path)
        self.raw: Mapping[str, Any] = raw
        self.path = path
        self._used: set[str] = set()

    def field(self, key: str) -> str:
        return f"{self.path}.{key}" if self.path else key

    def get(self, key: str) -> Any:
        if key not in self.raw:
            raise PlanningError(f"{self.field(key)} is missing", field=self.field(key))
        self._used.add(key)
        return self.raw[key]

    def has(self, key: str) -> bool:
        return key in self.raw

    def number(
        self, key: str, *, integer: bool = False, zero: bool = False, maximum: float = _MAX_COUNT
    ) -> float:
        return check_number(
            self.get(key), self.field(key), integer=integer, allow_minimum=zero, maximum=maximum
        )

    def integer(self, key: str, *, zero: bool = False) -> int:
        return int(self.number(key, integer=True, zero=zero))

    def pair(self, key: str, *, zero: bool = False, maximum: float = _MAX_COUNT) -> Pair:
        value, field = self.get(key), self.field(key)
        if not isinstance(value, list) or len(value) != 2:
            raise PlanningError(f"{field} must be a [low, high] pair", field=field)
        low = check_number(value[0], f"{field}[0]", allow_minimum=zero, maximum=maximum)
        high = check_number(value[1], f"{field}[1]", allow_minimum=zero, maximum=maximum)
        if low > high:
            raise PlanningError(f"{field} must have low <= high, got {value!r}", field=field)
        return (low, high)

    def text(self, key: str) -> str:
        return check_text(self.get(key), self.field(key))

    def optional_text(self, key: str) -> str:
        """A string that may be empty or absent ("")."""
        if not self.has(key):
            return ""
        value = self.get(key)
        if not isinstance(value, str):
            field = self.field(key)
            raise PlanningError(f"{field} must be a string, got {value!r}", field=field)
        return value

    def choice(self, key: str, choices: tuple[str, ...]) -> str:
        return check_choice(self.get(key), self.field(key), choices)

    def flag(self, key: str) -> bool:
        return check_bool(self.get(key), self.field(key))

    def texts(self, key: str) -> tuple[str, ...]:
        value, field = self.get(key), self.field(key)
        if not isinstance(value, list):
            raise PlanningError(f"{field} must be a list of strings", field=field)
        return tuple(check_text(item, f"{field}[{i}]") for i, item in enumerate(value))

    def table(self, key: str) -> _Table:
        return _Table(self.get(key), self.field(key))

    def tables(self) -> list[tuple[str, _Table]]:
        """Every entry, each read as a table (for sections keyed by name)."""
        if not self.raw:
            raise PlanningError(f"{self.path} must not be empty", field=self.path)
        return [(key, self.table(key)) for key in self.raw]

    def done(self) -> None:
        for key in self.raw:
            if key not in self._used:
                field = self.field(key)
                raise PlanningError(f"{field} is not a known field", field=field)


def _repeated(first: str, second: str, changed: frozenset[str]) -> tuple[str, str]:
    """Of two fields holding the same boundary, (the one to name, the other).

    The one an override changed is named; with neither or both changed, the second.
    """
    if first in changed and second not in changed:
        return first, second
    return second, first


def _tiers(section: _Table, changed: frozenset[str]) -> tuple[TierSpec, ...]:
    rows = []
    for key, t in section.tables():
        rows.append(
            TierSpec(
                key=key,
                max_volume=None,
                min_volume=t.integer("min_volume"),
                vcpu=t.pair("vcpu"),
                ram_gb=t.pair("ram_gb"),
                ssd_gb=t.pair("ssd_gb"),
                dedicated_ips=t.pair("dedicated_ips"),
                monthly_cost_usd=t.pair("monthly_cost_usd", maximum=_MAX_MONEY),
                architecture=t.text("architecture"),
                servers=t.integer("servers"),
                multi_server=t.flag("multi_server"),
                multi_data_center=t.flag("multi_data_center"),
                open_ended=t.flag("open_ended"),
            )
        )
        t.done()
    rows.sort(key=lambda row: row.min_volume)
    for before, after in itertools.pairwise(rows):
        if before.min_volume == after.min_volume:
            field, other = _repeated(
                f"tiers.{before.key}.min_volume", f"tiers.{after.key}.min_volume", changed
            )
            raise PlanningError(f"{field} repeats {other} ({after.min_volume:,})", field=field)
    tiers = [
        attrs.evolve(row, max_volume=after.min_volume) for row, after in itertools.pairwise(rows)
    ]
    tiers.append(rows[-1])
    section.done()
    return tuple(tiers)


def _capacity(c: _Table) -> Capacity:
    capacity = Capacity(
        emails_per_minute_per_core=check_per_core_rate(
            c.get("emails_per_minute_per_core"), c.field("emails_per_minute_per_core")
        ),
        db_queries_per_second_per_core=c.number("db_queries_per_second_per_core"),
        active_addresses_per_gb_ram=c.number("active_addresses_per_gb_ram"),
        stored_emails_per_gb=c.number("stored_emails_per_gb"),
        db_queries_per_message=c.number("db_queries_per_message", zero=True),
        max_vcpu_per_server=c.integer("max_vcpu_per_server"),
        max_ram_gb_per_server=c.integer("max_ram_gb_per_server"),
        # Read for one release: the measured figure (measured.outbox_overhead_bytes)
        # replaced it; when given it still wins.
        stored_overhead_bytes_per_message=(
            c.number("stored_overhead_bytes_per_message", zero=True, maximum=10**8)
            if c.has("stored_overhead_bytes_per_message")
            else None
        ),
        server_upkeep_hours=c.number("server_upkeep_hours", zero=True, maximum=1_000),
    )
    c.done()
    return capacity


def _vps(v: _Table, capacity: Capacity) -> tuple[tuple[VpsSize, ...], tuple[VpsProvider, ...], str]:
    sizes_table = v.table("sizes")
    sizes = []
    for key, s in sizes_table.tables():
        sizes.append(
            VpsSize(key=key, max_vcpu=s.integer("max_vcpu"), max_ram_gb=s.integer("max_ram_gb"))
        )
        s.done()
    sizes_table.done()
    sizes.sort(key=lambda size: (size.max_vcpu, size.max_ram_gb))
    largest = sizes[-1]
    if (
        largest.max_vcpu < capacity.max_vcpu_per_server
        or largest.max_ram_gb < capacity.max_ram_gb_per_server
    ):
        field = f"vps.sizes.{largest.key}"
        raise PlanningError(
            f"{field} must cover the largest server (capacity.max_vcpu_per_server, "
            "capacity.max_ram_gb_per_server)",
            field=field,
        )
    size_keys = tuple(size.key for size in sizes)
    providers_table = v.table("providers")
    providers = []
    for key, p in providers_table.tables():
        prices = tuple((size, p.pair(size, maximum=_MAX_MONEY)) for size in size_keys)
        open_ended = p.texts("open_ended")
        for i, size in enumerate(open_ended):
            check_choice(size, f"{p.field('open_ended')}[{i}]", size_keys)
        providers.append(
            VpsProvider(
                key=key,
                name=p.text("name"),
                strengths=p.texts("strengths"),
                prices=prices,
                open_ended=frozenset(open_ended),
                source=p.text("source"),
                source_date=p.optional_text("source_date"),
                note=p.optional_text("note"),
                shapes=_shapes(p),
                storage_usd_per_gb=p.number("storage_usd_per_gb", zero=True, maximum=1_000),
                ips_per_server=p.integer("ips_per_server"),
                extra_ip_usd=p.number("extra_ip_usd", zero=True, maximum=10_000),
            )
        )
        p.done()
    providers_table.done()
    checked = v.text("checked")
    v.done()
    return tuple(sizes), tuple(providers), checked


def _rows(t: _Table, key: str) -> list[_Table]:
    """A list of inline tables under ``key``, each read as a table; empty is an error."""
    raw, field = t.get(key), t.field(key)
    if not isinstance(raw, list) or not raw:
        raise PlanningError(f"{field} must be a non-empty list of tables", field=field)
    return [_Table(item, f"{field}[{i}]") for i, item in enumerate(raw)]


def _shapes(p: _Table) -> tuple[VpsShape, ...]:
    shapes = []
    for s in _rows(p, "shapes"):
        shapes.append(
            VpsShape(
                vcpu=s.integer("vcpu"),
                ram_gb=s.number("ram_gb"),
                ssd_gb=s.number("ssd_gb", zero=True),
                usd=s.number("usd", maximum=_MAX_MONEY),
                estimated=s.flag("estimated") if s.has("estimated") else False,
            )
        )
        s.done()
    return tuple(sorted(shapes, key=lambda shape: (shape.usd, shape.vcpu, shape.ram_gb)))


def _pricing(t: _Table, esp_keys: tuple[str, ...]) -> tuple[str, tuple[EspPricing, ...]]:
    checked = t.text("checked")
    esp_table = t.table("esp")
    prices = []
    for key in esp_keys:
        if not esp_table.has(key):
            field = esp_table.field(key)
            raise PlanningError(f"{field} is missing: every ESP needs a price list", field=field)
    for key, e in esp_table.tables():
        check_choice(key, e.path, esp_keys)
        plans = []
        for row in _rows(e, "plans"):
            plans.append(
                PricePlan(
                    name=row.text("name"),
                    base_usd=row.number("base_usd", zero=True, maximum=_MAX_MONEY),
                    included=row.integer("included", zero=True),
                    per_1000_usd=row.number("per_1000_usd", zero=True, maximum=_MAX_MONEY),
                    max_volume=row.integer("max_volume") if row.has("max_volume") else None,
                    estimated=row.flag("estimated") if row.has("estimated") else False,
                )
            )
            row.done()
        if all(plan.max_volume is not None for plan in plans):
            field = e.field("plans")
            raise PlanningError(
                f"{field} needs a plan without max_volume (any volume)", field=field
            )
        prices.append(
            EspPricing(
                key=key,
                source=e.text("source"),
                dedicated_ip_usd=e.number("dedicated_ip_usd", zero=True, maximum=_MAX_MONEY),
                plans=tuple(plans),
                source_date=e.optional_text("source_date"),
                note=e.optional_text("note"),
                dedicated_ip_estimated=(
                    e.flag("dedicated_ip_estimated") if e.has("dedicated_ip_estimated") else False
                ),
            )
        )
        e.done()
    esp_table.done()
    t.done()
    return checked, tuple(prices)


def _measured(m: _Table) -> Measured:
    figures = {}
    for key in MEASURED_KEYS:
        f = m.table(key)
        figures[key] = MeasuredFigure(
            key=key,
            value=f.number("value", maximum=10**9),
            unit=f.text("unit"),
            source=f.text("source"),
            date=f.text("date"),
            detail=f.text("detail"),
        )
        f.done()
    m.done()
    return Measured(**figures)


def _ips(t: _Table) -> IpRules:
    raw, field = t.get("warmup_daily_caps"), t.field("warmup_daily_caps")
    if not isinstance(raw, list) or not raw:
        raise PlanningError(f"{field} must be a non-empty list of daily caps", field=field)
    caps = tuple(int(check_number(cap, f"{field}[{i}]", integer=True)) for i, cap in enumerate(raw))
    for i, (before, after) in enumerate(itertools.pairwise(caps)):
        if after < before:
            raise PlanningError(
                f"{field}[{i + 1}] must not be below the day before", field=f"{field}[{i + 1}]"
            )
    rules = IpRules(
        emails_per_ip_per_hour=t.number("emails_per_ip_per_hour"),
        min_ips=t.integer("min_ips"),
        warmup_daily_caps=caps,
    )
    t.done()
    return rules


def _esp(
    e: _Table, changed: frozenset[str]
) -> tuple[tuple[EspLimits, ...], tuple[tuple[int, str], ...], tuple[tuple[str, str], ...]]:
    providers_table = e.table("providers")
    esps = []
    for key, p in providers_table.tables():
        esps.append(
            EspLimits(
                key=key,
                name=p.text("name"),
                requests=p.number("requests"),
                window_seconds=p.number("window_seconds", maximum=366 * 86400),
                scope=p.text("scope"),
                batch_size=p.integer("batch_size"),
                batch_unit=p.text("batch_unit"),
                quota_counts=p.choice("quota_counts", ("requests", "recipients")),
                strengths=p.texts("strengths"),
            )
        )
        p.done()
    providers_table.done()
    keys = tuple(esp.key for esp in esps)
    selection = e.table("selection")
    bands_table = selection.table("bands")
    bands: list[tuple[int, str]] = []
    for key in bands_table.raw:
        check_choice(key, f"{bands_table.path}.{key}", keys)
        bands.append((bands_table.integer(key, zero=True), key))
    if not bands:
        raise PlanningError(f"{bands_table.path} must not be empty", field=bands_table.path)
    bands.sort()
    for (low, before), (high, after) in itertools.pairwise(bands):
        if low == high:
            field, other = _repeated(
                f"{bands_table.path}.{before}", f"{bands_table.path}.{after}", changed
            )
            raise PlanningError(
                f"{field} repeats the band of {other.rsplit('.', 1)[1]} ({low:,})", field=field
            )
    bands_table.done()
    use_table = selection.table("use_cases")
    use_cases = tuple(
        (use_case, use_table.choice(use_case, (*keys, "volume"))) for use_case in USE_CASES
    )
    use_table.done()
    selection.done()
    e.done()
    return tuple(esps), tuple(bands), use_cases


def _hosting(h: _Table) -> Hosting:
    hosting = Hosting(
        min_monthly_volume=h.integer("min_monthly_volume"),
        team_expertise=h.choice("team_expertise", TEAM_LEVELS),
        min_criteria_met=h.integer("min_criteria_met"),
        hybrid_criteria=tuple(
            check_choice(item, f"{h.field('hybrid_criteria')}[{i}]", CRITERIA)
            for i, item in enumerate(h.texts("hybrid_criteria"))
        ),
        hybrid_transactional_share=h.number("hybrid_transactional_share", maximum=1.0),
    )
    if hosting.min_criteria_met > 4:
        field = h.field("min_criteria_met")
        raise PlanningError(f"{field} must be at most 4 (there are four criteria)", field=field)
    h.done()
    return hosting


def _tco(t: _Table) -> tuple[TcoSpec, ...]:
    options_table = t.table("options")
    options = []
    for key, o in options_table.tables():
        # brief_total_usd: the old name of guide_total_usd, read for one release.
        total_key = (
            "brief_total_usd"
            if o.has("brief_total_usd") and not o.has("guide_total_usd")
            else "guide_total_usd"
        )
        if o.has("brief_total_usd") and total_key == "guide_total_usd":
            o.get("brief_total_usd")  # both given: the new name wins
        options.append(
            TcoSpec(
                key=key,
                name=o.text("name"),
                infrastructure_usd=(
                    o.pair("infrastructure_usd", zero=True, maximum=_MAX_MONEY)
                    if o.has("infrastructure_usd")
                    else None
                ),
                engineering_hours=o.number("engineering_hours", zero=True, maximum=10_000),
                compliance_usd=o.pair("compliance_usd", zero=True, maximum=_MAX_MONEY),
                guide_total_usd=(
                    o.pair(total_key, zero=True, maximum=_MAX_MONEY) if o.has(total_key) else None
                ),
            )
        )
        o.done()
    options_table.done()
    t.done()
    return tuple(options)


def _kpis(k: _Table) -> tuple[KpiSpec, ...]:
    kpis = []
    for key in KPI_KEYS:
        s = k.table(key)
        kpis.append(
            KpiSpec(
                key=key,
                label=s.text("label"),
                comparator=s.choice("comparator", COMPARATORS),
                target=s.number("target"),
                unit=s.text("unit"),
            )
        )
        s.done()
    k.done()
    return tuple(kpis)


def _check_template(text: str, field: str) -> None:
    """Refuse a task template that ``str.format`` would reject or reshape."""
    try:
        parts = list(string.Formatter().parse(text))
    except ValueError as exc:  # an unmatched brace
        raise PlanningError(
            f"{field} is not a valid template ({exc}); write a literal brace as {{{{ or }}}}",
            field=field,
        ) from None
    for _, name, spec, conversion in parts:
        if name is None:
            continue
        if name not in TASK_PLACEHOLDERS:
            raise PlanningError(
                f"{field} uses unknown placeholder {{{name}}}; known: "
                + ", ".join(TASK_PLACEHOLDERS),
                field=field,
            )
        if spec or conversion:
            shown = (
                "{"
                + name
                + (f"!{conversion}" if conversion else "")
                + (f":{spec}" if spec else "")
                + "}"
            )
            raise PlanningError(
                f"{field} uses {shown}: placeholders take no conversion or format spec, "
                f"write {{{name}}}",
                field=field,
            )


def _roadmap(r: _Table) -> tuple[PhaseSpec, ...]:
    phases = []
    for key, p in r.tables():
        low, high = p.pair("months")
        field = p.field("months")
        if low != int(low) or high != int(high) or low < 1:
            raise PlanningError(f"{field} must be whole months from 1", field=field)
        raw_tasks, tasks_field = p.get("tasks"), p.field("tasks")
        if not isinstance(raw_tasks, list):
            raise PlanningError(f"{tasks_field} must be a list of tasks", field=tasks_field)
        tasks = []
        for i, raw in enumerate(raw_tasks):
            task = _Table(raw, f"{tasks_field}[{i}]")
            when = task.choice("when", TASK_CONDITIONS)
            text = task.text("text")
            _check_template(text, task.field("text"))
            task.done()
            tasks.append(TaskSpec(when=when, text=text))
        phases.append(PhaseSpec(key=key, months=(int(low), int(high)), tasks=tuple(tasks)))
        p.done()
    phases.sort(key=lambda phase: phase.months)
    r.done()
    return tuple(phases)


def _build(raw: Mapping[str, Any], changed: frozenset[str] = frozenset()) -> PlanningData:
    root = _Table(raw, "")
    capacity = _capacity(root.table("capacity"))
    sizes, providers, vps_checked = _vps(root.table("vps"), capacity)
    esps, bands, use_cases = _esp(root.table("esp"), changed)
    pricing_checked, pricing = _pricing(root.table("pricing"), tuple(e.key for e in esps))
    data = PlanningData(
        tiers=_tiers(root.table("tiers"), changed),
        capacity=capacity,
        vps_sizes=sizes,
        vps_providers=providers,
        esps=esps,
        esp_bands=bands,
        esp_use_cases=use_cases,
        hosting=_hosting(root.table("hosting")),
        tco=_tco(root.table("tco")),
        kpis=_kpis(root.table("kpi")),
        roadmap=_roadmap(root.table("roadmap")),
        pricing=pricing,
        pricing_checked=pricing_checked,
        vps_checked=vps_checked,
        ips=_ips(root.table("ips")),
        measured=_measured(root.table("measured")),
        overridden=changed,
    )
    root.done()
    return data


@functools.lru_cache(maxsize=1)
def _default_raw() -> dict[str, Any]:
    folder = resources.files("mailscale.planning") / "data"
    return {name: tomllib.loads((folder / f"{name}.toml").read_text("utf-8")) for name in SECTIONS}


@functools.lru_cache(maxsize=1)
def _default_data() -> PlanningData:
    return _build(_default_raw())


def _leaves(value: Any, path: str) -> set[str]:
    """The dotted paths of every leaf under ``value``."""
    if isinstance(value, Mapping):
        return set().union(*(_leaves(v, f"{path}.{k}") for k, v in value.items()), set())
    return {path}


def _merge(
    base: dict[str, Any], overrides: Mapping[str, Any], path: str, changed: set[str]
) -> None:
    """Merge ``overrides`` into ``base``, adding the dotted path of each leaf set to ``changed``."""
    for key, value in overrides.items():
        field = f"{path}.{key}" if path else str(key)
        if not isinstance(key, str):
            raise PlanningError(f"{field}: override keys must be strings", field=field)
        if isinstance(value, Mapping):
            current = base.get(key)
            if current is None:
                base[key] = copy.deepcopy(dict(value))
                changed |= _leaves(value, field)
            elif isinstance(current, dict):
                _merge(current, value, field, changed)
            else:
                raise PlanningError(
                    f"{field} must be a {type(current).__name__}, not a table", field=field
                )
        else:
            if isinstance(base.get(key), dict):
                raise PlanningError(f"{field} must be a table", field=field)
            base[key] = copy.deepcopy(value)
            changed.add(field)


def load_data(overrides: Mapping[str, Any] | None = None) -> PlanningData:
    """Return the brief's figures, with ``overrides`` merged in and validated.

    The default files are read and validated once per process.

    Args:
        overrides: nested mapping with the layout of the data files, e.g.
            ``{"esp": {"providers": {"sendgrid": {"requests": 3000}}}}``.

    Raises:
        PlanningError: an override is unknown or invalid; ``field`` names it.
    """
    if not overrides:
        return _default_data()
    if not isinstance(overrides, Mapping):
        raise PlanningError("overrides must be a mapping of sections", field="overrides")
    for key in overrides:
        if key not in SECTIONS:
            raise PlanningError(
                f"{key} is not a planning data section; known: {', '.join(SECTIONS)}",
                field=str(key),
            )
    raw = copy.deepcopy(_default_raw())
    changed: set[str] = set()
    _merge(raw, overrides, "", changed)
    return _build(raw, frozenset(changed))


def read_overrides(text: str, *, source: str = "overrides") -> dict[str, Any]:
    """Parse TOML override text (the data files' layout) into a mapping.

    Raises:
        PlanningError: the text is not valid TOML.
    """
    try:
        data: dict[str, Any] = tomllib.loads(text)
        return data
    except tomllib.TOMLDecodeError as exc:
        raise PlanningError(f"{source} is not valid TOML: {exc}", field=source) from None
