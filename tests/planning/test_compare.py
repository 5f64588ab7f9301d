"""`mailscale plan --compare`: several volumes side by side, as text and JSON."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest

from mailscale.planning import Workload, plan
from mailscale.planning._format import dollars

RunCli = Callable[..., tuple[int, str, str]]
VOLUMES = (50_000, 250_000, 2_000_000)


class TestCompare:
    def test_side_by_side(self, run_cli: RunCli, monkeypatch: pytest.MonkeyPatch) -> None:
        """One column per volume; every option's cost as the single plans have it, the
        recommended one marked; readable at 80 columns."""
        monkeypatch.setenv("COLUMNS", "80")
        code, out, err = run_cli("plan", "--compare", "50k", "250k", "2m")
        assert (0, "") == (code, err)
        lines = out.splitlines()
        assert max(len(line) for line in lines) <= 80
        header = next(line for line in lines if "50K/month" in line)
        assert header.index("50K/month") < header.index("250K/month") < header.index("2M/month")
        for volume in VOLUMES:
            p = plan(Workload(monthly_volume=volume))
            for option in p.tco:
                assert dollars(*option.total_usd) in out
            assert f"{dollars(*p.recommended.total_usd)} *" in out
        assert "managed ESP Amazon SES" in out
        setup_row = next(line for line in lines if line.startswith("│ setup"))
        assert "managed ESP" in setup_row

    def test_json(self, run_cli: RunCli) -> None:
        """--json gives each volume's plan, as `plan` builds it."""
        code, out, _ = run_cli(
            "plan", "--compare", "50k", "250k", "2m", "--team", "strong", "--json"
        )
        data = json.loads(out)
        assert 0 == code
        assert 3 == data["schema_version"]
        expected = [
            plan(Workload(monthly_volume=v, team_expertise="strong")).to_dict() for v in VOLUMES
        ]
        assert expected == data["plans"]
        assert ["managed", "managed", "hybrid"] == [p["setup"]["kind"] for p in data["plans"]]

    @pytest.mark.parametrize(
        ("args", "message"),
        [
            (["--compare", "50k", "x"], "--compare must be emails per month"),
            (["5k", "--compare", "50k"], "give VOLUME or --compare VOLUME VOLUME ..., not both"),
            ([], "the following arguments are required: VOLUME"),
            (["--compare", "5k", "--calibrate"], "--calibrate is for one volume"),
        ],
    )
    def test_errors(self, run_cli: RunCli, args: list[str], message: str) -> None:
        """Bad combinations are one line naming the flag, exit status 2."""
        code, out, err = run_cli("plan", *args)
        assert (2, "") == (code, out)
        assert err.startswith(f"mailscale: error: {message}")
        assert 1 == len(err.splitlines())


class TestEspDedicatedIps:
    def test_flag(self, run_cli: RunCli) -> None:
        """--esp-dedicated-ips yes plans and prices the ESP's dedicated IPs."""
        code, out, _ = run_cli("plan", "250k", "--esp-dedicated-ips", "yes", "--json")
        data = json.loads(out)
        assert (0, True, 2) == (code, data["dedicated_ips"]["used"], data["dedicated_ips"]["ips"])

    def test_bad_value(self, run_cli: RunCli) -> None:
        """A value that is not yes or no names the flag."""
        code, _, err = run_cli("plan", "250k", "--esp-dedicated-ips", "maybe")
        assert 2 == code
        assert err.startswith("mailscale: error: --esp-dedicated-ips must be yes or no")
