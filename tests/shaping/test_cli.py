"""The ``mailscale shaping`` sub-commands."""

from __future__ import annotations

import argparse
import json

import pytest

from mailscale.errors import ShapingError
from mailscale.shaping import _cli, presets


def _run(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="mailscale")
    _cli.register(parser.add_subparsers())
    args = parser.parse_args(argv)
    return int(args.func(args))


class TestShapingCommand:
    def test_presets(self, capsys: pytest.CaptureFixture[str]) -> None:
        """`shaping presets` prints a header row, then every provider with its figures."""
        assert 0 == _run(["shaping", "presets", "--ses-rate", "20"])
        lines = capsys.readouterr().out.splitlines()
        assert [
            "NAME",
            "COUNT",
            "PER",
            "(s)",
            "BURST",
            "SUSTAINED",
            "PER",
            "WINDOW",
            "INTERVAL",
            "(ms)",
        ] == lines[0].split()
        assert ["sendgrid", "1,000", "3600", "10", "991.0", "3,632.694"] == lines[1].split()
        assert ["postmark", "500", "60", "5", "496.0", "120.968"] == lines[3].split()
        assert ["ses", "rate", "20", "1", "2", "19.0", "52.632"] == lines[4].split()
        assert 6 == len(lines)

    def test_presets_json(self, capsys: pytest.CaptureFixture[str]) -> None:
        """`shaping presets --json` gives the same limits as data."""
        assert 0 == _run(["shaping", "presets", "--json"])
        rows = json.loads(capsys.readouterr().out)
        assert ["sendgrid", "mailgun", "postmark", "ses rate", "ses 24h"] == [
            r["name"] for r in rows
        ]
        sendgrid = presets.sendgrid()
        assert {
            "name": "sendgrid",
            "count": sendgrid.count,
            "per_seconds": sendgrid.per,
            "burst": sendgrid.burst,
            "sustained_per_second": sendgrid.sustained_rate,
            "interval_ms": sendgrid.interval_ns / 1e6,
        } == rows[0]

    def test_limit(self, capsys: pytest.CaptureFixture[str]) -> None:
        """`shaping limit 100 1` shows the burst, sustained rate and guarantee."""
        assert 0 == _run(["shaping", "limit", "100", "1"])
        lines = capsys.readouterr().out.splitlines()
        assert "NAME" == lines[0].split()[0]
        assert ["limit", "100", "1", "3", "98.0", "10.204"] == lines[1].split()
        assert "guarantee: at most 100 in any 1-second window" == lines[2]

    def test_limit_json(self, capsys: pytest.CaptureFixture[str]) -> None:
        """`shaping limit --json` gives the parameters and the guarantee as data."""
        assert 0 == _run(["shaping", "limit", "100", "1", "--burst", "5", "--json"])
        data = json.loads(capsys.readouterr().out)
        assert (100, 1.0, 5) == (data["count"], data["per_seconds"], data["burst"])
        assert "at most 100 in any 1-second window" == data["guarantee"]

    def test_bad_limit(self) -> None:
        """A bad limit surfaces as ShapingError (the CLI prints it as one line)."""
        with pytest.raises(ShapingError, match="count"):
            _run(["shaping", "limit", "0", "1"])
