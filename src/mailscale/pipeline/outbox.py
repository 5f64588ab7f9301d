"""The Outbox contract: where submitted messages wait until every recipient is settled.

Guarantees every implementation gives (the contract tests in
``tests/pipeline/test_outbox_contract.py`` check them on each store):

- ``add`` is one transaction: when it returns, every message of the batch is
  stored (durably, for a durable store) or none is. A message whose
  idempotency key is already stored is not stored again: its earlier id is
  returned.
- ``lease`` hands a ready message (queued, ``not_before`` reached) to one
  caller at a time for a visibility timeout. A lease that is not settled in
  time expires and the message becomes ready again: delivery is
  at-least-once, and a duplicate is the same message (same id, same body, same
  Message-ID), never a lost one.
- ``settle`` applies per-message outcomes of a batch in one transaction. A
  settlement whose lease token is no longer current (the lease expired and the
  message was leased again) is ignored and reported as not applied.
- The body is stored once and never rewritten by a state change; only the set
  of recipients still pending shrinks.
- Time comes from the store's injectable clock (epoch seconds).

A new store implements :class:`Outbox` in one module and registers its URL
scheme in ``_STORES`` below.
"""

from __future__ import annotations

import enum
import importlib
from collections.abc import Iterable, Mapping, Sequence
from types import MappingProxyType
from typing import Any, Protocol, runtime_checkable
from urllib.parse import urlsplit

import attrs

from mailscale.errors import ConfigurationError
from mailscale.message import Envelope, ValueEnum

__all__ = [
    "DeadLetter",
    "Lease",
    "MessageId",
    "MessageState",
    "NewMessage",
    "Outbox",
    "OutboxStats",
    "OutcomeStatus",
    "Priority",
    "RecipientOutcome",
    "Settle",
    "Settlement",
    "outbox_from_url",
]

#: An outbox's id for a stored message: opaque, unique within the outbox.
MessageId = str


class Priority(enum.IntEnum):
    """A message's priority class; a lower value is served first."""

    TRANSACTIONAL = 0
    """Password resets, receipts: never waits behind bulk mail."""
    NORMAL = 1
    BULK = 2
    """Campaigns and newsletters."""

    @classmethod
    def parse(cls, value: Priority | str | int) -> Priority:
        """The priority named by *value* (``"bulk"``, ``2`` or ``Priority.BULK``)."""
        if isinstance(value, Priority):
            return value
        try:
            if isinstance(value, str):
                return cls[value.upper()]
            return cls(value)
        except (KeyError, ValueError):
            names = ", ".join(p.name.lower() for p in cls)
            raise ConfigurationError(f"priority {value!r} is not one of {names}") from None


class MessageState(ValueEnum):
    """Where a stored message is in its life."""

    QUEUED = "queued"
    """Waiting for its ``not_before`` or for a worker."""
    LEASED = "leased"
    """Held by a worker until its lease is settled or expires."""
    DONE = "done"
    """Every recipient settled: accepted or rejected."""
    DEAD = "dead"
    """Given up (expired, or failed for good): kept with its last outcome."""


_EMPTY: Mapping[str, str] = MappingProxyType({})


def _frozen(value: Mapping[str, str] | None) -> Mapping[str, str]:
    if not value:
        return _EMPTY
    if isinstance(value, MappingProxyType):
        return value  # already read-only (passed along from record to record)
    return MappingProxyType(dict(value))


def _strings(value: Iterable[str]) -> tuple[str, ...]:
    return tuple(value)


def _outcome_tuple(value: Iterable[RecipientOutcome]) -> tuple[RecipientOutcome, ...]:
    return tuple(value)


def _frozen_counts(value: Mapping[str, int]) -> Mapping[str, int]:
    return MappingProxyType(dict(value))


@attrs.frozen(kw_only=True)
class NewMessage:
    """A message as handed to :meth:`Outbox.add`.

    Attributes:
        sender: envelope sender.
        recipients: envelope recipients (all pending at first).
        body: the message in wire form, with its Message-ID; stored once.
        message_id: the Message-ID header's value (the same on every retry and duplicate).
        priority: its priority class.
        route: the route chosen for it, or None for the sender's default.
        tags: provider tags.
        metadata: provider metadata.
        idempotency_key: a key that makes a second ``add`` of the same message a no-op.
        not_before: earliest time (epoch seconds) to send it; None for now.
    """

    sender: str
    recipients: tuple[str, ...] = attrs.field(converter=_strings)
    body: bytes = attrs.field(repr=False)
    message_id: str
    priority: Priority = Priority.NORMAL
    route: str | None = None
    tags: tuple[str, ...] = attrs.field(default=(), converter=_strings)
    metadata: Mapping[str, str] = attrs.field(factory=dict, converter=_frozen)
    idempotency_key: str | None = None
    not_before: float | None = None


class OutcomeStatus(ValueEnum):
    """The last word about one recipient (a member equals its string value)."""

    ACCEPTED = "accepted"
    """The receiving server or API accepted it."""
    DEFERRED = "deferred"
    """A transient answer: tried again later."""
    REJECTED = "rejected"
    """A permanent answer: done, with its reason."""
    FAILED = "failed"
    """The whole call failed: no answer about this recipient."""


