"""RetryPolicy and RetryingTransport, with a fake clock (no real sleeping)."""

from __future__ import annotations

import random
import re
from collections.abc import Sequence

import pytest
from transport_helpers import make_envelope, raw_with_headers

from mailscale.errors import ConfigurationError, TransportConnectionError, TransportError
from mailscale.message import Envelope, SendResult, SendStatus, with_message_id
from mailscale.transports.dev import MemoryTransport
from mailscale.transports.retry import RetryingTransport, RetryPolicy
from mailscale.transports.smtp import SMTPTransport
from peers.smtp_peer import FaultyServer, ScriptedHandler, SMTPPeer, free_port, start_peer


class FakeSleep:
    """Records requested waits instead of sleeping."""

    def __init__(self) -> None:
        self.waits: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)


def no_jitter(**kw: float) -> RetryPolicy:
    return RetryPolicy(jitter=0.0, **kw)  # type: ignore[arg-type]


class TestPolicy:
    def test_exponential_backoff_capped(self) -> None:
        """Delays grow by the multiplier and stop at max_delay."""
        policy = no_jitter(base=1.0, multiplier=3.0, max_delay=20.0, max_attempts=10)
        assert [1.0, 3.0, 9.0, 20.0, 20.0] == [policy.delay(n) for n in range(1, 6)]

    def test_jitter_stays_within_its_fraction(self) -> None:
        """With jitter j a delay d falls in [d * (1 - j), d], and varies."""
        policy = RetryPolicy(base=10.0, jitter=0.5, max_attempts=3)
        rng = random.Random(7)
        delays = [policy.backoff(1, rng) for _ in range(200)]
        assert all(5.0 <= d <= 10.0 for d in delays)
        assert len(set(delays)) > 100

    def test_retry_after_is_a_floor(self) -> None:
        """A provider's Retry-After wins over a shorter backoff."""
        policy = no_jitter(base=1.0, max_attempts=5)
        assert 42.0 == policy.delay(1, retry_after=42.0)
        assert 4.0 == policy.delay(3, retry_after=0.5)

    def test_long_retry_after_ends_in_process_retries(self) -> None:
        """A Retry-After beyond max_retry_after means: do not wait here."""
        assert None is no_jitter(max_retry_after=60.0).delay(1, retry_after=3600.0)

    def test_attempts_are_bounded(self) -> None:
        """No delay is offered once max_attempts attempts were made."""
        policy = no_jitter(max_attempts=3)
        assert (True, True, False) == tuple(policy.delay(n) is not None for n in (1, 2, 3))

    @pytest.mark.parametrize(
        "kw", [{"max_attempts": 0}, {"base": -1.0}, {"jitter": 1.5}, {"max_delay": float("nan")}]
    )
    def test_invalid_settings(self, kw: dict[str, float]) -> None:
        """Nonsensical settings are configuration errors."""
        with pytest.raises(ConfigurationError):
            RetryPolicy(**kw)  # type: ignore[arg-type]


