"""Edge cases found by an audit of the planners: each gets a typed, named error."""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from fractions import Fraction
from typing import Any

import pytest

from mailscale.errors import PlanningError
from mailscale.planning import Workload, evaluate_kpis, load_data, plan

RunCli = Callable[..., tuple[int, str, str]]


class TestHugeAndSignalingNumbers:
    @pytest.mark.parametrize(
        "value", [10**400, -(10**400), Fraction(10**400), Decimal("sNaN"), Decimal("-sNaN"),
                  Decimal("1e400"), 10**5000],
        ids=["int", "negative-int", "fraction", "snan", "negative-snan", "decimal", "int-5000"],
    )
    def test_workload_volume(self, value: Any) -> None:
        """Numbers beyond a float or signaling NaNs raise PlanningError naming the field."""
        with pytest.raises(PlanningError) as info:
            Workload(monthly_volume=value)
        assert "monthly_volume" == info.value.field
        assert "monthly_volume" in str(info.value)

    def test_huge_volume_says_at_most(self) -> None:
        """A volume beyond a float's range is refused as too large, not as not finite."""
        with pytest.raises(PlanningError, match="at most"):
            Workload(monthly_volume=10**400)

    def test_kpi_value(self) -> None:
        """An observed KPI beyond a float's range names the KPI."""
        with pytest.raises(PlanningError) as info:
            evaluate_kpis({"queue_depth": 10**400})
        assert "queue_depth" == info.value.field

    def test_capacity_override(self) -> None:
        """An override beyond a float's range names its dotted path."""
        field = "capacity.emails_per_minute_per_core"
        with pytest.raises(PlanningError) as info:
            load_data({"capacity": {"emails_per_minute_per_core": 10**400}})
        assert field == info.value.field
        assert field in str(info.value)

    @pytest.mark.parametrize(
        ("args", "field"),
        [
            (["plan", "1e400"], "monthly_volume"),
            (["plan", "1e999999999"], "monthly_volume"),
            (["plan", "250k", "--retention-days", "1e400"], "retention_days"),
            (["plan", "250k", "--hourly-cost", "1e400"], "hourly_cost_usd"),
        ],
    )
    def test_cli(self, run_cli: RunCli, args: list[str], field: str) -> None:
        """The CLI prints one line naming the field, exit status 2, no traceback."""
        code, out, err = run_cli(*args)
        assert (2, "") == (code, out)
        assert err.startswith(f"mailscale: error: {field} ")
        assert 1 == len(err.splitlines())


def _one_task(text: str) -> dict[str, Any]:
    return {"roadmap": {"foundation": {"tasks": [{"when": "always", "text": text}]}}}


class TestRoadmapTemplates:
    @pytest.mark.parametrize(
        "text", ["Open {esp", "Open {esp:d}", "Open {keys!z}", "Open {hosting:{esp}}",
                 "Open {esp!r}", "Open }", "Open {esp:>10}"],
    )
    def test_malformed_template_refused(self, text: str) -> None:
        """A template that str.format would reject or reshape is refused when loaded."""
        field = "roadmap.foundation.tasks[0].text"
        with pytest.raises(PlanningError) as info:
            load_data(_one_task(text))
        assert field == info.value.field
        assert field in str(info.value)

    def test_plain_placeholders_and_escaped_braces_accepted(self) -> None:
        """Bare placeholders and doubled braces load and render in the plan."""
        data = load_data(_one_task("Open {esp} with {{braces}} and {keys} {scope}(s)."))
        p = plan(Workload(monthly_volume=250_000), data=data)
        assert "Open SendGrid with {braces} and 1 API key(s)." == p.roadmap[0].tasks[0]
