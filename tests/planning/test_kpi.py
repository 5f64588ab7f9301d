"""KPI targets and evaluate_kpis."""

from __future__ import annotations

import math

import pytest

from mailscale.errors import PlanningError
from mailscale.planning import Workload, evaluate_kpis, plan

from .planning_brief import KPIS, peak_hour

GOOD = {
    "queue_depth": 10,
    "processing_rate_per_minute": 150,
    "delivery_p95_seconds": 120,
    "bounce_rate": 0.005,
    "api_response_seconds": 0.3,
}


class TestTargets:
    def test_brief_targets(self) -> None:
        """The plan's KPI targets are the brief's when the peak is under 100/minute."""
        p = plan(Workload(monthly_volume=250_000))
        assert KPIS == {k.key: (k.comparator, k.target) for k in p.kpis}
        assert {"planning_guide"} == {k.source for k in p.kpis}

    def test_processing_target_raised_to_peak(self) -> None:
        """2M/month peaks at 6,576/hour = 109.6/minute: the target becomes 110."""
        p = plan(Workload(monthly_volume=2_000_000))
        rate = next(k for k in p.kpis if k.key == "processing_rate_per_minute")
        assert (math.ceil(peak_hour(2_000_000) / 60), "peak rate") == (rate.target, rate.source)
        assert 110 == rate.target

    def test_target_override(self) -> None:
        """A caller's own target replaces the brief's."""
        p = plan(
            Workload(monthly_volume=250_000), overrides={"kpi": {"queue_depth": {"target": 500}}}
        )
        assert 500 == next(k.target for k in p.kpis if k.key == "queue_depth")


class TestEvaluate:
    def test_all_pass_with_margins(self) -> None:
        """Each KPI passes, with its margin on the passing side."""
        report = evaluate_kpis(GOOD)
        assert report.healthy
        assert () == report.missing
        margins = {r.key: r.margin for r in report.results}
        assert {
            "queue_depth": 90,
            "processing_rate_per_minute": 50,
            "delivery_p95_seconds": 180,
            "bounce_rate": 0.005,
            "api_response_seconds": 0.7,
        } == pytest.approx(margins)

    @pytest.mark.parametrize(
        ("key", "value", "passed"),
        [
            ("queue_depth", 99, True),
            ("queue_depth", 100, False),
            ("processing_rate_per_minute", 100, True),
            ("processing_rate_per_minute", 99.9, False),
            ("delivery_p95_seconds", 299.9, True),
            ("delivery_p95_seconds", 300, False),
            ("bounce_rate", 0.0099, True),
            ("bounce_rate", 0.01, False),
            ("api_response_seconds", 0.999, True),
            ("api_response_seconds", 1.0, False),
        ],
    )
    def test_thresholds(self, key: str, value: float, passed: bool) -> None:
        """'<' targets fail at the target; '>=' targets pass at it."""
        report = evaluate_kpis({key: value})
        comparator, target = KPIS[key]
        result = report.result(key)
        assert passed == result.passed
        assert passed == report.healthy
        expected = target - value if comparator == "<" else value - target
        assert expected == pytest.approx(result.margin)

    def test_failure_has_negative_margin(self) -> None:
        """A 2% bounce rate fails by one percentage point."""
        result = evaluate_kpis({"bounce_rate": 0.02}).result("bounce_rate")
        assert (False, -0.01) == (result.passed, result.margin)

    def test_missing_are_listed(self) -> None:
        """KPIs without an observation are listed as missing, not failed."""
        report = evaluate_kpis({"queue_depth": 5})
        assert ["queue_depth"] == [r.key for r in report.results]
        assert sorted(set(KPIS) - {"queue_depth"}) == sorted(report.missing)
        assert report.healthy

    def test_plan_uses_its_raised_target(self) -> None:
        """At 2M/month, 105/minute passes the brief but fails the plan's 110."""
        p = plan(Workload(monthly_volume=2_000_000))
        assert evaluate_kpis({"processing_rate_per_minute": 105}).healthy
        report = p.evaluate_kpis({"processing_rate_per_minute": 105})
        assert (False, -5) == (report.healthy, report.result("processing_rate_per_minute").margin)
        assert ["processing_rate_per_minute"] == [r.key for r in report.failed]

    def test_report_to_dict(self) -> None:
        """The report serializes to plain types."""
        data = evaluate_kpis({"queue_depth": 120}).to_dict()
        assert False is data["healthy"]
        assert -20 == data["results"][0]["margin"]

    @pytest.mark.parametrize(
        ("observed", "field"),
        [
            ({"queue_lenght": 3}, "queue_lenght"),
            ({"queue_depth": -1}, "queue_depth"),
            ({"queue_depth": float("nan")}, "queue_depth"),
            ({"delivery_p95_seconds": float("inf")}, "delivery_p95_seconds"),
            ({"bounce_rate": 1.5}, "bounce_rate"),
            ({"api_response_seconds": "fast"}, "api_response_seconds"),
            ({"queue_depth": True}, "queue_depth"),
        ],
    )
    def test_bad_observations(self, observed: dict[str, object], field: str) -> None:
        """Unknown KPIs and bad values raise PlanningError naming the KPI."""
        with pytest.raises(PlanningError) as info:
            evaluate_kpis(observed)
        assert field == info.value.field
        assert field in str(info.value)

    def test_not_a_mapping(self) -> None:
        """Observations must be a mapping."""
        with pytest.raises(PlanningError) as info:
            evaluate_kpis([("queue_depth", 3)])  # type: ignore[arg-type]
        assert "observed" == info.value.field
