"""Throughput of the whole pipeline to a real SMTP sink, per CPU-second of the sender.

Run: ``python benchmarks/bench_smtp_sink.py`` (options: ``--messages``, ``--size``,
``--key rsa|ed25519``, ``--workers``, ``--outbox sqlite|memory``).

What is measured: a Sender with a SQLite outbox (WAL, ``synchronous=full``: every
submit and settle is durable) submits N messages of 100 KB and delivers them,
DKIM-signed with RSA-2048, through the SMTP transport to Postfix's ``smtp-sink``
on loopback (a C program; the sink is not the bottleneck). The figure is messages
per hour per CPU-second of the sending process: N / (process CPU seconds, every
thread, submit and delivery both) * 3600, i.e. what one fully busy core would
deliver in an hour. It is put beside KumoMTA's published figure (about 410,000
100-KB messages per hour per core: 3.3 M/hour on 8 cores with a durable spool)
and the target of 1,000,000. The same run also times ``sign_batch`` alone on the
same messages, to show the share of the CPU that is signing. Every message is
checked to have arrived (by Message-ID, in the sink's dump).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from mailscale.message import Envelope
from mailscale.pipeline import Sender
from mailscale.signing import DKIMSigner, generate_key
from peers.smtp_sink import BINARY, MISSING, SMTPSink

KUMOMTA_PER_CORE_HOUR = 410_000
TARGET_PER_CORE_HOUR = 1_000_000


def _messages(n: int, size: int) -> list[Envelope]:
    line = b"The quick brown fox jumps over the lazy dog; 0123456789 mailscale.\r\n"
    body = line * max(1, size // len(line))
    out = []
    for i in range(n):
        head = (
            f"From: bench@example.com\r\nTo: r{i}@example.org\r\nSubject: bench {i}\r\n"
            f"Message-ID: <bench{i}@example.com>\r\nDate: Thu, 01 Jan 2026 00:00:00 +0000\r\n"
            f"MIME-Version: 1.0\r\nContent-Type: text/plain\r\n\r\n"
        ).encode()
        out.append(
            Envelope(
                sender="bench@example.com", recipients=(f"r{i}@example.org",), message=head + body
            )
        )
    return out


def run(messages: int, size: int, key: str, workers: int, outbox: str) -> dict[str, object]:
    if BINARY is None:
        raise SystemExit(MISSING)
    private = generate_key(key, 2048) if key == "rsa" else generate_key(key)
    signer = DKIMSigner("example.com", "bench", private)
    envelopes = _messages(messages, size)
    sink = SMTPSink()
    try:
        with tempfile.TemporaryDirectory(prefix="bench-outbox-") as tmp:
            url = (
                f"sqlite:///{Path(tmp).resolve() / 'outbox.db'}"
                if outbox == "sqlite"
                else "memory://"
            )
            sender = Sender(
                f"{sink.url}&pool_size={workers}", outbox=url, signer=signer, workers=workers
            )
            cpu0, wall0 = time.process_time(), time.perf_counter()
            sender.start()
            for start in range(0, messages, 500):
                sender.submit(envelopes[start : start + 500])
            sender.drain()
            cpu = time.process_time() - cpu0
            wall = time.perf_counter() - wall0
            snap = sender.metrics()
            sender.close()
        arrived = len(sink.headers("Message-ID"))
    finally:
        sink.close()
    bodies = [e.to_bytes() for e in envelopes[: min(messages, 500)]]
    sign_cpu0 = time.process_time()
    signer.sign_batch(bodies)
    sign_per_message = (time.process_time() - sign_cpu0) / len(bodies)
    per_core_hour = messages / cpu * 3600
    return {
        "messages": messages,
        "size_bytes": len(envelopes[0].to_bytes()),
        "key": f"{key}-2048" if key == "rsa" else key,
        "outbox": outbox,
        "workers": workers,
        "accepted": snap.total.accepted,
        "arrived": arrived,
        "wall_seconds": round(wall, 2),
        "cpu_seconds": round(cpu, 2),
        "messages_per_hour_per_cpu_second_core": round(per_core_hour),
        "vs_kumomta": round(per_core_hour / KUMOMTA_PER_CORE_HOUR, 2),
        "vs_target": round(per_core_hour / TARGET_PER_CORE_HOUR, 2),
        "signing_share_of_cpu": round(sign_per_message * messages / cpu, 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=2000)
    parser.add_argument("--size", type=int, default=100_000)
    parser.add_argument("--key", choices=("rsa", "ed25519"), default="rsa")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--outbox", choices=("sqlite", "memory"), default="sqlite")
    args = parser.parse_args()
    result = run(args.messages, args.size, args.key, args.workers, args.outbox)
    print(json.dumps(result, indent=2))
    if result["arrived"] != args.messages or result["accepted"] != args.messages:
        raise SystemExit("not every message arrived")


if __name__ == "__main__":
    main()
