"""Fixtures shared by the whole suite."""

from __future__ import annotations

from collections.abc import Iterator
from types import ModuleType

import pytest
import structlog

from mailscale import _hot
from mailscale._hot import _core_py


def _core_impls() -> list[object]:
    params: list[object] = [pytest.param(_core_py, id="py")]
    if _hot.USING_EXTENSIONS:
        params.append(pytest.param(_hot.core, id="c"))
    return params


@pytest.fixture(params=_core_impls())
def core_impl(request: pytest.FixtureRequest) -> ModuleType:
    """Each hot-path implementation in turn: the twin, then the compiled core."""
    return request.param  # type: ignore[no-any-return]


@pytest.fixture(autouse=True)
def _structlog_unconfigured() -> Iterator[None]:
    """Undo what ``structlog.testing.capture_logs`` leaves behind (structlog marked
    configured), so events outside a capture go to the silent stdlib logger, as
    in an application that configured nothing."""
    yield
    structlog.reset_defaults()
