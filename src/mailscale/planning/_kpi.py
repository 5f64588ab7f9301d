"""KPI targets and the health report of observed values against them."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from fractions import Fraction

import attrs

from mailscale.errors import PlanningError
from mailscale.planning._validate import check_number

__all__ = ["HealthReport", "KpiResult", "KpiTarget", "default_kpi_targets", "evaluate_kpis"]

# The largest value each KPI can sensibly take; a bounce rate is a fraction.
_MAXIMA = {"bounce_rate": 1.0}


@attrs.frozen
class KpiTarget:
    """A KPI target: an observed value passes when ``observed comparator target``.

    Attributes:
        source: ``"planning_guide"``, or ``"peak rate"`` when the plan raised the target.
    """

    key: str
    label: str
    comparator: str
    target: float
    unit: str
    source: str = "planning_guide"


@attrs.frozen
class KpiResult:
    """One KPI evaluated: pass or fail, and the margin.

    Attributes:
        margin: how far the observed value is on the passing side of the target
            (negative when it fails): ``target - observed`` for ``<``/``<=``,
            ``observed - target`` for ``>``/``>=``.
    """

    key: str
    label: str
    comparator: str
    target: float
    unit: str
    observed: float
    passed: bool
    margin: float


@attrs.frozen
class HealthReport:
    """Observed KPIs against their targets.

    Attributes:
        results: one result per observed KPI, in the targets' order.
        missing: targets with no observed value (they neither pass nor fail).
    """

    results: tuple[KpiResult, ...]
    missing: tuple[str, ...]

    @property
    def healthy(self) -> bool:
        """Every observed KPI passed."""
        return all(result.passed for result in self.results)

    @property
    def failed(self) -> tuple[KpiResult, ...]:
        """The KPIs that failed."""
        return tuple(result for result in self.results if not result.passed)

    def result(self, key: str) -> KpiResult:
        """The result for KPI ``key``."""
        for result in self.results:
            if result.key == key:
                return result
        raise KeyError(key)

    def to_dict(self) -> dict[str, object]:
        """Plain JSON types."""
        return {
            "healthy": self.healthy,
            "missing": list(self.missing),
            "results": [dict(sorted(attrs.asdict(r).items())) for r in self.results],
        }


def default_kpi_targets() -> tuple[KpiTarget, ...]:
    """The brief's KPI targets, as the data files hold them."""
    from mailscale.planning._data import load_data

    return tuple(
        KpiTarget(k.key, k.label, k.comparator, k.target, k.unit) for k in load_data().kpis
    )


def _passes(observed: float, comparator: str, target: float) -> bool:
    if comparator == "<":
        return observed < target
    if comparator == "<=":
        return observed <= target
    if comparator == ">":
        return observed > target
    return observed >= target


def _checked_targets(targets: object) -> tuple[KpiTarget, ...]:
    if isinstance(targets, (str, bytes)) or not isinstance(targets, Iterable):
        raise PlanningError(
            f"targets must be a sequence of KpiTarget, got {type(targets).__name__}",
            field="targets",
        )
    checked = tuple(targets)
    for i, target in enumerate(checked):
        if not isinstance(target, KpiTarget):
            raise PlanningError(
                f"targets[{i}] must be a KpiTarget, got {type(target).__name__}",
                field="targets",
            )
    return checked


def evaluate_kpis(
    observed: Mapping[str, object],
    *,
    targets: Sequence[KpiTarget] | None = None,
) -> HealthReport:
    """Compare observed KPI values with their targets.

    Args:
        observed: values by KPI key (``queue_depth``, ``processing_rate_per_minute``,
            ``delivery_p95_seconds``, ``bounce_rate`` as a fraction,
            ``api_response_seconds``); any subset.
        targets: the targets; default: the brief's (a `Plan` passes its own).

    Raises:
        PlanningError: an unknown KPI key, or a value that is not a finite,
            non-negative number; ``field`` names it.
    """
    if not isinstance(observed, Mapping):
        raise PlanningError(
            f"observed must be a mapping of KPI values, got {type(observed).__name__}",
            field="observed",
        )
    targets = default_kpi_targets() if targets is None else _checked_targets(targets)
    known = {target.key for target in targets}
    for key in observed:
        if key not in known:
            raise PlanningError(
                f"{key!r} is not a KPI; known: {', '.join(sorted(known))}", field=str(key)
            )
    results = []
    missing = []
    for target in targets:
        if target.key not in observed:
            missing.append(target.key)
            continue
        value = check_number(
            observed[target.key],
            target.key,
            allow_minimum=True,
            maximum=_MAXIMA.get(target.key, 1e12),
        )
        # Exact decimal difference: 0.01 - 0.014 is -0.004, not -0.004000000000000001.
        difference = Fraction(repr(float(target.target))) - Fraction(repr(value))
        margin = float(difference if target.comparator in ("<", "<=") else -difference)
        results.append(
            KpiResult(
                key=target.key,
                label=target.label,
                comparator=target.comparator,
                target=target.target,
                unit=target.unit,
                observed=value,
                passed=_passes(value, target.comparator, target.target),
                margin=margin,
            )
        )
    return HealthReport(tuple(results), tuple(missing))
