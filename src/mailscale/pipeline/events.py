"""Delivery events: what became of each submitted message, as it happens.

The Sender emits one :class:`Event` per message and outcome: ``queued`` on
submit, then ``sent`` (every pending recipient accepted, or some accepted and
the rest rejected), ``deferred`` (some recipients will be retried), ``bounced``
(rejected recipients), ``expired`` (given up after the schedule's last
attempt), ``failed`` (the whole call failed; the message will be retried).
Events carry addresses, codes and the provider's words, never message content
or credentials. Listeners are called in the worker thread; a listener that
raises is logged and never stops delivery. :class:`EventStream` is a bounded
iterator for code that prefers pulling.
"""

from __future__ import annotations

import collections
import threading
from collections.abc import Iterator
from types import TracebackType

import attrs

from mailscale.message import ValueEnum

__all__ = ["Event", "EventKind", "EventStream"]


class EventKind(ValueEnum):
    """What happened to a message."""

    QUEUED = "queued"
    SENT = "sent"
    DEFERRED = "deferred"
    BOUNCED = "bounced"
    EXPIRED = "expired"
    FAILED = "failed"


@attrs.frozen(kw_only=True)
class Event:
    """One outcome of one message.

    Attributes:
        kind: what happened.
        id: the outbox's id of the message.
        message_id: its Message-ID header value.
        route: the route that handled it ("" for the default).
        recipients: the recipients this event is about.
        at: when (the sender's clock, epoch seconds).
        attempts: delivery attempts made so far, this one included.
        code: the provider's status code, when there is one.
        text: the provider's words or the reason.
        enhanced: RFC 3463 enhanced status code, when known.
        retry_at: for ``deferred`` and ``failed``: when the next attempt is due.
        provider_id: the provider's message id, for ``sent``.
    """

    kind: EventKind
    id: str
    message_id: str
    route: str
    recipients: tuple[str, ...]
    at: float
    attempts: int = 0
    code: int | str | None = None
    text: str = ""
    enhanced: str | None = None
    retry_at: float | None = None
    provider_id: str | None = None


class EventStream:
    """A bounded queue of events fed by a Sender; iterate to consume them.

    Iteration blocks until an event arrives, *timeout* passes (then it ends), or
    the stream is closed. When the consumer falls more than *maxsize* events
    behind, the oldest are dropped and counted in :attr:`dropped`.
    """

    def __init__(self, maxsize: int = 100_000, timeout: float | None = None) -> None:
        self._events: collections.deque[Event] = collections.deque()
        self._maxsize = maxsize
        self._timeout = timeout
        self._cond = threading.Condition()
        self._closed = False
        self.dropped = 0

    def put(self, event: Event) -> None:
        """Queue *event*, dropping the oldest (counted in ``dropped``) when full."""
        with self._cond:
            if self._closed:
                return
            if len(self._events) >= self._maxsize:
                self._events.popleft()
                self.dropped += 1
            self._events.append(event)
            self._cond.notify()

    def get(self, timeout: float | None = None) -> Event | None:
        """The next event, or None when *timeout* passed or the stream is closed."""
        with self._cond:
            if not self._events and not self._closed:
                self._cond.wait(timeout)
            return self._events.popleft() if self._events else None

    def drain(self) -> list[Event]:
        """Every event waiting now, without blocking."""
        with self._cond:
            out = list(self._events)
            self._events.clear()
            return out

    def close(self) -> None:
        """Stop receiving events and wake any waiting :meth:`get`."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    @property
    def closed(self) -> bool:
        """True once :meth:`close` was called."""
        return self._closed

    def __iter__(self) -> Iterator[Event]:
        while True:
            event = self.get(self._timeout)
            if event is None:
                return
            yield event

    def __enter__(self) -> EventStream:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
