"""`mailscale plan --html`: one self-contained page, checked in headless Chromium."""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from pathlib import Path

import pytest

from mailscale.planning import Workload, plan
from mailscale.planning._report import COST_VOLUMES, html_report

from .chromium_page import chromium, non_white_share, open_page, png_size
from .planning_brief import SELF_HOSTED

RunCli = Callable[..., tuple[int, str, str]]
BUILD = Path(__file__).resolve().parents[2] / "build"


def _page(**fields: object) -> str:
    return html_report(plan(Workload(**{"monthly_volume": 250_000, **fields})))


class TestPage:
    def test_self_contained(self) -> None:
        """No scripts, no links, no external resources: the only URL is SVG's namespace."""
        page = _page()
        assert "<script" not in page
        assert not re.search(r"\b(src|href)=", page)
        assert {"http://www.w3.org/2000/svg"} == set(re.findall(r"https?://[^\"' )]+", page))

    def test_sections(self) -> None:
        """The verdict, why, cost chart with the volume marked, capacity, keys, KPIs and
        roadmap: a managed plan has no warm-up chart and says why."""
        p = plan(Workload(monthly_volume=250_000))
        page = html_report(p)
        assert f"Setup: {p.setup.summary}." in page
        assert p.recommendation_note is not None
        assert p.recommendation_note.replace("'", "&#x27;") in page
        assert 4 == page.count("<svg")
        assert len(p.tco) == page.count("<polyline")
        assert "250K/month</text>" in page
        assert "No dedicated IPs: the ESP's shared IPs send" in page
        for heading in (
            "Cost of every option",
            "Capacity headroom at the peak",
            "ESP rate-limit feasibility at the peak hour",
            "IP warm-up",
            "KPI thresholds",
            "Roadmap",
        ):
            assert f"<h2>{heading}</h2>" in page

    def test_self_hosted_has_warmup(self) -> None:
        """A self-hosted plan charts the warm-up: one bar per day plus the daily volume."""
        p = plan(Workload(monthly_volume=10_000_000, **SELF_HOSTED))
        page = html_report(p)
        assert 5 == page.count("<svg")
        assert "2 dedicated IPs warm up in 12 days (2 weeks)" in page
        assert all(f">day {day}<" in page for day in range(1, 13))

    def test_cost_curve_volumes(self) -> None:
        """The cost chart plans 1K to 10M a month, four volumes per decade."""
        assert (1_000, 10_000_000, 17) == (COST_VOLUMES[0], COST_VOLUMES[-1], len(COST_VOLUMES))


class TestCli:
    def test_writes_the_page(self, run_cli: RunCli, tmp_path: Path) -> None:
        """--html FILE writes the page and says so."""
        target = tmp_path / "plan.html"
        code, out, err = run_cli("plan", "250k", "--html", str(target))
        assert (0, f"mailscale plan: wrote {target}\n", "") == (code, out, err)
        assert target.read_text(encoding="utf-8") == _page()

    def test_not_with_compare(self, run_cli: RunCli, tmp_path: Path) -> None:
        """--html is for one volume."""
        code, _, err = run_cli("plan", "--compare", "5k", "50k", "--html", str(tmp_path / "x.html"))
        assert 2 == code
        assert err.startswith("mailscale: error: --html is for one volume")

    def test_unwritable(self, run_cli: RunCli, tmp_path: Path) -> None:
        """A file that cannot be written is one line, exit status 2."""
        code, _, err = run_cli("plan", "250k", "--html", str(tmp_path / "no" / "plan.html"))
        assert 2 == code
        assert 1 == len(err.splitlines())


@pytest.mark.skipif(
    chromium() is None and not os.environ.get("MAILSCALE_REQUIRE_CHROMIUM"),
    reason="chromium is not installed (.ci/run installs it)",
)
class TestInChromium:
    def test_opens_cleanly(self, tmp_path: Path) -> None:
        """Headless Chromium loads the page with no console errors, no exceptions and no
        requests; the 1280 px screenshot is not blank and is kept under build/."""
        page = tmp_path / "plan.html"
        page.write_text(_page(), encoding="utf-8")
        run = open_page(page, width=1280, height=2400)
        assert ((), (), ()) == (run.console_errors, run.exceptions, run.requests)
        assert (1280, 2400) == png_size(run.screenshot)
        assert non_white_share(run.screenshot) > 0.02
        BUILD.mkdir(exist_ok=True)
        (BUILD / "plan-report-1280.png").write_bytes(run.screenshot)

    def test_a_request_would_be_seen(self, tmp_path: Path) -> None:
        """The check can fail: a page that loads an image and logs an error is caught."""
        page = tmp_path / "bad.html"
        page.write_text(
            '<!DOCTYPE html><html><body><img src="http://127.0.0.1:9/x.png">'
            '<script>console.error("boom")</script></body></html>',
            encoding="utf-8",
        )
        run = open_page(page, width=1280, height=600)
        assert "http://127.0.0.1:9/x.png" in run.requests
        assert any("boom" in line for line in run.console_errors)
        assert non_white_share(run.screenshot) < 0.02
