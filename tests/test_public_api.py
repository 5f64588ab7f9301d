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
