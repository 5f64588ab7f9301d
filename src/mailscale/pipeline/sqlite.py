"""``SQLiteOutbox``: the Outbox contract in one SQLite file, the embedded durable default.

What it guarantees, beyond :mod:`mailscale.pipeline.outbox`'s contract:

- Durability: the database runs in WAL mode. With ``synchronous="full"`` (the
  default) a call that returned (``add``, ``settle``) survives a crash of the
  process *and* of the machine (power loss): its commit was fsynced. With
  ``synchronous="normal"`` it survives a crash of the process (``kill -9``)
  but the last commits before a power loss may be lost. A ``lease`` is
  committed without waiting for an fsync in either mode: a lease lost to a
  power cut leaves its messages ready again, as an expired lease would (the
  next fsynced commit makes it durable along with its own changes).
- Bodies are stored once, when the message is added, appended to a segment
  file in the folder ``<database>-bodies/`` beside the database and flushed
  to disk (fdatasync) before the transaction that records them commits; the
  row records the segment, offset and length. A state change (lease, retry,
  release, dead letter) updates only the small row of the message and never
  rewrites the body; a body is written to disk once (as a BLOB it would go to
  the WAL and again to the database at the checkpoint). A done message's row
  is deleted; its idempotency key is kept, so a repeated submit stays a no-op.
- Each instance appends to its own segment, locked with ``flock`` while open,
  until it holds 32 MB; then it is sealed and a new one begins. A sealed
  segment none of whose messages is left (done or purged) is deleted. An
  instance seals, when it opens, the segments whose writer is gone (crashed or
  dropped without ``close``) and deletes files no committed row names. A body
  that cannot be read back makes its message a dead letter with that reason.
- A file of the earlier layout (bodies in a ``bodies`` table) keeps working:
  those bodies are read from the table; new ones go to segments.
- Group commit: each ``add``, ``lease`` and ``settle`` call is one
  transaction, whatever the size of its batch.
- An instance keeps the bodies it added (up to 16 MB, the oldest dropped
  first) until their messages are done or dead, and its leases take them
  from there instead of reading them back; bodies are never rewritten and
  ids never reused, so a kept body is the stored one.
- Several processes on one host may share the file. Writes take SQLite's
  write lock up front (``BEGIN IMMEDIATE``), so two workers never lease the
  same message while its lease is live; a writer waits up to ``busy_timeout``
  seconds for the lock. One instance may be shared by threads (a lock
  serializes its calls).
- Ids come from an ``AUTOINCREMENT`` key: an id is never reused, even after
  the message was done or purged.

URL: ``sqlite:///relative/path.db`` or ``sqlite:////absolute/path.db`` (the
SQLAlchemy convention: the path is what follows the third slash), with the
options ``synchronous`` (``full`` or ``normal``) and ``busy_timeout``
(seconds).
"""

from __future__ import annotations

import errno
import json
import os
import secrets
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

try:
    import fcntl
except ImportError:  # pragma: no cover - not POSIX: a crashed owner's segment is never swept
    fcntl = None  # type: ignore[assignment]

from mailscale.errors import ConfigurationError
from mailscale.pipeline.outbox import (
    DeadLetter,
    Lease,
    MessageId,
    MessageState,
    NewMessage,
    OutboxStats,
    Priority,
    RecipientOutcome,
    Settle,
    Settlement,
    chosen_dead,
    dead_page,
)

__all__ = ["SQLiteOutbox"]

# Message states as stored (done messages are deleted, so they have no code).
_QUEUED, _LEASED, _DEAD = 0, 1, 3
_PRIORITIES = tuple(sorted(Priority))  # stored value -> member, without Enum's lookup
_STATE_NAMES = {_QUEUED: MessageState.QUEUED.value, _LEASED: MessageState.LEASED.value}

_SCHEMA = """
CREATE TABLE IF NOT EXISTS messages (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    state INTEGER NOT NULL,
    priority INTEGER NOT NULL,
    route TEXT,
    not_before REAL NOT NULL,
    leased_until REAL NOT NULL DEFAULT 0,
    token TEXT,
    attempts INTEGER NOT NULL DEFAULT 0,
    created_at REAL NOT NULL,
    sender TEXT NOT NULL,
    recipients TEXT NOT NULL,
    message_id TEXT NOT NULL,
    tags TEXT NOT NULL,
    metadata TEXT NOT NULL,
    idempotency_key TEXT,
    last_reason TEXT NOT NULL DEFAULT '',
    outcomes TEXT NOT NULL DEFAULT '[]',
    died_at REAL,
    dead_seq INTEGER,
    seg INTEGER,
    off INTEGER,
    len INTEGER
);
CREATE INDEX IF NOT EXISTS messages_ready ON messages (state, priority, not_before, id);
CREATE INDEX IF NOT EXISTS messages_leases ON messages (state, leased_until);
CREATE INDEX IF NOT EXISTS messages_dead ON messages (dead_seq) WHERE dead_seq IS NOT NULL;
CREATE TABLE IF NOT EXISTS bodies (id INTEGER PRIMARY KEY, body BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS segments (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL UNIQUE,
    live INTEGER NOT NULL DEFAULT 0,
    sealed INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS idempotency_keys (key TEXT PRIMARY KEY, id INTEGER NOT NULL)
    WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL)
    WITHOUT ROWID;
INSERT OR IGNORE INTO counters (name, value) VALUES ('done', 0), ('dead_seq', 0);
"""

