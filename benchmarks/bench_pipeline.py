"""The sending pipeline end to end: submit → outbox → shape → sign → send to ``null://``.

Run: ``python -m pytest benchmarks/bench_pipeline.py -s -m gate`` (figures and gates)
or ``python -m benchmarks.bench_pipeline`` (figures only), or
``python -m benchmarks.bench_pipeline --phases`` (CPU per message of each phase with the
SQLite outbox), or ``python -m benchmarks.bench_pipeline --priority-million [DIR]`` (a
password reset during a one-million-message bulk send; about 20 GB of disk).

Reference, measured in the same run on the same messages: ``DKIMSigner.sign_batch``
alone on the messages' wire bytes, in one thread. The pipeline runs in one thread too
(``drain`` without workers), or with ``workers=1`` (submit in the calling thread, delivery
in one worker thread: the figure a running Sender gives), so the ratio end-to-end /
sign-only is the share of the signing rate the rest of the pipeline (validation,
Message-ID, outbox, leases, settlements, shaping decisions, metrics) leaves. Targets for
RSA-2048 and 20 KB messages: >= 0.9 with the memory outbox, >= 0.8 with the SQLite
outbox. Ed25519 signing is much cheaper, so the same overhead is a larger share of it:
its ratio is reported, not gated.

CPU time is the process's (``time.process_time``: every thread, SQLite's work included),
so work moved to another thread is still counted.
"""

from __future__ import annotations

import contextlib
import functools
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from mailscale.message import Envelope, ensure_message_id
from mailscale.pipeline import MemoryOutbox, Outbox, Sender, SQLiteOutbox
from mailscale.shaping import Limit, Shaper
from mailscale.signing import DKIMSigner, generate_key

SIZE = 20 * 1024
N = 300
ROUNDS = 9  # odd, so the median is one round