def _outcome_status(value: OutcomeStatus | str) -> OutcomeStatus:
    try:
        return OutcomeStatus(value)
    except ValueError:
        known = ", ".join(s.value for s in OutcomeStatus)
        raise ConfigurationError(
            f"recipient outcome status must be one of {known}, got {value!r}"
        ) from None


@attrs.frozen(kw_only=True)
class RecipientOutcome:
    """The last word about one recipient (kept with dead letters and in events).

    Attributes:
        recipient: the address.
        status: an :class:`OutcomeStatus` (a string given is converted): accepted,
            deferred, rejected, or failed (the whole call failed; no answer about
            this recipient).
        code: the provider's status (SMTP reply code, HTTP status), when known.
        text: the provider's words (never a secret, never message content).
        enhanced: RFC 3463 enhanced status code, when known.
    """

    recipient: str
    status: OutcomeStatus = attrs.field(converter=_outcome_status)
    code: int | str | None = None
    text: str = ""
    enhanced: str | None = None


@attrs.frozen(kw_only=True)
class Lease:
    """A message handed to one worker until ``leased_until``.

    ``sender``, ``body``, ``message_id``, ``priority``, ``route``, ``tags``,
    ``metadata`` and ``idempotency_key`` are as added.

    Attributes:
        id: the outbox's id of the message.
        token: proves the lease is current when settling it.
        recipients: the recipients still pending (fewer than added after a
            partial delivery).
        attempts: delivery attempts made so far (shaper refusals do not count).
        created_at: when the message was added (epoch seconds).
        leased_until: when the lease expires.
        last_reason: why the previous attempt did not finish, or "".
    """

    id: MessageId
    token: str
    sender: str
    recipients: tuple[str, ...]
    body: bytes = attrs.field(repr=False)
    message_id: str
    priority: Priority
    route: str | None
    tags: tuple[str, ...] = ()
    metadata: Mapping[str, str] = attrs.field(factory=dict, converter=_frozen)
    idempotency_key: str | None = None
    attempts: int = 0
    created_at: float = 0.0
    leased_until: float = 0.0
    last_reason: str = ""

    def envelope(self) -> Envelope:
        """The envelope to hand to a transport: the stored body to the pending recipients."""
        return Envelope(
            sender=self.sender,
            recipients=self.recipients,
            message=self.body,
            tags=self.tags,
            metadata=self.metadata,
            idempotency_key=self.idempotency_key,
        )


class Settle(ValueEnum):
    """What a :class:`Settlement` does with its leased message."""

    DONE = "done"
    """Every pending recipient is settled (accepted or rejected): the message is done."""
    RETRY = "retry"
    """The ``pending`` recipients are tried again at ``not_before``; counts as an attempt
    when ``attempt`` is true."""
    RELEASE = "release"
    """Back to the queue unchanged (not an attempt), optionally not before ``not_before``:
    a shaper refusal, a graceful stop."""
    DEAD = "dead"
    """Given up: kept as a dead letter with ``reason`` and ``outcomes``."""


@attrs.frozen(kw_only=True)
class Settlement:
    """The outcome of one leased message, for :meth:`Outbox.settle`.

    Attributes:
        id: the message.
        token: the lease's token.
        action: what to do (see :class:`Settle`).
        pending: for ``RETRY``: the recipients still to deliver (a subset of the lease's).
        not_before: for ``RETRY`` / ``RELEASE``: earliest next attempt (epoch seconds).
        reason: why (kept as the message's last reason; for ``DEAD``, the dead letter's).
        outcomes: per-recipient outcomes of this attempt (kept with dead letters).
        attempt: for ``RETRY``: whether this counts as a delivery attempt.
        route: when set, the message moves to this route (failover).
    """

    id: MessageId
    token: str
    action: Settle
    pending: tuple[str, ...] = attrs.field(default=(), converter=_strings)
    not_before: float | None = None
    reason: str = ""
    outcomes: tuple[RecipientOutcome, ...] = attrs.field(default=(), converter=_outcome_tuple)
    attempt: bool = True
    route: str | None = None


@attrs.frozen(kw_only=True)
class DeadLetter:
    """A message given up, with its last outcome.

    Attributes:
        id, sender, message_id, priority, route, attempts, created_at: as stored.
        recipients: the recipients that were never delivered.
        reason: why it was given up.
        outcomes: the last per-recipient outcomes.
        died_at: when it was given up (epoch seconds).
    """

    id: MessageId
    sender: str
    recipients: tuple[str, ...]
    message_id: str
    priority: Priority
    route: str | None
    attempts: int
    created_at: float
    died_at: float
    reason: str
    outcomes: tuple[RecipientOutcome, ...] = ()


