"""The Sender on an injected clock, against the in-process memory transport."""

from __future__ import annotations

import asyncio
import email.policy
import threading
import time
from collections.abc import Callable
from email.message import EmailMessage
from typing import Any

import pytest
import structlog.testing

from mailscale.errors import (
    ConfigurationError,
    HeaderInjection,
    InvalidMessage,
    MessageTooLarge,
    TransportAuthError,
    TransportConnectionError,
)
from mailscale.message import Envelope, RecipientResult, SendResult, SendStatus
from mailscale.pipeline import (
    DeliverySchedule,
    Event,
    EventKind,
    Lease,
    MemoryOutbox,
    Route,
    RouteRule,
    Sender,
)
from mailscale.planning import HealthReport, evaluate_kpis
from mailscale.shaping import Limit, Shaper
from mailscale.transports import MemoryTransport, TransportBase

from .conftest import Clock
from .helpers import BUSY, DEFER, REJECT, by_local_part, envelope, kinds, of_kind

SCHEDULE = DeliverySchedule(first=60, factor=2, max_interval=3600, max_age=86400)


class Failing(TransportBase):
    """A transport whose whole calls fail with *error* (then succeed once told to)."""

    name = "failing"
    max_batch = 100

    def __init__(self, error: Exception) -> None:
        self.error: Exception | None = error
        self.calls = 0
        self.sent: list[Envelope] = []

    def send(self, batch):  # type: ignore[no-untyped-def]
        self.calls += 1
        if self.error is not None:
            raise self.error
        self.sent.extend(batch)
        return [SendResult(status=SendStatus.ACCEPTED, recipients=e.recipients) for e in batch]


class Answering(TransportBase):
    """A plugin transport answering each envelope of a call with ``answer(envelope)``."""

    name = "answering"
    max_batch = 100

    def __init__(self, answer: Callable[[Envelope], object]) -> None:
        self.answer = answer
        self.calls: list[list[Envelope]] = []

    def send(self, batch):  # type: ignore[no-untyped-def]
        self.calls.append(list(batch))
        return [self.answer(e) for e in batch]


def make(
    clock: Clock, transport: object = None, events: list[Event] | None = None, **kw: object
) -> Sender:
    sink = events if events is not None else []
    kw.setdefault("retry", SCHEDULE)
    return Sender(
        transport if transport is not None else MemoryTransport(),  # type: ignore[arg-type]
        clock=clock,
        on_event=sink.append,
        **kw,  # type: ignore[arg-type]
    )


class TestSubmit:
    def test_returns_ids_and_queues(self, clock: Clock) -> None:
        """submit stores every message and emits queued; nothing is sent before a worker runs."""
        events: list[Event] = []
        transport = MemoryTransport()
        sender = make(clock, transport, events)
        ids = sender.submit([envelope(i) for i in range(3)])
        assert 3 == len(set(ids))
        assert 3 == sender.outbox.stats().depth
        assert ["queued"] * 3 == kinds(events)
        assert [] == transport.outbox

    def test_adds_a_message_id_once(self, clock: Clock) -> None:
        """A message without Message-ID gets one at submit; retries carry the same one."""
        answers = {"n": 0}

        def outcome(env: Envelope) -> SendResult | None:
            answers["n"] += 1
            return by_local_part({"rcpt": BUSY})(env) if answers["n"] == 1 else None

        transport = MemoryTransport(outcome=outcome)
        events: list[Event] = []
        sender = make(clock, transport, events)
        (mid,) = sender.submit(envelope(1))
        sender.drain()
        assert ["queued", "deferred"] == kinds(events)
        clock.advance(60)
        sender.drain()
        (sent,) = transport.outbox
        data = sent.to_bytes()
        assert data.startswith(b"Message-ID: <")
        message_id = data.split(b"\r\n", 1)[0][len(b"Message-ID: ") :].decode()
        assert [message_id] * 3 == [e.message_id for e in events]
        assert [mid] * 3 == [e.id for e in events]

    def test_keeps_an_existing_message_id(self, clock: Clock) -> None:
        transport = MemoryTransport()
        sender = make(clock, transport)
        sender.submit(envelope(5, message_id=True))
        sender.drain()
        assert 1 == transport.outbox[0].to_bytes().count(b"Message-ID:")
        assert transport.outbox[0].to_bytes().startswith(b"Message-ID: <m5@example.com>\r\n")

    def test_bare_lf_becomes_crlf(self, clock: Clock) -> None:
        transport = MemoryTransport()
        sender = make(clock, transport)
        sender.submit(
            Envelope(sender="a@example.com", recipients=["b@example.org"], message=b"S: x\n\nb\n")
        )
        sender.drain()
        assert transport.outbox[0].to_bytes().endswith(b"S: x\r\n\r\nb\r\n")

    def test_too_large_names_the_index_and_stores_nothing(self, clock: Clock) -> None:
        sender = make(clock, max_message_size=2000)
        with pytest.raises(MessageTooLarge, match=r"^message 1: \d+ bytes, more than") as info:
            sender.submit([envelope(0), envelope(1, size=3000), envelope(2)])
        assert 1 == info.value.index  # type: ignore[attr-defined]
        assert 0 == sender.outbox.stats().depth

    def test_header_injection_names_the_index(self, clock: Clock) -> None:
        msg = EmailMessage(policy=email.policy.default)
        msg["From"] = "a@example.com"
        msg["To"] = "b@example.org"
        msg.set_content("hello")
        env = Envelope.from_message(msg)
        msg.set_raw("X-Evil", "a\r\nBcc: victim@example.net")
        sender = make(clock)
        with pytest.raises(HeaderInjection, match=r"^message 2: header 'X-Evil'"):
            sender.submit([envelope(0), envelope(1), env])
        assert 0 == sender.outbox.stats().depth

    def test_missing_from_and_wrong_type(self, clock: Clock) -> None:
        sender = make(clock)
        msg = EmailMessage()
        msg["To"] = "b@example.org"
        with pytest.raises(InvalidMessage, match=r"^message 0: sender: the message has no From"):
            sender.submit([msg])
        with pytest.raises(InvalidMessage, match=r"^message 1: expected an Envelope"):
            sender.submit([envelope(0), b"raw bytes"])  # type: ignore[list-item]

    def test_email_message_is_accepted(self, clock: Clock) -> None:
        msg = EmailMessage()
        msg["From"] = "a@example.com"
        msg["To"] = "b@example.org"
        msg["Bcc"] = "c@example.net"
        msg.set_content("hello")
        transport = MemoryTransport()
        sender = make(clock, transport)
        sender.submit(msg)
        sender.drain()
        (sent,) = transport.outbox
        assert ("b@example.org", "c@example.net") == sent.recipients
        assert b"Bcc" not in sent.to_bytes()

    def test_idempotency_key_makes_a_second_submit_a_no_op(self, clock: Clock) -> None:
        transport = MemoryTransport()
        sender = make(clock, transport)
        first = sender.submit(envelope(1), idempotency_key="reset-42")
        second = sender.submit(envelope(1), idempotency_key="reset-42")
        both = sender.submit([envelope(2), envelope(3)], idempotency_key="batch")
        again = sender.submit([envelope(2), envelope(3)], idempotency_key="batch")
        assert (first, both) == (second, again)
        sender.drain()
        assert 3 == len(transport.outbox)

    def test_unknown_route_and_priority(self, clock: Clock) -> None:
        sender = make(clock)
        with pytest.raises(ConfigurationError, match="unknown route 'nope'"):
            sender.submit(envelope(), route="nope")
        with pytest.raises(ConfigurationError, match="priority 'urgent'"):
            sender.submit(envelope(), priority="urgent")

    def test_not_before(self, clock: Clock) -> None:
        transport = MemoryTransport()
        sender = make(clock, transport)
        sender.submit(envelope(), not_before=clock.now + 30)
        assert sender.drain()
        assert [] == transport.outbox
        clock.advance(30)
        sender.drain()
        assert 1 == len(transport.outbox)


