"""Builders shared by the Sender tests."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from mailscale.message import Envelope, RecipientResult, SendResult, SendStatus
from mailscale.pipeline import Event, EventKind


def envelope(
    i: int = 0,
    recipients: Sequence[str] = ("rcpt@example.org",),
    *,
    message_id: bool = False,
    tags: Sequence[str] = (),
    size: int = 0,
) -> Envelope:
    head = f"From: sender@example.com\r\nTo: {recipients[0]}\r\nSubject: message {i}\r\n"
    if message_id:
        head = f"Message-ID: <m{i}@example.com>\r\n" + head
    body = f"body {i}\r\n" + "x" * size + ("\r\n" if size else "")
    return Envelope(
        sender="sender@example.com",
        recipients=tuple(recipients),
        message=(head + "\r\n" + body).encode(),
        tags=tuple(tags),
    )


def by_local_part(
    answers: dict[str, tuple[SendStatus, int, str, str | None]],
    *,
    retry_after: float | None = None,
) -> Callable[[Envelope], SendResult | None]:
    """A MemoryTransport outcome answering each recipient by its local part (default 250)."""

    def outcome(env: Envelope) -> SendResult | None:
        rr = []
        for rcpt in env.recipients:
            status, code, text, enhanced = answers.get(
                rcpt.partition("@")[0], (SendStatus.ACCEPTED, 250, "ok", "2.0.0")
            )
            rr.append(
                RecipientResult(
                    recipient=rcpt,
                    status=status,
                    status_code=code,
                    status_text=text,
                    enhanced_status=enhanced,
                )
            )
        if all(r.status is SendStatus.ACCEPTED for r in rr):
            return None
        statuses = {r.status for r in rr}
        overall = (
            SendStatus.DEFERRED
            if SendStatus.DEFERRED in statuses
            else SendStatus.ACCEPTED
            if SendStatus.ACCEPTED in statuses
            else SendStatus.REJECTED
        )
        return SendResult(
            status=overall,
            recipients=env.recipients,
            transport="memory",
            recipient_results=tuple(rr),
            retry_after=retry_after,
            status_code=rr[0].status_code,
        )

    return outcome


DEFER = (SendStatus.DEFERRED, 451, "4.7.1 greylisted", "4.7.1")
REJECT = (SendStatus.REJECTED, 550, "5.1.1 no such user", "5.1.1")
BUSY = (SendStatus.DEFERRED, 452, "4.2.2 mailbox busy", "4.2.2")


def kinds(events: Sequence[Event]) -> list[str]:
    return [e.kind.value for e in events]


def of_kind(events: Sequence[Event], kind: EventKind) -> list[Event]:
    return [e for e in events if e.kind is kind]