class TestRetryingTransport:
    def test_retries_deferred_until_accepted(self) -> None:
        """Greylisting (451 twice) is retried with backoff until the peer accepts."""
        peer = start_peer(handler=ScriptedHandler(defer_first=2))
        sleep = FakeSleep()
        inner = SMTPTransport("127.0.0.1", peer.port, tls="none")
        try:
            with RetryingTransport(inner, no_jitter(base=1.0, max_attempts=4), sleep=sleep) as t:
                [result] = t.send([make_envelope()])
        finally:
            peer.stop()
        assert SendStatus.ACCEPTED == result.status
        assert [1.0, 2.0] == sleep.waits
        assert 1 == len(peer.received)

    def test_gives_up_after_max_attempts(self) -> None:
        """Still deferred after the last attempt: the deferred result is returned."""
        peer = start_peer(handler=ScriptedHandler(defer_first=100))
        sleep = FakeSleep()
        inner = SMTPTransport("127.0.0.1", peer.port, tls="none")
        try:
            with RetryingTransport(inner, no_jitter(base=1.0, max_attempts=3), sleep=sleep) as t:
                [result] = t.send([make_envelope()])
        finally:
            peer.stop()
        assert (SendStatus.DEFERRED, 451) == (result.status, result.status_code)
        assert 3 == len(peer.handler.rcpt_seen)
        assert 2 == len(sleep.waits)

    def test_rejections_are_never_retried(self) -> None:
        """A 550 comes back at once, without waiting."""
        peer = start_peer()
        sleep = FakeSleep()
        inner = SMTPTransport("127.0.0.1", peer.port, tls="none")
        try:
            with RetryingTransport(inner, no_jitter(), sleep=sleep) as t:
                [result] = t.send([make_envelope("reject@example.net")])
        finally:
            peer.stop()
        assert SendStatus.REJECTED == result.status
        assert [] == sleep.waits
        assert 1 == len(peer.handler.rcpt_seen)

    def test_only_pending_recipients_are_retried(self) -> None:
        """Accepted recipients are not sent twice; the merged result covers everyone."""
        attempts: list[tuple[str, ...]] = []

        def outcome(env: Envelope) -> SendResult | None:
            attempts.append(env.recipients)
            if len(attempts) == 1:
                from mailscale.message import RecipientResult

                return SendResult(
                    status=SendStatus.DEFERRED,
                    recipients=env.recipients,
                    recipient_results=(
                        RecipientResult(recipient="a@example.net", status=SendStatus.ACCEPTED),
                        RecipientResult(recipient="b@example.net", status=SendStatus.DEFERRED),
                    ),
                )
            return None

        sleep = FakeSleep()
        t = RetryingTransport(MemoryTransport(outcome=outcome), no_jitter(), sleep=sleep)
        [result] = t.send([make_envelope("a@example.net", "b@example.net")])
        assert [("a@example.net", "b@example.net"), ("b@example.net",)] == attempts
        assert SendStatus.ACCEPTED == result.status
        assert ("a@example.net", "b@example.net") == result.recipients
        assert {SendStatus.ACCEPTED} == {r.status for r in result.recipient_results}

    def test_honours_retry_after_from_the_result(self) -> None:
        """A deferred result's retry_after sets the wait."""
        answers = [
            SendResult(status=SendStatus.DEFERRED, recipients=("r@example.net",), retry_after=17.0)
        ]

        def outcome(env: Envelope) -> SendResult | None:
            return answers.pop() if answers else None

        sleep = FakeSleep()
        t = RetryingTransport(MemoryTransport(outcome=outcome), no_jitter(base=1.0), sleep=sleep)
        [result] = t.send([make_envelope("r@example.net")])
        assert result.accepted
        assert [17.0] == sleep.waits

    def test_transient_errors_are_retried(self) -> None:
        """A refused connection is retried; the peer coming up in the meantime takes the message."""
        port = free_port()
        peers = []

        def sleep_and_start(seconds: float) -> None:
            if not peers:
                peers.append(start_peer(port=port))

        inner = SMTPTransport("127.0.0.1", port, tls="none", timeout=5)
        try:
            with RetryingTransport(inner, no_jitter(), sleep=sleep_and_start) as t:
                [result] = t.send([make_envelope()])
        finally:
            for p in peers:
                p.stop()
        assert result.accepted
        assert 1 == len(peers[0].received)

    def test_transient_error_on_every_attempt_raises(self) -> None:
        """Unreachable on every attempt: the last transient error is raised."""
        sleep = FakeSleep()
        inner = SMTPTransport("127.0.0.1", free_port(), tls="none")
        t = RetryingTransport(inner, no_jitter(max_attempts=3), sleep=sleep)
        with pytest.raises(TransportConnectionError):
            t.send([make_envelope()])
        assert 2 == len(sleep.waits)

    def test_permanent_errors_are_not_retried(self) -> None:
        """A non-transient whole-call error propagates at once."""
        peer = start_peer()
        sleep = FakeSleep()
        strict = SMTPTransport("127.0.0.1", peer.port)  # STARTTLS required, not offered
        try:
            with pytest.raises(TransportError, match="STARTTLS"):
                RetryingTransport(strict, no_jitter(), sleep=sleep).send([make_envelope()])
        finally:
            peer.stop()
        assert [] == sleep.waits


class TestElapsedBudget:
    def test_no_retry_starts_after_max_elapsed(self) -> None:
        """With a fake clock that sleeping advances, retries stop at the time budget."""
        now = [0.0]
        waits: list[float] = []

        def sleep(seconds: float) -> None:
            waits.append(seconds)
            now[0] += seconds

        def outcome(env: Envelope) -> SendResult:
            now[0] += 0.5  # each attempt takes half a second
            return SendResult(status=SendStatus.DEFERRED, recipients=env.recipients)

        policy = no_jitter(base=1.0, multiplier=2.0, max_attempts=10, max_elapsed=6.0)
        t = RetryingTransport(
            MemoryTransport(outcome=outcome), policy, sleep=sleep, clock=lambda: now[0]
        )
        [result] = t.send([make_envelope()])
        # attempts at 0, 1.5, 4.0; the next would start at 8.5 > 6: stop.
        assert [1.0, 2.0] == waits
        assert SendStatus.DEFERRED == result.status