class TestOutcomes:
    def test_per_recipient(self, clock: Clock) -> None:
        """accepted → done, rejected → done with its reason, deferred → retried alone."""
        transport = MemoryTransport(outcome=by_local_part({"later": BUSY, "gone": REJECT}))
        events: list[Event] = []
        sender = make(clock, transport, events)
        (mid,) = sender.submit(envelope(1, ("ok@a.org", "later@b.org", "gone@c.org")))
        sender.drain()
        sent, bounced, deferred = (
            of_kind(events, k) for k in (EventKind.SENT, EventKind.BOUNCED, EventKind.DEFERRED)
        )
        assert [("ok@a.org",)] == [e.recipients for e in sent]
        assert [(("gone@c.org",), 550, "5.1.1")] == [
            (e.recipients, e.code, e.enhanced) for e in bounced
        ]
        assert [(("later@b.org",), 452, clock.now + 60)] == [
            (e.recipients, e.code, e.retry_at) for e in deferred
        ]
        # The retry goes to the deferred recipient only.
        transport._outcome = None  # the mailbox is free again
        clock.advance(59)
        sender.drain()
        assert [] == transport.outbox  # (the memory transport keeps fully accepted ones only)
        assert 1 == sender.outbox.stats().depth
        clock.advance(1)
        sender.drain()
        assert 0 == sender.outbox.stats().depth
        assert [("later@b.org",)] == [e.recipients for e in transport.outbox]
        assert [(mid, ("later@b.org",), 2)] == [
            (e.id, e.recipients, e.attempts) for e in of_kind(events, EventKind.SENT)[1:]
        ]

    def test_retry_after_wins_when_longer(self, clock: Clock) -> None:
        transport = MemoryTransport(outcome=by_local_part({"rcpt": BUSY}, retry_after=900))
        events: list[Event] = []
        sender = make(clock, transport, events)
        sender.submit(envelope())
        sender.drain()
        (deferred,) = of_kind(events, EventKind.DEFERRED)
        assert clock.now + 900 == deferred.retry_at
        assert clock.now + 900 == sender.outbox.next_due()

    def test_schedule_then_expiry(self, clock: Clock) -> None:
        """An always-deferred message is tried at growing intervals, then expires with a reason."""
        transport = MemoryTransport(outcome=by_local_part({"rcpt": BUSY}))
        events: list[Event] = []
        sender = make(clock, transport, events)
        start = clock.now
        sender.submit(envelope())
        tries = []
        while True:
            sender.drain()
            due = sender.outbox.next_due()
            tries.append(clock.now - start)
            if due is None:
                break
            clock.now = due
        assert [0, 60, 180, 420, 900, 1860, 3780, 7380] == tries[:8]
        assert 86400 == tries[-1]
        (expired,) = of_kind(events, EventKind.EXPIRED)
        assert expired.text.startswith(f"expired after {len(tries)} attempts: 452 4.2.2")
        (dead,) = sender.outbox.dead_letters()
        assert (("rcpt@example.org",), 452) == (dead.recipients, dead.outcomes[0].code)

    def test_possibly_delivered_is_retried_once_then_given_up(self, clock: Clock) -> None:
        """A lost answer after the final dot: one retry, later, same Message-ID; a second
        unknown outcome makes a dead letter rather than a third copy."""

        def outcome(env: Envelope) -> SendResult:
            return SendResult(
                status=SendStatus.DEFERRED,
                recipients=env.recipients,
                status_text="connection lost after the final dot",
                possibly_delivered=True,
            )

        transport = MemoryTransport(outcome=outcome)
        events: list[Event] = []
        sender = make(clock, transport, events)
        sender.submit(envelope())
        sender.drain()
        (deferred,) = of_kind(events, EventKind.DEFERRED)
        assert clock.now + 60 == deferred.retry_at
        clock.advance(60)
        sender.drain()
        (dead,) = sender.outbox.dead_letters()
        assert dead.reason.startswith("not retried: the outcome was unknown twice")
        assert 1 == dead.attempts  # (the attempt that gives up is not counted again)
        (expired,) = of_kind(events, EventKind.EXPIRED)
        assert deferred.message_id == expired.message_id
        assert None is sender.outbox.next_due()

    def test_whole_call_failure_is_retried_never_lost(self, clock: Clock) -> None:
        transport = Failing(TransportConnectionError("connection refused", provider="failing"))
        events: list[Event] = []
        sender = make(clock, transport, events)
        ids = sender.submit([envelope(i) for i in range(3)])
        with structlog.testing.capture_logs() as logs:
            sender.drain()
        failed = of_kind(events, EventKind.FAILED)
        assert ids == [e.id for e in failed]
        assert {clock.now + 60} == {e.retry_at for e in failed}
        assert ["pipeline.send_failed"] == [x["event"] for x in logs]
        assert 3 == sender.outbox.stats().depth
        transport.error = None
        clock.advance(60)
        sender.drain()
        assert 3 == len(transport.sent)
        assert 0 == sender.outbox.stats().depth

    def test_permanent_call_failure_is_retried_too(self, clock: Clock) -> None:
        """A refused credential is not the message's fault: retried on the schedule."""
        transport = Failing(TransportAuthError("535 authentication failed", provider="failing"))
        events: list[Event] = []
        sender = make(clock, transport, events)
        sender.submit(envelope())
        sender.drain()
        (failed,) = of_kind(events, EventKind.FAILED)
        assert "535 authentication failed" in failed.text
        assert 1 == sender.outbox.stats().depth

    def test_a_plugin_bug_is_a_failed_call(self, clock: Clock) -> None:
        transport = Failing(KeyError("secret-looking detail"))
        events: list[Event] = []
        sender = make(clock, transport, events)
        sender.submit(envelope())
        sender.drain()
        (failed,) = of_kind(events, EventKind.FAILED)
        assert "default: KeyError" == failed.text
        assert 1 == sender.outbox.stats().depth

    def test_a_status_it_does_not_know_stays_pending_with_a_reason(self, clock: Clock) -> None:
        """A status that is none of accepted, deferred and rejected (the message's or a
        recipient's) is never taken for accepted and does not stop the call's other
        messages settling: that recipient is retried, the status named as the reason."""

        def answer(env: Envelope) -> SendResult:
            first = env.recipients[0]
            if first.startswith("odd"):
                return SendResult(status="queued", recipients=env.recipients)  # type: ignore[arg-type]
            if first.startswith("mixed"):
                return SendResult(
                    status=SendStatus.DEFERRED,
                    recipients=env.recipients,
                    recipient_results=(
                        RecipientResult(recipient=first, status=SendStatus.ACCEPTED),
                        RecipientResult(recipient=env.recipients[1], status=None),  # type: ignore[arg-type]
                    ),
                )
            return SendResult(status=SendStatus.ACCEPTED, recipients=env.recipients)

        transport = Answering(answer)
        events: list[Event] = []
        sender = make(clock, transport, events)
        sender.submit(
            [
                envelope(0),
                envelope(1, ("odd@example.org",)),
                envelope(2, ("mixed@example.org", "other@example.net")),
            ]
        )
        assert sender.drain()
        assert [("rcpt@example.org",), ("mixed@example.org",)] == [
            e.recipients for e in of_kind(events, EventKind.SENT)
        ]
        assert [
            (("odd@example.org",), "unrecognised status 'queued'", clock.now + 60),
            (("other@example.net",), "unrecognised status None", clock.now + 60),
        ] == [(e.recipients, e.text, e.retry_at) for e in of_kind(events, EventKind.DEFERRED)]
        assert {"queued": 2, "leased": 0, "done": 1, "dead": 0} == dict(
            sender.outbox.stats().by_state
        )

    def test_a_result_naming_fewer_recipients_covers_only_those(self, clock: Clock) -> None:
        """An accepted result whose recipients leave one of the message's out: that one
        is not reported accepted but retried (a result naming no recipients covers all)."""

        def answer(env: Envelope) -> SendResult:
            if env.recipients[0].startswith("all"):
                return SendResult(status=SendStatus.ACCEPTED)
            return SendResult(status=SendStatus.ACCEPTED, recipients=env.recipients[:1])

        transport = Answering(answer)
        events: list[Event] = []
        sender = make(clock, transport, events)
        sender.submit(
            [
                envelope(1, ("one@a.example", "two@b.example")),
                envelope(2, ("all@a.example", "also@b.example")),
            ]
        )
        assert sender.drain()
        assert [("one@a.example",), ("all@a.example", "also@b.example")] == [
            e.recipients for e in of_kind(events, EventKind.SENT)
        ]
        (deferred,) = of_kind(events, EventKind.DEFERRED)
        assert (("two@b.example",), "no result for this recipient") == (
            deferred.recipients,
            deferred.text,
        )
        assert (3, 1) == (sender.metrics().total.accepted, sender.outbox.stats().depth)

    def test_a_result_that_is_not_a_send_result_is_a_failed_call(self, clock: Clock) -> None:
        transport = Answering(lambda env: None)
        events: list[Event] = []
        sender = make(clock, transport, events)
        ids = sender.submit([envelope(0), envelope(1)])
        assert sender.drain()
        assert ids == [e.id for e in of_kind(events, EventKind.FAILED)]
        assert [] == of_kind(events, EventKind.SENT)
        assert 2 == sender.outbox.stats().by_state["queued"]

    def test_unsignable_message_is_dead_with_reason(self, clock: Clock) -> None:
        class Signer:
            def sign(self, data: bytes) -> bytes:
                if b"message 1" in data:
                    raise InvalidMessage("no From header")
                return b"DKIM-Signature: x\r\n" + data

            def sign_batch(self, items: list[bytes]) -> list[bytes]:
                return [self.sign(x) for x in items]

        transport = MemoryTransport()
        events: list[Event] = []
        sender = make(clock, transport, events, signer=Signer())
        sender.submit([envelope(0), envelope(1), envelope(2)])
        sender.drain()
        assert 2 == len(transport.outbox)
        assert all(e.to_bytes().startswith(b"DKIM-Signature: x\r\n") for e in transport.outbox)
        (dead,) = sender.outbox.dead_letters()
        assert "signing failed: no From header" == dead.reason


