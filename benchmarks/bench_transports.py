"""Transports: messages/s to null, memory and a local SMTP peer, and the layer's overhead.

Run: ``python -m pytest benchmarks/bench_transports.py -s`` (figures) or with
``-m gate --benchmark-disable`` (the gates only).

The SMTP figures put mailscale beside the cost of the peer alone: the same
transactions (MAIL, RCPT, DATA on one kept-open connection) sent with bare
smtplib to the same aiosmtpd server. Their ratio is the share of the peer's
throughput mailscale keeps; aiosmtpd, not the client, is the bottleneck.
"""

from __future__ import annotations

import contextlib
import smtplib
import socket
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from aiosmtpd.controller import Controller

from mailscale.message import Envelope, SendResult, SendStatus
from mailscale.transports.composite import FailoverTransport
from mailscale.transports.dev import MemoryTransport, NullTransport
from mailscale.transports.retry import RetryingTransport, RetryPolicy
from mailscale.transports.smtp import SMTPTransport

from ._ratio import best_rate, gate, gates, ratio

MESSAGE = (
    b"From: sender@example.com\r\nTo: rcpt@example.net\r\nSubject: benchmark\r\n"
    b"Message-ID: <bench@example.com>\r\nMIME-Version: 1.0\r\n"
    b"Content-Type: text/plain; charset=utf-8\r\n\r\n" + b"Hello, this is a benchmark.\r\n" * 40
)
BATCH = [
    Envelope(sender="sender@example.com", recipients=("rcpt@example.net",), message=MESSAGE)
    for _ in range(1000)
]


class _Sink:
    """An aiosmtpd handler that accepts and counts."""

    def __init__(self) -> None:
        self.count = 0

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.count += 1
        return "250 2.0.0 Ok"


@contextlib.contextmanager
def smtp_peer() -> Iterator[tuple[int, _Sink]]:
    with contextlib.closing(socket.socket()) as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    sink = _Sink()
    controller = Controller(sink, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield port, sink
    finally:
        controller.stop()


class RawClient:
    """The peer alone: bare smtplib transactions on one kept-open connection."""

    def __init__(self, port: int) -> None:
        self.client = smtplib.SMTP("127.0.0.1", port, local_hostname="localhost")
        self.client.ehlo()

    def run(self, n: int) -> None:
        for _ in range(n):
            self.client.mail("sender@example.com")
            self.client.rcpt("rcpt@example.net")
            self.client.data(MESSAGE)

    def close(self) -> None:
        self.client.quit()


def in_threads(fn: Callable[[], object], threads: int) -> Callable[[], None]:
    pool = ThreadPoolExecutor(threads)

    def run() -> None:
        for f in [pool.submit(fn) for _ in range(threads)]:
            f.result()

    return run


def reference_results(batch: Sequence[Envelope]) -> list[SendResult]:
    """The least a transport must do: one result per envelope."""
    return [
        SendResult(status=SendStatus.ACCEPTED, recipients=e.recipients, transport="null")
        for e in batch
    ]


# --- pytest-benchmark figures -------------------------------------------------


def test_null(benchmark: Any) -> None:
    t = NullTransport()
    out = benchmark(t.send, BATCH)
    assert len(BATCH) == len(out)


def test_memory(benchmark: Any) -> None:
    t = MemoryTransport()

    def run() -> list[SendResult]:
        t.clear()
        return t.send(BATCH)

    assert len(BATCH) == len(benchmark(run))


def test_retry_failover_null(benchmark: Any) -> None:
    t = RetryingTransport(FailoverTransport([NullTransport()]), RetryPolicy())
    assert len(BATCH) == len(benchmark(t.send, BATCH))


def test_smtp_one_connection(benchmark: Any) -> None:
    with (
        smtp_peer() as (port, _sink),
        SMTPTransport("127.0.0.1", port, tls="none", pool_size=1) as t,
    ):
        out = benchmark(t.send, BATCH[:100])
        assert all(r.accepted for r in out)


# --- figures and gates (ratios measured in one run) ---------------------------


@pytest.mark.gate
def test_gate_transport_layer_overhead() -> None:
    """The transports that do no I/O keep pace with building the results alone.

    The reference is the least any transport must do (one SendResult per
    envelope, measured in the same run); NullTransport, MemoryTransport and the
    retry(failover(null)) stack are each a ratio of its rate (CPU time).
    """
    null = NullTransport()
    memory = MemoryTransport()
    stack = RetryingTransport(FailoverTransport([NullTransport()]), RetryPolicy())

    def memory_send() -> None:
        memory.clear()
        memory.send(BATCH)

    def reference() -> None:
        reference_results(BATCH)

    kw: dict[str, Any] = {"rounds": 5, "clock": "cpu"}
    gates(
        ("null transport vs bare results", ratio(lambda: null.send(BATCH), reference, **kw), 0.87),
        ("memory transport vs bare results", ratio(memory_send, reference, **kw), 0.64),
        (
            "retry(failover(null)) vs bare results",
            ratio(lambda: stack.send(BATCH), reference, **kw),
            0.28,
        ),
    )


@pytest.mark.gate
def test_gate_smtp_keeps_most_of_the_peers_throughput() -> None:
    """mailscale over one pooled connection vs bare smtplib, same peer (target >= 0.8x)."""
    n = 50
    batch = BATCH[:n]
    with (
        smtp_peer() as (port, _sink),
        SMTPTransport("127.0.0.1", port, tls="none", pool_size=1, local_hostname="localhost") as t,
    ):
        t.send(batch[:1])  # open the pooled connection
        raw = RawClient(port)
        try:
            r = ratio(
                lambda: t.send(batch), lambda: raw.run(n), rounds=5, min_time=0.08, clock="wall"
            )
        finally:
            raw.close()
    gate("smtp 1 connection vs smtplib", r, 0.36)


def test_figure_smtp_four_connections() -> None:
    """Four threads over a pool of four connections, beside four bare smtplib clients."""
    n = 50
    batch = BATCH[:n]
    with (
        smtp_peer() as (port, _sink),
        SMTPTransport("127.0.0.1", port, tls="none", pool_size=4, local_hostname="localhost") as t,
    ):
        four = in_threads(lambda: t.send(batch), 4)
        four()
        raws = [RawClient(port) for _ in range(4)]
        try:
            pool = ThreadPoolExecutor(4)

            def raw_four() -> None:
                for f in [pool.submit(c.run, n) for c in raws]:
                    f.result()

            r = ratio(four, raw_four, ops=4 * n, rounds=3, min_time=0.1)
            ours = best_rate(four, ops=4 * n, rounds=3, min_time=0.1)
            one = best_rate(lambda: t.send(batch), ops=n, rounds=3, min_time=0.1)
        finally:
            for c in raws:
                c.close()
        assert all(r.accepted for r in t.send(batch))
    print(
        f"\nSMTP, 4 pooled connections: {ours:,.0f} msg/s, mailscale / smtplib alone = "
        f"{r:.2f}; 1 connection {one:,.0f} msg/s"
    )
