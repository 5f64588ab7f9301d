"""Infrastructure planners for high-volume email.

`plan` turns a `Workload` into a `Plan`: the volume tier and derived
requirements, VPS cost bands, the ESP choice with rate-limit feasibility,
self-hosted vs managed, total cost of ownership, KPI targets and a roadmap,
each with the rule behind it. The figures come from the data files under
``data/`` and can be overridden (`load_data`).
"""

from __future__ import annotations

from mailscale.planning._data import PlanningData, load_data, read_overrides
from mailscale.planning._kpi import (
    HealthReport,
    KpiResult,
    KpiTarget,
    default_kpi_targets,
    evaluate_kpis,
)
from mailscale.planning._measurements import Measurements
from mailscale.planning._model import (
    Criterion,
    Derived,
    EspChoice,
    Feasibility,
    HostingDecision,
    Phase,
    Plan,
    Requirement,
    TcoEstimate,
    TierChoice,
    VpsQuote,
)
from mailscale.planning._plan import plan, tier_for
from mailscale.planning._workload import (
    DEFAULT_HOURLY_COST_USD,
    DEFAULT_MESSAGE_SIZE_BYTES,
    DEFAULT_PEAK_HOUR_SHARE,
    DEFAULT_RETENTION_DAYS,
    DEFAULT_SENDS_PER_ADDRESS_PER_MONTH,
    MAX_MONTHLY_VOLUME,
    Workload,
)

__all__ = [
    "DEFAULT_HOURLY_COST_USD",
    "DEFAULT_MESSAGE_SIZE_BYTES",
    "DEFAULT_PEAK_HOUR_SHARE",
    "DEFAULT_RETENTION_DAYS",
    "DEFAULT_SENDS_PER_ADDRESS_PER_MONTH",
    "MAX_MONTHLY_VOLUME",
    "Criterion",
    "Derived",
    "EspChoice",
    "Feasibility",
    "HealthReport",
    "HostingDecision",
    "KpiResult",
    "KpiTarget",
    "Measurements",
    "Phase",
    "Plan",
    "PlanningData",
    "Requirement",
    "TcoEstimate",
    "TierChoice",
    "VpsQuote",
    "Workload",
    "default_kpi_targets",
    "evaluate_kpis",
    "load_data",
    "plan",
    "read_overrides",
    "tier_for",
]
