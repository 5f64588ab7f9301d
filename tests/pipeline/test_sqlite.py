"""What SQLiteOutbox adds to the Outbox contract: durability, shared files, bodies stored once.

The contract itself runs on SQLite through ``OUTBOX_FACTORIES`` (test_outbox_contract.py).
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
from contextlib import closing
from pathlib import Path

import pytest

from mailscale.errors import ConfigurationError
from mailscale.pipeline import (
    NewMessage,
    Priority,
    RecipientOutcome,
    Settle,
    Settlement,
    SQLiteOutbox,
    outbox_from_url,
)
from mailscale.pipeline import sqlite as sqlite_module

from .conftest import Clock

SRC = str(Path(__file__).resolve().parents[2] / "src")

# The tables of a file written when every body was a row of the bodies table.
EARLIER_LAYOUT = """
CREATE TABLE messages (
    id INTEGER PRIMARY KEY AUTOINCREMENT, state INTEGER NOT NULL, priority INTEGER NOT NULL,
    route TEXT, not_before REAL NOT NULL, leased_until REAL NOT NULL DEFAULT 0, token TEXT,
    attempts INTEGER NOT NULL DEFAULT 0, created_at REAL NOT NULL, sender TEXT NOT NULL,
    recipients TEXT NOT NULL, message_id TEXT NOT NULL, tags TEXT NOT NULL,
    metadata TEXT NOT NULL, idempotency_key TEXT, last_reason TEXT NOT NULL DEFAULT '',
    outcomes TEXT NOT NULL DEFAULT '[]', died_at REAL, dead_seq INTEGER
);
CREATE TABLE bodies (id INTEGER PRIMARY KEY, body BLOB NOT NULL);
CREATE TABLE idempotency_keys (key TEXT PRIMARY KEY, id INTEGER NOT NULL) WITHOUT ROWID;
CREATE TABLE counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL) WITHOUT ROWID;
INSERT INTO counters (name, value) VALUES ('done', 0), ('dead_seq', 0);
"""


def segment_files(path: Path) -> dict[str, bytes]:
    """The outbox's segment files (name -> content)."""
    folder = path.with_name(path.name + "-bodies")
    return {p.name: p.read_bytes() for p in sorted(folder.glob("*.seg"))}


def _segment_of(path: Path, id: str) -> str:
    with closing(sqlite3.connect(path)) as db, db:
        (name,) = db.execute(
            "SELECT s.name FROM messages m JOIN segments s ON s.id = m.seg WHERE m.id = ?", (id,)
        ).fetchone()
    return str(name)


def new(i: int, *, size: int = 0, key: str | None = None) -> NewMessage:
    body = f"Message-ID: <{i}@example.com>\r\nSubject: {i}\r\n\r\n".encode() + b"x" * size
    return NewMessage(
        sender="from@example.com",
        recipients=("a@example.org", "b@example.org"),
        body=body,
        message_id=f"<{i}@example.com>",
        idempotency_key=key,
    )


