"""ESP choice by volume band and use case, runner-up, and rate-limit feasibility."""

from __future__ import annotations

import math

import pytest

from mailscale.planning import Workload, plan

from .planning_brief import ESP_BANDS, ESP_LIMITS, peak_hour


def band_esp(volume: int) -> str:
    chosen = ESP_BANDS[0][1]
    for low, esp in ESP_BANDS:
        if volume >= low:
            chosen = esp
    return chosen


class TestVolumeBands:
    @pytest.mark.parametrize(
        "volume",
        [
            1,
            999,
            1_000,
            49_999,
            50_000,
            50_001,
            199_999,
            200_000,
            499_999,
            500_000,
            1_000_000,
            10**10,
        ],
    )
    def test_bulk_marketing_follows_band(self, volume: int) -> None:
        """Bulk marketing takes the brief's volume band, boundaries lower-inclusive."""
        esp = plan(Workload(monthly_volume=volume, use_case="bulk_marketing")).esp
        assert band_esp(volume) == esp.chosen
        assert band_esp(volume) == esp.band_choice
        assert esp.use_case_choice is None

    @pytest.mark.parametrize(
        ("volume", "expected"),
        [(50_000, "mailgun"), (200_000, "sendgrid"), (500_000, "ses"), (49_999, "postmark")],
    )
    def test_boundaries_literal(self, volume: int, expected: str) -> None:
        """50K is Mailgun's, 200K SendGrid's, 500K SES's."""
        assert expected == plan(Workload(monthly_volume=volume)).esp.chosen


class TestUseCases:
    @pytest.mark.parametrize(
        ("use_case", "preferred"),
        [("transactional", "postmark"), ("cold_outreach", "mailgun"), ("enterprise", "sendgrid")],
    )
    @pytest.mark.parametrize("volume", [5_000, 100_000, 300_000, 2_000_000])
    def test_use_case_preference_wins(self, use_case: str, preferred: str, volume: int) -> None:
        """A use case's ESP is chosen; the band's ESP is runner-up when it differs."""
        esp = plan(Workload(monthly_volume=volume, use_case=use_case)).esp
        assert preferred == esp.chosen
        assert preferred == esp.use_case_choice
        if band_esp(volume) != preferred:
            assert band_esp(volume) == esp.runner_up
            assert "volume band" in esp.runner_up_reason
        assert esp.runner_up != esp.chosen

    def test_reason_names_use_case_and_band(self) -> None:
        """The reason says the use case overrode the band's choice."""
        esp = plan(Workload(monthly_volume=2_000_000, use_case="transactional")).esp
        assert "transactional" in esp.reason
        assert "Amazon SES" in esp.reason
        assert ("Postmark", "Amazon SES") == (esp.chosen_name, esp.runner_up_name)


class TestRunnerUp:
    @pytest.mark.parametrize(
        ("volume", "use_case", "runner_up"),
        [
            (10_000, "bulk_marketing", "mailgun"),  # lowest band: only the next one
            (60_000, "bulk_marketing", "postmark"),  # 60K/50K = 1.2 < 200K/60K
            (150_000, "bulk_marketing", "sendgrid"),  # 200K/150K = 1.33 < 150K/50K
            (100_000, "bulk_marketing", "sendgrid"),  # 2 = 2: ties go to the next band
            (250_000, "bulk_marketing", "mailgun"),  # 250K/200K = 1.25 < 500K/250K
            (400_000, "bulk_marketing", "ses"),  # 500K/400K = 1.25 < 400K/200K
            (5_000_000, "bulk_marketing", "sendgrid"),  # top band: only the one below
            (10_000, "transactional", "mailgun"),  # preference equals the band
            (100_000, "cold_outreach", "sendgrid"),
        ],
    )
    def test_nearest_neighbouring_band(self, volume: int, use_case: str, runner_up: str) -> None:
        """Without a use-case override, the runner-up is the nearer neighbouring band's ESP."""
        esp = plan(Workload(monthly_volume=volume, use_case=use_case)).esp
        assert runner_up == esp.runner_up
        assert "band" in esp.runner_up_reason


class TestFeasibility:
    @pytest.mark.parametrize("volume", [1_000, 250_000, 10_000_000, 100_000_000, 10**11])
    @pytest.mark.parametrize("esp", sorted(ESP_LIMITS))
    def test_keys_needed(self, volume: int, esp: str) -> None:
        """Keys = ceil(peak-hour units / limit per hour), batched and not."""
        requests, seconds, batch, counts_recipients = ESP_LIMITS[esp]
        peak = peak_hour(volume)
        per_hour = requests * 3600 // seconds
        batched = peak if counts_recipients else math.ceil(peak / batch)
        result = plan(Workload(monthly_volume=volume)).feasibility_for(esp)
        assert per_hour == result.limit_per_hour
        assert peak == result.peak_hour_messages
        assert math.ceil(peak / per_hour) == result.keys_unbatched
        assert math.ceil(batched / per_hour) == result.keys_batched

    def test_ten_million_literal(self) -> None:
        """10M/month: 32,877 at peak needs 33 SendGrid keys unbatched, 1 batched."""
        p = plan(Workload(monthly_volume=10_000_000))
        got = {f.esp: (f.keys_unbatched, f.keys_batched) for f in p.feasibility}
        assert {"sendgrid": (33, 1), "mailgun": (17, 1), "postmark": (2, 1), "ses": (1, 1)} == got

    def test_ses_quota_counts_recipients(self) -> None:
        """100M/month: SES needs 7 accounts' quota at 14/s whether batched or not."""
        ses = plan(Workload(monthly_volume=100_000_000)).feasibility_for("ses")
        assert (328_768, 7, 7) == (ses.peak_hour_messages, ses.keys_unbatched, ses.keys_batched)

    def test_chosen_is_marked(self) -> None:
        """Exactly the chosen ESP is marked in the feasibility rows."""
        p = plan(Workload(monthly_volume=250_000))
        assert ["sendgrid"] == [f.esp for f in p.feasibility if f.chosen]

    def test_own_limits_override(self) -> None:
        """An account with 200 SES recipients/s needs one account at 100M/month."""
        p = plan(
            Workload(monthly_volume=100_000_000),
            overrides={"esp": {"providers": {"ses": {"requests": 200}}}},
        )
        assert 1 == p.feasibility_for("ses").keys_unbatched