class TestShaping:
    def test_refused_messages_wait_for_the_decision(self, clock: Clock) -> None:
        """Only what the shaper admits is sent; the rest waits its not-before (no attempt),
        spread one emission interval apart, and drain waits the shaper out: six messages
        at 2 per second go at 0, 0.5, 1, 1.5, 2 and 2.5 s (a few ms late)."""
        shaper = Shaper({"domain:example.org": Limit(2, 1.0)}, clock=clock)
        sent_at: list[float] = []
        transport = MemoryTransport(outcome=lambda env: sent_at.append(clock.now))
        events: list[Event] = []
        sender = make(clock, transport, events, shaper=shaper, sleep=clock.advance)
        start = clock.now
        sender.submit([envelope(i) for i in range(6)])
        assert 6 == sender.step()
        assert 1 == len(transport.outbox)
        assert start + 0.501 == pytest.approx(sender.outbox.next_due(), abs=1e-6)
        assert 0 == sender.step()  # nothing ready before the decision's time: no busy loop
        sender.drain()
        assert 6 == len(transport.outbox)
        assert [0.0, 0.5, 1.0, 1.5, 2.0, 2.5] == pytest.approx(
            [t - start for t in sent_at], abs=0.01
        )
        metrics = sender.metrics()
        assert (6, 6) == (metrics.total.sent, metrics.total.calls)
        assert metrics.total.refused >= 5  # (one on a boundary may be refused twice)
        assert {1} == {e.attempts for e in of_kind(events, EventKind.SENT)}

    def test_transient_throttles_and_rate_headers(self, clock: Clock) -> None:
        """429 throttles the route key; 4.7.x the domain; Retry-After headers block the key."""
        calls: list[tuple[str, float, float]] = []

        class Spy(Shaper):
            def throttle(self, key: str, factor: float, duration: float) -> None:
                calls.append((key, factor, duration))
                super().throttle(key, factor, duration)

        shaper = Spy(
            {"route:default": Limit(1000, 1.0), "domain:*": Limit(1000, 1.0)},
            clock=clock,
        )

        def outcome(env: Envelope) -> SendResult | None:
            if env.recipients[0].startswith("api"):
                return SendResult(
                    status=SendStatus.DEFERRED,
                    recipients=env.recipients,
                    status_code=429,
                    rate_limit={"Retry-After": "30"},
                )
            return by_local_part({"grey": DEFER})(env)

        sender = make(clock, MemoryTransport(outcome=outcome), shaper=shaper)
        sender.submit([envelope(1, ("grey@slow.example",)), envelope(2, ("api@x.example",))])
        sender.drain()
        assert sorted(calls) == [
            ("domain:slow.example", 0.5, 60.0),
            ("route:default", 0.5, 60.0),
        ]
        decision = shaper.acquire("route:default")
        assert (False, 30.0) == (decision.allowed, decision.retry_after)

    def test_a_421_refusing_the_session_throttles_the_route(self, clock: Clock) -> None:
        calls: list[str] = []

        class Spy(Shaper):
            def throttle(self, key: str, factor: float, duration: float) -> None:
                calls.append(key)
                super().throttle(key, factor, duration)

        shaper = Spy({"route:default": Limit(100, 1.0)}, clock=clock)
        error = TransportConnectionError("421 too busy", provider="failing", status=421)
        sender = make(clock, Failing(error), shaper=shaper)
        sender.submit(envelope())
        sender.drain()
        assert ["route:default"] == calls

    def test_default_shaper_from_the_rate_preset(self, clock: Clock) -> None:
        class Preset(MemoryTransport):
            rate_preset = "postmark"

        sender = make(clock, Preset())
        assert Limit(500, 60.0, unit="request") == sender.shaper.limit_for("route:default")
        assert None is make(clock).shaper


