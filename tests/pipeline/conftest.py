"""Fixtures for the pipeline tests: an injected clock and every Outbox implementation.

A new store joins the contract suite by appending a ``pytest.param`` to
``OUTBOX_FACTORIES``: a callable ``(clock, path) -> Outbox`` where *path* is a
file in the test's temporary directory (the same path for every instance one
test makes, so a store shared by several instances can be tested).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from mailscale.pipeline import MemoryOutbox, Outbox, SQLiteOutbox
from peers.smtp_sink import BINARY as SINK_BINARY
from peers.smtp_sink import MISSING as SINK_MISSING
from peers.smtp_sink import SMTPSink


class Clock:
    """Epoch seconds that move only when told to."""

    def __init__(self, start: float = 1_800_000_000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


OutboxFactory = Callable[[Callable[[], float], Path], Outbox]


def _memory(clock: Callable[[], float], path: Path) -> Outbox:
    return MemoryOutbox(clock=clock)


def _sqlite(clock: Callable[[], float], path: Path) -> Outbox:
    return SQLiteOutbox(path, clock=clock)


OUTBOX_FACTORIES: list[object] = [
    pytest.param(_memory, id="memory"),
    pytest.param(_sqlite, id="sqlite"),
]


@pytest.fixture
def smtp_sink() -> Iterator[SMTPSink]:
    """Postfix's ``smtp-sink`` on a free loopback port (skipped when it is not installed)."""
    if SINK_BINARY is None:
        pytest.skip(SINK_MISSING)
    sink = SMTPSink()
    try:
        yield sink
    finally:
        sink.close()


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture(params=OUTBOX_FACTORIES)
def make_outbox(
    request: pytest.FixtureRequest, clock: Clock, tmp_path: Path
) -> Iterator[Callable[[], Outbox]]:
    """Makes instances of one Outbox implementation over one store, on the test's clock."""
    factory: OutboxFactory = request.param
    made: list[Outbox] = []

    def make() -> Outbox:
        box = factory(clock, tmp_path / "outbox.db")
        made.append(box)
        return box

    yield make
    for box in made:
        box.close()


@pytest.fixture
def outbox(make_outbox: Callable[[], Outbox]) -> Outbox:
    return make_outbox()
