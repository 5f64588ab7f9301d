"""SQLiteOutbox: submit and lease/settle rates against raw sqlite3; the 1 M-message memory figure.

Ratios (one run, interleaved rounds)::

    PYTHONPATH=src python -m benchmarks.bench_outbox

The resident-memory figure (1,000,000 messages of 20 KB: about 20 GB of disk, several
minutes; not part of CI)::

    PYTHONPATH=src python -m benchmarks.bench_outbox --million [--count N] [--dir DIR]

It runs a Sender over a SQLite outbox in a child process: submits the messages in
batches of 1,000, then delivers them all to ``null://``, and reports the child's peak
resident memory (``ru_maxrss``) and the time of each phase.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import pytest

from mailscale.pipeline import NewMessage, Settle, Settlement, SQLiteOutbox

BODY = b"Subject: benchmark\r\n\r\n" + b"x" * 20_000
BATCH = 256


def _messages(start: int, n: int) -> list[NewMessage]:
    return [
        NewMessage(
            sender="news@example.com",
            recipients=(f"r{i}@example.org",),
            body=BODY,
            message_id=f"<{i}@bench.example.com>",
        )
        for i in range(start, start + n)
    ]


def _raw_insert(db: sqlite3.Connection, rows: list[tuple[str, bytes]]) -> None:
    db.execute("BEGIN IMMEDIATE")
    db.executemany("INSERT INTO raw (message_id, body) VALUES (?, ?)", rows)
    db.execute("COMMIT")


def measure(rounds: int = 7, synchronous: str = "full") -> dict[str, float]:
    """Interleaved rounds of: raw sqlite3 insert of BATCH bodies in one transaction, the
    outbox's add of the same batch, and its lease + settle(DONE) of a batch. Returns the
    median rates (messages/s) and the median of the per-round ratios."""
    tmp = Path(tempfile.mkdtemp(prefix="bench-outbox-"))
    try:
        raw = sqlite3.connect(tmp / "raw.db", isolation_level=None)
        raw.execute("PRAGMA journal_mode=WAL")  # default page size: sqlite3 as most use it
        raw.execute(f"PRAGMA synchronous={synchronous.upper()}")
        raw.execute("CREATE TABLE raw (id INTEGER PRIMARY KEY, message_id TEXT, body BLOB)")
        box = SQLiteOutbox(tmp / "outbox.db", synchronous=synchronous)
        raw_rates, add_rates, cycle_rates = [], [], []
        for r in range(rounds):
            msgs = _messages(r * BATCH, BATCH)
            rows = [(m.message_id, m.body) for m in msgs]
            t0 = time.perf_counter()
            _raw_insert(raw, rows)
            t1 = time.perf_counter()
            box.add(msgs)
            t2 = time.perf_counter()
            leases = box.lease(BATCH, visibility=60)
            box.settle([Settlement(id=x.id, token=x.token, action=Settle.DONE) for x in leases])
            t3 = time.perf_counter()
            assert len(leases) == BATCH
            raw_rates.append(BATCH / (t1 - t0))
            add_rates.append(BATCH / (t2 - t1))
            cycle_rates.append(BATCH / (t3 - t2))
        box.close()
        raw.close()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return {
        "raw_insert_per_s": statistics.median(raw_rates),
        "add_per_s": statistics.median(add_rates),
        "lease_settle_per_s": statistics.median(cycle_rates),
        "add_vs_raw": statistics.median(a / b for a, b in zip(add_rates, raw_rates, strict=True)),
        "lease_settle_vs_raw": statistics.median(
            a / b for a, b in zip(cycle_rates, raw_rates, strict=True)
        ),
    }


@pytest.mark.gate
def test_gate_outbox_add_keeps_up_with_raw_sqlite() -> None:
    """Storing a batch in the outbox costs at most a few times a bare sqlite3 insert of
    the same bodies in one transaction (both fsync once per batch)."""
    figures = measure(rounds=5, synchronous="normal")
    print(f"\noutbox: {figures}")
    assert figures["add_vs_raw"] >= 0.25
    assert figures["lease_settle_vs_raw"] >= 0.25


_MILLION = textwrap.dedent(
    """
    import resource, sys, time
    from mailscale import Envelope
    from mailscale.pipeline import Sender
    count, db = int(sys.argv[1]), sys.argv[2]
    body = b"Subject: benchmark\\r\\nFrom: news@example.com\\r\\n\\r\\n" + b"x" * 20_000
    sender = Sender("null://", outbox="sqlite:///" + db + "?synchronous=normal", batch_size=256)
    t0 = time.perf_counter()
    for start in range(0, count, 1000):
        n = min(1000, count - start)
        sender.submit([
            Envelope(sender="news@example.com", recipients=[f"r{i}@d{i % 1000}.example.org"],
                     message=body)
            for i in range(start, start + n)
        ])
    t1 = time.perf_counter()
    rss_queued = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    depth = sender.outbox.stats().depth
    sender.drain()
    t2 = time.perf_counter()
    done = sender.outbox.stats().by_state["done"]
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(count, depth, done, round(t1 - t0, 1), round(t2 - t1, 1),
          round(rss_queued / 1024, 1), round(rss / 1024, 1))
    """
)


def million(count: int, directory: str | None) -> None:
    tmp = Path(tempfile.mkdtemp(prefix="bench-outbox-", dir=directory))
    try:
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
        out = subprocess.run(
            [sys.executable, "-c", _MILLION, str(count), str(tmp / "outbox.db")],
            capture_output=True,
            text=True,
            env=env,
            check=True,
        ).stdout.split()
        n, depth, done, submit_s, drain_s, rss_queued, rss = out
        print(
            f"{n} messages of 20 KB: submitted in {submit_s} s (queue depth {depth}), "
            f"delivered to null:// in {drain_s} s ({done} done); peak resident memory "
            f"{rss_queued} MB with all queued, {rss} MB at the end"
        )
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--million", action="store_true", help="the resident-memory figure")
    parser.add_argument("--count", type=int, default=1_000_000)
    parser.add_argument("--dir", default=None, help="where the temporary database goes")
    parser.add_argument("--synchronous", default="full", choices=["full", "normal"])
    args = parser.parse_args()
    if args.million:
        million(args.count, args.dir)
        return
    figures = measure(rounds=9, synchronous=args.synchronous)
    print(f"synchronous={args.synchronous}, batches of {BATCH} messages of 20 KB, 9 rounds:")
    for name, value in figures.items():
        print(f"  {name}: {value:,.2f}")


if __name__ == "__main__":
    main()