_LEASE_COLUMNS = (
    "id, sender, recipients, message_id, priority, route, tags, metadata,"
    " idempotency_key, attempts, created_at, last_reason, seg, off, len"
)
_DEAD_COLUMNS = (
    "id, sender, recipients, message_id, priority, route, attempts, created_at, died_at,"
    " last_reason, outcomes"
)
_SYNCHRONOUS = ("full", "normal")
_PAGE_SIZE = 16384
# Bodies this instance added, kept for its own leases until done (bodies are never
# rewritten and ids never reused, so a kept body cannot go stale), up to this many bytes.
_KEPT_BYTES = 16 * 1024 * 1024
# A segment file takes new bodies until it holds this many bytes; then the instance
# starts a new one. A segment is deleted once it is sealed and none of its messages is
# left (done or purged), so this is also the granularity at which disk space comes back.
_SEGMENT_BYTES = 32 * 1024 * 1024
# Segment files kept open for reading by one instance (the others are reopened on demand).
_READERS = 64
# os.writev takes at most IOV_MAX buffers per call (1,024 on Linux).
_IOV = 512


def path_of(url: str) -> str:
    parts = urlsplit(url)
    if parts.scheme.lower() != "sqlite" or parts.netloc:
        raise ConfigurationError(
            f"outbox URL {url!r} is not of the form sqlite:///relative.db or sqlite:////absolute.db"
        )
    path = unquote(parts.path)[1:]  # what follows the third slash
    if not path or path.endswith("/"):
        raise ConfigurationError(f"outbox URL {url!r} names no database file")
    if any(ord(c) < 32 for c in path):
        raise ConfigurationError(f"outbox URL {url!r}: control character in the path")
    return path


# One encoder for every call: json.dumps with an option builds a new encoder each time,
# which cost more than the encoding of a message's few short fields.
_dumps = json.JSONEncoder(ensure_ascii=False).encode
_decode = json.JSONDecoder().decode


def _json_list(value: Sequence[str]) -> str:
    return _dumps(value) if value else "[]"


def _json_dict(value: Mapping[str, str]) -> str:
    return _dumps(dict(value)) if value else "{}"


def _strings_of(text: str) -> tuple[str, ...]:
    return tuple(_decode(text)) if text != "[]" else ()


def _outcomes_json(outcomes: Sequence[RecipientOutcome]) -> str:
    return _dumps([[o.recipient, o.status, o.code, o.text, o.enhanced] for o in outcomes])


def _outcomes_of(text: str) -> tuple[RecipientOutcome, ...]:
    return tuple(
        RecipientOutcome(recipient=r, status=s, code=c, text=t, enhanced=e)
        for r, s, c, t, e in _decode(text)
    )