class TestDestinationBackoff:
    def test_an_unreachable_domain_is_left_alone_for_a_while(self, clock: Clock) -> None:
        """After every recipient at a domain was deferred with no answer, the next messages
        to it wait (no attempt, no call) while other domains go on; an answer clears it."""
        tried: list[str] = []
        down = {"down.example"}

        def outcome(env: Envelope) -> SendResult | None:
            domain = env.recipients[0].rpartition("@")[2]
            tried.append(domain)
            if domain in down:
                return SendResult(
                    status=SendStatus.DEFERRED,
                    recipients=env.recipients,
                    status_text="cannot connect to the MX",
                    enhanced_status="4.4.1",
                )
            return None

        events: list[Event] = []
        sender = make(clock, MemoryTransport(outcome=outcome), events, destination_backoff=120)
        sender.submit([envelope(1, ("a@down.example",)), envelope(2, ("b@up.example",))])
        sender.drain()
        assert ["down.example", "up.example"] == tried
        sender.submit([envelope(3, ("c@down.example",)), envelope(4, ("d@up.example",))])
        sender.drain()
        assert ["down.example", "up.example", "up.example"] == tried
        # The first message's retry (60 s) also waits for the hold (120 s); then all go.
        down.clear()
        clock.advance(120)
        sender.drain()
        assert ["down.example"] * 2 == tried[3:]
        assert 0 == sender.outbox.stats().depth
        assert 1 == len(of_kind(events, EventKind.DEFERRED))

    def test_off_and_not_for_an_answering_server(self, clock: Clock) -> None:
        """With 0, or after a deferral the server answered (452), the domain is tried."""
        for backoff, code in ((0.0, None), (60.0, 452)):
            tried: list[str] = []

            def outcome(
                env: Envelope, code: int | None = code, tried: list[str] = tried
            ) -> SendResult:
                tried.append(env.recipients[0])
                return SendResult(
                    status=SendStatus.DEFERRED, recipients=env.recipients, status_code=code
                )

            sender = make(clock, MemoryTransport(outcome=outcome), destination_backoff=backoff)
            sender.submit(envelope(1, ("a@x.example",)))
            sender.drain()
            sender.submit(envelope(2, ("b@x.example",)))
            sender.drain()
            assert ["a@x.example", "b@x.example"] == tried


