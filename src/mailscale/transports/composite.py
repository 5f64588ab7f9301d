"""Composite transports: ``failover(a b ...)`` and ``roundrobin(a b ...)``.

Both move a message to another member only when the first could not take it
for a transient reason (a deferred result, a transient ``TransportError`` such
as a refused connection or a time-out); a permanent rejection is final and
never re-sent elsewhere, so a provider's "no" is not laundered through a
second provider. Only the recipients still pending move on. A message whose
result is ``possibly_delivered`` (the member may have delivered it: its answer
was lost after the whole message was sent) never moves on. Each result's
``transport`` names the member that handled the message (``smtp[1]`` when two
members share a name; ``failover/smtp`` through a nested composite).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from typing import Any, ClassVar

import attrs

from mailscale._log import get_logger
from mailscale.errors import ConfigurationError, TransportError
from mailscale.message import Envelope, SendResult
from mailscale.transports import _results
from mailscale.transports.base import Transport, TransportBase, TransportURL

__all__ = ["FailoverTransport", "RoundRobinTransport"]

_log = get_logger("mailscale.transports")


def _labels(members: Sequence[Transport]) -> list[str]:
    names = [str(getattr(m, "name", type(m).__name__)) for m in members]
    return [f"{n}[{i}]" if names.count(n) > 1 else n for i, n in enumerate(names)]


class _CompositeBase(TransportBase):
    payload: str = "mime"

    def __init__(self, members: Sequence[Transport]) -> None:
        members = list(members)
        if not members:
            raise ConfigurationError(f"{self.name}: needs at least one member transport")
        for m in members:
            if not callable(getattr(m, "send", None)):
                raise ConfigurationError(
                    f"{self.name}: member {type(m).__name__} has no send() method"
                )
        self.members: list[Transport] = members
        self._labels = _labels(members)

    @classmethod
    def from_url(cls, url: TransportURL, **options: Any) -> TransportBase:
        """Always raises ConfigurationError: a composite is written ``failover(URL URL ...)``."""
        raise url.error(f"write {cls.name}(URL URL ...) to build a composite")

    @property
    def labels(self) -> list[str]:
        """How results name each member, in order."""
        return list(self._labels)

    def _label(self, index: int, result: SendResult) -> SendResult:
        label = self._labels[index]
        if isinstance(self.members[index], _CompositeBase) and result.transport:
            label = f"{label}/{result.transport}"
        if result.transport == label:
            return result  # the usual case: the member already named itself
        return attrs.evolve(result, transport=label)

    def _call(
        self, index: int, envelopes: list[Envelope]
    ) -> tuple[list[SendResult] | None, TransportError | None]:
        """Send through one member; return its labelled results or its whole-call error."""
        try:
            out = self.members[index].send(envelopes)
        except TransportError as exc:
            _log.warning(
                "transport.member_failed",
                composite=self.name,
                member=self._labels[index],
                error=str(exc),
                transient=exc.transient,
            )
            return None, exc
        if len(out) != len(envelopes):
            raise TransportError(
                f"{self._labels[index]} returned {len(out)} results for {len(envelopes)} messages",
                provider=self._labels[index],
            )
        return [self._label(index, r) for r in out], None

    def close(self) -> None:
        """Close every member."""
        for m in self.members:
            m.close()

    def _repr_fields(self) -> dict[str, Any]:
        return {"members": self.members}


class FailoverTransport(_CompositeBase):
    """Tries members in order; moves on only for transient failures.

    A message deferred by one member (or caught in a transient whole-call
    error: refused connection, time-out, 421, or refused credentials: a broken
    member, not a bad message) goes to the next member; a rejected message
    stays rejected. Another non-transient whole-call error (STARTTLS missing)
    stops the journey: it propagates when no member has answered anything yet,
    otherwise the affected messages keep their earlier result (or are reported
    rejected with the error).
    """

    name: ClassVar[str] = "failover"

    def __init__(self, members: Sequence[Transport]) -> None:
        super().__init__(members)
        self.max_batch = min(int(getattr(m, "max_batch", 1)) for m in self.members)

    def send(self, batch: Sequence[Envelope]) -> list[SendResult]:
        """Send *batch*, failing over message by message."""
        envs = list(batch)
        results: list[SendResult | None] = [None] * len(envs)
        pending = list(range(len(envs)))
        last_error: TransportError | None = None
        answered = False
        for index in range(len(self.members)):
            if not pending:
                break
            sub = [_results.trim(envs[i], results[i]) for i in pending]
            out, error = self._call(index, sub)
            if error is not None:
                last_error = error
                moves_on = _results.member_fault(error)
                if not moves_on and not answered:
                    raise error
                _results.fill_from_error(results, pending, sub, error, self._labels[index])
                if moves_on:
                    continue
                break
            assert out is not None
            answered = True
            still = _results.merge_into(results, pending, out)
            # A message that may have been delivered is not sent to another member.
            pending = [i for i in still if not _results.unsure(results[i])]
        if not answered and last_error is not None:
            raise last_error
        return [r for r in results if r is not None]


class RoundRobinTransport(_CompositeBase):
    """Spreads messages over members in turn; benches a failing member for a cool-down.

    A member that raises a transient whole-call error, or defers every message
    of a call, is benched for ``cooldown`` seconds; its messages go on to the
    next healthy member (failover within the round); so do the messages of a
    member whose credentials were refused. Another non-transient whole-call
    error benches the member too, but its messages are reported rejected with
    the error, not re-sent. When every
    member is benched, the one whose bench ends first is tried.

    Args:
        members: the transports to spread load over.
        cooldown: seconds a failing member sits out.
        clock: monotonic clock in seconds (injectable for tests).
    """

    name: ClassVar[str] = "roundrobin"

    def __init__(
        self,
        members: Sequence[Transport],
        *,
        cooldown: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__(members)
        if not cooldown >= 0:
            raise ConfigurationError(f"roundrobin: cooldown must be >= 0, got {cooldown!r}")
        self.cooldown = float(cooldown)
        self._clock = clock
        self._benched_until = [float("-inf")] * len(self.members)
        self._cursor = 0
        self._lock = threading.Lock()
        self.max_batch = min(int(getattr(m, "max_batch", 1)) for m in self.members)

    def benched(self) -> list[str]:
        """Labels of the members sitting out a cool-down now."""
        now = self._clock()
        return [lbl for lbl, t in zip(self._labels, self._benched_until, strict=True) if t > now]

    def _order(self) -> list[int]:
        """Members from the cursor on: healthy ones first, then benched by bench end."""
        n = len(self.members)
        with self._lock:
            cursor = self._cursor
            self._cursor = (cursor + 1) % n
        rotated = [(cursor + k) % n for k in range(n)]
        now = self._clock()
        healthy = [i for i in rotated if self._benched_until[i] <= now]
        benched = sorted(
            (i for i in rotated if self._benched_until[i] > now),
            key=lambda i: self._benched_until[i],
        )
        return healthy + benched

    def _bench(self, index: int) -> None:
        with self._lock:
            self._benched_until[index] = self._clock() + self.cooldown
        _log.warning(
            "transport.member_benched",
            composite=self.name,
            member=self._labels[index],
            cooldown=self.cooldown,
        )

    def send(self, batch: Sequence[Envelope]) -> list[SendResult]:
        """Send *batch*, each message through the next member in turn."""
        envs = list(batch)
        results: list[SendResult | None] = [None] * len(envs)
        orders = [self._order() for _ in envs]
        tried: list[set[int]] = [set() for _ in envs]
        pending = list(range(len(envs)))
        answered = False
        last_error: TransportError | None = None
        for _step in range(len(self.members)):
            if not pending:
                break
            # Each pending message goes to its next untried member, preferring ones
            # not benched now (a member benched earlier in this call is skipped).
            now = self._clock()
            groups: dict[int, list[int]] = {}
            for i in pending:
                remaining = [m for m in orders[i] if m not in tried[i]]
                healthy = [m for m in remaining if self._benched_until[m] <= now]
                choice = (healthy or remaining)[0]
                tried[i].add(choice)
                groups.setdefault(choice, []).append(i)
            still: list[int] = []
            for index, idxs in groups.items():
                sub = [_results.trim(envs[i], results[i]) for i in idxs]
                out, error = self._call(index, sub)
                if error is not None:
                    last_error = error
                    self._bench(index)
                    _results.fill_from_error(results, idxs, sub, error, self._labels[index])
                    if _results.member_fault(error):
                        still.extend(idxs)
                    continue
                assert out is not None
                answered = True
                if all(r.deferred for r in out):
                    self._bench(index)
                still.extend(
                    i
                    for i in _results.merge_into(results, idxs, out)
                    if not _results.unsure(results[i])
                )
            pending = sorted(still)
        if not answered and last_error is not None:
            raise last_error
        return [r for r in results if r is not None]
