"""``MemoryOutbox``: the Outbox contract in process memory, for tests and fire-and-forget.

It keeps every guarantee of :mod:`mailscale.pipeline.outbox` except
durability: what it holds is gone when the process ends. Thread-safe (one
lock); ready messages sit in one heap per (priority, route), so leasing costs
O(log n) per message. Done messages are forgotten (their idempotency keys are
kept, so a repeated submit stays a no-op).
"""

from __future__ import annotations

import heapq
import itertools
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

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

__all__ = ["MemoryOutbox"]


class _Stored:
    __slots__ = (
        "attempts",
        "body",
        "created_at",
        "died_at",
        "id",
        "idempotency_key",
        "last_reason",
        "leased_until",
        "message_id",
        "metadata",
        "not_before",
        "outcomes",
        "priority",
        "recipients",
        "route",
        "sender",
        "seq",
        "state",
        "tags",
        "token",
        "ver",
    )

    def __init__(self, msg: NewMessage, id: str, seq: int, now: float) -> None:
        self.id = id
        self.seq = seq
        self.sender = msg.sender
        self.recipients = msg.recipients
        self.body = msg.body
        self.message_id = msg.message_id
        prio = msg.priority
        self.priority = prio if type(prio) is Priority else Priority(prio)
        self.route = msg.route
        self.tags = msg.tags
        self.metadata = msg.metadata
        self.idempotency_key = msg.idempotency_key
        self.attempts = 0
        self.created_at = now
        self.not_before = now if msg.not_before is None else msg.not_before
        self.state = MessageState.QUEUED
        self.token = ""
        self.leased_until = 0.0
        self.last_reason = ""
        self.outcomes: tuple[RecipientOutcome, ...] = ()
        self.died_at = 0.0
        self.ver = 0