class TestPriorities:
    def test_transactional_goes_in_the_next_batch(self, clock: Clock) -> None:
        """A transactional message submitted behind 2,000 bulk messages is sent by the
        next batch, whichever class that batch was leading with."""
        transport = MemoryTransport()
        sender = make(clock, transport, batch_size=100)
        sender.submit([envelope(i) for i in range(2000)], priority="bulk")
        for _ in range(5):  # the rotation reaches a bulk-led batch
            sender.step()
        sender.submit(envelope(99999, ("reset@example.org",)), priority="transactional")
        sender.step()
        assert "reset@example.org" in [e.recipients[0] for e in transport.outbox[-100:]]
        assert 600 == len(transport.outbox)

    def test_bulk_is_not_starved(self, clock: Clock) -> None:
        """Under a constant transactional flood, bulk still gets batches."""
        transport = MemoryTransport()
        sender = make(clock, transport, batch_size=10)
        sender.submit([envelope(i, ("bulk@example.org",)) for i in range(100)], priority="bulk")
        for i in range(8):
            sender.submit(
                [envelope(i, ("tx@example.org",)) for _ in range(20)], priority="transactional"
            )
            sender.step()
        bulk = sum(1 for e in transport.outbox if e.recipients[0].startswith("bulk"))
        assert 20 == bulk  # two bulk-led batches out of eight


