"""Calibrating the per-core rate on this machine and planning with it."""

from __future__ import annotations

import json

import pytest

from mailscale.cli import main
from mailscale.errors import PlanningError
from mailscale.planning import Workload, plan
from mailscale.planning.calibrate import Calibration, measure_per_core_rate


@pytest.fixture(scope="module")
def calibration() -> Calibration:
    return measure_per_core_rate(seconds=0.05, message_size=2_000)


class TestMeasure:
    def test_measures_the_whole_path(self, calibration: Calibration) -> None:
        """The measurement covers messages through signing, shaping and hand-off."""
        assert calibration.messages > 0
        assert calibration.seconds >= 0.05
        assert 2_000 == calibration.message_size
        assert ["send", "shape", "sign"] == sorted(calibration.stages)
        per_second = calibration.messages / calibration.seconds
        assert pytest.approx(per_second * 60) == calibration.emails_per_minute

    def test_whole_path_is_bounded_by_signing(self, calibration: Calibration) -> None:
        """A path that includes signing cannot be many times faster than signing alone."""
        assert calibration.emails_per_minute / 60 < 3 * calibration.stages["sign"]

    def test_explain_names_the_rate(self, calibration: Calibration) -> None:
        """The explanation states the rate and what was measured."""
        text = calibration.explain()
        assert f"{calibration.emails_per_minute:,.0f} emails/minute/core" in text
        assert "2,000 bytes" in text

    def test_plan_with_the_measurement(self, calibration: Calibration) -> None:
        """A measured rate replaces the brief's, and the plan says so."""
        p = plan(Workload(monthly_volume=250_000, per_core_rate=calibration.emails_per_minute))
        data = p.to_dict()
        assert "measured" == data["per_core_rate_source"]
        assert pytest.approx(calibration.emails_per_minute, abs=1e-5) == data["per_core_rate"]

    @pytest.mark.parametrize(
        ("kwargs", "field"),
        [
            ({"seconds": 0}, "seconds"),
            ({"seconds": -1.0}, "seconds"),
            ({"seconds": float("nan")}, "seconds"),
            ({"message_size": 10}, "message_size"),
            ({"message_size": "big"}, "message_size"),
        ],
    )
    def test_bad_arguments(self, kwargs: dict[str, object], field: str) -> None:
        """Bad durations and sizes are PlanningErrors naming the argument."""
        with pytest.raises(PlanningError) as info:
            measure_per_core_rate(**kwargs)  # type: ignore[arg-type]
        assert field == info.value.field


class TestCli:
    def test_calibrate_flag(self, capsys: pytest.CaptureFixture[str]) -> None:
        """``--calibrate`` measures, says so on stderr, and plans with the measured rate."""
        assert 0 == main(["plan", "250k", "--calibrate", "0.05", "--message-size", "2KB", "--json"])
        out = capsys.readouterr()
        assert out.err.startswith("calibration: measured ")
        data = json.loads(out.out)
        assert "measured" == data["per_core_rate_source"]
        assert f"{data['per_core_rate']:,.0f} emails/minute/core" in out.err

    def test_calibrate_and_rate_conflict(self, capsys: pytest.CaptureFixture[str]) -> None:
        """A given rate and a calibration together are a one-line error."""
        assert 2 == main(["plan", "250k", "--calibrate", "--per-core-rate", "5000"])
        assert "not both" in capsys.readouterr().err