class TestOneResultPerEnvelope:
    def test_budget_after_an_error_raises_it(self) -> None:
        """A transient error, then the time budget ends retrying: the error is raised, not []."""
        inner = SMTPTransport("127.0.0.1", free_port(), tls="none")
        policy = no_jitter(base=1.0, max_attempts=5, max_elapsed=0.5)
        t = RetryingTransport(inner, policy, sleep=FakeSleep(), clock=lambda: 0.0)
        env = make_envelope()
        with pytest.raises(TransportConnectionError):
            t.send([env, env])

    def test_long_retry_after_from_an_error_raises_it(self) -> None:
        """An error whose retry_after ends in-process retrying is raised, not an empty list."""
        calls = []

        class Throttled(MemoryTransport):
            def send(self, batch: Sequence[Envelope]) -> list[SendResult]:
                calls.append(len(batch))
                err = TransportConnectionError("throttled", provider="memory")
                err.retry_after = 3600.0  # type: ignore[attr-defined]
                raise err

        t = RetryingTransport(Throttled(), no_jitter(), sleep=FakeSleep())
        with pytest.raises(TransportConnectionError):
            t.send([make_envelope(), make_envelope()])
        assert [2] == calls

    def test_error_after_an_answer_keeps_one_result_each(self) -> None:
        """Deferred, then a transient error and the budget: both envelopes keep a result."""
        now = [0.0]
        attempts = []

        class Flaky(MemoryTransport):
            def send(self, batch: Sequence[Envelope]) -> list[SendResult]:
                attempts.append(len(batch))
                now[0] += 1.0
                if len(attempts) == 1:
                    return [
                        SendResult(status=SendStatus.DEFERRED, recipients=e.recipients)
                        for e in batch
                    ]
                raise TransportConnectionError("down", provider="memory")

        policy = no_jitter(base=1.0, max_attempts=10, max_elapsed=3.5)
        t = RetryingTransport(Flaky(), policy, sleep=lambda s: None, clock=lambda: now[0])
        results = t.send([make_envelope(), make_envelope()])
        assert [SendStatus.DEFERRED, SendStatus.DEFERRED] == [r.status for r in results]


def without_message_id(*recipients: str) -> Envelope:
    """A raw message that has no Message-ID field."""
    return Envelope(
        sender="sender@example.com",
        recipients=recipients or ("rcpt@example.net",),
        message=raw_with_headers(),
    )


MESSAGE_ID = re.compile(rb"\AMessage-ID: <[^>\r\n]+@example\.com>\r\n")


class TestPossiblyDelivered:
    """A message whose answer was lost after the final dot: once more, later, same Message-ID."""

    def test_sent_once_more_later_with_the_same_message_id(self) -> None:
        """max_attempts=4, but the server got the whole message: two copies, not four."""
        server = FaultyServer(drop_at="final dot")
        env = without_message_id()
        sleep = FakeSleep()
        with server.running():
            inner = SMTPTransport("127.0.0.1", server.port, tls="none", timeout=5)
            with RetryingTransport(
                inner, no_jitter(max_attempts=4), sleep=sleep, clock=lambda: 0.0
            ) as t:
                [result] = t.send([env])
        assert (SendStatus.DEFERRED, True) == (result.status, result.possibly_delivered)
        assert [60.0] == sleep.waits
        first, second = (d.content for d in server.unanswered)
        assert first == second
        found = MESSAGE_ID.match(first)
        assert found is not None
        assert found.group() + env.to_bytes() == first
        assert [] == server.deliveries

    def test_none_hands_it_back_at_once(self) -> None:
        """possibly_delivered_delay=None: no second copy here; the caller decides."""
        server = FaultyServer(drop_at="final dot")
        sleep = FakeSleep()
        policy = RetryPolicy(jitter=0.0, possibly_delivered_delay=None)
        with server.running():
            inner = SMTPTransport("127.0.0.1", server.port, tls="none", timeout=5)
            with RetryingTransport(inner, policy, sleep=sleep) as t:
                [result] = t.send([make_envelope()])
        assert (SendStatus.DEFERRED, True) == (result.status, result.possibly_delivered)
        assert ([], 1) == (sleep.waits, len(server.unanswered))

    def test_others_retry_as_usual_and_it_goes_last(self) -> None:
        """A greylisted message retries with backoff; the unsure one waits its delay, once."""
        now = [0.0]
        seen: list[tuple[str, str]] = []
        sleep = FakeSleep()

        def advance(seconds: float) -> None:
            sleep(seconds)
            now[0] += seconds

        def outcome(env: Envelope) -> SendResult | None:
            rcpt = env.recipients[0]
            seen.append((rcpt, str(env.headers()["Message-ID"])))
            if rcpt.startswith("lost") or len(seen) <= 4:
                return SendResult(
                    status=SendStatus.DEFERRED,
                    recipients=env.recipients,
                    possibly_delivered=rcpt.startswith("lost"),
                )
            return None

        policy = no_jitter(base=1.0, multiplier=2.0, max_attempts=5)
        t = RetryingTransport(
            MemoryTransport(outcome=outcome), policy, sleep=advance, clock=lambda: now[0]
        )
        grey, lost = t.send(
            [without_message_id("grey@example.net"), without_message_id("lost@example.net")]
        )
        assert ["grey", "lost", "grey", "grey", "grey", "lost"] == [
            rcpt.partition("@")[0] for rcpt, _ in seen
        ]
        # Backoff 1, 2, 4 for the greylisted one; then 60 s after the lost one's attempt.
        assert [1.0, 2.0, 4.0, 53.0] == sleep.waits
        assert (SendStatus.ACCEPTED, False) == (grey.status, grey.possibly_delivered)
        assert (SendStatus.DEFERRED, True) == (lost.status, lost.possibly_delivered)
        ids = {rcpt: {mid for r, mid in seen if r == rcpt} for rcpt, _ in seen}
        assert [1, 1] == [len(v) for v in ids.values()]

    @pytest.mark.parametrize(
        "policy",
        [
            RetryPolicy(jitter=0.0, max_elapsed=30.0),
            RetryPolicy(jitter=0.0, max_attempts=1),
        ],
        ids=["max_elapsed", "max_attempts"],
    )
    def test_limits_still_apply(self, policy: RetryPolicy) -> None:
        """The later attempt happens within max_elapsed and max_attempts, or not at all."""
        calls: list[int] = []

        def outcome(env: Envelope) -> SendResult:
            calls.append(1)
            return SendResult(
                status=SendStatus.DEFERRED, recipients=env.recipients, possibly_delivered=True
            )

        sleep = FakeSleep()
        t = RetryingTransport(
            MemoryTransport(outcome=outcome), policy, sleep=sleep, clock=lambda: 0.0
        )
        [result] = t.send([make_envelope()])
        assert ([1], []) == (calls, sleep.waits)
        assert result.possibly_delivered

    def test_negative_delay_is_refused(self) -> None:
        """The delay is seconds, or None."""
        with pytest.raises(ConfigurationError, match="possibly_delivered_delay"):
            RetryPolicy(possibly_delivered_delay=-1.0)