class TestRoutes:
    def test_rule_by_stream_domain_and_default(self, clock: Clock) -> None:
        esp, mx, other = MemoryTransport(), MemoryTransport(), MemoryTransport()
        sender = Sender(
            routes={"esp": esp, "mx": mx, "other": other},
            rule=RouteRule(
                default="mx",
                streams={"transactional": "esp", "receipt": "esp"},
                domains={"example.net": "other"},
            ),
            clock=clock,
        )
        sender.submit(envelope(1, ("a@example.org",)), priority="transactional")
        sender.submit(envelope(2, ("b@example.org",), tags=("receipt",)), priority="bulk")
        sender.submit(envelope(3, ("c@mail.example.net",)), priority="bulk")
        sender.submit(envelope(4, ("d@example.org",)), priority="bulk")
        sender.drain()
        assert (["a@example.org", "b@example.org"], ["d@example.org"], ["c@mail.example.net"]) == (
            [e.recipients[0] for e in esp.outbox],
            [e.recipients[0] for e in mx.outbox],
            [e.recipients[0] for e in other.outbox],
        )
        assert {"esp", "mx", "other"} == set(sender.metrics().routes)

    def test_callable_rule_and_bad_rules(self, clock: Clock) -> None:
        a, b = MemoryTransport(), MemoryTransport()
        sender = Sender(
            routes={"a": a, "b": b},
            rule=lambda env, prio: "b" if env.recipients[0].startswith("vip") else "a",
            clock=clock,
        )
        sender.submit([envelope(1, ("vip@x.org",)), envelope(2, ("y@x.org",))])
        sender.drain()
        assert (1, 1) == (len(a.outbox), len(b.outbox))
        with pytest.raises(ConfigurationError, match="unknown route"):
            Sender(routes={"a": a}, rule=RouteRule(default="zz"))
        with pytest.raises(ConfigurationError, match="unknown route 'zz'"):
            Sender(routes={"a": Route(transport=a, failover="zz")})
        odd = Sender(routes={"a": a}, rule=lambda env, prio: "nowhere")
        with pytest.raises(ConfigurationError, match="message 0: the route rule chose unknown"):
            odd.submit(envelope())

    def test_failover_on_transient_failure_only(self, clock: Clock) -> None:
        primary = Failing(TransportConnectionError("connection refused", provider="failing"))
        backup = MemoryTransport(outcome=by_local_part({"later": BUSY}))
        events: list[Event] = []
        sender = Sender(
            routes={"primary": Route(transport=primary, failover="backup"), "backup": backup},
            rule=RouteRule(default="primary"),
            clock=clock,
            retry=SCHEDULE,
            on_event=events.append,
        )
        sender.submit([envelope(1), envelope(2, ("later@example.org",))])
        sender.drain()
        assert 1 == primary.calls
        assert ["rcpt@example.org"] == [e.recipients[0] for e in backup.outbox]
        failed = of_kind(events, EventKind.FAILED)
        assert all("moved to route backup" in e.text for e in failed)
        (deferred,) = of_kind(events, EventKind.DEFERRED)
        assert "backup" == deferred.route  # a deferral stays on its route
        # While the primary cools down, new mail goes straight to the backup.
        sender.submit(envelope(3, ("new@example.org",)))
        sender.drain()
        assert 1 == primary.calls
        assert "new@example.org" == backup.outbox[-1].recipients[0]

    def test_routes_failing_over_to_each_other_both_down(self, clock: Clock) -> None:
        """Two routes failing over to each other, both unreachable: the message moves once,
        then waits on the schedule (an attempt), never passed back and forth at once."""
        a = Failing(TransportConnectionError("connection refused", provider="failing"))
        b = Failing(TransportConnectionError("connection refused", provider="failing"))
        events: list[Event] = []
        sender = Sender(
            routes={"a": Route(transport=a, failover="b"), "b": Route(transport=b, failover="a")},
            clock=clock,
            retry=SCHEDULE,
            on_event=events.append,
        )
        sender.submit(envelope())
        for _ in range(10):
            if not sender.step():
                break
        else:
            pytest.fail("the message is still passed between the routes")
        assert (1, 1) == (a.calls, b.calls)
        moved, failed = of_kind(events, EventKind.FAILED)
        assert "moved to route b" in moved.text
        assert ("b", 1, clock.now + 60) == (failed.route, failed.attempts, failed.retry_at)
        assert clock.now + 60 == sender.outbox.next_due()

    def test_an_unknown_outcome_is_never_retried_on_the_failover_route(self, clock: Clock) -> None:
        """A message possibly delivered by its route is retried there only: a transient
        failure of that retry does not move it to the failover route (a copy may exist),
        and a second unknown outcome after it still gives it up."""
        answers: list[object] = [
            SendResult(
                status=SendStatus.DEFERRED,
                recipients=("rcpt@example.org",),
                status_text="connection lost after the final dot",
                possibly_delivered=True,
            ),
            TransportConnectionError("connection refused", provider="answering"),
            SendResult(
                status=SendStatus.DEFERRED,
                recipients=("rcpt@example.org",),
                status_text="connection lost after the final dot",
                possibly_delivered=True,
            ),
        ]

        def answer(env: Envelope) -> object:
            given = answers.pop(0)
            if isinstance(given, Exception):
                raise given
            return given

        primary, backup = Answering(answer), MemoryTransport()
        events: list[Event] = []
        sender = Sender(
            routes={"primary": Route(transport=primary, failover="backup"), "backup": backup},
            rule=RouteRule(default="primary"),
            clock=clock,
            retry=SCHEDULE,
            on_event=events.append,
        )
        sender.submit(envelope())
        for _ in range(3):
            sender.drain()
            clock.advance(3600)
        assert ([], []) == (answers, backup.outbox)
        assert ["deferred", "failed", "expired"] == kinds(events)[1:]
        assert {"primary"} == {e.route for e in events}
        (dead,) = sender.outbox.dead_letters()
        assert dead.reason.startswith("not retried: the outcome was unknown twice")