class SQLiteOutbox:
    """A durable :class:`~mailscale.pipeline.outbox.Outbox` in one SQLite file.

    Args:
        path: the database file (created with its tables when absent).
        synchronous: ``"full"`` (a returned call survives power loss) or
            ``"normal"`` (it survives a crash of the process).
        busy_timeout: seconds a write waits for another process's write lock.
        clock: epoch seconds; injectable for tests.

    Raises:
        ConfigurationError: for a bad option or a file that cannot be opened as
            an outbox.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        synchronous: str = "full",
        busy_timeout: float = 30.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if synchronous not in _SYNCHRONOUS:
            raise ConfigurationError(
                f"synchronous={synchronous!r} is not one of {', '.join(_SYNCHRONOUS)}"
            )
        if not busy_timeout >= 0:
            raise ConfigurationError(f"busy_timeout={busy_timeout!r} must be 0 or more seconds")
        self._path = Path(path)
        self._full = synchronous == "full"
        self._clock = clock
        self._lock = threading.Lock()
        self._kept: dict[int, bytes] = {}  # id -> body, oldest first
        self._kept_bytes = 0
        # The segment files of the bodies: beside the database, in <name>-bodies/.
        self._dir = self._path.with_name(self._path.name + "-bodies")
        self._active: _Segment | None = None  # the segment this instance appends to
        self._readers: dict[int, int] = {}  # segment id -> file descriptor, oldest first
        self._closed = False
        try:
            self._db = sqlite3.connect(
                str(self._path),
                timeout=busy_timeout,
                isolation_level=None,  # transactions are explicit
                check_same_thread=False,  # calls are serialized by self._lock
            )
        except sqlite3.Error as exc:
            raise ConfigurationError(f"cannot open the outbox {str(path)!r}: {exc}") from None
        try:
            # 16 KB pages: a body in the bodies table of the earlier layout (20 KB) fills
            # one or two pages instead of a chain of five 4 KB overflow pages. Only a
            # new file takes it.
            self._db.execute(f"PRAGMA page_size={_PAGE_SIZE}")
            mode = self._db.execute("PRAGMA journal_mode=WAL").fetchone()[0]
            if str(mode).lower() != "wal":
                raise ConfigurationError(
                    f"the outbox {str(path)!r} cannot use write-ahead logging (journal mode {mode})"
                )
            self._db.execute(f"PRAGMA synchronous={synchronous.upper()}")
            # Debian's and other builds of SQLite default to secure_delete=ON, which
            # overwrites every freed overflow page with zeros: a done 20 KB body would be
            # written to the WAL (and checkpointed) a second time. FAST still clears cells.
            self._db.execute("PRAGMA secure_delete=FAST")
            self._db.execute(f"PRAGMA busy_timeout={int(busy_timeout * 1000)}")
            self._db.executescript(f"BEGIN IMMEDIATE;{_SCHEMA}COMMIT;")
            with self._write() as db:  # under the write lock: one process migrates
                columns = {row[1] for row in db.execute("PRAGMA table_info(messages)")}
                if "seg" not in columns:
                    # A file of the earlier layout (every body in the bodies table): its
                    # messages keep their bodies there; new ones go to segment files.
                    for column in ("seg", "off", "len"):
                        db.execute(f"ALTER TABLE messages ADD COLUMN {column} INTEGER")
            self._dir.mkdir(exist_ok=True)
            self._sweep()
        except sqlite3.DatabaseError as exc:
            self._db.close()
            raise ConfigurationError(f"{str(path)!r} is not a usable outbox: {exc}") from None
        except OSError as exc:
            self._db.close()
            raise ConfigurationError(
                f"cannot use the body directory {str(self._dir)!r} of the outbox: "
                f"{exc.strerror or exc}"
            ) from None
        except ConfigurationError:
            self._db.close()
            raise

    @classmethod
    def from_url(cls, url: str, **options: Any) -> SQLiteOutbox:
        """``sqlite:///relative.db`` or ``sqlite:////absolute.db``, with
        ``?synchronous=full|normal&busy_timeout=SECONDS``; keyword *options* win."""
        path = path_of(url)
        settings: dict[str, Any] = {}
        for name, value in parse_qsl(urlsplit(url).query, keep_blank_values=True):
            if name == "synchronous":
                settings[name] = value.lower()
            elif name == "busy_timeout":
                try:
                    settings[name] = float(value)
                except ValueError:
                    raise ConfigurationError(
                        f"outbox URL option busy_timeout={value!r} is not a number of seconds"
                    ) from None
            else:
                raise ConfigurationError(
                    f"outbox URL option {name!r} is unknown (known: synchronous, busy_timeout)"
                )
        unknown = set(options) - {"synchronous", "busy_timeout", "clock"}
        if unknown:
            raise ConfigurationError(
                f"unknown SQLiteOutbox option(s): {', '.join(sorted(unknown))}"
            )
        settings.update(options)
        return cls(path, **settings)

    @property
    def path(self) -> Path:
        """The database file."""
        return self._path

    def __repr__(self) -> str:
        return f"SQLiteOutbox({str(self._path)!r})"

    @contextmanager
    def _write(self, *, durable: bool = True) -> Iterator[sqlite3.Connection]:
        """One write transaction, holding SQLite's write lock from its start; not
        fsynced at its commit when not *durable* (WAL frames stay in order, so a later
        fsynced commit makes it durable too)."""
        db = self._db
        relax = not durable and self._full
        if relax:
            db.execute("PRAGMA synchronous=NORMAL")
        try:
            db.execute("BEGIN IMMEDIATE")
            try:
                yield db
            except BaseException:
                db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")
        finally:
            if relax:
                db.execute("PRAGMA synchronous=FULL")

    # -- the contract ---------------------------------------------------------

    def add(self, messages: Sequence[NewMessage]) -> list[MessageId]:
        """Store *messages* in one transaction; return their ids, in order (see ``Outbox.add``).

        The new bodies are appended to this instance's segment file and flushed to disk
        before the transaction that records them commits: a row never names a body
        that is not on disk."""
        if not messages:
            return []
        with self._lock:
            created: _Segment | None = None
            gone: list[tuple[int, str]] = []
            try:
                with self._write() as db:
                    now = self._clock()
                    wanted = {m.idempotency_key for m in messages if m.idempotency_key is not None}
                    known = _known_keys(db, wanted)
                    # Rows get consecutive ids after the largest ever given: the write lock
                    # is held, and AUTOINCREMENT never goes back below sqlite_sequence.
                    row = db.execute(
                        "SELECT seq FROM sqlite_sequence WHERE name = 'messages'"
                    ).fetchone()
                    next_id = (row[0] if row else 0) + 1
                    ids: list[str] = []
                    new: list[NewMessage] = []
                    new_ids: list[int] = []
                    keys: list[tuple[str, int]] = []
                    priorities: list[int] = []
                    for msg in messages:
                        # Stored as its number and read back as a member: a value that is
                        # not a Priority would fail every lease and stats call reaching it.
                        prio = msg.priority
                        prio = prio if type(prio) is Priority else Priority.parse(prio)
                        key = msg.idempotency_key
                        if key is not None and key in known:
                            ids.append(known[key])
                            continue
                        new.append(msg)
                        new_ids.append(next_id)
                        priorities.append(int(prio))
                        if key is not None:
                            keys.append((key, next_id))
                            known[key] = str(next_id)
                        ids.append(str(next_id))
                        next_id += 1
                    if not new:
                        return ids
                    if self._active is None or self._active.size >= _SEGMENT_BYTES:
                        created = self._new_segment(db)
                        if created.previous is not None:
                            # Sealed by this transaction: its row goes with it when none of
                            # its messages is left (a crash after the commit leaves a file
                            # no row names, which the next instance's sweep deletes).
                            gone = _collect(db, [created.previous.id])
                    segment = self._active
                    assert segment is not None
                    offsets = segment.append([m.body for m in new])
                    db.executemany(
                        "INSERT INTO messages (id, state, priority, route, not_before,"
                        " created_at, sender, recipients, message_id, tags, metadata,"
                        " idempotency_key, seg, off, len)"
                        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                        [
                            (
                                id,
                                _QUEUED,
                                prio,
                                msg.route,
                                now if msg.not_before is None else msg.not_before,
                                now,
                                msg.sender,
                                _json_list(msg.recipients),
                                msg.message_id,
                                _json_list(msg.tags),
                                _json_dict(msg.metadata),
                                msg.idempotency_key,
                                segment.id,
                                off,
                                len(msg.body),
                            )
                            for id, msg, prio, off in zip(
                                new_ids, new, priorities, offsets, strict=True
                            )
                        ],
                    )
                    db.execute(
                        "UPDATE segments SET live = live + ? WHERE id = ?", (len(new), segment.id)
                    )
                    db.executemany("INSERT INTO idempotency_keys (key, id) VALUES (?, ?)", keys)
            except BaseException:
                if created is not None:  # its row was rolled back: the file is nobody's
                    self._active = created.previous
                    created.discard()
                raise
            # Committed: only now are the ids this batch's for good (a rollback gives
            # them again).
            if created is not None and created.previous is not None:
                created.previous.close()  # sealed: no longer written to
                created.previous = None
                self._unlink(gone)
            self._keep([(id, m.body) for id, m in zip(new_ids, new, strict=True)])
        return ids

    def _new_segment(self, db: sqlite3.Connection) -> _Segment:
        """Create, lock and register a new segment file inside the open transaction *db*;
        it becomes the active one (the previous one is sealed in the same transaction)."""
        previous = self._active
        name = f"{secrets.token_hex(8)}.seg"
        segment = _Segment.create(self._dir / name, previous=previous)
        try:
            segment.id = int(
                db.execute("INSERT INTO segments (name) VALUES (?)", (name,)).lastrowid or 0
            )
            if previous is not None:
                db.execute("UPDATE segments SET sealed = 1 WHERE id = ?", (previous.id,))
        except BaseException:
            segment.discard()
            raise
        self._active = segment
        return segment

    def _unlink(self, gone: Iterable[tuple[int, str]]) -> None:
        """Delete the files of the segments *gone* (their rows are already deleted)."""
        for id, name in gone:
            fd = self._readers.pop(id, None)
            if fd is not None:
                os.close(fd)
            try:
                os.unlink(self._dir / name)
            except FileNotFoundError:
                pass

    def _read(self, seg: int, name: str | None, off: int, length: int) -> bytes | None:
        """The body at *off* in segment *seg*, or None when the file or the bytes are gone."""
        fd = self._readers.pop(seg, None)
        if fd is None:
            if name is None:
                return None
            try:
                fd = os.open(self._dir / name, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
            except FileNotFoundError:
                return None
            if len(self._readers) >= _READERS:
                os.close(self._readers.pop(next(iter(self._readers))))
        self._readers[seg] = fd  # most recently used last
        body = os.pread(fd, length, off)
        return body if len(body) == length else None

    def _sweep(self) -> None:
        """Seal the segments whose owner is gone (its lock on the file is released: it
        closed without sealing, or crashed) and delete those with no message left, and
        files that no row names (a crash between creating a file and committing it)."""
        with self._lock, self._write(durable=False) as db:
            rows = db.execute("SELECT id, name, sealed, live FROM segments").fetchall()
            known = {name for _, name, _, _ in rows}
            orphaned = []
            for id, name, sealed, live in rows:
                if not sealed:
                    if _owned(self._dir / name):
                        continue
                    db.execute("UPDATE segments SET sealed = 1 WHERE id = ?", (id,))
                if live <= 0:  # also one sealed and emptied that a crash left behind
                    orphaned.append(id)
            gone = _collect(db, orphaned)
            # Files no row names, and nobody holds: their rows never committed.
            for entry in os.scandir(self._dir):
                if entry.name.endswith(".seg") and entry.name not in known:
                    if not _owned(Path(entry.path)):
                        gone.append((-1, entry.name))
        self._unlink(gone)

    def _keep(self, bodies: list[tuple[int, bytes]]) -> None:
        """Keep *bodies* for this instance's leases, the oldest dropped past the budget."""
        kept = self._kept
        for id, body in bodies:
            kept[id] = body
            self._kept_bytes += len(body)
        while self._kept_bytes > _KEPT_BYTES and kept:
            self._kept_bytes -= len(kept.pop(next(iter(kept))))

    def _forget(self, ids: Iterable[int]) -> None:
        kept = self._kept
        for id in ids:
            body = kept.pop(id, None)
            if body is not None:
                self._kept_bytes -= len(body)

    def lease(
        self,
        n: int,
        *,
        visibility: float,
        route: str | None = None,
        priority: Priority | None = None,
    ) -> list[Lease]:
        """Lease up to *n* ready messages for *visibility* seconds (see ``Outbox.lease``)."""
        if n <= 0:
            return []
        # Not fsynced: a lease lost to a power cut is a lease expired early.
        with self._lock, self._write(durable=False) as db:
            now = self._clock()
            # Expired leases become queued again (their not_before, long reached, is kept).
            db.execute(
                "UPDATE messages SET state = ?, token = NULL WHERE state = ? AND leased_until <= ?",
                (_QUEUED, _LEASED, now),
            )
            where = ["state = ?", "not_before <= ?"]
            args: list[Any] = [_QUEUED, now]
            if route is not None:
                where.append("route = ?")
                args.append(route)
            if priority is not None:
                where.append("priority = ?")
                args.append(int(priority))
            rows = db.execute(
                f"SELECT id FROM messages WHERE {' AND '.join(where)}"
                " ORDER BY priority, not_before, id LIMIT ?",
                (*args, n),
            ).fetchall()
            if not rows:
                return []
            until = now + visibility
            # One random value per call, the id appended: every lease's token is new and
            # unguessable, and one statement per chunk marks the whole batch leased.
            prefix = secrets.token_hex(8) + "."
            ids = [row[0] for row in rows]
            found: dict[int, Sequence[Any]] = {}
            bodies: dict[int, bytes] = {}
            names: dict[int, str] = {}  # segment id -> file name, read when first needed
            kept = self._kept
            for i in range(0, len(ids), _CHUNK):
                part = ids[i : i + _CHUNK]
                marks = ",".join("?" * len(part))
                db.execute(
                    f"UPDATE messages SET state = {_LEASED}, token = ? || id, leased_until = ?"
                    f" WHERE id IN ({marks})",
                    (prefix, until, *part),
                )
                for r in db.execute(
                    f"SELECT {_LEASE_COLUMNS} FROM messages WHERE id IN ({marks})", part
                ):
                    found[r[0]] = r
                # Bodies this instance added are in memory; the others are read back,
                # from their segment file (or the bodies table of the earlier layout).
                inline = []
                for id in part:
                    if id in kept:
                        continue
                    row = found[id]
                    seg = row[-3]
                    if seg is None:
                        inline.append(id)
                        continue
                    if seg not in self._readers and seg not in names:
                        names.update(db.execute("SELECT id, name FROM segments"))
                    body = self._read(seg, names.get(seg), row[-2], row[-1])
                    if body is not None:
                        bodies[id] = body
                if inline:
                    marks = ",".join("?" * len(inline))
                    bodies.update(
                        db.execute(f"SELECT id, body FROM bodies WHERE id IN ({marks})", inline)
                    )
            leases = []
            lost: list[int] = []
            for id in ids:
                body = kept.get(id)
                if body is None:
                    body = bodies.get(id)
                if body is None:
                    lost.append(id)
                else:
                    leases.append(_lease_of(found[id], body, f"{prefix}{id}", until))
            if lost:
                # A body that cannot be read (its segment file deleted or cut short by
                # hand, a disk error): the message cannot be sent; it becomes a dead
                # letter that says so instead of failing every lease after it.
                self._bury(db, lost, now, "its body cannot be read from the outbox's files")
        return leases

    def settle(self, settlements: Sequence[Settlement]) -> list[bool]:
        """Apply *settlements* in one transaction; True for each applied (see ``Outbox.settle``)."""
        if not settlements:
            return []
        with self._lock:
            with self._write() as db:
                now = self._clock()
                numbers = [_row_id(x.id) for x in settlements]
                leased = _leased_rows(db, [i for i in numbers if i is not None])
                current: list[tuple[int, int | None] | None] = []
                for s, number in zip(settlements, numbers, strict=True):
                    row = None if number is None else leased.get(number)
                    if number is None or row is None or row[0] != s.token:
                        current.append(None)
                        continue
                    # Settled once per call: a second settlement of the same lease in the
                    # batch is not applied (applied twice, a DONE would take its body off
                    # its segment's count twice, and the segment could be deleted while
                    # other messages still have their bodies in it).
                    del leased[number]
                    if s.action is Settle.RETRY:
                        extra = set(s.pending) - set(_strings_of(row[1]))
                        if extra:
                            raise ValueError(
                                f"settlement of message {s.id}: {len(extra)} pending recipient(s) "
                                "not among the leased message's recipients"
                            )
                    current.append((number, row[2]))
                applied: list[bool] = []
                done: list[tuple[int, int | None]] = []
                for s, found in zip(settlements, current, strict=True):
                    if found is None:
                        applied.append(False)
                        continue
                    applied.append(True)
                    id = found[0]
                    action = s.action
                    if action is Settle.RETRY and not s.pending:
                        action = Settle.DONE
                    if action is Settle.DONE:
                        done.append(found)
                        continue
                    sets = ["token = NULL"]
                    args: list[Any] = []
                    if s.route is not None:
                        sets.append("route = ?")
                        args.append(s.route)
                    if s.reason:
                        sets.append("last_reason = ?")
                        args.append(s.reason)
                    if s.outcomes:
                        sets.append("outcomes = ?")
                        args.append(_outcomes_json(s.outcomes))
                    if action is Settle.DEAD:
                        sets += ["state = ?", "died_at = ?", "dead_seq = ?"]
                        self._forget((id,))
                        args += [_DEAD, now, _next_dead_seq(db)]
                        if s.pending:
                            sets.append("recipients = ?")
                            args.append(_json_list(s.pending))
                    else:
                        if action is Settle.RETRY:
                            sets.append("recipients = ?")
                            args.append(_json_list(s.pending))
                            if s.attempt:
                                sets.append("attempts = attempts + 1")
                        sets += ["state = ?", "not_before = ?"]
                        args += [_QUEUED, now if s.not_before is None else s.not_before]
                    db.execute(f"UPDATE messages SET {', '.join(sets)} WHERE id = ?", (*args, id))
                gone: list[tuple[int, str]] = []
                if done:
                    ids = [id for id, _ in done]
                    self._forget(ids)
                    for i in range(0, len(ids), _CHUNK):
                        part = ids[i : i + _CHUNK]
                        db.execute(
                            f"DELETE FROM messages WHERE id IN ({','.join('?' * len(part))})", part
                        )
                    gone = _collect(db, _release_bodies(db, done))
                    db.execute(
                        "UPDATE counters SET value = value + ? WHERE name = 'done'", (len(done),)
                    )
            self._unlink(gone)
        return applied

    def _bury(self, db: sqlite3.Connection, ids: Sequence[int], now: float, reason: str) -> None:
        """Make messages *ids* dead letters with *reason*, inside the transaction *db*."""
        for id in ids:
            db.execute(
                "UPDATE messages SET state = ?, token = NULL, died_at = ?, dead_seq = ?,"
                " last_reason = ? WHERE id = ?",
                (_DEAD, now, _next_dead_seq(db), reason, id),
            )

    def next_due(self) -> float | None:
        """The earliest time a queued or leased message becomes ready, or None when empty."""
        with self._lock:
            row = self._db.execute(
                "SELECT (SELECT min(not_before) FROM messages WHERE state = ?),"
                " (SELECT min(leased_until) FROM messages WHERE state = ?)",
                (_QUEUED, _LEASED),
            ).fetchone()
        due = [t for t in row if t is not None]
        return min(due) if due else None

    def stats(self) -> OutboxStats:
        """Counts by state, priority and route; the oldest unsettled message's age."""
        with self._lock:
            db = self._db
            db.execute("BEGIN")  # one snapshot for every count
            try:
                now = self._clock()
                by_state = {s.value: 0 for s in MessageState}
                by_priority: dict[str, int] = {}
                by_route: dict[str, int] = {}
                for state, prio, route, count in db.execute(
                    "SELECT state, priority, route, count(*) FROM messages"
                    " GROUP BY state, priority, route"
                ):
                    if state == _DEAD:
                        by_state["dead"] += count
                        continue
                    by_state[_STATE_NAMES[state]] += count
                    name = Priority(prio).name.lower()
                    by_priority[name] = by_priority.get(name, 0) + count
                    by_route[route or ""] = by_route.get(route or "", 0) + count
                by_state["done"] = db.execute(
                    "SELECT value FROM counters WHERE name = 'done'"
                ).fetchone()[0]
                oldest, next_due = db.execute(
                    "SELECT (SELECT min(created_at) FROM messages WHERE state IN (?, ?)),"
                    " (SELECT min(not_before) FROM messages WHERE state = ?)",
                    (_QUEUED, _LEASED, _QUEUED),
                ).fetchone()
            finally:
                db.execute("COMMIT")
        return OutboxStats(
            by_state=by_state,
            by_priority=by_priority,
            by_route=by_route,
            oldest_age=None if oldest is None else max(0.0, now - oldest),
            next_due=next_due,
            disk_bytes=self._disk_bytes(),
        )

    def _disk_bytes(self) -> int:
        """Bytes of the database, its WAL and shared-memory index, and the segments."""
        total = 0
        for suffix in ("", "-wal", "-shm"):
            try:
                total += os.stat(f"{self._path}{suffix}").st_size
            except FileNotFoundError:
                pass
        with os.scandir(self._dir) as entries:
            for entry in entries:
                try:
                    total += entry.stat().st_size
                except FileNotFoundError:  # deleted by another process meanwhile
                    pass
        return total

    def dead_letters(self, *, limit: int = 100, offset: int = 0) -> list[DeadLetter]:
        """Dead letters, oldest first."""
        start, stop = dead_page(limit, offset)
        with self._lock:
            rows = self._db.execute(
                f"SELECT {_DEAD_COLUMNS} FROM messages WHERE state = ?"
                " ORDER BY dead_seq LIMIT ? OFFSET ?",
                (_DEAD, stop - start, start),
            ).fetchall()
        return [_dead_of(row) for row in rows]

    @staticmethod
    def _dead_ids(
        db: sqlite3.Connection, ids: Sequence[MessageId] | None, died_before: float | None = None
    ) -> list[tuple[int]]:
        """The dead letters *ids* choose (see ``chosen_dead``), as rows of their ids."""
        dead = {
            str(id): died_at
            for id, died_at in db.execute(
                "SELECT id, died_at FROM messages WHERE state = ? ORDER BY dead_seq", (_DEAD,)
            )
        }
        return [(int(i),) for i in chosen_dead(dead, ids, died_before=died_before)]

    def retry_dead(self, ids: Sequence[MessageId] | None = None) -> int:
        """Queue dead letters again (all when *ids* is None), ready now; return how many."""
        with self._lock, self._write() as db:
            now = self._clock()
            chosen = self._dead_ids(db, ids)
            db.executemany(
                "UPDATE messages SET state = ?, attempts = 0, created_at = ?, not_before = ?,"
                " died_at = NULL, dead_seq = NULL WHERE id = ?",
                [(_QUEUED, now, now, i) for (i,) in chosen],
            )
            return len(chosen)

    def purge_dead(
        self, ids: Sequence[MessageId] | None = None, *, older_than: float | None = None
    ) -> int:
        """Delete dead letters (all, in *ids*, or dead longer than *older_than* s); how many."""
        with self._lock:
            with self._write() as db:
                now = self._clock()
                chosen = self._dead_ids(db, ids, None if older_than is None else now - older_than)
                stored = [
                    db.execute("SELECT id, seg FROM messages WHERE id = ?", row).fetchone()
                    for row in chosen
                ]
                db.executemany("DELETE FROM idempotency_keys WHERE id = ?", chosen)
                db.executemany("DELETE FROM messages WHERE id = ?", chosen)
                gone = _collect(db, _release_bodies(db, stored))
            self._unlink(gone)
            return len(chosen)

    def __del__(self) -> None:
        # An outbox dropped without close() releases its connection and files here
        # (Python 3.13 warns about a connection collected open); every commit is already
        # durable, and the segment left unsealed is sealed by the next instance's sweep.
        try:
            self._release()
        except Exception:  # interpreter shutdown: nothing left to release
            pass

    def _release(self) -> None:
        active = getattr(self, "_active", None)
        if active is not None:
            active.close()
        for fd in getattr(self, "_readers", {}).values():
            os.close(fd)
        self._readers = {}
        db = getattr(self, "_db", None)
        if db is not None:
            db.close()

    def close(self) -> None:
        """Seal this instance's segment file (deleting it when none of its messages is
        left), then close the database connection and the files (idempotent)."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            active, self._active = self._active, None
            try:
                if active is not None:
                    active.close()
                    with self._write(durable=False) as db:
                        db.execute("UPDATE segments SET sealed = 1 WHERE id = ?", (active.id,))
                        gone = _collect(db, [active.id])
                    self._unlink(gone)
            finally:
                self._release()


# SQLite's default limit on bound parameters is 32,766 (999 before 3.32): stay well below.
_CHUNK = 500

_sync_data = getattr(os, "fdatasync", os.fsync)  # macOS has no fdatasync


class _Segment:
    """A segment file this instance appends bodies to, locked (``flock``) while open so
    that other instances can tell a live owner from a crashed one."""

    def __init__(self, path: Path, fd: int, previous: _Segment | None) -> None:
        self.path = path
        self.fd = fd
        self.id = 0  # the row's id, set once it is inserted
        self.size = 0
        self.previous = previous  # the segment this one replaces, sealed with its creation

    @classmethod
    def create(cls, path: Path, *, previous: _Segment | None) -> _Segment:
        fd = os.open(
            path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND | getattr(os, "O_CLOEXEC", 0)
        )
        try:
            if fcntl is not None:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            # The new name must survive a power cut along with the rows that use it.
            dirfd = os.open(path.parent, os.O_RDONLY)
            try:
                os.fsync(dirfd)
            finally:
                os.close(dirfd)
        except BaseException:
            os.close(fd)
            path.unlink(missing_ok=True)
            raise
        return cls(path, fd, previous)

    def append(self, bodies: list[bytes]) -> list[int]:
        """Append *bodies* and flush them to disk; return the offset of each."""
        fd = self.fd
        start = os.fstat(fd).st_size  # O_APPEND: every write lands at the end
        offsets = []
        end = start
        for body in bodies:
            offsets.append(end)
            end += len(body)
        for i in range(0, len(bodies), _IOV):
            part = bodies[i : i + _IOV]
            written = os.writev(fd, part)
            want = sum(len(b) for b in part)
            while written < want:  # a short write (a signal, a full disk): the rest
                rest = b"".join(part)[written:]
                n = os.write(fd, rest)
                if n <= 0:
                    raise OSError(errno.EIO, f"could not append to {self.path}")
                written += n
        _sync_data(fd)
        self.size = end
        return offsets

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)  # releases the lock
            self.fd = -1

    def discard(self) -> None:
        self.close()
        self.path.unlink(missing_ok=True)


def _owned(path: Path) -> bool:
    """Whether a live instance holds *path* (its segment file) open for appending."""
    if fcntl is None:
        return True  # no way to tell: never take a file from a possibly live owner
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False


def _collect(db: sqlite3.Connection, ids: Iterable[int]) -> list[tuple[int, str]]:
    """Delete the rows of those segments among *ids* that are sealed and hold no message;
    return their (id, file name), for their files to be deleted after the commit."""
    wanted = sorted(set(ids))
    gone: list[tuple[int, str]] = []
    for i in range(0, len(wanted), _CHUNK):
        part = wanted[i : i + _CHUNK]
        marks = ",".join("?" * len(part))
        gone += db.execute(
            f"SELECT id, name FROM segments WHERE id IN ({marks}) AND sealed = 1 AND live <= 0",
            part,
        ).fetchall()
    db.executemany("DELETE FROM segments WHERE id = ?", [(id,) for id, _ in gone])
    return gone


def _release_bodies(db: sqlite3.Connection, stored: Iterable[tuple[int, int | None]]) -> list[int]:
    """Take the bodies of the messages about to be deleted, given as (id, segment) pairs,
    off their segments' counts; delete those stored in the bodies table (a segment of
    None: files of the earlier layout). Return the segments touched."""
    per_segment: dict[int, int] = {}
    inline: list[int] = []
    for id, seg in stored:
        if seg is None:
            inline.append(id)
        else:
            per_segment[seg] = per_segment.get(seg, 0) + 1
    db.executemany(
        "UPDATE segments SET live = live - ? WHERE id = ?",
        [(n, seg) for seg, n in per_segment.items()],
    )
    for i in range(0, len(inline), _CHUNK):
        part = inline[i : i + _CHUNK]
        db.execute(f"DELETE FROM bodies WHERE id IN ({','.join('?' * len(part))})", part)
    return list(per_segment)


def _row_id(id: MessageId) -> int | None:
    """The row id that *id* names, or None when no row can have it (not ASCII digits, or
    beyond SQLite's 64-bit integers)."""
    if not (id.isascii() and id.isdigit()) or len(id) > 19:
        return None
    number = int(id)
    return number if number < 2**63 else None


def _next_dead_seq(db: sqlite3.Connection) -> int:
    """The next dead letter's place in the dead-letter order (inside a write transaction)."""
    db.execute("UPDATE counters SET value = value + 1 WHERE name = 'dead_seq'")
    return int(db.execute("SELECT value FROM counters WHERE name = 'dead_seq'").fetchone()[0])


def _known_keys(db: sqlite3.Connection, keys: set[str]) -> dict[str, str]:
    """Idempotency key -> id of the stored message, for those of *keys* already stored."""
    found: dict[str, str] = {}
    wanted = list(keys)
    for i in range(0, len(wanted), _CHUNK):
        part = wanted[i : i + _CHUNK]
        marks = ",".join("?" * len(part))
        for key, id in db.execute(
            f"SELECT key, id FROM idempotency_keys WHERE key IN ({marks})", part
        ):
            found[key] = str(id)
    return found


def _leased_rows(db: sqlite3.Connection, ids: list[int]) -> dict[int, tuple[str, str, int | None]]:
    """id -> (lease token, recipients as stored, body segment) for those of *ids* that
    are leased."""
    found: dict[int, tuple[str, str, int | None]] = {}
    for i in range(0, len(ids), _CHUNK):
        part = ids[i : i + _CHUNK]
        marks = ",".join("?" * len(part))
        for id, token, recipients, seg in db.execute(
            f"SELECT id, token, recipients, seg FROM messages WHERE state = {_LEASED}"
            f" AND id IN ({marks})",
            part,
        ):
            found[id] = (token, recipients, seg)
    return found


def _lease_of(row: Sequence[Any], body: bytes, token: str, until: float) -> Lease:
    (id, sender, recipients, message_id, priority, route, tags, metadata, key, attempts,
     created_at, last_reason, _seg, _off, _len) = row  # fmt: skip
    meta: Mapping[str, str] = _decode(metadata) if metadata != "{}" else {}
    return Lease(
        id=str(id),
        token=token,
        sender=sender,
        recipients=_strings_of(recipients),
        body=bytes(body),
        message_id=message_id,
        priority=_PRIORITIES[priority],
        route=route,
        tags=_strings_of(tags),
        metadata=meta,
        idempotency_key=key,
        attempts=attempts,
        created_at=created_at,
        leased_until=until,
        last_reason=last_reason,
    )


def _dead_of(row: Sequence[Any]) -> DeadLetter:
    (id, sender, recipients, message_id, priority, route, attempts, created_at, died_at,
     reason, outcomes) = row  # fmt: skip
    return DeadLetter(
        id=str(id),
        sender=sender,
        recipients=_strings_of(recipients),
        message_id=message_id,
        priority=Priority(priority),
        route=route,
        attempts=attempts,
        created_at=created_at,
        died_at=died_at,
        reason=reason,
        outcomes=_outcomes_of(outcomes),
    )
