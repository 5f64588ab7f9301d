"""``mailscale plan`` through mailscale.cli.main."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from mailscale.planning import Workload, plan

RunCli = Callable[..., tuple[int, str, str]]


class TestTables:
    def test_plan_prints_tables(self, run_cli: RunCli, monkeypatch: pytest.MonkeyPatch) -> None:
        """`mailscale plan 250000` prints every section as readable tables."""
        monkeypatch.setenv("COLUMNS", "200")
        code, out, err = run_cli("plan", "250000")
        assert (0, "") == (code, err)
        for text in (
            "250,000 emails/month",
            "Setup: managed ESP SendGrid.",
            "Tier 100K-1M/month",
            "Servers at list prices",
            "Vultr *",
            "2 x 2 vCPU / 4 GB",
            "ESP: SendGrid",
            "Runner-up: Mailgun",
            "Rate-limit feasibility",
            "Hosting: managed",
            "Cost per month at 250K",
            "SendGrid *",
            "Mailgun (cheapest)",
            "$900-1,200",
            "$500-2,000",
            "Why: SendGrid",
            "Infrastructure: $295/month",
            "KPI targets",
            "< 1%",
            "Roadmap",
            "foundation",
            "optimization",
            "scale",
        ):
            assert text in out
        assert "\x1b[" not in out  # no colour codes when stdout is not a terminal

    def test_narrow_terminal(self, run_cli: RunCli, monkeypatch: pytest.MonkeyPatch) -> None:
        """The tables still render at 60 columns."""
        monkeypatch.setenv("COLUMNS", "60")
        code, out, _ = run_cli("plan", "1.5M")
        assert 0 == code
        assert max(len(line) for line in out.splitlines()) <= 60


class TestJson:
    @pytest.mark.parametrize(
        ("text", "volume"),
        [
            ("250000", 250_000),
            ("250k", 250_000),
            ("250K", 250_000),
            ("1.5M", 1_500_000),
            ("2m", 2_000_000),
            ("250_000", 250_000),
            ("250,000", 250_000),
            ("1e6", 1_000_000),
            ("0.5k", 500),
            ("2B", 2 * 10**9),
            ("1T", 10**12),
        ],
    )
    def test_volume_spellings(self, run_cli: RunCli, text: str, volume: int) -> None:
        """Volumes with k/M suffixes and separators give the library's plan as JSON."""
        code, out, err = run_cli("plan", text, "--json")
        assert (0, "") == (code, err)
        assert plan(Workload(monthly_volume=volume)).to_dict() == json.loads(out)

    def test_every_option(self, run_cli: RunCli) -> None:
        """Each option reaches the workload."""
        code, out, _ = run_cli(
            "plan",
            "750k",
            "--use-case",
            "cold-outreach",
            "--peak-share",
            "20%",
            "--team",
            "strong",
            "--compliance",
            "yes",
            "--custom-integration",
            "yes",
            "--message-size",
            "2MB",
            "--active-addresses",
            "50k",
            "--retention-days",
            "7",
            "--hourly-cost",
            "$100",
            "--per-core-rate",
            "5k",
            "--json",
        )
        assert 0 == code
        expected = Workload(
            monthly_volume=750_000,
            use_case="cold_outreach",
            peak_hour_share=0.2,
            team_expertise="strong",
            compliance_resources=True,
            custom_integration=True,
            message_size_bytes=2_000_000,
            active_addresses=50_000,
            retention_days=7,
            hourly_cost_usd=100,
            per_core_rate=5_000,
        )
        assert plan(expected).to_dict() == json.loads(out)

    @pytest.mark.parametrize(
        ("share", "expected"), [("0.2", 0.2), ("20%", 0.2), ("12.5%", 0.125), ("1", 1.0)]
    )
    def test_peak_share_spellings(self, run_cli: RunCli, share: str, expected: float) -> None:
        """The peak share is a fraction or a percentage."""
        _, out, _ = run_cli("plan", "10k", "--peak-share", share, "--json")
        assert expected == json.loads(out)["workload"]["peak_hour_share"]

    @pytest.mark.parametrize(
        ("size", "expected"),
        [
            ("50000", 50_000),
            ("50KB", 50_000),
            ("64KiB", 65_536),
            ("1.5MB", 1_500_000),
            ("1MiB", 1_048_576),
        ],
    )
    def test_message_size_spellings(self, run_cli: RunCli, size: str, expected: int) -> None:
        """Message sizes take B, KB, MB (decimal) and KiB, MiB."""
        _, out, _ = run_cli("plan", "10k", "--message-size", size, "--json")
        assert expected == json.loads(out)["workload"]["message_size_bytes"]

    def test_data_file(self, run_cli: RunCli, tmp_path: Path) -> None:
        """--data applies a TOML override file."""
        path = tmp_path / "mine.toml"
        path.write_text("[vps.providers.digitalocean]\nlarge = [80, 90]\n", "utf-8")
        _, out, _ = run_cli(
            "plan", "250k", "--active-addresses", "250k", "--data", str(path), "--json"
        )
        quote = next(q for q in json.loads(out)["vps"] if q["provider"] == "digitalocean")
        assert [160, 180] == quote["monthly_usd"]