class TestKPIs:
    def test_kpis_speak_the_planning_keys(self, clock: Clock) -> None:
        transport = MemoryTransport(outcome=by_local_part({"gone": REJECT}))
        sender = make(clock, transport)
        sender.submit([envelope(i) for i in range(9)] + [envelope(9, ("gone@example.org",))])
        clock.advance(2)
        sender.drain()
        sender.submit(envelope(10))
        kpis = sender.kpis()
        assert {
            "queue_depth",
            "processing_rate_per_minute",
            "delivery_p95_seconds",
            "bounce_rate",
            "api_response_seconds",
        } == set(kpis)
        assert (1.0, 0.1, 2.0, 600.0) == (
            kpis["queue_depth"],
            kpis["bounce_rate"],
            kpis["delivery_p95_seconds"],
            kpis["processing_rate_per_minute"],
        )
        report = sender.health()
        assert isinstance(report, HealthReport)
        assert evaluate_kpis(kpis) == report
        assert ["bounce_rate"] == [r.key for r in report.failed]

    def test_per_route(self, clock: Clock) -> None:
        a = MemoryTransport(outcome=by_local_part({"gone": REJECT}))
        sender = Sender(
            routes={"a": a, "b": MemoryTransport()},
            rule=RouteRule(default="a", streams={"bulk": "b"}),
            clock=clock,
        )
        sender.submit([envelope(1, ("gone@x.org",)), envelope(2)])
        sender.submit([envelope(i) for i in range(3)], priority="bulk")
        sender.drain()
        sender.submit(envelope(9), priority="bulk")
        a_kpis, b_kpis = sender.kpis("a"), sender.kpis("b")
        assert (0.0, 0.5, 120.0) == (
            a_kpis["queue_depth"],
            a_kpis["bounce_rate"],
            a_kpis["processing_rate_per_minute"],
        )
        assert (1.0, 0.0, 180.0) == (
            b_kpis["queue_depth"],
            b_kpis["bounce_rate"],
            b_kpis["processing_rate_per_minute"],
        )
        assert ["bounce_rate"] == [r.key for r in sender.health(route="a").failed]
        assert sender.health(route="b").healthy

    def test_a_message_delivered_over_two_attempts_is_sent_once(self, clock: Clock) -> None:
        """One recipient accepted, the other deferred then accepted on the retry: one
        message sent, one delivery time (the last acceptance), two recipients accepted."""
        transport = MemoryTransport(outcome=by_local_part({"later": BUSY}))
        sender = make(clock, transport)
        sender.submit(envelope(1, ("now@a.example", "later@b.example")))
        sender.drain()
        partial = sender.metrics().total
        assert (1, 1, 0, None) == (
            partial.accepted,
            partial.deferred,
            partial.sent,
            partial.delivery_p95,
        )
        transport._outcome = None  # the mailbox is free again
        clock.advance(60)
        sender.drain()
        total = sender.metrics().total
        assert (2, 1, 1, 60.0) == (total.accepted, total.deferred, total.sent, total.delivery_p95)

    def test_nothing_measured_yet(self, clock: Clock) -> None:
        sender = make(clock)
        assert {"queue_depth": 0.0} == sender.kpis()
        assert 4 == len(sender.health().missing)