class TestMessageId:
    """Every message has a Message-ID before its first attempt."""

    def test_added_to_raw_bytes_without_one(self, plain_peer: SMTPPeer) -> None:
        """A raw message without one gets one prepended; the rest is byte-exact."""
        env = without_message_id()
        with RetryingTransport(SMTPTransport("127.0.0.1", plain_peer.port, tls="none")) as t:
            [result] = t.send([env])
        assert result.accepted
        got = plain_peer.received[0].content
        found = MESSAGE_ID.match(got)
        assert found is not None
        assert env.to_bytes() == got[found.end() :]

    def test_a_message_with_one_is_untouched(self, plain_peer: SMTPPeer) -> None:
        """A message that has a Message-ID is sent exactly as given."""
        env = make_envelope()
        with RetryingTransport(SMTPTransport("127.0.0.1", plain_peer.port, tls="none")) as t:
            t.send([env])
        assert [env.to_bytes()] == [r.content for r in plain_peer.received]

    def test_email_message_is_copied_not_changed(self, plain_peer: SMTPPeer) -> None:
        """An EmailMessage gets its Message-ID on a copy: the caller's object is unchanged."""
        from email.message import EmailMessage

        msg = EmailMessage()
        msg["From"] = "sender@example.com"
        msg["To"] = "rcpt@example.net"
        msg.set_content("Hi\n")
        with RetryingTransport(SMTPTransport("127.0.0.1", plain_peer.port, tls="none")) as t:
            t.send([Envelope.from_message(msg)])
        assert "Message-ID" not in msg
        assert b"\r\nMessage-ID: <" in plain_peer.received[0].content

    @pytest.mark.parametrize(
        ("raw", "added"),
        [
            (b"Subject: x\r\n\r\nMessage-ID: <in-the-body@example.com>\r\n", True),
            (b"Subject: x\r\nmessage-id:<lower@example.com>\r\n\r\nbody\r\n", False),
            (b"Subject: x\r\nMessage-ID\t: <tab@example.com>\r\n\r\nbody\r\n", False),
            (b"\r\nMessage-ID: <no-header-section@example.com>\r\n", True),
            (b"Subject: headers only\r\n", True),
        ],
        ids=["body-only", "lower-case", "space-before-colon", "no-header-section", "no-body"],
    )
    def test_only_the_header_section_counts(self, raw: bytes, added: bool) -> None:
        """A Message-ID is looked for among the header fields, not in the body."""
        env = Envelope(sender="sender@example.com", recipients=("r@example.net",), message=raw)
        out = with_message_id(env)
        assert added == (out is not env)
        if added:
            found = MESSAGE_ID.match(bytes(out.message))  # type: ignore[arg-type]
            assert found is not None
            assert raw == bytes(out.message)[found.end() :]  # type: ignore[arg-type]
        assert out is with_message_id(out)
