"""SQLiteOutbox's body segments under random sequences of every outbox operation.

A hypothesis state machine adds, leases, settles (done, retry, release, dead), retries
and purges dead letters, and closes and reopens the outbox (so that bodies are read back
from their files, not from the instance's memory), with segments of a few KB so that
they roll, seal and empty all the time. After every step: each segment's count of live
messages is the number of messages stored in it, every segment file is named by a row
(or is the one the open instance writes), and no sealed empty segment is left. Every
leased body is the one added. At the end, once every message is done or purged and the
outbox closed, no segment file is left.
"""

from __future__ import annotations

import shutil
import sqlite3
import tempfile
from contextlib import closing
from pathlib import Path

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from mailscale.pipeline import (
    Lease,
    NewMessage,
    Settle,
    Settlement,
    SQLiteOutbox,
)
from mailscale.pipeline import sqlite as sqlite_module

from .conftest import Clock


class SegmentMachine(RuleBasedStateMachine):
    @initialize()
    def open(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="segments-"))
        self.path = self.dir / "o.db"
        self.clock = Clock()
        self.saved_size = sqlite_module._SEGMENT_BYTES
        sqlite_module._SEGMENT_BYTES = 3000
        self.box = SQLiteOutbox(self.path, clock=self.clock)
        self.bodies: dict[str, bytes] = {}  # every message not done or purged
        self.leased: dict[str, Lease] = {}
        self.dead: set[str] = set()
        self.serial = 0

    def teardown(self) -> None:
        try:
            if hasattr(self, "box"):
                self.finish()
        finally:
            if hasattr(self, "saved_size"):
                sqlite_module._SEGMENT_BYTES = self.saved_size
            if hasattr(self, "dir"):
                shutil.rmtree(self.dir, ignore_errors=True)

    def finish(self) -> None:
        """Deliver or purge everything; then nothing may be left on disk."""
        self.box.purge_dead()
        self.release_all()
        while leases := self.box.lease(100, visibility=60):
            self.check(leases)
            self.box.settle(
                [Settlement(id=x.id, token=x.token, action=Settle.DONE) for x in leases]
            )
        self.box.close()
        folder = self.path.with_name(self.path.name + "-bodies")
        assert [] == sorted(p.name for p in folder.iterdir())

    def release_all(self) -> None:
        self.box.settle(
            [
                Settlement(id=x.id, token=x.token, action=Settle.RELEASE)
                for x in self.leased.values()
            ]
        )
        self.leased.clear()

    def check(self, leases: list[Lease]) -> None:
        for x in leases:
            assert self.bodies[x.id] == x.body, f"message {x.id}: a different body"

    @rule(sizes=st.lists(st.integers(0, 2500), min_size=1, max_size=6))
    def add(self, sizes: list[int]) -> None:
        batch = []
        for size in sizes:
            self.serial += 1
            body = (
                f"Message-ID: <{self.serial}@x>\r\n\r\n".encode()
                + bytes([65 + self.serial % 26]) * size
            )
            batch.append(
                NewMessage(
                    sender="a@example.com",
                    recipients=("b@example.org", "c@example.org"),
                    body=body,
                    message_id=f"<{self.serial}@x>",
                )
            )
        ids = self.box.add(batch)
        for id, msg in zip(ids, batch, strict=True):
            self.bodies[id] = msg.body

    @rule(n=st.integers(1, 8))
    def lease(self, n: int) -> None:
        leases = self.box.lease(n, visibility=3600)
        self.check(leases)
        for x in leases:
            self.leased[x.id] = x

    @precondition(lambda self: bool(self.leased))
    @rule(
        data=st.data(),
        action=st.sampled_from([Settle.DONE, Settle.RETRY, Settle.RELEASE, Settle.DEAD]),
    )
    def settle(self, data: st.DataObject, action: Settle) -> None:
        id = data.draw(st.sampled_from(sorted(self.leased)))
        x = self.leased.pop(id)
        pending = ("c@example.org",) if action is Settle.RETRY else ()
        assert [True] == self.box.settle(
            [Settlement(id=id, token=x.token, action=action, pending=pending, reason="test")]
        )
        if action is Settle.DONE:
            del self.bodies[id]
        elif action is Settle.DEAD:
            self.dead.add(id)

    @precondition(lambda self: bool(self.dead))
    @rule()
    def retry_dead(self) -> None:
        assert len(self.dead) == self.box.retry_dead()
        self.dead.clear()

    @precondition(lambda self: bool(self.dead))
    @rule()
    def purge_dead(self) -> None:
        assert len(self.dead) == self.box.purge_dead()
        for id in self.dead:
            del self.bodies[id]
        self.dead.clear()

    @rule()
    def reopen(self) -> None:
        """A new instance: what it leases it reads from the files."""
        self.release_all()
        self.box.close()
        self.box = SQLiteOutbox(self.path, clock=self.clock)

    @invariant()
    def segments_account_for_their_messages(self) -> None:
        if not hasattr(self, "box"):
            return
        with closing(sqlite3.connect(self.path)) as db, db:
            stored = dict(
                db.execute(
                    "SELECT seg, count(*) FROM messages WHERE seg IS NOT NULL GROUP BY seg"
                ).fetchall()
            )
            rows = db.execute("SELECT id, name, live, sealed FROM segments").fetchall()
            messages = db.execute("SELECT count(*) FROM messages").fetchone()[0]
        assert {id: live for id, _, live, _ in rows if live} == stored
        assert [] == [name for _, name, live, sealed in rows if sealed and not live]
        folder = self.path.with_name(self.path.name + "-bodies")
        assert sorted(name for _, name, _, _ in rows) == sorted(p.name for p in folder.iterdir())
        assert len(self.bodies) == messages


TestSegments = SegmentMachine.TestCase
TestSegments.settings = settings(
    max_examples=60,
    stateful_step_count=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
