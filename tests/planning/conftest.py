"""Fixtures for the planning tests."""

from __future__ import annotations

import importlib.util
from collections.abc import Callable

import pytest

from mailscale import cli


@pytest.fixture
def run_cli(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> Callable[..., tuple[int, str, str]]:
    """Run ``mailscale.cli.main`` with arguments; return (exit code, stdout, stderr).

    Command modules whose area package is not present in this checkout are
    skipped, as they would be once every area is installed.
    """
    present = tuple(
        name
        for name in cli._COMMAND_MODULES
        if importlib.util.find_spec(name.rsplit(".", 1)[0]) is not None
    )
    monkeypatch.setattr(cli, "_COMMAND_MODULES", present)

    def run(*args: str) -> tuple[int, str, str]:
        code = cli.main(list(args))
        out, err = capsys.readouterr()
        return code, out, err

    return run
