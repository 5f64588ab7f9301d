"""Guardrail: no module of the library uses another module's private names.

The rule, checked on every ``.py`` file under ``src/mailscale`` with :mod:`ast`:

1. A *private name* is one that starts with a single underscore (``_Call``);
   dunder names (``__version__``) are not private.
2. A module may not import a private name from another module
   (``from mailscale.x import _helper``), and may not read one as an attribute
   of a library module it imported (``core_py._helper``).
3. Exception: a private *module* ``pkg._mod`` may be imported whole
   (``from pkg import _mod``, ``import pkg._mod``) by modules inside ``pkg``
   (``pkg`` itself, its modules and its subpackages); the public names of
   ``pkg._mod`` may then be imported from it by those modules. Outside ``pkg``
   the private module is off limits.
4. Only the library's own modules (``mailscale.*``) are checked; what a module
   does with the standard library's private names is not this test's concern.
5. The pure-Python twin of the compiled core is one module written in several
   files (``mailscale._hot._core_py`` and its parts ``_core_*_py``), as the
   compiled ``_core`` is one module built from several ``.pxi`` include files:
   names pass freely between those files, and only between them.

A helper that two modules need lives in the lower one under a public name.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"
PACKAGE = SRC / "mailscale"


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _is_package(path: Path) -> bool:
    return path.name == "__init__.py"


def _is_private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def _is_module(dotted: str) -> bool:
    """True when *dotted* names a module or package of the library (source or compiled)."""
    base = SRC.joinpath(*dotted.split("."))
    if base.is_dir() or base.with_suffix(".py").exists() or base.with_suffix(".pyx").exists():
        return True
    return any(base.parent.glob(base.name + ".*.so"))


def _may_use_private_module(importer: str, dotted: str) -> bool:
    """Rule 3: *importer* lies inside the package that holds the private module *dotted*."""
    package = dotted.rpartition(".")[0]
    return importer == package or importer.startswith(package + ".")


def _absolute(node: ast.ImportFrom, module: str, is_package: bool) -> str:
    if not node.level:
        return node.module or ""
    base = module.split(".") if is_package else module.split(".")[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def _private_steps(dotted: str) -> list[str]:
    """The prefixes of *dotted* whose last part is private: each a private module passed."""
    parts = dotted.split(".")
    return [".".join(parts[: i + 1]) for i, p in enumerate(parts) if _is_private(p)]


def violations(path: Path, source: str | None = None) -> list[str]:
    """Every use of another module's private name in the file at *path* (or *source* as it)."""
    module = _module_name(path)
    text = path.read_text(encoding="utf-8") if source is None else source
    tree = ast.parse(text, str(path))
    found: list[str] = []
    modules: dict[str, str] = {}  # local name -> library module it is bound to

    def check_module_path(dotted: str, line: int) -> None:
        for step in _private_steps(dotted):
            if step != module and not _may_use_private_module(module, step):
                found.append(f"{module}:{line} uses private module {step}")

    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if not alias.name.startswith("mailscale"):
                    continue
                check_module_path(alias.name, node.lineno)
                if alias.asname:
                    modules[alias.asname] = alias.name
                else:
                    modules[alias.name.split(".")[0]] = alias.name.split(".")[0]
        elif isinstance(node, ast.ImportFrom):
            source = _absolute(node, module, _is_package(path))
            if not source.startswith("mailscale"):
                continue
            check_module_path(source, node.lineno)
            for alias in node.names:
                full = f"{source}.{alias.name}"
                if _is_module(full):
                    modules[alias.asname or alias.name] = full
                    check_module_path(full, node.lineno)
                elif _is_private(alias.name) and not _same_module(module, source):
                    found.append(f"{module}:{node.lineno} imports {alias.name} from {source}")
    for node in ast.walk(tree):
        if not (isinstance(node, ast.Attribute) and _is_private(node.attr)):
            continue
        dotted = _dotted(node.value, modules)
        if dotted is None or _same_module(module, dotted):
            continue
        full = f"{dotted}.{node.attr}"
        if _is_module(full):
            check_module_path(full, node.lineno)
        else:
            found.append(f"{module}:{node.lineno} reads {node.attr} of {dotted}")
    return found


def _dotted(node: ast.expr, modules: dict[str, str]) -> str | None:
    """The library module an expression such as ``core_py`` or ``mailscale.x`` names, if any."""
    if isinstance(node, ast.Name):
        return modules.get(node.id)
    if isinstance(node, ast.Attribute):
        parent = _dotted(node.value, modules)
        if parent is not None and _is_module(f"{parent}.{node.attr}"):
            return f"{parent}.{node.attr}"
    return None


FILES = sorted(PACKAGE.rglob("*.py"))

_TWIN = re.compile(r"mailscale\._hot\._core(_\w+)?_py")


def _same_module(importer: str, source: str) -> bool:
    """Rule 5: both are files of the twin, or simply the same module."""
    return importer == source or bool(_TWIN.fullmatch(importer) and _TWIN.fullmatch(source))


class TestPrivateImports:
    def test_the_library_follows_the_rule(self) -> None:
        """No module of src/mailscale uses another module's private names."""
        found = [v for path in FILES for v in violations(path)]
        assert [] == found

    @pytest.mark.parametrize(
        ("source", "expected"),
        [
            (
                "from mailscale.transports._http import _Call\n",
                ["mailscale.transports.smtp:1 imports _Call from mailscale.transports._http"],
            ),
            ("from mailscale.transports._http import HTTPTransportBase\n", []),
            ("from mailscale.transports import _session\n", []),
            (
                "from mailscale._hot._core_dkim_py import _as_bytes\n",
                [
                    "mailscale.transports.smtp:1 uses private module mailscale._hot._core_dkim_py",
                    "mailscale.transports.smtp:1 imports _as_bytes from "
                    "mailscale._hot._core_dkim_py",
                ],
            ),
            (
                "from mailscale.signing import _signer\n",
                ["mailscale.transports.smtp:1 uses private module mailscale.signing._signer"],
            ),
            (
                "from mailscale.transports import _session\n_session._text(b'')\n",
                ["mailscale.transports.smtp:2 reads _text of mailscale.transports._session"],
            ),
            (
                "import mailscale._core_py as core\ncore._as_bytes\n",
                ["mailscale.transports.smtp:2 reads _as_bytes of mailscale._core_py"],
            ),
            (
                "from .base import _frozen\n",
                ["mailscale.transports.smtp:1 imports _frozen from mailscale.transports.base"],
            ),
            ("import sys\nsys._getframe()\nfrom mailscale import __version__\n", []),
        ],
    )
    def test_rule(self, source: str, expected: list[str]) -> None:
        """Each clause of the rule flags exactly what it should, in a module of transports."""
        assert expected == violations(PACKAGE / "transports" / "smtp.py", source)
