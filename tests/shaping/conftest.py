"""Fixtures for the shaping tests: a fake clock."""

from __future__ import annotations

import pytest

from ._clock import FakeClock


@pytest.fixture
def clock() -> FakeClock:
    """A fresh fake clock at t = 1 s."""
    return FakeClock()