class MemoryOutbox:
    """An in-memory :class:`~mailscale.pipeline.outbox.Outbox`.

    Args:
        clock: epoch seconds; injectable for tests.
    """

    def __init__(self, *, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._msgs: dict[str, _Stored] = {}
        self._keys: dict[str, str] = {}
        self._ready: dict[tuple[int, str | None], list[tuple[float, int, str, int]]] = {}
        self._leases: list[tuple[float, str, str]] = []
        self._dead: dict[str, float] = {}  # id -> when it died, in the order they died
        self._seq = itertools.count(1)
        self._tokens = itertools.count(1)
        self._done = 0

    @classmethod
    def from_url(cls, url: str, **options: Any) -> MemoryOutbox:
        """``memory://`` (no options besides ``clock=``)."""
        unknown = set(options) - {"clock"}
        if unknown or url.rstrip("/") not in ("memory:", "memory://", "memory:/"):
            raise ConfigurationError(f"outbox URL {url!r}: memory:// takes no options")
        return cls(**options)

    def __repr__(self) -> str:
        return f"MemoryOutbox(messages={len(self._msgs)})"

    # -- internals (lock held) ----------------------------------------------

    def _push(self, m: _Stored) -> None:
        m.ver += 1
        heap = self._ready.setdefault((int(m.priority), m.route), [])
        heapq.heappush(heap, (m.not_before, m.seq, m.id, m.ver))

    def _top(self, heap: list[tuple[float, int, str, int]]) -> tuple[float, int, str, int] | None:
        while heap:
            entry = heap[0]
            m = self._msgs.get(entry[2])
            if m is not None and m.ver == entry[3] and m.state is MessageState.QUEUED:
                return entry
            heapq.heappop(heap)
        return None

    def _expire_leases(self, now: float) -> None:
        leases = self._leases
        while leases and leases[0][0] <= now:
            _, id, token = heapq.heappop(leases)
            m = self._msgs.get(id)
            if m is not None and m.state is MessageState.LEASED and m.token == token:
                m.state = MessageState.QUEUED
                m.token = ""
                self._push(m)

    # -- the contract ---------------------------------------------------------

    def add(self, messages: Sequence[NewMessage]) -> list[MessageId]:
        """Store *messages* in one transaction; return their ids, in order (see ``Outbox.add``)."""
        with self._lock:
            now = self._clock()
            ids: list[str] = []
            for msg in messages:
                key = msg.idempotency_key
                if key is not None and key in self._keys:
                    ids.append(self._keys[key])
                    continue
                seq = next(self._seq)
                m = _Stored(msg, str(seq), seq, now)
                self._msgs[m.id] = m
                if key is not None:
                    self._keys[key] = m.id
                self._push(m)
                ids.append(m.id)
            return ids

    def lease(
        self,
        n: int,
        *,
        visibility: float,
        route: str | None = None,
        priority: Priority | None = None,
    ) -> list[Lease]:
        """Lease up to *n* ready messages for *visibility* seconds (see ``Outbox.lease``)."""
        out: list[Lease] = []
        if n <= 0:
            return out
        with self._lock:
            now = self._clock()
            self._expire_leases(now)
            classes = sorted(
                {p for p, r in self._ready if (route is None or r == route)}
                if priority is None
                else {int(priority)}
            )
            for prio in classes:
                heaps = [
                    h
                    for (p, r), h in self._ready.items()
                    if p == prio and (route is None or r == route)
                ]
                while len(out) < n:
                    best: tuple[float, int, str, int] | None = None
                    best_heap: list[tuple[float, int, str, int]] | None = None
                    for h in heaps:
                        top = self._top(h)
                        if top is not None and (best is None or top[:2] < best[:2]):
                            best, best_heap = top, h
                    if best is None or best_heap is None or best[0] > now:
                        break
                    heapq.heappop(best_heap)
                    m = self._msgs[best[2]]
                    m.state = MessageState.LEASED
                    m.token = f"{m.id}.{next(self._tokens)}"
                    m.leased_until = now + visibility
                    m.ver += 1
                    heapq.heappush(self._leases, (m.leased_until, m.id, m.token))
                    out.append(_lease_of(m))
                if len(out) >= n:
                    break
        return out

    def settle(self, settlements: Sequence[Settlement]) -> list[bool]:
        """Apply *settlements* in one transaction; True for each applied (see ``Outbox.settle``)."""
        with self._lock:
            now = self._clock()
            current: list[_Stored | None] = []
            for s in settlements:
                m = self._msgs.get(s.id)
                ok = m is not None and m.state is MessageState.LEASED and m.token == s.token
                if ok and m is not None and s.action is Settle.RETRY:
                    extra = set(s.pending) - set(m.recipients)
                    if extra:
                        raise ValueError(
                            f"settlement of message {s.id}: {len(extra)} pending recipient(s) "
                            "not among the leased message's recipients"
                        )
                current.append(m if ok else None)
            applied: list[bool] = []
            for s, m in zip(settlements, current, strict=True):
                if m is None:
                    applied.append(False)
                    continue
                applied.append(True)
                m.token = ""
                if s.route is not None:
                    m.route = s.route
                if s.reason:
                    m.last_reason = s.reason
                if s.outcomes:
                    m.outcomes = s.outcomes
                action = s.action
                if action is Settle.RETRY and not s.pending:
                    action = Settle.DONE
                if action is Settle.DONE:
                    self._done += 1
                    del self._msgs[m.id]
                    m.state = MessageState.DONE
                elif action is Settle.DEAD:
                    m.state = MessageState.DEAD
                    m.died_at = now
                    if s.pending:
                        m.recipients = s.pending
                    m.ver += 1
                    self._dead[m.id] = now
                else:
                    if action is Settle.RETRY:
                        m.recipients = s.pending
                        if s.attempt:
                            m.attempts += 1
                    m.not_before = now if s.not_before is None else s.not_before
                    m.state = MessageState.QUEUED
                    self._push(m)
            return applied

    def next_due(self) -> float | None:
        """The earliest time a queued or leased message becomes ready, or None when empty."""
        with self._lock:
            due: float | None = None
            for heap in self._ready.values():
                top = self._top(heap)
                if top is not None and (due is None or top[0] < due):
                    due = top[0]
            leases = self._leases
            while leases:
                until, id, token = leases[0]
                m = self._msgs.get(id)
                if m is not None and m.state is MessageState.LEASED and m.token == token:
                    if due is None or until < due:
                        due = until
                    break
                heapq.heappop(leases)
            return due

    def stats(self) -> OutboxStats:
        """Counts by state, priority and route; the oldest unsettled message's age."""
        with self._lock:
            now = self._clock()
            by_state = {s.value: 0 for s in MessageState}
            by_state["done"] = self._done
            by_priority: dict[str, int] = {}
            by_route: dict[str, int] = {}
            oldest: float | None = None
            next_due: float | None = None
            for m in self._msgs.values():
                by_state[m.state.value] += 1
                if m.state is MessageState.DEAD:
                    continue
                name = m.priority.name.lower()
                by_priority[name] = by_priority.get(name, 0) + 1
                route = m.route or ""
                by_route[route] = by_route.get(route, 0) + 1
                if oldest is None or m.created_at < oldest:
                    oldest = m.created_at
                if m.state is MessageState.QUEUED and (next_due is None or m.not_before < next_due):
                    next_due = m.not_before
            return OutboxStats(
                by_state=by_state,
                by_priority=by_priority,
                by_route=by_route,
                oldest_age=None if oldest is None else max(0.0, now - oldest),
                next_due=next_due,
            )

    def dead_letters(self, *, limit: int = 100, offset: int = 0) -> list[DeadLetter]:
        """Dead letters, oldest first."""
        with self._lock:
            start, stop = dead_page(limit, offset)
            return [_dead_of(self._msgs[i]) for i in itertools.islice(self._dead, start, stop)]

    def retry_dead(self, ids: Sequence[MessageId] | None = None) -> int:
        """Queue dead letters again (all when *ids* is None), ready now; return how many."""
        with self._lock:
            now = self._clock()
            chosen = chosen_dead(self._dead, ids)
            for i in chosen:
                del self._dead[i]
                m = self._msgs[i]
                # The delivery schedule starts again: a retried dead letter is a new attempt.
                m.state = MessageState.QUEUED
                m.attempts = 0
                m.created_at = now
                m.not_before = now
                self._push(m)
            return len(chosen)

    def purge_dead(
        self, ids: Sequence[MessageId] | None = None, *, older_than: float | None = None
    ) -> int:
        """Delete dead letters (all, in *ids*, or dead longer than *older_than* s); how many."""
        with self._lock:
            now = self._clock()
            before = None if older_than is None else now - older_than
            chosen = chosen_dead(self._dead, ids, died_before=before)
            for i in chosen:
                del self._dead[i]
                m = self._msgs.pop(i)
                if m.idempotency_key is not None:
                    self._keys.pop(m.idempotency_key, None)
            return len(chosen)

    def close(self) -> None:
        """Nothing to release."""


def _lease_of(m: _Stored) -> Lease:
    return Lease(
        id=m.id,
        token=m.token,
        sender=m.sender,
        recipients=m.recipients,
        body=m.body,
        message_id=m.message_id,
        priority=m.priority,
        route=m.route,
        tags=m.tags,
        metadata=m.metadata,
        idempotency_key=m.idempotency_key,
        attempts=m.attempts,
        created_at=m.created_at,
        leased_until=m.leased_until,
        last_reason=m.last_reason,
    )


def _dead_of(m: _Stored) -> DeadLetter:
    return DeadLetter(
        id=m.id,
        sender=m.sender,
        recipients=m.recipients,
        message_id=m.message_id,
        priority=m.priority,
        route=m.route,
        attempts=m.attempts,
        created_at=m.created_at,
        died_at=m.died_at,
        reason=m.last_reason,
        outcomes=m.outcomes,
    )
