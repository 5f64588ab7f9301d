"""Wheels ship sources and the extension they were built with, never generated C."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _tracked_files() -> list[str]:
    try:
        done = subprocess.run(
            ["git", "ls-files", "-co", "--exclude-standard"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
            timeout=60,
        )
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("needs a git checkout to copy the source tree")
    return done.stdout.splitlines()


class TestPureWheel:
    def test_no_generated_c_or_extension(self, tmp_path: Path) -> None:
        """After a compiled build left _core.c in the manifest, the pure wheel still omits it.

        The wheel is built with build isolation: pip installs the build requirements that
        pyproject.toml declares, whatever setuptools (if any) the running interpreter has.
        """
        tree = tmp_path / "tree"
        for name in _tracked_files():
            if (ROOT / name).is_file():
                (tree / name).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(ROOT / name, tree / name)
        # The state a compiled build leaves: the generated C file, the built extension, and
        # the egg-info manifest listing the C file (setuptools reads it back on the next build).
        package = tree / "src" / "mailscale" / "_hot"
        (package / "_core.c").write_text("/* generated */\n", "utf-8")
        (package / "_core.cpython-311-x86_64-linux-gnu.so").write_bytes(b"\x7fELF")
        egg = tree / "src" / "mailscale.egg-info"
        egg.mkdir()
        (egg / "SOURCES.txt").write_text(
            "src/mailscale/_hot/_core.c\n"
            "src/mailscale/_hot/_core.cpython-311-x86_64-linux-gnu.so\n",
            "utf-8",
        )
        env = dict(os.environ, MAILSCALE_NO_EXTENSIONS="1")
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "wheel",
                "-q",
                "--no-deps",
                "--disable-pip-version-check",
                "-w",
                str(tmp_path / "wheels"),
                str(tree),
            ],
            capture_output=True,
            text=True,
            env=env,
            timeout=300,
            check=False,
        )
        assert 0 == done.returncode, done.stderr[-2000:]
        (wheel,) = (tmp_path / "wheels").glob("mailscale-*.whl")
        names = zipfile.ZipFile(wheel).namelist()
        for source in ("_core.pyx", "_core_dkim.pxi", "_core_dkim_scan.h", "_core.pyi"):
            assert f"mailscale/_hot/{source}" in names
        assert [] == [n for n in names if n.endswith((".c", ".so", ".pyd"))]


def _pyproject() -> dict[str, Any]:
    if sys.version_info >= (3, 11):
        import tomllib
    else:
        import tomli as tomllib
    return tomllib.loads((ROOT / "pyproject.toml").read_text("utf-8"))


class TestBounds:
    def test_build_requirements_have_upper_bounds(self) -> None:
        """A new major of the build backend or Cython cannot break a fresh build unannounced."""
        requires = _pyproject()["build-system"]["requires"]
        assert [] == [r for r in requires if "<" not in r]
        assert [] == [r for r in requires if r.split("<")[0].split(">")[0] == "wheel"]

    def test_test_tooling_has_upper_bounds(self) -> None:
        """Every test dependency is bounded below its next major (filterwarnings = error)."""
        test = _pyproject()["project"]["optional-dependencies"]["test"]
        assert [] == [r for r in test if "<" not in r]
