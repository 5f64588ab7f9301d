"""kill -9 of a delivering Sender: nothing submitted is lost, duplicates are few and recognisable.

A child process submits 20,000 messages into a SQLite outbox and delivers them to
Postfix's ``smtp-sink`` on loopback. It is killed with SIGKILL at five random moments and
restarted each time (a restarted child submits the same messages again under the same
idempotency keys, which stores nothing new). In the end every message arrived at least
once; the duplicates are at most the batches in flight at the kills; each duplicate
carries the Message-ID the Sender gave the message at submit.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import textwrap
import time
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path

import pytest

from mailscale.pipeline import SQLiteOutbox
from peers.smtp_sink import BINARY, MISSING, SMTPSink

SRC = str(Path(__file__).resolve().parents[2] / "src")
TOTAL = 20_000
BATCH = 50
KILLS = 5
VISIBILITY = 2.0

_CHILD = textwrap.dedent(
    f"""
    import sys
    from mailscale import Envelope
    from mailscale.pipeline import Sender

    db, url = sys.argv[1], sys.argv[2]
    sender = Sender(url, outbox="sqlite:///" + db, batch_size={BATCH}, visibility={VISIBILITY},
                    poll_interval=0.05)
    for start in range(0, {TOTAL}, 1000):
        envelopes = [
            Envelope(
                sender="news@example.com",
                recipients=[f"r{{i}}@d{{i % 97}}.example.org"],
                message=(
                    f"From: news@example.com\\r\\nTo: r{{i}}@d{{i % 97}}.example.org\\r\\n"
                    f"Subject: issue {{i}}\\r\\nX-Seq: {{i}}\\r\\n\\r\\nHello {{i}}\\r\\n"
                ).encode(),
            )
            for i in range(start, start + 1000)
        ]
        sender.submit(envelopes, idempotency_key=f"batch{{start}}")
        print("submitted", start + 1000, flush=True)
    sender.drain()
    print("drained", flush=True)
    sender.close()
    """
)


@pytest.fixture
def sink() -> Iterator[SMTPSink]:
    if BINARY is None:
        pytest.skip(MISSING)
    s = SMTPSink()
    yield s
    s.close()


def _stored(path: Path) -> int:
    """Messages the outbox holds or has finished: everything a returned submit stored."""
    box = SQLiteOutbox(path)
    try:
        by_state = box.stats().by_state
        return sum(by_state.values())
    finally:
        box.close()


@pytest.mark.slow
def test_kill_9_loses_nothing_and_duplicates_only_in_flight_batches(
    sink: SMTPSink, tmp_path: Path
) -> None:
    seed = int.from_bytes(os.urandom(4), "big")
    rng = random.Random(seed)
    db = tmp_path / "outbox.db"
    env = {**os.environ, "PYTHONPATH": SRC}
    args = [sys.executable, "-c", _CHILD, str(db.resolve()), sink.url]
    submitted = 0
    kills = 0
    for _ in range(KILLS + 20):
        child = subprocess.Popen(args, stdout=subprocess.PIPE, env=env, text=True)
        assert child.stdout is not None
        if kills < KILLS:
            time.sleep(rng.uniform(0.3, 3.0))
            os.kill(child.pid, signal.SIGKILL)
            kills += 1
        out, _ = child.communicate(timeout=300)
        child.stdout.close()
        submitted = max(
            [submitted] + [int(x.split()[1]) for x in out.splitlines() if "submitted" in x]
        )
        # A submit that returned is in the outbox, whatever happened after.
        assert _stored(db) >= submitted, f"seed {seed}"
        if kills >= KILLS and "drained" in out:
            box = SQLiteOutbox(db)
            depth = box.stats().depth
            box.close()
            if depth == 0:
                break
            time.sleep(VISIBILITY)  # leases of the killed children expire
    else:
        pytest.fail(f"the outbox did not drain (seed {seed})")

    arrivals = sink.headers("X-Seq", "Message-ID")
    ids: dict[int, set[str | None]] = defaultdict(set)
    counts: dict[int, int] = defaultdict(int)
    for seq, message_id in arrivals:
        assert seq is not None, f"a message without X-Seq arrived (seed {seed})"
        ids[int(seq)].add(message_id)
        counts[int(seq)] += 1
    missing = set(range(TOTAL)) - set(counts)
    duplicates = sum(c - 1 for c in counts.values())
    assert (set(), TOTAL) == (missing, submitted), f"seed {seed}"
    assert duplicates <= KILLS * BATCH, f"{duplicates} duplicates (seed {seed})"
    assert [] == [s for s, m in ids.items() if len(m) != 1 or None in m], f"seed {seed}"
