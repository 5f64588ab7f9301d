"""The ``mailscale shaping`` sub-commands."""

from __future__ import annotations

import argparse

import pytest

from mailscale.errors import ShapingError
from mailscale.shaping import _cli


def _run(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="mailscale")
    _cli.register(parser.add_subparsers())
    args = parser.parse_args(argv)
    return int(args.func(args))


class TestShapingCommand:
    def test_presets(self, capsys: pytest.CaptureFixture[str]) -> None:
        """`shaping presets` lists every provider with its figures."""
        assert 0 == _run(["shaping", "presets", "--ses-rate", "20"])
        out = capsys.readouterr().out
        assert "sendgrid           1,000 per     3600 s" in out
        assert "postmark             500 per       60 s" in out
        assert "ses rate              20 per        1 s" in out

    def test_limit(self, capsys: pytest.CaptureFixture[str]) -> None:
        """`shaping limit 100 1` shows the burst, sustained rate and guarantee."""
        assert 0 == _run(["shaping", "limit", "100", "1"])
        out = capsys.readouterr().out
        assert "burst  3" in out
        assert "at most 100 in any 1-second window" in out

    def test_bad_limit(self) -> None:
        """A bad limit surfaces as ShapingError (the CLI prints it as one line)."""
        with pytest.raises(ShapingError, match="count"):
            _run(["shaping", "limit", "0", "1"])
