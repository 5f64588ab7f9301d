"""The sending pipeline: an outbox that keeps submitted messages until every recipient
is settled, and (built on it) the Sender that leases, shapes, signs and sends them.

``Outbox`` is the storage contract (see :mod:`mailscale.pipeline.outbox` for its
guarantees); ``MemoryOutbox`` keeps it in process memory.
"""

from __future__ import annotations

from mailscale.pipeline.memory import MemoryOutbox
from mailscale.pipeline.outbox import (
    DeadLetter,
    Lease,
    MessageId,
    MessageState,
    NewMessage,
    Outbox,
    OutboxStats,
    Priority,
    RecipientOutcome,
    Settle,
    Settlement,
    outbox_from_url,
)

__all__ = [
    "DeadLetter",
    "Lease",
    "MemoryOutbox",
    "MessageId",
    "MessageState",
    "NewMessage",
    "Outbox",
    "OutboxStats",
    "Priority",
    "RecipientOutcome",
    "Settle",
    "Settlement",
    "outbox_from_url",
]