class TestRunning:
    def test_context_manager_workers_and_drain(self) -> None:
        """Real threads on the real clock: everything submitted is delivered."""
        transport = MemoryTransport()
        with Sender(transport, workers=2, batch_size=7) as sender:
            sender.submit([envelope(i) for i in range(50)])
            assert sender.drain(timeout=60)
            assert sender.running
        assert not sender.running
        assert 50 == len(transport.outbox)

    def test_idle_workers_sleep_instead_of_waking_each_other(self) -> None:
        """Four workers with nothing to do look about once a poll interval each (a look
        that found nothing used to wake the others, which looked and woke it again)."""

        class Counting(MemoryOutbox):
            looks = 0

            def lease(self, n: int, **options: Any) -> list[Lease]:
                with lock:
                    Counting.looks += 1
                return super().lease(n, **options)

        lock = threading.Lock()
        with Sender(MemoryTransport(), outbox=Counting(), workers=4, poll_interval=1.0):
            time.sleep(1.5)
        # At most two looks a second per worker, two lease calls each (lead priority, rest).
        assert Counting.looks <= 4 * 2 * 2 * 2

    def test_many_workers_deliver_everything_once(self) -> None:
        """Four workers, a shaper, deferrals and retries on the real clock: every message
        is delivered, none twice, and no worker hits an error."""
        seen: dict[bytes, int] = {}
        deferred_once: set[bytes] = set()
        lock = threading.Lock()

        def outcome(env: Envelope) -> SendResult | None:
            data = env.to_bytes()
            with lock:
                if env.recipients[0].startswith("later") and data not in deferred_once:
                    deferred_once.add(data)
                    return SendResult(
                        status=SendStatus.DEFERRED, recipients=env.recipients, status_code=451
                    )
                seen[data] = seen.get(data, 0) + 1
            return None

        shaper = Shaper({"domain:*": Limit(2000, 1.0)}, strict=False)
        schedule = DeliverySchedule(first=0.05, max_interval=0.1, max_age=60)
        transport = MemoryTransport(outcome=outcome)
        envs = [
            envelope(i, (f"{'later' if i % 7 == 0 else 'now'}{i}@d{i % 13}.example",))
            for i in range(400)
        ]
        with structlog.testing.capture_logs() as logs:
            with Sender(
                transport,
                shaper=shaper,
                retry=schedule,
                workers=4,
                batch_size=16,
                poll_interval=0.05,
            ) as sender:
                sender.submit(envs)
                # drain returns while the deferred ones wait for their retry: wait them out.
                for _ in range(2400):
                    if sender.drain(timeout=120) and not sender.outbox.stats().depth:
                        break
                    time.sleep(0.05)
        assert 400 == len(transport.outbox)
        assert (400, {1}, 58) == (len(seen), set(seen.values()), len(deferred_once))
        assert [] == [x for x in logs if x["event"] == "pipeline.worker_error"]

    def test_a_worker_outlives_a_store_error(self) -> None:
        """A store that fails once while a worker looks for the next due message: the
        worker logs it and goes on (a dead worker would leave drain() waiting forever)."""

        class FailsOnce(MemoryOutbox):
            def __init__(self) -> None:
                super().__init__()
                self.failed = threading.Event()

            def next_due(self) -> float | None:
                worker = threading.current_thread().name.startswith("mailscale-sender")
                if worker and not self.failed.is_set():
                    self.failed.set()
                    raise OSError("the store is unavailable")
                return super().next_due()

        store = FailsOnce()
        transport = MemoryTransport()
        with structlog.testing.capture_logs() as logs:
            with Sender(transport, outbox=store, poll_interval=0.05) as sender:
                assert store.failed.wait(30)
                sender.submit(envelope())
                assert sender.drain(timeout=30)
        assert 1 == len(transport.outbox)
        assert ["OSError"] == [x["error"] for x in logs if x["event"] == "pipeline.worker_error"]

    def test_send_waits_for_the_first_outcome(self, clock: Clock) -> None:
        transport = MemoryTransport(outcome=by_local_part({"gone": REJECT}))
        sender = make(clock, transport)
        event = sender.send(envelope(1, ("gone@example.org",)))
        assert (EventKind.BOUNCED, 550) == (event.kind, event.code)
        with Sender(MemoryTransport()) as threaded:
            assert EventKind.SENT is threaded.send(envelope(2), timeout=30).kind

    def test_event_stream(self, clock: Clock) -> None:
        sender = make(clock)
        with sender.events(timeout=0) as stream:
            sender.submit(envelope())
            sender.drain()
            assert ["queued", "sent"] == kinds(list(stream))

    def test_asyncio(self) -> None:
        transport = MemoryTransport()

        async def main() -> None:
            sender = Sender(transport, poll_interval=0.05)
            task = asyncio.create_task(sender.run_async())
            ids = await sender.submit_async([envelope(i) for i in range(5)])
            event = await sender.send_async(envelope(9), timeout=30)
            assert EventKind.SENT is event.kind
            assert 5 == len(ids)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            sender.close()

        asyncio.run(main())
        assert 6 == len(transport.outbox)

    def test_stop_releases_unsent_leases(self, clock: Clock) -> None:
        """A non-graceful stop hands back what was leased but not yet sent, at once."""
        a, b = MemoryTransport(), MemoryTransport()
        sender = Sender(
            routes={"a": a, "b": b}, rule=RouteRule(default="a", streams={"x": "b"}), clock=clock
        )
        sender.submit([envelope(1), envelope(2, tags=("x",))])
        sender._stopping, sender._graceful = True, False
        sender.step()
        assert (0, 0) == (len(a.outbox), len(b.outbox))
        assert 2 == sender.outbox.stats().by_state["queued"]

    def test_stop_releases_the_calls_not_yet_made(self, clock: Clock) -> None:
        """A non-graceful stop during a batch of several calls on one route: the call in
        progress finishes and is recorded, the calls not yet made go back at once."""

        class OneAtATime(TransportBase):
            name = "one"
            max_batch = 1

            def __init__(self) -> None:
                self.sent: list[Envelope] = []
                self.sender: Sender | None = None

            def send(self, batch):  # type: ignore[no-untyped-def]
                self.sent.extend(batch)
                assert self.sender is not None
                self.sender.stop(graceful=False)  # as from another thread, mid-batch
                return [
                    SendResult(status=SendStatus.ACCEPTED, recipients=e.recipients) for e in batch
                ]

        transport = OneAtATime()
        sender = make(clock, transport, batch_size=5)
        transport.sender = sender
        sender.submit([envelope(i) for i in range(5)])
        assert 5 == sender.step()
        assert 1 == len(transport.sent)
        assert {"queued": 4, "leased": 0, "done": 1, "dead": 0} == dict(
            sender.outbox.stats().by_state
        )
        assert clock.now == sender.outbox.next_due()

    def test_a_listener_that_raises_still_gets_every_event(self, clock: Clock) -> None:
        """A listener raising on one event is logged once for the batch and still gets
        the batch's other events; delivery goes on."""
        got: list[str] = []

        def listener(event: Event) -> None:
            got.append(f"{event.kind.value} {event.id}")
            if event.kind is EventKind.SENT and len(got) == 4:
                raise RuntimeError("the listener's own bug")

        sender = make(clock)
        sender.add_listener(listener)
        ids = sender.submit([envelope(i) for i in range(3)])
        with structlog.testing.capture_logs() as logs:
            assert sender.drain()
        assert [f"sent {i}" for i in ids] == got[3:]
        assert [("RuntimeError", "sent")] == [
            (x["error"], x["kind"]) for x in logs if x["event"] == "pipeline.listener_failed"
        ]
        assert 0 == sender.outbox.stats().depth

    def test_logs_carry_no_content(self, clock: Clock) -> None:
        transport = Failing(TransportConnectionError("refused", provider="failing"))
        sender = make(clock, transport)
        with structlog.testing.capture_logs() as logs:
            sender.submit(envelope(1, size=10))
            sender.drain()
        text = repr(logs)
        assert "body 1" not in text and "rcpt@example.org" not in text
        assert logs
