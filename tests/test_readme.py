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
        assert "pip install . && mailscale plan 250k" in text
        assert "pip install '.[test]' && python -m pytest" in text

    def test_quick_start_runs(self, capsys: pytest.CaptureFixture[str]) -> None:
        """The Python blocks, run in order in one namespace, complete and print the plan."""
        namespace: dict[str, object] = {}
        for block in _python_blocks():
            exec(compile(block, str(README), "exec"), namespace)
        out = capsys.readouterr().out
        assert "250,000" in out
        assert "v=DKIM1" in out
