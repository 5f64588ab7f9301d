"""Fixtures shared by the whole suite."""

from __future__ import annotations

from types import ModuleType

import pytest

from mailscale import _core_py, _impl


def _core_impls() -> list[object]:
    params: list[object] = [pytest.param(_core_py, id="py")]
    if _impl.USING_EXTENSIONS:
        params.append(pytest.param(_impl.core, id="c"))
    return params


@pytest.fixture(params=_core_impls())
def core_impl(request: pytest.FixtureRequest) -> ModuleType:
    """Each hot-path implementation in turn: the twin, then the compiled core."""
    return request.param  # type: ignore[no-any-return]