class TestDurability:
    def test_a_returned_add_survives_closing_and_reopening(self, tmp_path: Path) -> None:
        """What add() returned is there for the next process, with its body and key."""
        path = tmp_path / "o.db"
        first = SQLiteOutbox(path)
        ids = first.add([new(1, key="k1"), new(2)])
        first.close()
        second = SQLiteOutbox(path)
        assert ids[:1] == second.add([new(9, key="k1")])
        leases = second.lease(10, visibility=60)
        assert (ids, [b"Subject: 1" in x.body for x in leases]) == (
            [x.id for x in leases],
            [True, False],
        )

    def test_ids_are_never_reused(self, tmp_path: Path) -> None:
        """A done message's id is not given to the next message (a late settlement of the
        old id can never touch the new one)."""
        box = SQLiteOutbox(tmp_path / "o.db")
        (a,) = box.add([new(1)])
        (lease,) = box.lease(1, visibility=60)
        assert [True] == box.settle([Settlement(id=a, token=lease.token, action=Settle.DONE)])
        (b,) = box.add([new(2)])
        assert int(b) > int(a)

    def test_wal_and_synchronous_settings(self, tmp_path: Path) -> None:
        path = tmp_path / "o.db"
        SQLiteOutbox(path, synchronous="normal").close()
        with closing(sqlite3.connect(path)) as db, db:
            assert ("wal", 16384) == (
                db.execute("PRAGMA journal_mode").fetchone()[0],
                db.execute("PRAGMA page_size").fetchone()[0],
            )

    def test_bodies_are_never_rewritten_by_state_changes(self, tmp_path: Path) -> None:
        """Lease, retry, release, dead letter and its retry touch only the message row:
        a trigger that aborts any change of where a body is stored never fires, and the
        segment file holding the body keeps its bytes."""
        clock = Clock()
        path = tmp_path / "o.db"
        box = SQLiteOutbox(path, clock=clock)
        with closing(sqlite3.connect(path)) as db, db:
            db.execute(
                "CREATE TRIGGER no_body_rewrite BEFORE UPDATE OF seg, off, len ON messages"
                " BEGIN SELECT RAISE(ABORT, 'body rewritten'); END"
            )
        (mid,) = box.add([new(1, size=1000)])
        files = segment_files(path)
        (lease,) = box.lease(1, visibility=60)
        retry = Settlement(
            id=mid, token=lease.token, action=Settle.RETRY, pending=("b@example.org",)
        )
        assert [True] == box.settle([retry])
        (lease,) = box.lease(1, visibility=60)
        assert [True] == box.settle([Settlement(id=mid, token=lease.token, action=Settle.RELEASE)])
        (lease,) = box.lease(1, visibility=60)
        outcome = RecipientOutcome(recipient="b@example.org", status="deferred", code=451)
        dead = Settlement(
            id=mid, token=lease.token, action=Settle.DEAD, reason="expired", outcomes=(outcome,)
        )
        assert [True] == box.settle([dead])
        assert 1 == box.retry_dead()
        (lease,) = box.lease(1, visibility=60)
        assert (("b@example.org",), 0) == (lease.recipients, lease.attempts)
        assert lease.body.endswith(b"x" * 1000)
        assert files == segment_files(path)
        assert [new(1, size=1000).body] == list(files.values())

    def test_bodies_are_in_segment_files_not_in_the_database(self, tmp_path: Path) -> None:
        """5 MB of bodies: the database and its WAL hold the rows only (a few KB per
        message would be far less than 5 MB), the segment file every body once."""
        path = tmp_path / "o.db"
        box = SQLiteOutbox(path)
        added = [new(i, size=50_000) for i in range(100)]
        box.add(added)
        in_db = sum(p.stat().st_size for p in tmp_path.glob("o.db*") if p.is_file())
        (content,) = segment_files(path).values()
        box.close()
        assert in_db < 1_000_000, f"the database holds {in_db:,} bytes"
        assert b"".join(m.body for m in added) == content

    def test_done_messages_leave_no_body_behind(self, tmp_path: Path) -> None:
        """Once its messages are done, a segment file is deleted: at once when it is
        sealed (it was full, or its instance closed), at the sealing otherwise."""
        path = tmp_path / "o.db"
        box = SQLiteOutbox(path)
        box.add([new(i, size=100) for i in range(5)])
        leases = box.lease(5, visibility=60)
        box.settle([Settlement(id=x.id, token=x.token, action=Settle.DONE) for x in leases])
        assert 1 == len(segment_files(path))  # still the instance's active segment
        box.close()
        with closing(sqlite3.connect(path)) as db, db:
            assert (0, 0, 0) == (
                db.execute("SELECT count(*) FROM bodies").fetchone()[0],
                db.execute("SELECT count(*) FROM messages").fetchone()[0],
                db.execute("SELECT count(*) FROM segments").fetchone()[0],
            )
        assert {} == segment_files(path)
        reopened = SQLiteOutbox(path)
        assert 5 == reopened.stats().by_state["done"]
        reopened.close()

    def test_stats_count_the_bytes_on_disk(self, tmp_path: Path) -> None:
        """``disk_bytes``: the database files and the segments, growing with the bodies
        added and shrinking when delivered segments are deleted."""
        path = tmp_path / "o.db"
        box = SQLiteOutbox(path)
        empty = box.stats().disk_bytes
        box.add([new(i, size=100_000) for i in range(10)])
        full = box.stats().disk_bytes
        assert full == sum(p.stat().st_size for p in tmp_path.rglob("*") if p.is_file())
        leases = box.lease(10, visibility=60)
        box.settle([Settlement(id=x.id, token=x.token, action=Settle.DONE) for x in leases])
        box.close()
        reopened = SQLiteOutbox(path)
        after = reopened.stats().disk_bytes
        reopened.close()
        assert empty is not None and full is not None and after is not None
        assert full - empty >= 1_000_000 > after - empty

    def test_full_segments_are_deleted_as_their_messages_are_done(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """With segments of 10 KB, ten adds of 20 KB fill ten segment files; delivering
        the first half deletes their (sealed) files and keeps the others' bodies intact."""
        monkeypatch.setattr(sqlite_module, "_SEGMENT_BYTES", 10_000)
        path = tmp_path / "o.db"
        box = SQLiteOutbox(path)
        for i in range(10):
            box.add([new(i, size=20_000)])
        assert 10 == len(segment_files(path))
        first = box.lease(5, visibility=60)
        box.settle([Settlement(id=x.id, token=x.token, action=Settle.DONE) for x in first])
        assert 5 == len(segment_files(path))
        box.close()
        other = SQLiteOutbox(path)  # nothing kept in memory: every body read from its file
        rest = other.lease(10, visibility=60)
        assert [new(i, size=20_000).body for i in range(5, 10)] == [x.body for x in rest]
        other.settle([Settlement(id=x.id, token=x.token, action=Settle.DONE) for x in rest])
        other.close()
        assert {} == segment_files(path)

    def test_an_unreadable_body_makes_a_dead_letter_not_a_failed_lease(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """A segment file deleted behind the outbox's back: its messages become dead
        letters naming the reason; the other messages are leased as usual."""
        monkeypatch.setattr(sqlite_module, "_SEGMENT_BYTES", 1)
        path = tmp_path / "o.db"
        box = SQLiteOutbox(path)
        (lost,) = box.add([new(1, size=10)])
        kept_ids = box.add([new(2, size=10)])
        box.close()
        (tmp_path / "o.db-bodies" / _segment_of(path, lost)).unlink()
        box = SQLiteOutbox(path)
        assert kept_ids == [x.id for x in box.lease(10, visibility=60)]
        (dead,) = box.dead_letters()
        box.close()
        assert (lost, "its body cannot be read from the outbox's files") == (dead.id, dead.reason)

    def test_a_file_of_the_earlier_layout_is_read_and_emptied(self, tmp_path: Path) -> None:
        """A file written when bodies lived in the bodies table: its messages are leased
        with their bodies, done ones are deleted from that table, new ones go to files."""
        path = tmp_path / "o.db"
        with closing(sqlite3.connect(path)) as db, db:
            db.executescript(EARLIER_LAYOUT)
            db.execute(
                "INSERT INTO messages (id, state, priority, not_before, created_at, sender,"
                " recipients, message_id, tags, metadata)"
                " VALUES (7, 0, 1, 0, 0, 'a@example.com', '[\"b@example.org\"]', '<7@x>',"
                " '[]', '{}')"
            )
            db.execute("INSERT INTO bodies (id, body) VALUES (7, X'5375626a6563743a20370d0a0d0a')")
        box = SQLiteOutbox(path)
        (late,) = box.add([new(8, size=10)])
        leases = box.lease(10, visibility=60)
        assert [("7", b"Subject: 7\r\n\r\n"), (late, new(8, size=10).body)] == [
            (x.id, x.body) for x in leases
        ]
        box.settle([Settlement(id=x.id, token=x.token, action=Settle.DONE) for x in leases])
        box.close()
        with closing(sqlite3.connect(path)) as db, db:
            assert 0 == db.execute("SELECT count(*) FROM bodies").fetchone()[0]
        assert {} == segment_files(path)

    def test_settling_a_done_message_does_not_write_its_body_again(self, tmp_path: Path) -> None:
        """Freed body pages are not overwritten with zeros (secure_delete=fast): the WAL
        grows by a few pages (the rows, their indexes, the free list), not by the 1 MB
        body, when the message is done."""
        path = tmp_path / "o.db"
        wal = tmp_path / "o.db-wal"
        box = SQLiteOutbox(path)
        box.add([new(1, size=1_000_000)])
        (lease,) = box.lease(1, visibility=60)
        before = wal.stat().st_size
        box.settle([Settlement(id=lease.id, token=lease.token, action=Settle.DONE)])
        grown = wal.stat().st_size - before
        box.close()
        assert grown < 400_000

    def test_leased_bodies_are_the_added_ones(self, tmp_path: Path) -> None:
        """More bodies than the instance keeps in memory (16 MB): the older ones are read
        back from the file, the newer ones kept; every lease carries its own body."""
        box = SQLiteOutbox(tmp_path / "o.db")
        added = [new(i, size=20_000) for i in range(1000)]
        ids = box.add(added)
        leases = box.lease(1000, visibility=60)
        box.close()
        assert [(i, m.body) for i, m in zip(ids, added, strict=True)] == [
            (x.id, x.body) for x in leases
        ]

    def test_a_rolled_back_add_leaves_no_body_behind(self, tmp_path: Path) -> None:
        """An add that failed gave no id for good: the bodies another instance adds next
        under the same ids are the ones leased."""
        path = tmp_path / "o.db"
        box = SQLiteOutbox(path)
        with closing(sqlite3.connect(path)) as db, db:
            db.execute(
                "CREATE TRIGGER refuse BEFORE INSERT ON messages WHEN NEW.len > 5000"
                " BEGIN SELECT RAISE(ABORT, 'refused'); END"
            )
        with pytest.raises(sqlite3.IntegrityError):
            box.add([new(1, size=10), new(2, size=9000)])
        with closing(sqlite3.connect(path)) as db, db:
            db.execute("DROP TRIGGER refuse")
        assert {} == segment_files(path)  # the failed add's new segment file is gone
        other = SQLiteOutbox(path)
        ids = other.add([new(3, size=10), new(4, size=10)])
        other.close()
        leases = box.lease(5, visibility=60)
        box.close()
        assert [(ids[0], new(3, size=10).body), (ids[1], new(4, size=10).body)] == [
            (x.id, x.body) for x in leases
        ]

    def test_a_settlement_given_twice_in_a_batch_applies_once(self, tmp_path: Path) -> None:
        """The same DONE twice in one settle call: the second is not applied, the message
        counts once as done, and its sealed segment, still holding another message, keeps
        that message's body."""
        path = tmp_path / "o.db"
        box = SQLiteOutbox(path)
        (a, b) = box.add([new(1, size=100), new(2, size=100)])
        box.close()  # seals the segment holding both
        box = SQLiteOutbox(path)
        (lease,) = box.lease(1, visibility=60)
        twice = [Settlement(id=a, token=lease.token, action=Settle.DONE)] * 2
        assert [True, False] == box.settle(twice)
        leases = box.lease(10, visibility=60)
        stats = box.stats()
        box.close()
        assert ([(b, new(2, size=100).body)], 1, 0) == (
            [(x.id, x.body) for x in leases],
            stats.by_state["done"],
            stats.by_state["dead"],
        )

    def test_an_id_too_large_for_sqlite_is_not_applied(self, tmp_path: Path) -> None:
        """A settlement naming an id of digits beyond SQLite's integers (or digits that are
        not decimal ones) is an unknown id: not applied, and the rest of its batch is."""
        box = SQLiteOutbox(tmp_path / "o.db")
        box.add([new(1)])
        (lease,) = box.lease(1, visibility=60)
        assert [False, False, False, True] == box.settle(
            [
                Settlement(id="9" * 30, token=lease.token, action=Settle.DONE),
                Settlement(id="9" * 5000, token=lease.token, action=Settle.DONE),
                Settlement(id="\u00b2", token=lease.token, action=Settle.DONE),
                Settlement(id=lease.id, token=lease.token, action=Settle.DONE),
            ]
        )
        assert 1 == box.stats().by_state["done"]
        box.close()

    @pytest.mark.parametrize("priority", [7, -1, "urgent"])
    def test_a_priority_that_is_not_one_is_refused(self, tmp_path: Path, priority: object) -> None:
        """A message whose priority is not a Priority is refused with ConfigurationError,
        nothing of its batch stored; stored, it failed every lease batch and every stats
        call that reached it (or, at -1, was served as bulk)."""
        box = SQLiteOutbox(tmp_path / "o.db")
        bad = NewMessage(
            sender="a@example.com",
            recipients=("b@example.org",),
            body=b"Subject: x\r\n\r\n",
            message_id="<x@example.com>",
            priority=priority,  # type: ignore[arg-type]
        )
        with pytest.raises(ConfigurationError, match="priority"):
            box.add([new(1), bad])
        (good,) = box.add([new(2)])
        assert [good] == [x.id for x in box.lease(10, visibility=60)]
        assert 1 == box.stats().depth
        box.close()

    def test_a_lease_leaves_the_connection_fsyncing(self, tmp_path: Path) -> None:
        """A lease commits without an fsync; every call after it is fsynced again."""
        box = SQLiteOutbox(tmp_path / "o.db")
        box.add([new(1)])
        assert 1 == len(box.lease(1, visibility=60))
        assert [] == box.lease(1, visibility=60)
        assert 2 == box._db.execute("PRAGMA synchronous").fetchone()[0]  # FULL
        box.close()


_ADDER = textwrap.dedent(
    """
    import sys
    from mailscale.pipeline import NewMessage, SQLiteOutbox
    box = SQLiteOutbox(sys.argv[1])
    i = 0
    while True:
        batch = [
            NewMessage(sender="a@example.com", recipients=("b@example.org",),
                       body=b"Subject: x\\r\\n\\r\\n" + b"y" * 2000, message_id=f"<{i + j}@x>")
            for j in range(20)
        ]
        ids = box.add(batch)
        i += 20
        sys.stdout.write(" ".join(ids) + "\\n")
        sys.stdout.flush()
    """
)


# Every add starts a segment; the first one's message is done while it is still the
# active segment; the process is killed (SIGKILL) when the next add, having committed
# the seal of that segment, stops writing to it.
_KILLED_AT_THE_SEAL = textwrap.dedent(
    """
    import os, signal, sys
    from mailscale.pipeline import NewMessage, Settle, Settlement, SQLiteOutbox
    from mailscale.pipeline import sqlite as sqlite_module
    sqlite_module._SEGMENT_BYTES = 1
    box = SQLiteOutbox(sys.argv[1])
    def message(i):
        return NewMessage(sender="a@example.com", recipients=("b@example.org",),
                          body=b"Subject: %d\\r\\n\\r\\n" % i, message_id=f"<{i}@x>")
    box.add([message(1)])
    (lease,) = box.lease(1, visibility=60)
    box.settle([Settlement(id=lease.id, token=lease.token, action=Settle.DONE)])
    sqlite_module._Segment.close = lambda self: os.kill(os.getpid(), signal.SIGKILL)
    box.add([message(2)])
    """
)


class TestCrash:
    def test_kill_9_never_loses_a_returned_add(self, tmp_path: Path) -> None:
        """A process adding batches is killed with SIGKILL mid-stream; every id whose add()
        had returned (and was printed) is in the file afterwards, and the file opens cleanly."""
        path = tmp_path / "o.db"
        env = {**os.environ, "PYTHONPATH": SRC}
        proc = subprocess.Popen(
            [sys.executable, "-c", _ADDER, str(path)], stdout=subprocess.PIPE, env=env, text=True
        )
        assert proc.stdout is not None
        returned: list[str] = []
        for line in proc.stdout:
            returned += line.split()
            if len(returned) >= 2000:
                break
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        returned += proc.stdout.read().split()
        proc.stdout.close()
        box = SQLiteOutbox(path)
        leases = box.lease(1_000_000, visibility=60)
        stored = {x.id for x in leases}
        assert set() == set(returned) - stored
        assert len(stored) >= len(returned)
        assert all(x.body.endswith(b"y" * 2000) for x in leases)
        # The killed process's segment file is taken over: sealed, then deleted once its
        # messages are done.
        box.settle([Settlement(id=x.id, token=x.token, action=Settle.DONE) for x in leases])
        assert {} == segment_files(path)
        box.close()

    def test_kill_9_after_sealing_a_segment_leaves_no_file_behind(self, tmp_path: Path) -> None:
        """Killed right after the add that sealed its empty segment committed: the next
        instance takes over, and once the last message is done no segment file is left."""
        path = tmp_path / "o.db"
        env = {**os.environ, "PYTHONPATH": SRC}
        proc = subprocess.run(
            [sys.executable, "-c", _KILLED_AT_THE_SEAL, str(path)], env=env, timeout=60
        )
        assert -signal.SIGKILL == proc.returncode
        assert 2 == len(segment_files(path))
        box = SQLiteOutbox(path)
        leases = box.lease(10, visibility=60)
        assert [b"Subject: 2\r\n\r\n"] == [x.body for x in leases]
        box.settle([Settlement(id=x.id, token=x.token, action=Settle.DONE) for x in leases])
        box.close()
        assert {} == segment_files(path)


def _lease_all(path: str, out: multiprocessing.Queue[list[str]]) -> None:
    box = SQLiteOutbox(path)
    got: list[str] = []
    while True:
        leases = box.lease(7, visibility=3600)
        if not leases:
            break
        got += [x.id for x in leases]
    box.close()
    out.put(got)


def _add_and_deliver(
    path: str, worker: int, rounds: int, out: multiprocessing.Queue[tuple[int, int, int]]
) -> None:
    """Add batches and deliver whatever is ready, from any process's segments, checking
    that every leased body is its own message's; segments of 40 KB roll often."""
    sqlite_module._SEGMENT_BYTES = 40_000
    box = SQLiteOutbox(path)
    added = delivered = wrong = 0
    for r in range(rounds):
        batch = []
        for j in range(10):
            mid = f"<{worker}.{r}.{j}@example.com>"
            body = f"Message-ID: {mid}\r\n\r\n".encode() + mid.encode() * (100 * (j + 1))
            batch.append(
                NewMessage(
                    sender="a@example.com", recipients=("b@example.org",), body=body,
                    message_id=mid,
                )
            )  # fmt: skip
        box.add(batch)
        added += len(batch)
        leases = box.lease(8, visibility=3600)
        for x in leases:
            expected = f"Message-ID: {x.message_id}\r\n\r\n".encode()
            if not x.body.startswith(expected) or x.body.count(x.message_id.encode()) < 101:
                wrong += 1
        box.settle([Settlement(id=x.id, token=x.token, action=Settle.DONE) for x in leases])
        delivered += len(leases)
    box.close()
    out.put((added, delivered, wrong))


class TestSharedFile:
    def test_processes_adding_and_delivering_share_segments(self, tmp_path: Path) -> None:
        """Three processes add and deliver at once on one file, each leasing bodies from
        the others' segments as they roll: every body leased is its message's, every
        message is delivered once, and when all are done no segment file is left."""
        path = tmp_path / "o.db"
        SQLiteOutbox(path).close()
        ctx = multiprocessing.get_context("spawn")
        queue: multiprocessing.Queue[tuple[int, int, int]] = ctx.Queue()
        procs = [
            ctx.Process(target=_add_and_deliver, args=(str(path), w, 40, queue)) for w in range(3)
        ]
        for p in procs:
            p.start()
        results = [queue.get(timeout=120) for _ in procs]
        for p in procs:
            p.join(timeout=60)
        box = SQLiteOutbox(path)
        rest = box.lease(10_000, visibility=60)
        box.settle([Settlement(id=x.id, token=x.token, action=Settle.DONE) for x in rest])
        done = box.stats().by_state["done"]
        box.close()
        added = sum(r[0] for r in results)
        assert (0, 1200, 1200) == (sum(r[2] for r in results), added, done)
        assert {} == segment_files(path)

    def test_processes_never_lease_the_same_message(self, tmp_path: Path) -> None:
        """Three processes lease from one file until it is empty: every message goes to
        exactly one of them."""
        path = tmp_path / "o.db"
        box = SQLiteOutbox(path)
        ids = box.add([new(i) for i in range(600)])
        ctx = multiprocessing.get_context("spawn")
        queue: multiprocessing.Queue[list[str]] = ctx.Queue()
        procs = [ctx.Process(target=_lease_all, args=(str(path), queue)) for _ in range(3)]
        for p in procs:
            p.start()
        results = [queue.get(timeout=120) for _ in procs]
        for p in procs:
            p.join(timeout=60)
        leased = [i for r in results for i in r]
        assert (sorted(ids, key=int), len(leased)) == (sorted(leased, key=int), len(set(leased)))

    def test_a_priority_and_route_filter_applies_in_sql(self, tmp_path: Path) -> None:
        box = SQLiteOutbox(tmp_path / "o.db")
        box.add(
            [
                NewMessage(
                    sender="a@example.com",
                    recipients=("b@example.org",),
                    body=b"Subject: x\r\n\r\n",
                    message_id=f"<{i}@x>",
                    priority=Priority.BULK if i % 2 else Priority.TRANSACTIONAL,
                    route="mx" if i % 3 == 0 else None,
                )
                for i in range(12)
            ]
        )
        picked = box.lease(100, visibility=60, route="mx", priority=Priority.BULK)
        assert ["<3@x>", "<9@x>"] == [x.message_id for x in picked]


class TestMemory:
    def test_bodies_stay_on_disk(self, tmp_path: Path) -> None:
        """Adding 4,000 messages of 20 KB (80 MB) and leasing them grows resident memory
        by far less than the bodies' size: the store holds no body in memory."""

        def rss() -> int:
            with open("/proc/self/statm") as f:
                return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")

        box = SQLiteOutbox(tmp_path / "o.db", synchronous="normal")
        before = rss()
        for start in range(0, 4000, 500):
            box.add([new(i, size=20_000) for i in range(start, start + 500)])
        leased = 0
        while batch := box.lease(500, visibility=60):
            leased += len(batch)
            box.settle([Settlement(id=x.id, token=x.token, action=Settle.DONE) for x in batch])
            del batch
        grown = rss() - before
        assert 4000 == leased
        assert grown < 40_000_000, f"resident memory grew by {grown / 1e6:.1f} MB"


class TestURLs:
    def test_relative_and_absolute(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.chdir(tmp_path)
        rel = outbox_from_url("sqlite:///rel.db")
        absolute = outbox_from_url(f"sqlite:///{tmp_path}/abs.db?synchronous=normal")
        assert isinstance(rel, SQLiteOutbox) and isinstance(absolute, SQLiteOutbox)
        assert (Path("rel.db"), tmp_path / "abs.db") == (rel.path, absolute.path)
        assert (tmp_path / "rel.db").exists()

    @pytest.mark.parametrize(
        ("url", "message"),
        [
            ("sqlite://host/x.db", "not of the form"),
            ("sqlite:///", "names no database file"),
            ("sqlite:///x.db?synchronous=off", "synchronous='off'"),
            ("sqlite:///x.db?busy_timeout=soon", "busy_timeout='soon'"),
            ("sqlite:///x.db?cache=1", "option 'cache' is unknown"),
            ("sqlite:///x%0A.db", "control character"),
        ],
    )
    def test_bad(
        self, url: str, message: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.chdir(tmp_path)
        with pytest.raises(ConfigurationError, match=message):
            outbox_from_url(url)

    def test_a_file_that_is_not_a_database(self, tmp_path: Path) -> None:
        path = tmp_path / "notes.txt"
        path.write_bytes(b"these are not the pages you are looking for" * 100)
        with pytest.raises(ConfigurationError, match="not a usable outbox"):
            SQLiteOutbox(path)

    def test_repr_names_the_file(self, tmp_path: Path) -> None:
        assert f"SQLiteOutbox({str(tmp_path / 'o.db')!r})" == repr(SQLiteOutbox(tmp_path / "o.db"))


def test_stats_time_is_the_clock(tmp_path: Path) -> None:
    clock = Clock()
    box = SQLiteOutbox(tmp_path / "o.db", clock=clock)
    box.add([new(1)])
    clock.advance(12.5)
    assert 12.5 == box.stats().oldest_age