def _message(i: int) -> bytes:
    head = (
        f"From: news@example.com\r\nTo: reader{i}@example.net\r\nSubject: issue {i}\r\n"
        "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n"
    ).encode()
    line = b"The quick brown fox jumps over the lazy dog, again and again.\r\n"
    return head + line * (SIZE // len(line))


def _envelopes(n: int) -> list[Envelope]:
    return [
        Envelope(
            sender="news@example.com",
            recipients=(f"reader{i}@example.net",),
            message=_message(i),
        )
        for i in range(n)
    ]


def _timed(fn: Callable[[], None]) -> tuple[float, float]:
    """Wall and CPU seconds of one call (CPU time of the process: every thread)."""
    wall, cpu = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - wall, time.process_time() - cpu


def measure(
    kind: str,
    *,
    shaped: bool = False,
    n: int = N,
    outbox: str = "memory",
    workers: int = 0,
    steady: bool = False,
) -> dict[str, float]:
    """Messages/s of sign_batch alone and of the pipeline end to end, interleaved.

    *outbox* is ``"memory"`` or ``"sqlite"`` (a new, empty file per round, created before
    the clock starts; ``synchronous=full``: every submit and settlement fsynced; the
    clock stops after ``close``, which checkpoints the WAL into the file, so every body
    written twice is counted). *workers*: 0 delivers in this thread (``drain`` without
    workers), 1 in one worker thread started before the submit. *steady*: one SQLite
    outbox for every round instead (opened before the first round, closed after the
    last, outside the clock), as a running sender keeps it: its statements are prepared,
    its segment file rolls every 32 MB (about five rounds) and is deleted when emptied,
    and SQLite checkpoints its WAL as it fills, all inside the rounds' clocks.

    ``ROUNDS`` interleaved rounds, the order flipping every round; the ratios are the
    median of the per-round ratios, by wall time and by the process's CPU time (the
    CPU-time ratio is the one other processes on a loaded machine disturb least); the
    rates are each side's best round.
    """
    key = generate_key("rsa", 2048) if kind == "rsa" else generate_key("ed25519")
    signer = DKIMSigner("example.com", "bench", key)
    envelopes = _envelopes(n)
    # The reference signs exactly what the pipeline signs: the wire bytes with a Message-ID.
    bodies = [ensure_message_id(e.to_bytes(), e.sender)[0] for e in envelopes]

    def sign_only() -> None:
        signer.sign_batch(bodies)

    def end_to_end(store: Outbox, close: bool = True) -> None:
        shaper = (
            Shaper({"domain:*": Limit(10**9, 1.0, burst=10**6)}, strict=False) if shaped else None
        )
        try:
            sender = Sender(
                "null://", outbox=store, signer=signer, shaper=shaper, workers=max(1, workers)
            )
            if workers:
                sender.start()
            sender.submit(envelopes)
            sender.drain()
            assert n == sender.metrics().total.sent
            sender.close()
        finally:
            if close:
                store.close()

    rounds: list[tuple[float, float, float, float]] = []
    kept_dir = Path(tempfile.mkdtemp(prefix="bench-pipeline-"))
    kept = SQLiteOutbox(kept_dir / "o.db") if steady else None
    try:
        for i in range(ROUNDS):  # interleaved, so both see the same machine load
            tmp = Path(tempfile.mkdtemp(prefix="bench-pipeline-"))
            try:
                if kept is not None:
                    run = functools.partial(end_to_end, kept, close=False)
                else:
                    store: Outbox = (
                        MemoryOutbox() if outbox == "memory" else SQLiteOutbox(tmp / "o.db")
                    )
                    run = functools.partial(end_to_end, store)
                if i % 2:  # the order flips every round: neither side always runs second
                    e2e = _timed(run)
                    sign = _timed(sign_only)
                else:
                    sign = _timed(sign_only)
                    e2e = _timed(run)
            finally:
                shutil.rmtree(tmp, ignore_errors=True)
            rounds.append((*sign, *e2e))
    finally:
        if kept is not None:
            kept.close()
        shutil.rmtree(kept_dir, ignore_errors=True)
    # Rates: the best round of each side. Ratios: the median of the per-round ratios
    # (benchmarks/_ratio.py's statistic), so a burst that hits one side of one round
    # does not decide the figure.
    return {
        "sign_rate": n / min(r[0] for r in rounds),
        "e2e_rate": n / min(r[2] for r in rounds),
        "ratio": statistics.median(r[0] / r[2] for r in rounds),
        "cpu_ratio": statistics.median(r[1] / r[3] for r in rounds),
    }


def _report(label: str, figures: dict[str, float]) -> None:
    print(
        f"\n{label}: sign_batch only {figures['sign_rate']:,.0f} msg/s, "
        f"pipeline end to end {figures['e2e_rate']:,.0f} msg/s, "
        f"ratio {figures['ratio']:.3f}; by CPU time of the process {figures['cpu_ratio']:.3f}"
    )


@pytest.mark.gate
def test_gate_rsa2048_end_to_end_keeps_the_signing_rate() -> None:
    """RSA-2048, 20 KB, memory outbox, null transport: target ratio >= 0.9; the gate's
    floor is lower because a loaded shared machine moves single runs by 10 % or more."""
    figures = measure("rsa")
    _report("RSA-2048 20 KB, memory outbox", figures)
    assert figures["cpu_ratio"] >= 0.75


@pytest.mark.gate
def test_figure_rsa2048_with_domain_shaping() -> None:
    """The same with a (never limiting) per-domain shaper deciding every message."""
    figures = measure("rsa", shaped=True)
    _report("RSA-2048 20 KB, memory outbox, shaped per domain", figures)
    assert figures["cpu_ratio"] >= 0.7


@pytest.mark.gate
def test_figure_ed25519_end_to_end() -> None:
    """Ed25519, 20 KB: reported (its signing is cheap, so the overhead shows more)."""
    figures = measure("ed25519")
    _report("Ed25519 20 KB, memory outbox", figures)
    assert figures["cpu_ratio"] > 0.3


def transactional_latency(bulk: int = 5000, *, outbox: str | None = None) -> dict[str, float]:
    """Seconds from submit to acceptance of a transactional message submitted one second
    into a bulk send of *bulk* RSA-2048-signed 20 KB messages (one worker, null transport).

    *outbox*: None for the memory outbox, with the bulk submitted at once after the
    worker started; or the path of a SQLite outbox, filled with the bulk in batches of
    1,000 before the worker starts (so that a million messages need not be in memory),
    the clock starting one second after it did."""
    import threading

    from mailscale.pipeline import EventKind

    signer = DKIMSigner("example.com", "bench", generate_key("rsa", 2048))
    sent_at: dict[str, float] = {}
    bulk_sent = [0]
    done = threading.Event()

    def on_event(event: object) -> None:
        if getattr(event, "kind", None) is not EventKind.SENT:
            return
        if "reset" in event.recipients[0]:  # type: ignore[attr-defined]
            sent_at["reset"] = time.monotonic()
            sent_at["bulk_before"] = bulk_sent[0]
            done.set()
        else:
            bulk_sent[0] += 1

    reset = Envelope(
        sender="news@example.com", recipients=("reset@example.org",), message=_message(0)
    )
    store: Outbox | None = None
    if outbox is not None:
        store = SQLiteOutbox(outbox, synchronous="normal")
        filler = Sender("null://", outbox=store)
        chunk = _envelopes(min(bulk, 1000))
        for start in range(0, bulk, len(chunk)):
            filler.submit(chunk[: bulk - start], priority="bulk")
        filler.close()
    with Sender("null://", outbox=store, signer=signer, on_event=on_event) as sender:
        if store is None:
            sender.submit(_envelopes(bulk), priority="bulk")
        time.sleep(1.0)
        submitted = time.monotonic()
        bulk_at_submit = bulk_sent[0]
        sender.submit(reset, priority="transactional")
        done.wait(60)
        left = sender.outbox.stats().depth
        sender.stop(graceful=False)
    if store is not None:
        store.close()
    return {
        "latency": sent_at["reset"] - submitted,
        "bulk_left": float(left),
        # Bulk messages that went out between the reset's submit and its acceptance.
        "bulk_ahead": float(sent_at["bulk_before"] - bulk_at_submit),
    }


@pytest.mark.gate
def test_figure_transactional_during_bulk() -> None:
    """A password reset submitted during a bulk send goes out within one or two batches:
    counted in messages sent ahead of it, not in seconds (the wall time is printed)."""
    figures = transactional_latency()
    print(
        f"\ntransactional during a 5,000-message bulk send: accepted "
        f"{figures['latency']:.2f} s after submit, {figures['bulk_ahead']:.0f} bulk messages "
        f"sent in between, {figures['bulk_left']:.0f} still queued then"
    )
    assert figures["bulk_ahead"] <= 2 * 256  # at most the batch in flight and one more
    assert figures["bulk_left"] > 0


@pytest.mark.gate
def test_gate_rsa2048_end_to_end_with_the_sqlite_outbox() -> None:
    """RSA-2048, 20 KB, SQLite outbox (fsynced), null transport: target ratio >= 0.8.

    Gated on the CPU-time ratio: the wall-time one also waits for the bodies' flush to
    disk and, on a loaded machine, for the disk shared with other processes. The floor
    is below the target (0.84-0.85 measured on a quiet machine, docs/performance.md)
    because a loaded shared machine moves single runs by 10 % or more."""
    figures = measure("rsa", outbox="sqlite")
    _report("RSA-2048 20 KB, SQLite outbox", figures)
    assert figures["cpu_ratio"] >= 0.7


def test_figure_rsa2048_sqlite_steady() -> None:
    """The SQLite outbox kept open across rounds, as a running sender keeps it: reported."""
    _report("RSA-2048 20 KB, SQLite outbox kept open", measure("rsa", outbox="sqlite", steady=True))
    _report(
        "RSA-2048 20 KB, SQLite outbox kept open, 1 worker",
        measure("rsa", outbox="sqlite", steady=True, workers=1),
    )


def test_figure_ed25519_end_to_end_sqlite() -> None:
    _report("Ed25519 20 KB, SQLite outbox", measure("ed25519", outbox="sqlite"))


def test_figure_one_worker_thread() -> None:
    """Delivery in one worker thread (a running Sender), both outboxes: reported."""
    _report("RSA-2048 20 KB, SQLite outbox, 1 worker", measure("rsa", outbox="sqlite", workers=1))
    _report("RSA-2048 20 KB, memory outbox, 1 worker", measure("rsa", workers=1))


class _TimedOutbox(SQLiteOutbox):
    """A SQLiteOutbox that adds up the CPU time of each of its calls, by name."""

    def __init__(self, path: Path, spent: dict[str, float]) -> None:
        self.spent = spent
        with self._timing("open"):
            super().__init__(path)

    @contextlib.contextmanager
    def _timing(self, name: str) -> Iterator[None]:
        cpu = time.process_time()
        try:
            yield
        finally:
            self.spent[name] = self.spent.get(name, 0.0) + time.process_time() - cpu

    def add(self, messages: Any) -> Any:
        with self._timing("add"):
            return super().add(messages)

    def lease(self, n: int, **options: Any) -> Any:
        with self._timing("lease"):
            return super().lease(n, **options)

    def settle(self, settlements: Any) -> Any:
        with self._timing("settle"):
            return super().settle(settlements)

    def close(self) -> None:
        with self._timing("close (checkpoint)"):
            super().close()


class _TimedSigner:
    """A signer that adds up the CPU time of ``sign_batch``."""

    def __init__(self, signer: DKIMSigner, spent: dict[str, float]) -> None:
        self._signer = signer
        self._spent = spent

    def sign_batch(self, messages: Any, **options: Any) -> Any:
        cpu = time.process_time()
        try:
            return self._signer.sign_batch(messages, **options)
        finally:
            self._spent["signing"] = self._spent.get("signing", 0.0) + time.process_time() - cpu

    def sign(self, message: bytes) -> bytes:
        return self._signer.sign(message)


def phases(kind: str = "ed25519", *, n: int = N, rounds: int = ROUNDS) -> dict[str, float]:
    """CPU µs per message of each phase of the end-to-end run with the SQLite outbox
    (``drain`` in this thread), the best of *rounds* rounds for each phase; Ed25519 by
    default, so that signing hides less of the rest."""
    key = generate_key("rsa", 2048) if kind == "rsa" else generate_key("ed25519")
    signer = DKIMSigner("example.com", "bench", key)
    envelopes = _envelopes(n)
    best: dict[str, float] = {}
    for _ in range(rounds):
        spent: dict[str, float] = {}
        tmp = Path(tempfile.mkdtemp(prefix="bench-pipeline-"))
        try:
            cpu = time.process_time()
            store = _TimedOutbox(tmp / "o.db", spent)
            sender = Sender("null://", outbox=store, signer=_TimedSigner(signer, spent))
            start = time.process_time()
            sender.submit(envelopes)
            spent["submit (add included)"] = time.process_time() - start
            sender.drain()
            sender.close()
            store.close()
            spent["whole run"] = time.process_time() - cpu
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        for name, seconds in spent.items():
            best[name] = min(best.get(name, float("inf")), seconds * 1e6 / n)
    return best


if __name__ == "__main__":
    if sys.argv[1:2] == ["--priority-million"]:
        # A password reset during a one-million-message bulk send from a SQLite outbox
        # (about 20 GB in a temporary folder, or the folder given after the option).
        folder = Path(tempfile.mkdtemp(prefix="bench-priority-", dir=(sys.argv[2:3] or [None])[0]))
        try:
            late = transactional_latency(1_000_000, outbox=str(folder / "o.db"))
        finally:
            shutil.rmtree(folder, ignore_errors=True)
        print(
            f"transactional during a 1,000,000-message bulk send (SQLite outbox): accepted "
            f"{late['latency']:.2f} s after submit, {late['bulk_ahead']:.0f} bulk messages "
            f"sent in between, {late['bulk_left']:,.0f} still queued then"
        )
        sys.exit(0)
    if sys.argv[1:] == ["--phases"]:
        for name, micros in phases().items():
            print(f"{name}: {micros:.0f} µs of CPU per message")
        sys.exit(0)
    _report("RSA-2048 20 KB, SQLite outbox", measure("rsa", outbox="sqlite"))
    _report("RSA-2048 20 KB, SQLite outbox, 1 worker", measure("rsa", outbox="sqlite", workers=1))
    test_figure_rsa2048_sqlite_steady()
    _report("Ed25519 20 KB, SQLite outbox", measure("ed25519", outbox="sqlite"))
    _report(
        "Ed25519 20 KB, SQLite outbox kept open",
        measure("ed25519", outbox="sqlite", steady=True),
    )
    _report("RSA-2048 20 KB, memory outbox", measure("rsa"))
    _report("RSA-2048 20 KB, memory outbox, 1 worker", measure("rsa", workers=1))
    _report("RSA-2048 20 KB, memory outbox, shaped per domain", measure("rsa", shaped=True))
    _report("Ed25519 20 KB, memory outbox", measure("ed25519"))
    late = transactional_latency()
    print(f"transactional during bulk: {late['latency']:.2f} s, {late['bulk_left']:.0f} left")
