"""Calibrating the per-core rate on this machine and planning with it: the measuring
lives next to the command line (mailscale._calibrate), planning takes the figures."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from mailscale._calibrate import METHOD, Calibration, measure_per_core_rate, measurements
from mailscale.cli import main
from mailscale.errors import PlanningError
from mailscale.planning import Measurements, Workload, plan


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

    def test_ed25519(self) -> None:
        """The chosen algorithm signs; the measurement says which."""
        c = measure_per_core_rate(seconds=0.05, message_size=2_000, algorithm="ed25519")
        assert ("ed25519", "Ed25519") == (
            c.algorithm,
            c.to_measurements().method.split("DKIM ")[1].split(" ")[0],
        )
        assert c.messages > 0

    def test_explain_names_the_rate(self, calibration: Calibration) -> None:
        """The explanation states the rate and what was measured."""
        text = calibration.explain()
        assert f"{calibration.emails_per_minute:,.0f} emails/minute/core" in text
        assert "2,000 bytes" in text

    def test_plan_with_the_measurement(self, calibration: Calibration) -> None:
        """A measured rate replaces the guide's, and the plan says so beside the guide's."""
        p = plan(Workload(monthly_volume=250_000), measurements=calibration.to_measurements())
        data = p.to_dict()
        assert ("measured", METHOD, 1_000) == (
            data["per_core_rate_source"],
            data["measurement_method"],
            data["guide_per_core_rate"],
        )
        assert pytest.approx(calibration.emails_per_minute, abs=1e-5) == data["per_core_rate"]
        sending = next(d for d in p.derived if d.key == "sending_cores")
        assert "(measured; the planning guide's figure is 1,000)" in sending.rule

    @pytest.mark.parametrize(
        ("kwargs", "field"),
        [
            ({"seconds": 0}, "seconds"),
            ({"seconds": -1.0}, "seconds"),
            ({"seconds": float("nan")}, "seconds"),
            ({"message_size": 10}, "message_size"),
            ({"message_size": "big"}, "message_size"),
            ({"algorithm": "dsa"}, "algorithm"),
        ],
    )
    def test_bad_arguments(self, kwargs: dict[str, object], field: str) -> None:
        """Bad durations and sizes are PlanningErrors naming the argument."""
        with pytest.raises(PlanningError) as info:
            measure_per_core_rate(**kwargs)  # type: ignore[arg-type]
        assert field == info.value.field


class TestSeam:
    def test_measurements_from_a_rate(self) -> None:
        """Any measured rate (the pipeline's, later) becomes planning data the same way."""
        m = measurements(64_000, method="outbox, shaping, signing and hand-off")
        assert (
            Measurements(
                emails_per_minute_per_core=64_000, method="outbox, shaping, signing and hand-off"
            )
            == m
        )
        p = plan(Workload(monthly_volume=10_000_000), measurements=m)
        assert (64_000, "measured") == (p.per_core_rate, p.per_core_rate_source)
        # 32,877 emails at the peak hour = 547.95/minute; / 64,000 per core.
        assert pytest.approx(547.95 / 64_000) == p.derived_value("sending_cores")

    @pytest.mark.parametrize("rate", [0, -1, float("nan"), "fast"])
    def test_bad_rate(self, rate: object) -> None:
        """A rate that is not a usable per-core rate is a PlanningError naming it."""
        with pytest.raises(PlanningError) as info:
            measurements(rate)  # type: ignore[arg-type]
        assert "emails_per_minute_per_core" == info.value.field

    def test_rate_given_twice(self) -> None:
        """A workload's own per-core rate and measurements together are refused."""
        with pytest.raises(PlanningError) as info:
            plan(
                Workload(monthly_volume=1_000, per_core_rate=5_000),
                measurements=measurements(6_000),
            )
        assert "measurements" == info.value.field


def _loaded_after(code: str) -> set[str]:
    """The modules of the stack (and its heavy dependencies) loaded after ``code``."""
    probe = f"import sys\n{code}\nprint('\\n'.join(sorted(sys.modules)))"
    out = subprocess.run(
        [sys.executable, "-c", probe], check=True, capture_output=True, text=True
    ).stdout.split()
    stack = (
        "mailscale.signing",
        "mailscale.shaping",
        "mailscale.transports",
        "mailscale._calibrate",
        "mailscale.message",
        "cryptography",
        "dns",
    )
    return {name for name in out if name.startswith(stack)}


class TestPlanningImportsNoStack:
    def test_import_planning(self) -> None:
        """Importing mailscale.planning loads no signing, shaping, transports,
        cryptography or dnspython."""
        assert set() == _loaded_after("import mailscale.planning")

    def test_plan_command(self) -> None:
        """`mailscale plan 250k` (and --compare) plans without loading them either."""
        code = (
            "import contextlib, io\nfrom mailscale.cli import main\n"
            "with contextlib.redirect_stdout(io.StringIO()):\n"
            "    assert 0 == main(['plan', '250k'])\n"
            "    assert 0 == main(['plan', '--compare', '5k', '2m', '--json'])"
        )
        assert set() == _loaded_after(code)


class TestCli:
    def test_calibrate_flag(self, capsys: pytest.CaptureFixture[str]) -> None:
        """``--calibrate`` measures, says so on stderr, and plans with the measured rate."""
        assert 0 == main(["plan", "250k", "--calibrate", "0.05", "--message-size", "2KB", "--json"])
        out = capsys.readouterr()
        assert out.err.startswith("calibration: measured ")
        data = json.loads(out.out)
        assert "measured" == data["per_core_rate_source"]
        assert f"{data['per_core_rate']:,.0f} emails/minute/core" in out.err

    def test_tables_show_both_rates(
        self, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """The tables state the measured rate, what was measured, and the guide's figure."""
        monkeypatch.setenv("COLUMNS", "200")
        assert 0 == main(["plan", "250k", "--calibrate", "0.05", "--message-size", "2KB"])
        out = capsys.readouterr().out
        line = next(x for x in out.splitlines() if x.startswith("Per-core rate: "))
        assert line.endswith(
            f"emails/minute measured ({METHOD}); the planning guide's figure is 1,000."
        )

    def test_calibrate_and_rate_conflict(self, capsys: pytest.CaptureFixture[str]) -> None:
        """A given rate and a calibration together are a one-line error."""
        assert 2 == main(["plan", "250k", "--calibrate", "--per-core-rate", "5000"])
        assert "not both" in capsys.readouterr().err
