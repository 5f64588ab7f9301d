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
        "value",
        [
            10**400,
            -(10**400),
            Fraction(10**400),
            Decimal("sNaN"),
            Decimal("-sNaN"),
            Decimal("1e400"),
            10**5000,
        ],
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
            (["plan", "1e400"], "VOLUME"),
            (["plan", "1e999999999"], "VOLUME"),
            (["plan", "250k", "--retention-days", "1e400"], "--retention-days"),
            (["plan", "250k", "--hourly-cost", "1e400"], "--hourly-cost"),
        ],
    )
    def test_cli(self, run_cli: RunCli, args: list[str], field: str) -> None:
        """The CLI prints one line naming the flag, exit status 2, no traceback."""
        code, out, err = run_cli(*args)
        assert (2, "") == (code, out)
        assert err.startswith(f"mailscale: error: {field} ")
        assert 1 == len(err.splitlines())


def _one_task(text: str) -> dict[str, Any]:
    return {"roadmap": {"foundation": {"tasks": [{"when": "always", "text": text}]}}}


class TestRoadmapTemplates:
    @pytest.mark.parametrize(
        "text",
        [
            "Open {esp",
            "Open {esp:d}",
            "Open {keys!z}",
            "Open {hosting:{esp}}",
            "Open {esp!r}",
            "Open }",
            "Open {esp:>10}",
        ],
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
        assert "Open SendGrid with {braces} and 1 API key." == p.roadmap[0].tasks[0]


class TestThousandsSeparators:
    @pytest.mark.parametrize(
        ("text", "expected"),
        [
            ("250,000", 250_000),
            ("1,500,000", 1_500_000),
            ("1,000.5k", 1_000_500),
            ("12,345", 12_345),
        ],
    )
    def test_grouped_thousands(self, text: str, expected: int) -> None:
        """Commas that group thousands are accepted."""
        from mailscale.planning._cli import parse_quantity

        assert expected == parse_quantity(text, "monthly_volume")

    @pytest.mark.parametrize(
        "text", ["1,5M", "1,0,0", "25,0000", ",250", "250,", "1,,000", "1234,567", "1.5,000"]
    )
    def test_misplaced_commas_refused(self, text: str) -> None:
        """A comma that is not a thousands separator is refused, not stripped."""
        from mailscale.planning._cli import parse_quantity

        with pytest.raises(PlanningError) as info:
            parse_quantity(text, "monthly_volume")
        assert "monthly_volume" == info.value.field

    def test_cli_decimal_comma(self, run_cli: RunCli) -> None:
        """`plan 1,5M` is an error, not a plan for 15,000,000."""
        code, out, err = run_cli("plan", "1,5M")
        assert (2, "") == (code, out)
        assert "VOLUME" in err
        assert "1,5M" in err

    @pytest.mark.parametrize("text", ["50,0KB", "5,0000"])
    def test_message_size_commas(self, text: str) -> None:
        """Message sizes follow the same thousands rule."""
        from mailscale.planning._cli import parse_size

        with pytest.raises(PlanningError) as info:
            parse_size(text)
        assert "message_size_bytes" == info.value.field


@pytest.fixture(scope="module")
def p() -> Any:
    """One plan for the accessor tests (a module-level fixture: pytest 9 deprecates
    class-scoped fixtures defined as instance methods)."""
    return plan(Workload(monthly_volume=250_000))


class TestAccessors:
    def test_feasibility_for_unknown(self, p: Any) -> None:
        """An unknown ESP raises PlanningError listing the known ones."""
        with pytest.raises(PlanningError) as info:
            p.feasibility_for("foo")
        assert "esp" == info.value.field
        assert "'foo'" in str(info.value)
        assert "sendgrid" in str(info.value)

    def test_requirement_unknown(self, p: Any) -> None:
        """An unknown resource raises PlanningError listing the known ones."""
        with pytest.raises(PlanningError) as info:
            p.requirement("gpu")
        assert "resource" == info.value.field
        assert "'gpu'" in str(info.value)
        assert "ram_gb" in str(info.value)

    def test_derived_value_unknown(self, p: Any) -> None:
        """An unknown derived figure raises PlanningError listing the known ones."""
        with pytest.raises(PlanningError) as info:
            p.derived_value("nope")
        assert "key" == info.value.field
        assert "peak_hour_messages" in str(info.value)

    def test_known_lookups_still_work(self, p: Any) -> None:
        """Known keys still return their item."""
        assert ("sendgrid", "ram_gb") == (
            p.feasibility_for("sendgrid").esp,
            p.requirement("ram_gb").resource,
        )

    @pytest.mark.parametrize("data", [{"tiers": {}}, "data", 5])
    def test_plan_data_must_be_planning_data(self, data: Any) -> None:
        """plan(data=...) takes load_data's result, nothing else."""
        with pytest.raises(PlanningError) as info:
            plan(Workload(monthly_volume=250_000), data=data)
        assert "data" == info.value.field
        assert "load_data" in str(info.value)

    @pytest.mark.parametrize("value", [0, -5, float("nan"), "x", None, True, 1.5, 10**13])
    def test_tier_for_bad_volume(self, value: Any) -> None:
        """tier_for checks its volume as the workload does."""
        from mailscale.planning import tier_for

        with pytest.raises(PlanningError) as info:
            tier_for(value)
        assert "monthly_volume" == info.value.field

    @pytest.mark.parametrize("targets", ["x", 5, ["x"]])
    def test_evaluate_kpis_bad_targets(self, targets: Any) -> None:
        """evaluate_kpis refuses targets that are not KpiTargets."""
        with pytest.raises(PlanningError) as info:
            evaluate_kpis({"queue_depth": 3}, targets=targets)
        assert "targets" == info.value.field


class TestPerCoreRateMinimum:
    @pytest.mark.parametrize("rate", [1e-300, 0.5, 0.999])
    def test_absurdly_small_rate_refused(self, rate: float) -> None:
        """A rate below one email/minute/core is refused, naming the field and the minimum."""
        with pytest.raises(PlanningError) as info:
            Workload(monthly_volume=250_000, per_core_rate=rate)
        assert "per_core_rate" == info.value.field
        assert "at least 1 " in str(info.value)

    def test_minimum_accepted(self) -> None:
        """Exactly one email/minute/core is accepted and drives the vCPU figure."""
        p = plan(Workload(monthly_volume=250_000, per_core_rate=1))
        peak = p.derived_value("peak_hour_messages")
        assert pytest.approx(peak / 60) == p.derived_value("sending_cores")

    def test_override_minimum(self) -> None:
        """The data's per-core rate has the same minimum."""
        field = "capacity.emails_per_minute_per_core"
        with pytest.raises(PlanningError) as info:
            load_data({"capacity": {"emails_per_minute_per_core": 1e-300}})
        assert field == info.value.field


def _run_into_closed_pipe(*args: str, read: int) -> tuple[int, bytes, str]:
    """Run ``python -m mailscale ARGS`` with stdout into a pipe whose reader leaves early."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    import mailscale

    env = dict(os.environ, PYTHONPATH=str(Path(mailscale.__file__).parents[1]))
    read_end, write_end = os.pipe()
    with subprocess.Popen(
        [sys.executable, "-m", "mailscale", *args],
        stdout=write_end,
        stderr=subprocess.PIPE,
        env=env,
    ) as proc:
        os.close(write_end)
        head = os.read(read_end, read) if read else b""
        os.close(read_end)  # like `| head -c N`: the reader goes away
        _, err = proc.communicate(timeout=60)
    return proc.returncode, head, err.decode()


class TestBrokenPipe:
    @pytest.mark.parametrize(
        "args", [("plan", "10M", "--json"), ("plan", "10M")], ids=["json", "tables"]
    )
    def test_reader_gone_before_output(self, args: tuple[str, ...]) -> None:
        """A closed pipe ends the command quietly with status 141, as a shell reports SIGPIPE."""
        code, _, err = _run_into_closed_pipe(*args, read=0)
        assert (141, "") == (code, err)

    def test_head_c_10(self) -> None:
        """`mailscale plan 10M --json | head -c 10` gets its bytes and no traceback."""
        code, head, err = _run_into_closed_pipe("plan", "10M", "--json", read=10)
        import json

        full = json.dumps(
            plan(Workload(monthly_volume=10_000_000)).to_dict(), indent=2, sort_keys=True
        )
        assert full.encode()[:10] == head
        assert "" == err
        assert code in (0, 141)  # 0 when the whole output fit in the pipe before it closed


class TestRepeatedBoundaryNamesTheOverride:
    @pytest.mark.parametrize(
        ("overrides", "field", "other"),
        [
            (
                {"esp": {"selection": {"bands": {"mailgun": 1_000}}}},
                "esp.selection.bands.mailgun",
                "postmark",
            ),
            (
                {"esp": {"selection": {"bands": {"postmark": 50_000}}}},
                "esp.selection.bands.postmark",
                "mailgun",
            ),
            (
                {"esp": {"selection": {"bands": {"ses": 200_000}}}},
                "esp.selection.bands.ses",
                "sendgrid",
            ),
            ({"tiers": {"starter": {"min_volume": 10_000}}}, "tiers.starter.min_volume", "growth"),
            (
                {"tiers": {"high_volume": {"min_volume": 100_000}}},
                "tiers.high_volume.min_volume",
                "scale",
            ),
        ],
    )
    def test_names_the_changed_field(
        self, overrides: dict[str, Any], field: str, other: str
    ) -> None:
        """The error names the field the override changed and the one it collides with."""
        with pytest.raises(PlanningError) as info:
            load_data(overrides)
        assert field == info.value.field
        assert str(info.value).startswith(f"{field} repeats")
        assert other in str(info.value)

    def test_new_tier_named(self) -> None:
        """A new tier whose boundary repeats an existing one is the one named."""
        new = {
            "min_volume": 10_000,
            "vcpu": [1, 2],
            "ram_gb": [1, 2],
            "ssd_gb": [1, 2],
            "dedicated_ips": [1, 1],
            "monthly_cost_usd": [1, 2],
            "architecture": "x",
            "servers": 1,
            "multi_server": False,
            "multi_data_center": False,
            "open_ended": False,
        }
        with pytest.raises(PlanningError) as info:
            load_data({"tiers": {"aaa": new}})
        assert "tiers.aaa.min_volume" == info.value.field


class TestCliHints:
    @pytest.mark.parametrize(
        ("args", "message"),
        [
            (["-5"], "VOLUME must be greater than 0, got '-5'"),
            (["--", "-1,000"], "VOLUME must be greater than 0, got '-1,000'"),
            (["10k", "--hourly-cost", "-1"], "--hourly-cost must be at least 0, got '-1'"),
            (["10k", "--hourly-cost=-$5"], "--hourly-cost must be at least 0, got '-$5'"),
            (["10k", "--retention-days", "-1"], "--retention-days must be at least 0, got '-1'"),
            (
                ["10k", "--active-addresses", "-3"],
                "--active-addresses must be greater than 0, got '-3'",
            ),
            (
                ["10k", "--per-core-rate", "-100"],
                "--per-core-rate must be greater than 0, got '-100'",
            ),
            (["10k", "--message-size=-5KB"], "--message-size must be greater than 0, got '-5KB'"),
            (["10k", "--peak-share=-10%"], "--peak-share must be greater than 0, got '-10%'"),
        ],
    )
    def test_negative_values_get_the_range_message(
        self, run_cli: RunCli, args: list[str], message: str
    ) -> None:
        """A negative value is parsed, so the range check says what the field accepts.

        argparse takes only plain negative numbers as values; others need ``--opt=-5KB``.
        """
        code, out, err = run_cli("plan", *args)
        assert (2, "") == (code, out)
        assert f"mailscale: error: {message}\n" == err

    @pytest.mark.parametrize(
        ("option", "field", "example"),
        [
            ("--hourly-cost", "hourly_cost_usd", "$75"),
            ("--retention-days", "retention_days", "30"),
            ("--active-addresses", "active_addresses", "40k"),
            ("--per-core-rate", "per_core_rate", "64k"),
            ("--peak-share", "peak_hour_share", "10%"),
        ],
    )
    def test_hint_fits_the_field(
        self, run_cli: RunCli, option: str, field: str, example: str
    ) -> None:
        """A value that is not a number gets an example for its own field, not the volume's."""
        code, _, err = run_cli("plan", "10k", option, "lots")
        assert 2 == code
        assert err.startswith(f"mailscale: error: {option} must be ")
        assert field not in err
        assert example in err
        assert "1.5M" not in err


class TestInfrastructureNote:
    def test_one_figure_within_the_tier_range(self) -> None:
        """250K/month managed: one infrastructure figure, the recommended option's
        (2 Vultr servers $40 + SendGrid Pro $254.95), its servers within $20-120."""
        p = plan(Workload(monthly_volume=250_000))
        assert pytest.approx(294.95) == p.infrastructure_usd
        assert (p.infrastructure_usd, p.infrastructure_usd) == p.recommended.infrastructure_usd
        assert p.infrastructure_note == (
            "Infrastructure: $295/month for managed ESP SendGrid: servers $40 + SendGrid $255; "
            "the servers are within the guide's 100K-1M tier range $20-120."
        )

    def test_above_the_tier_range_says_why(self) -> None:
        """1M active addresses need 7 servers: above the tier's range, and the note says why."""
        p = plan(Workload(monthly_volume=250_000, active_addresses=1_000_000))
        assert "above the guide's 100K-1M tier range $20-120 (7 servers where the tier has 2)" in (
            p.infrastructure_note
        )

    def test_cli_shows_note(self, run_cli: RunCli, monkeypatch: pytest.MonkeyPatch) -> None:
        """The cost table is followed by the same note."""
        monkeypatch.setenv("COLUMNS", "200")
        _, out, _ = run_cli("plan", "250k")
        assert plan(Workload(monthly_volume=250_000)).infrastructure_note in out


class TestSendsPerAddressOption:
    def test_cli_option(self, run_cli: RunCli) -> None:
        """--sends-per-address sets the assumption behind the default active addresses."""
        import json

        code, out, _ = run_cli("plan", "250k", "--sends-per-address", "1", "--json")
        data = json.loads(out)
        ram = next(r for r in data["requirements"] if r["resource"] == "ram_gb")
        assert (0, 1, 25) == (code, data["workload"]["sends_per_address_per_month"], ram["derived"])

    def test_cli_bad_value(self, run_cli: RunCli) -> None:
        """A bad value names the field with its own example."""
        code, _, err = run_cli("plan", "250k", "--sends-per-address", "weekly")
        assert 2 == code
        assert err.startswith("mailscale: error: --sends-per-address must be emails per")
