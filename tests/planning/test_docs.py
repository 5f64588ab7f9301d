"""docs/planning.md's Python blocks run as written and show what the code returns."""

from __future__ import annotations

import ast
import re
from pathlib import Path
from typing import Any

import pytest

from mailscale.errors import PlanningError

DOC = Path(__file__).resolve().parents[2] / "docs" / "planning.md"


def _blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", DOC.read_text(encoding="utf-8"), re.S)


def _commented_value(line: str, end: int) -> tuple[bool, Any]:
    """The literal in a trailing ``# comment`` after column ``end``, if it is one."""
    rest = line[end:].strip()
    if not rest.startswith("#"):
        return False, None
    try:
        return True, ast.literal_eval(rest[1:].strip())
    except (ValueError, SyntaxError):
        return False, None  # prose, not a value


def _run_script(block: str, namespace: dict[str, Any]) -> int:
    """Run a script block statement by statement; check ``expr  # value`` lines. Return checks."""
    lines = block.splitlines()
    checked = 0
    for node in ast.parse(block).body:
        source = ast.get_source_segment(block, node)
        assert source is not None
        if isinstance(node, ast.Expr):
            value = eval(compile(ast.Expression(node.value), str(DOC), "eval"), namespace)
            assert node.end_lineno is not None and node.end_col_offset is not None
            found, expected = _commented_value(lines[node.end_lineno - 1], node.end_col_offset)
            if found:
                assert expected == value, source
                checked += 1
        else:
            exec(compile(ast.Module([node], type_ignores=[]), str(DOC), "exec"), namespace)
    return checked


def _run_session(block: str, namespace: dict[str, Any]) -> int:
    """Run a ``>>>`` block: each result's repr, or ``PlanningError: message``, must match."""
    checked = 0
    entries = re.findall(r">>> (.*)\n((?:(?!>>> ).*\n?)*)", block)
    for source, shown in entries:
        expected = shown.strip()
        if expected.startswith("Traceback (most recent call last):"):  # doctest's form
            expected = expected.splitlines()[-1].removeprefix("mailscale.errors.")
        if expected.startswith("PlanningError: "):
            with pytest.raises(PlanningError) as info:
                exec(compile(source, str(DOC), "exec"), namespace)
            assert expected == f"PlanningError: {info.value}"
            checked += 1
            continue
        tree = ast.parse(source)
        if expected:
            value = eval(compile(source, str(DOC), "eval"), namespace)
            assert expected == repr(value), source
            checked += 1
        else:
            exec(compile(tree, str(DOC), "exec"), namespace)
    return checked


class TestPlanningDoc:
    def test_blocks_run_and_show_what_the_code_returns(
        self,
        tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str],
    ) -> None:
        """Every python block runs in order in one namespace; every shown value is the result."""
        monkeypatch.chdir(tmp_path)
        (tmp_path / "mine.toml").write_text("[hosting]\nmin_criteria_met = 3\n", "utf-8")
        namespace: dict[str, Any] = {}
        checked = 0
        blocks = _blocks()
        assert len(blocks) >= 4
        for block in blocks:
            if block.lstrip().startswith(">>>"):
                checked += _run_session(block, namespace)
            else:
                checked += _run_script(block, namespace)
        assert checked >= 8
        assert "250,000 emails/month" in capsys.readouterr().out