@attrs.frozen(kw_only=True)
class OutboxStats:
    """How much is where in an outbox.

    Attributes:
        by_state: message counts per :class:`MessageState` value (``"queued"``,
            ``"leased"``, ``"done"``, ``"dead"``). A store may forget done
            messages; it still counts them.
        by_priority: queued and leased messages per priority name (``"bulk"``).
        by_route: queued and leased messages per route (``""`` for the default route).
        oldest_age: seconds since the oldest queued or leased message was added, or None.
        next_due: the earliest ``not_before`` of a queued message, or None.
        disk_bytes: bytes the store takes on disk (for SQLite: the database, its WAL
            and the body segment files), or None for a store that keeps nothing on disk.
    """

    by_state: Mapping[str, int] = attrs.field(converter=_frozen_counts)
    by_priority: Mapping[str, int] = attrs.field(converter=_frozen_counts)
    by_route: Mapping[str, int] = attrs.field(converter=_frozen_counts)
    oldest_age: float | None = None
    next_due: float | None = None
    disk_bytes: int | None = None

    @property
    def depth(self) -> int:
        """Messages not yet settled: queued plus leased."""
        return self.by_state.get("queued", 0) + self.by_state.get("leased", 0)


@runtime_checkable
class Outbox(Protocol):
    """A store of messages waiting for delivery (see the module docstring for guarantees)."""

    def add(self, messages: Sequence[NewMessage]) -> list[MessageId]:
        """Store *messages* in one transaction; return their ids, in order.

        A message whose idempotency key is already stored (or appears earlier in
        the batch) gets the earlier message's id and is not stored again.
        """
        ...

    def lease(
        self,
        n: int,
        *,
        visibility: float,
        route: str | None = None,
        priority: Priority | None = None,
    ) -> list[Lease]:
        """Lease up to *n* ready messages for *visibility* seconds.

        Ready: queued with ``not_before`` reached, or leased with the lease
        expired. Served by priority (lower value first), then ``not_before``,
        then order of addition. *route* and *priority* restrict the choice.
        """
        ...

    def settle(self, settlements: Sequence[Settlement]) -> list[bool]:
        """Apply *settlements* in one transaction; True for each one applied.

        A settlement is not applied (False) when its token is not the
        message's current lease (expired and leased again, or already settled).
        """
        ...

    def next_due(self) -> float | None:
        """The earliest time a queued or leased message becomes ready, or None when empty."""
        ...

    def stats(self) -> OutboxStats:
        """Counts by state, priority and route; the oldest unsettled message's age."""
        ...

    def dead_letters(self, *, limit: int = 100, offset: int = 0) -> list[DeadLetter]:
        """Dead letters, oldest first."""
        ...

    def retry_dead(self, ids: Sequence[MessageId] | None = None) -> int:
        """Queue dead letters again (all when *ids* is None), ready now; return how many."""
        ...

    def purge_dead(
        self, ids: Sequence[MessageId] | None = None, *, older_than: float | None = None
    ) -> int:
        """Delete dead letters (all, those in *ids*, or those dead for longer than
        *older_than* seconds); return how many."""
        ...

    def close(self) -> None:
        """Release the store's resources."""
        ...


# -- helpers for the stores' dead-letter calls --------------------------------------


def dead_page(limit: int, offset: int) -> tuple[int, int]:
    """``(start, stop)`` of the dead letters ``dead_letters(limit=, offset=)`` returns,
    in oldest-first order (negative values count as 0)."""
    start = max(0, offset)
    return start, start + max(0, limit)


def chosen_dead(
    dead: Mapping[MessageId, float],
    ids: Iterable[MessageId] | None,
    *,
    died_before: float | None = None,
) -> list[MessageId]:
    """The dead letters a ``retry_dead`` or ``purge_dead`` call acts on.

    Args:
        dead: every dead letter's id -> the time it died, oldest first.
        ids: the ids asked for (None: all); ids that are not dead letters are skipped,
            and an id given twice counts once.
        died_before: when given, only those that died before this time.
    """
    chosen = list(dead) if ids is None else list(dict.fromkeys(i for i in ids if i in dead))
    if died_before is not None:
        chosen = [i for i in chosen if dead[i] < died_before]
    return chosen


# scheme -> "module:Class"; the class provides ``from_url(url: str, **options)``.
_STORES: dict[str, str] = {
    "memory": "mailscale.pipeline.memory:MemoryOutbox",
    "sqlite": "mailscale.pipeline.sqlite:SQLiteOutbox",
}


def outbox_from_url(url: str, **options: Any) -> Outbox:
    """Build an outbox from a URL: ``memory://``, ``sqlite:///path/to/outbox.db``.

    Raises:
        ConfigurationError: for an unknown scheme or a store that is not available.
    """
    if not isinstance(url, str) or "://" not in url:
        raise ConfigurationError(f"outbox URL {url!r} is not of the form scheme://...")
    scheme = urlsplit(url).scheme.lower()
    target = _STORES.get(scheme)
    if target is None:
        known = ", ".join(f"{s}://" for s in sorted(_STORES))
        raise ConfigurationError(f"outbox URL scheme {scheme!r} is unknown (known: {known})")
    module_name, _, class_name = target.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigurationError(
            f"outbox store {scheme!r} is not available: {type(exc).__name__}: {exc}"
        ) from None
    cls = getattr(module, class_name)
    store: Outbox = cls.from_url(url, **options)
    return store
