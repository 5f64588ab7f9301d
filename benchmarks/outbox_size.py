"""Bytes the SQLite outbox keeps per stored message beyond the message itself.

Command (the figure `mailscale plan` reads from ``planning/data/measured.toml``)::

    PYTHONPATH=src python -m benchmarks.outbox_size [--messages 2000] [--size 20000]

Adds the messages to a new `SQLiteOutbox` in batches of 256 (one recipient each, a
Message-ID each, bodies of ``--size`` bytes of random printable text, which SQLite stores
as is), checkpoints the WAL into the database file, and prints the bytes on disk per
message (the database and the segment files of the bodies) and the bytes beyond the
message. Then leases and settles every message as delivered, closes the outbox (which
seals its last segment) and prints the bytes on disk again: the segment files of
delivered messages are deleted; the database keeps its pages for the next rows.
"""

from __future__ import annotations

import argparse
import random
import sqlite3
import string
import tempfile
from pathlib import Path

from mailscale.pipeline import NewMessage, Settle, Settlement, SQLiteOutbox

BATCH = 256


def _body(size: int, rng: random.Random) -> bytes:
    head = b"From: news@example.com\r\nTo: reader@example.org\r\nSubject: size\r\n\r\n"
    alphabet = string.ascii_letters + string.digits + " "
    lines = []
    remaining = size - len(head)
    while remaining > 0:
        line = "".join(rng.choices(alphabet, k=min(76, max(remaining - 2, 1)))) + "\r\n"
        lines.append(line)
        remaining -= len(line)
    return head + "".join(lines).encode()[: size - len(head)]


def _file_bytes(path: Path) -> int:
    with sqlite3.connect(path) as db:
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    db.close()
    # The database, its WAL and index, and the segment files of the bodies beside it.
    files = [*path.parent.glob(path.name + "*"), *path.parent.glob(path.name + "-bodies/*")]
    return sum(p.stat().st_size for p in files if p.is_file())


def measure(messages: int, size: int) -> dict[str, float]:
    rng = random.Random(7)
    with tempfile.TemporaryDirectory(prefix="outbox-size-") as tmp:
        path = Path(tmp) / "outbox.db"
        outbox = SQLiteOutbox(path)
        body_bytes = 0
        for start in range(0, messages, BATCH):
            batch = []
            for i in range(start, min(start + BATCH, messages)):
                body = _body(size, rng)
                body_bytes += len(body)
                batch.append(
                    NewMessage(
                        sender="news@example.com",
                        recipients=(f"r{i}@example.org",),
                        body=body,
                        message_id=f"<{i}@size.example.com>",
                    )
                )
            outbox.add(batch)
        queued = _file_bytes(path)
        while leases := outbox.lease(BATCH, visibility=60):
            outbox.settle([Settlement(id=x.id, token=x.token, action=Settle.DONE) for x in leases])
        outbox.close()
        settled = _file_bytes(path)
    return {
        "messages": messages,
        "body_bytes_per_message": body_bytes / messages,
        "file_bytes_per_message": queued / messages,
        "overhead_bytes_per_message": (queued - body_bytes) / messages,
        "file_bytes_per_message_after_delivery": settled / messages,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=2000)
    parser.add_argument("--size", type=int, default=20_000)
    args = parser.parse_args()
    for key, value in measure(args.messages, args.size).items():
        print(f"{key}: {value:,.0f}")


if __name__ == "__main__":
    main()
