"""The sending pipeline: a Sender that takes messages into an outbox and delivers them
through shaping, DKIM signing and transports, with retries over hours, per-recipient
outcomes, events and live KPIs.

``Outbox`` is the storage contract (its guarantees: :mod:`mailscale.pipeline.outbox`);
``MemoryOutbox`` keeps it in process memory. ``Sender`` (:mod:`mailscale.pipeline.sender`)
composes the stages; ``DeliverySchedule`` says when a deferred message is tried again.
"""

from __future__ import annotations

from mailscale.pipeline.events import Event, EventKind, EventStream
from mailscale.pipeline.memory import MemoryOutbox
from mailscale.pipeline.metrics import Metrics, MetricsSnapshot, RouteMetrics
from mailscale.pipeline.outbox import (
    DeadLetter,
    Lease,
    MessageId,
    MessageState,
    NewMessage,
    Outbox,
    OutboxStats,
    OutcomeStatus,
    Priority,
    RecipientOutcome,
    Settle,
    Settlement,
    outbox_from_url,
)
from mailscale.pipeline.routing import DEFAULT_ROUTE, Route, RouteRule
from mailscale.pipeline.schedule import DeliverySchedule
from mailscale.pipeline.sender import DeliveryTimeout, Sender
from mailscale.pipeline.sqlite import SQLiteOutbox

__all__ = [
    "DEFAULT_ROUTE",
    "DeadLetter",
    "DeliverySchedule",
    "DeliveryTimeout",
    "Event",
    "EventKind",
    "EventStream",
    "Lease",
    "MemoryOutbox",
    "MessageId",
    "MessageState",
    "Metrics",
    "MetricsSnapshot",
    "NewMessage",
    "Outbox",
    "OutboxStats",
    "OutcomeStatus",
    "Priority",
    "RecipientOutcome",
    "Route",
    "RouteMetrics",
    "RouteRule",
    "Sender",
    "Settle",
    "SQLiteOutbox",
    "Settlement",
    "outbox_from_url",
]
