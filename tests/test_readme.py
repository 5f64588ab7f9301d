"""The README's Python quick start runs as written (offline: memory transport, local key)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parent.parent / "README.md"


def _python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", README.read_text(encoding="utf-8"), re.S)


class TestReadme:
    def test_has_quick_start(self) -> None:
        """The README shows Python code and the two commands."""
        text = README.read_text(encoding="utf-8")
        assert len(_python_blocks()) >= 3
        assert "pip install . && mailscale demo" in text
        assert "pip install '.[test]' && python -m pytest" in text

    def test_quick_start_runs(self, capsys: pytest.CaptureFixture[str]) -> None:
        """The Python blocks, run in order in one namespace, complete and print the plan."""
        namespace: dict[str, object] = {}
        for block in _python_blocks():
            exec(compile(block, str(README), "exec"), namespace)
        out = capsys.readouterr().out
        assert "250,000" in out
        assert "v=DKIM1" in out

    def test_two_commands_block_is_what_ci_runs(self) -> None:
        """.ci/run reads the "Two commands" block: exactly two command lines, comments aside,
        the second being the test command."""
        text = README.read_text(encoding="utf-8")
        section = re.search(r"^## Two commands\n(.*?)(?=^## )", text, re.S | re.M)
        assert section is not None
        block = re.search(r"```(?:sh|bash|console)?\n(.*?)```", section.group(1), re.S)
        assert block is not None
        commands = [
            line.strip()
            for line in block.group(1).splitlines()
            if line.strip() and not line.strip().startswith("#")
        ]
        assert 2 == len(commands)
        assert commands[0].startswith("pip install . && mailscale ")
        assert "pip install '.[test]' && python -m pytest" == commands[1]
        assert "Two commands" in (Path(__file__).parents[1] / ".ci" / "run").read_text("utf-8")