class TestBadInput:
    @pytest.mark.parametrize(
        ("args", "flag"),
        [
            (["abc"], "VOLUME"),
            (["0"], "VOLUME"),
            (["-5"], "VOLUME"),
            (["nan"], "VOLUME"),
            (["inf"], "VOLUME"),
            (["1e13"], "VOLUME"),
            (["2.5"], "VOLUME"),
            (["1.2345k"], "VOLUME"),
            ([""], "VOLUME"),
            (["1.5T"], "VOLUME"),
            (["12q"], "VOLUME"),
            (["10k", "--use-case", "spam"], "--use-case"),
            (["10k", "--peak-share", "2%"], "--peak-share"),
            (["10k", "--peak-share", "150%"], "--peak-share"),
            (["10k", "--peak-share", "ten"], "--peak-share"),
            (["10k", "--team", "guru"], "--team"),
            (["10k", "--compliance", "maybe"], "--compliance"),
            (["10k", "--custom-integration", "2"], "--custom-integration"),
            (["10k", "--message-size", "huge"], "--message-size"),
            (["10k", "--message-size", "0"], "--message-size"),
            (["10k", "--active-addresses", "0"], "--active-addresses"),
            (["10k", "--sends-per-address", "0"], "--sends-per-address"),
            (["10k", "--retention-days", "-1"], "--retention-days"),
            (["10k", "--hourly-cost", "free"], "--hourly-cost"),
            (["10k", "--per-core-rate", "0"], "--per-core-rate"),
            (["10k", "--calibrate", "99"], "--calibrate"),
        ],
    )
    def test_one_line_exit_two(self, run_cli: RunCli, args: list[str], flag: str) -> None:
        """Bad input prints one 'mailscale: error:' line naming the flag typed, exit 2."""
        code, out, err = run_cli("plan", *args)
        assert (2, "") == (code, out)
        assert 1 == len(err.splitlines())
        assert err.startswith(f"mailscale: error: {flag} ")
        assert "_" not in err.split(" must ")[0]  # no internal field name such as peak_hour_share
        assert "Traceback" not in err

    def test_error_shows_the_text_typed(self, run_cli: RunCli) -> None:
        """The range error quotes what the user typed (2%), not the converted 0.02."""
        code, _, err = run_cli("plan", "10k", "--peak-share", "2%")
        assert 2 == code
        assert (
            "mailscale: error: --peak-share must be at least 1/24 (an even spread over the "
            "day), got '2%'\n"
        ) == err

    @pytest.mark.parametrize(
        ("content", "needle"),
        [
            (None, "cannot read the data file"),
            ("[esp\n", "is not valid TOML"),
            ("[esp.providers.sendgrid]\nrequests = -1\n", "esp.providers.sendgrid.requests"),
        ],
    )
    def test_bad_data_file(
        self, run_cli: RunCli, tmp_path: Path, content: str | None, needle: str
    ) -> None:
        """A missing, malformed or invalid data file is one error line, exit 2."""
        path = tmp_path / "mine.toml"
        if content is not None:
            path.write_text(content, "utf-8")
        code, out, err = run_cli("plan", "10k", "--data", str(path))
        assert (2, "") == (code, out)
        assert 1 == len(err.splitlines())
        assert needle in err
