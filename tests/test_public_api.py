"""The top-level package: every public name resolves, and importing it stays cheap."""

from __future__ import annotations

import subprocess
import sys

import pytest

import mailscale


class TestPublicAPI:
    @pytest.mark.parametrize("name", mailscale.__all__)
    def test_every_name_resolves(self, name: str) -> None:
        """Each name in ``__all__`` is importable from ``mailscale``."""
        value = getattr(mailscale, name)
        assert value is not None
        if name in mailscale._LAZY:
            module = sys.modules[mailscale._LAZY[name]]
            assert getattr(module, name) is value

    def test_lazy_names_are_public(self) -> None:
        """Every lazily loaded name is listed in ``__all__`` and ``dir()``."""
        assert set() == set(mailscale._LAZY) - set(mailscale.__all__)
        assert set() == set(mailscale.__all__) - set(dir(mailscale))

    def test_unknown_name(self) -> None:
        """An unknown attribute is an AttributeError naming it."""
        with pytest.raises(AttributeError, match="no_such_name"):
            mailscale.no_such_name  # noqa: B018

    def test_import_is_light(self) -> None:
        """``import mailscale`` loads none of the HTTP, DNS, crypto or boto stacks."""
        code = (
            "import sys, mailscale; "
            "heavy = [m for m in "
            "('httpx', 'dns.resolver', 'cryptography', 'boto3', 'redis', 'rich') "
            "if m in sys.modules]; print(','.join(heavy))"
        )
        out = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, check=True
        ).stdout.strip()
        assert "" == out

    def test_version(self) -> None:
        """The package version is the distribution's version."""
        from importlib.metadata import PackageNotFoundError, version

        try:
            installed = version("mailscale")
        except PackageNotFoundError:
            pytest.skip("mailscale is not installed as a distribution")
        assert installed == mailscale.__version__


class TestSubmodules:
    def test_no_submodule_is_shadowed(self) -> None:
        """No package attribute hides a public submodule of the same name.

        ``import pkg.name as m`` binds ``getattr(pkg, "name")``: a function re-exported
        under a module's name made ``import mailscale.auth.readiness as m`` a function.
        """
        import importlib
        import pkgutil
        import types

        shadowed = []
        for info in pkgutil.walk_packages(mailscale.__path__, "mailscale."):
            parent_name, _, leaf = info.name.rpartition(".")
            if leaf.startswith("_"):
                continue
            module = importlib.import_module(info.name)
            parent = importlib.import_module(parent_name)
            if getattr(parent, leaf) is not module:
                shadowed.append(info.name)
        assert [] == shadowed
        assert isinstance(importlib.import_module("mailscale.auth"), types.ModuleType)

    def test_readiness_is_the_function(self) -> None:
        """``mailscale.auth.readiness`` is the readiness check, reachable from ``mailscale``."""
        import mailscale.auth

        assert callable(mailscale.auth.readiness)
        assert "readiness" == mailscale.auth.readiness.__name__
        assert mailscale.readiness is mailscale.auth.readiness
