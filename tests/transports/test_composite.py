"""failover(...) and roundrobin(...) against real SMTP peers on loopback."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import pytest
from structlog.testing import capture_logs
from transport_helpers import make_envelope

from mailscale.errors import (
    ConfigurationError,
    TransportAuthError,
    TransportCertificateError,
    TransportConnectionError,
    TransportError,
)
from mailscale.message import Envelope, SendResult, SendStatus
from mailscale.transports.composite import FailoverTransport, RoundRobinTransport
from mailscale.transports.dev import MemoryTransport
from mailscale.transports.retry import RetryingTransport, RetryPolicy
from mailscale.transports.smtp import SMTPTransport
from peers.smtp_peer import FaultyServer, ScriptedHandler, SMTPPeer, free_port, start_peer


def smtp(port: int, **kw: object) -> SMTPTransport:
    return SMTPTransport("127.0.0.1", port, tls="none", timeout=5, **kw)  # type: ignore[arg-type]


@pytest.fixture
def ok_peer() -> Iterator[SMTPPeer]:
    """A peer that accepts every recipient."""
    peer = start_peer(handler=ScriptedHandler(rcpt_reply="250 2.1.5 Ok"))
    yield peer
    peer.stop()


@pytest.fixture
def deferring_peer() -> Iterator[SMTPPeer]:
    """A peer failing transiently: 451 for every recipient."""
    peer = start_peer(handler=ScriptedHandler(rcpt_reply="451 4.3.2 System not accepting"))
    yield peer
    peer.stop()


@pytest.fixture
def rejecting_peer() -> Iterator[SMTPPeer]:
    """A peer failing permanently: 550 for every recipient."""
    peer = start_peer(handler=ScriptedHandler(rcpt_reply="550 5.7.1 Relaying denied"))
    yield peer
    peer.stop()


@pytest.fixture
def auth_peer() -> Iterator[SMTPPeer]:
    """A plaintext peer requiring AUTH (the member's password will be wrong)."""
    peer = start_peer(credentials={"relay-user": "right-password-1"}, auth_require_tls=False)
    yield peer
    peer.stop()


def wrong_credentials(peer: SMTPPeer) -> SMTPTransport:
    return smtp(peer.port, username="relay-user", password="wrong-password-2")


class TestMemberCredentialsRefused:
    def test_failover_moves_on(self, auth_peer: SMTPPeer, ok_peer: SMTPPeer) -> None:
        """Refused credentials of the first member are its fault: the next member delivers."""
        with FailoverTransport([wrong_credentials(auth_peer), smtp(ok_peer.port)]) as t:
            results = t.send([make_envelope(), make_envelope()])
        assert [(SendStatus.ACCEPTED, "smtp[1]")] * 2 == [(r.status, r.transport) for r in results]
        assert 2 == len(ok_peer.received)

    def test_failover_all_refused_raises(self, auth_peer: SMTPPeer) -> None:
        """When every member's credentials are refused, the call raises TransportAuthError."""
        with FailoverTransport([wrong_credentials(auth_peer), wrong_credentials(auth_peer)]) as t:
            with pytest.raises(TransportAuthError):
                t.send([make_envelope()])

    def test_roundrobin_sends_elsewhere(self, auth_peer: SMTPPeer, ok_peer: SMTPPeer) -> None:
        """Round-robin gives the messages of a member with refused credentials to another one."""
        members = [wrong_credentials(auth_peer), smtp(ok_peer.port)]
        with RoundRobinTransport(members, clock=FakeClock()) as t:
            results = t.send([make_envelope() for _ in range(4)])
            assert ["smtp[0]"] == t.benched()
        assert [SendStatus.ACCEPTED] * 4 == [r.status for r in results]
        assert 4 == len(ok_peer.received)

    def test_retry_never_turns_it_into_rejections(self) -> None:
        """Deferred first, then refused credentials: the messages stay deferred, not rejected."""
        calls = []

        class Flaky(MemoryTransport):
            def send(self, batch: Sequence[Envelope]) -> list[SendResult]:
                calls.append(len(batch))
                if len(calls) == 1:
                    return [
                        SendResult(status=SendStatus.DEFERRED, recipients=e.recipients)
                        for e in batch
                    ]
                raise TransportAuthError("credentials refused", provider="memory")

        t = RetryingTransport(Flaky(), RetryPolicy(jitter=0.0), sleep=lambda s: None)
        results = t.send([make_envelope(), make_envelope()])
        assert [SendStatus.DEFERRED] * 2 == [r.status for r in results]
        assert [2, 2] == calls


class TestMemberCertificateRefused:
    def test_failover_moves_on(self, starttls_peer: SMTPPeer, ok_peer: SMTPPeer) -> None:
        """An untrusted certificate is that member's configuration problem: the next delivers."""
        untrusted = SMTPTransport("localhost", starttls_peer.port, timeout=5)
        with FailoverTransport([untrusted, smtp(ok_peer.port)]) as t:
            [result] = t.send([make_envelope()])
        assert (SendStatus.ACCEPTED, "smtp[1]") == (result.status, result.transport)
        assert [] == starttls_peer.received

    def test_roundrobin_sends_elsewhere(self, starttls_peer: SMTPPeer, ok_peer: SMTPPeer) -> None:
        """Round-robin benches the member and sends its messages to another one."""
        untrusted = SMTPTransport("localhost", starttls_peer.port, timeout=5)
        with RoundRobinTransport([untrusted, smtp(ok_peer.port)], clock=FakeClock()) as t:
            results = t.send([make_envelope(), make_envelope()])
        assert [SendStatus.ACCEPTED] * 2 == [r.status for r in results]

    def test_alone_it_is_raised_and_not_retried(self, starttls_peer: SMTPPeer) -> None:
        """With no other member, the certificate error is raised; retrying does not repeat it."""
        waits: list[float] = []
        untrusted = SMTPTransport("localhost", starttls_peer.port, timeout=5)
        with RetryingTransport(untrusted, RetryPolicy(), sleep=waits.append) as t:
            with pytest.raises(TransportCertificateError):
                t.send([make_envelope()])
        assert [] == waits


class TestFailover:
    def test_moves_on_after_a_transient_failure(
        self, deferring_peer: SMTPPeer, ok_peer: SMTPPeer
    ) -> None:
        """Deferred by the first member, the message is delivered by the second."""
        with FailoverTransport([smtp(deferring_peer.port), smtp(ok_peer.port)]) as t:
            [result] = t.send([make_envelope()])
        assert (SendStatus.ACCEPTED, "smtp[1]") == (result.status, result.transport)
        assert 1 == len(ok_peer.received)
        assert 1 == len(deferring_peer.handler.rcpt_seen)

    def test_moves_on_after_a_connection_failure(self, ok_peer: SMTPPeer) -> None:
        """A member that cannot be reached is skipped."""
        with (
            capture_logs() as logs,
            FailoverTransport([smtp(free_port()), smtp(ok_peer.port)]) as t,
        ):
            [result] = t.send([make_envelope()])
        assert (SendStatus.ACCEPTED, "smtp[1]") == (result.status, result.transport)
        assert ["transport.member_failed"] == [e["event"] for e in logs]

    def test_never_moves_on_after_a_permanent_rejection(
        self, rejecting_peer: SMTPPeer, ok_peer: SMTPPeer
    ) -> None:
        """A 550 from the first member is final: the second member is never asked."""
        with FailoverTransport([smtp(rejecting_peer.port), smtp(ok_peer.port)]) as t:
            [result] = t.send([make_envelope()])
        assert (SendStatus.REJECTED, 550, "smtp[0]") == (
            result.status,
            result.status_code,
            result.transport,
        )
        assert [] == ok_peer.handler.rcpt_seen

    def test_only_pending_recipients_move_on(self, plain_peer: SMTPPeer, ok_peer: SMTPPeer) -> None:
        """Recipients accepted or rejected by the first member are not sent again."""
        env = make_envelope("a@example.net", "defer@example.net", "reject@example.net")
        with FailoverTransport([smtp(plain_peer.port), smtp(ok_peer.port)]) as t:
            [result] = t.send([env])
        assert [("a@example.net",)] == [r.rcpt_tos for r in plain_peer.received]
        assert [("defer@example.net",)] == [r.rcpt_tos for r in ok_peer.received]
        statuses = {r.recipient: r.status for r in result.recipient_results}
        assert {
            "a@example.net": SendStatus.ACCEPTED,
            "defer@example.net": SendStatus.ACCEPTED,
            "reject@example.net": SendStatus.REJECTED,
        } == statuses
        assert SendStatus.ACCEPTED == result.status
        assert env.recipients == result.recipients

    def test_batch_is_split_per_message(self, plain_peer: SMTPPeer, ok_peer: SMTPPeer) -> None:
        """In one batch, only the deferred message goes to the next member."""
        batch = [make_envelope("a@example.net"), make_envelope("defer@example.net")]
        with FailoverTransport([smtp(plain_peer.port), smtp(ok_peer.port)]) as t:
            results = t.send(batch)
        assert ["smtp[0]", "smtp[1]"] == [r.transport for r in results]
        assert all(r.accepted for r in results)

    def test_last_deferral_is_returned_when_every_member_defers(
        self, deferring_peer: SMTPPeer
    ) -> None:
        """When all members defer, the message stays deferred (never lost, never raised)."""
        with FailoverTransport([smtp(free_port()), smtp(deferring_peer.port)]) as t:
            [result] = t.send([make_envelope()])
        assert (SendStatus.DEFERRED, 451, "smtp[1]") == (
            result.status,
            result.status_code,
            result.transport,
        )

    def test_all_members_unreachable_raises(self) -> None:
        """When no member could even be reached, the whole call fails."""
        with FailoverTransport([smtp(free_port()), smtp(free_port())]) as t:
            with pytest.raises(TransportConnectionError):
                t.send([make_envelope()])

    def test_non_transient_error_is_not_failed_over(
        self, plain_peer: SMTPPeer, ok_peer: SMTPPeer
    ) -> None:
        """A configuration failure (STARTTLS required, not offered) is raised, not hidden."""
        strict = SMTPTransport("127.0.0.1", plain_peer.port)  # requires STARTTLS
        with FailoverTransport([strict, smtp(ok_peer.port)]) as t:
            with pytest.raises(TransportError, match="STARTTLS"):
                t.send([make_envelope()])
        assert [] == ok_peer.handler.rcpt_seen

    def test_needs_members(self) -> None:
        """An empty failover is a configuration error."""
        with pytest.raises(ConfigurationError):
            FailoverTransport([])


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class TestRoundRobin:
    def test_spreads_messages_over_members(self, ok_peer: SMTPPeer, plain_peer: SMTPPeer) -> None:
        """Messages alternate between members, and results say which one."""
        with RoundRobinTransport([smtp(ok_peer.port), smtp(plain_peer.port)]) as t:
            results = t.send([make_envelope() for _ in range(4)])
            results += t.send([make_envelope() for _ in range(2)])
        assert ["smtp[0]", "smtp[1]"] * 3 == [r.transport for r in results]
        assert (3, 3) == (len(ok_peer.received), len(plain_peer.received))

    def test_benches_a_transiently_failing_member(
        self, deferring_peer: SMTPPeer, ok_peer: SMTPPeer
    ) -> None:
        """A deferring member is benched for the cool-down; its messages go elsewhere."""
        clock = FakeClock()
        t = RoundRobinTransport(
            [smtp(deferring_peer.port), smtp(ok_peer.port)], cooldown=60, clock=clock
        )
        with t, capture_logs() as logs:
            first = t.send([make_envelope(), make_envelope()])
            assert ["smtp[0]"] == t.benched()
            seen = len(deferring_peer.handler.rcpt_seen)
            clock.now += 30
            second = t.send([make_envelope() for _ in range(4)])
            benched_while_cooling = len(deferring_peer.handler.rcpt_seen) - seen
            clock.now += 31
            assert [] == t.benched()
            third = t.send([make_envelope(), make_envelope()])
        assert all(r.accepted for r in first + second + third)
        assert {"smtp[1]"} == {r.transport for r in first + second + third}
        assert 0 == benched_while_cooling
        # After the cool-down it gets its turn again (one message), defers, is benched again.
        assert 1 == len(deferring_peer.handler.rcpt_seen) - seen
        assert "transport.member_benched" in [e["event"] for e in logs]

    def test_permanent_rejection_is_final_and_does_not_bench(
        self, rejecting_peer: SMTPPeer, ok_peer: SMTPPeer
    ) -> None:
        """A member's 550 stays a rejection; the member keeps its turn."""
        clock = FakeClock()
        with RoundRobinTransport([smtp(rejecting_peer.port), smtp(ok_peer.port)], clock=clock) as t:
            results = t.send([make_envelope(), make_envelope()])
            assert [] == t.benched()
        assert [SendStatus.REJECTED, SendStatus.ACCEPTED] == [r.status for r in results]
        assert 1 == len(ok_peer.received)

    def test_unreachable_member_is_benched_and_skipped(self, ok_peer: SMTPPeer) -> None:
        """A member that refuses connections is benched; all messages still go out."""
        clock = FakeClock()
        with RoundRobinTransport([smtp(free_port()), smtp(ok_peer.port)], clock=clock) as t:
            results = t.send([make_envelope() for _ in range(3)])
            assert ["smtp[0]"] == t.benched()
        assert [True] * 3 == [r.accepted for r in results]

    def test_all_benched_still_tries_the_first_to_recover(self) -> None:
        """With every member benched, the one whose bench ends first is tried."""
        clock = FakeClock()
        calls: list[str] = []

        def deferring(tag: str) -> MemoryTransport:
            def outcome(env: object) -> SendResult:
                calls.append(tag)
                clock.now += 1  # so "a" is benched before "b" and recovers first
                return SendResult(status=SendStatus.DEFERRED, recipients=("x@example.net",))

            return MemoryTransport(outcome=outcome)

        t = RoundRobinTransport([deferring("a"), deferring("b")], cooldown=10, clock=clock)
        t.send([make_envelope()])  # a defers, then b defers: both benched
        assert ["a", "b"] == calls
        assert ["memory[0]", "memory[1]"] == t.benched()
        t.send([make_envelope()])
        assert ["a", "b", "a", "b"] == calls

    def test_member_benched_during_a_call_is_skipped_in_that_call(self) -> None:
        """A message rerouted within a call avoids members benched earlier in the same call."""
        calls: list[str] = []

        def member(tag: str, status: SendStatus) -> MemoryTransport:
            def outcome(env: Envelope) -> SendResult | None:
                calls.append(tag)
                if status is SendStatus.ACCEPTED:
                    return None
                return SendResult(status=status, recipients=env.recipients)

            return MemoryTransport(outcome=outcome)

        t = RoundRobinTransport(
            [
                member("a", SendStatus.DEFERRED),
                member("b", SendStatus.DEFERRED),
                member("c", SendStatus.ACCEPTED),
            ],
            clock=FakeClock(),
        )
        results = t.send([make_envelope(), make_envelope()])
        # Message 1 starts at a, message 2 at b; both are benched, so both end at c.
        assert [SendStatus.ACCEPTED] * 2 == [r.status for r in results]
        assert ["a", "b", "c", "c"] == calls

    def test_bad_cooldown(self) -> None:
        """A negative cool-down is a configuration error."""
        with pytest.raises(ConfigurationError, match="cooldown"):
            RoundRobinTransport([MemoryTransport()], cooldown=-1)


class TestAfterTheFinalDot:
    """A member that may have delivered (answer lost after the final dot) keeps the message."""

    def test_failover_does_not_send_it_to_another_member(self, ok_peer: SMTPPeer) -> None:
        """Lost after the final dot at the first member: the second is never asked."""
        faulty = FaultyServer(drop_at="final dot")
        batch = [make_envelope("a@example.net"), make_envelope("b@example.net")]
        with faulty.running(), FailoverTransport([smtp(faulty.port), smtp(ok_peer.port)]) as t:
            results = t.send(batch)
        assert [(SendStatus.DEFERRED, True, "smtp[0]")] * 2 == [
            (r.status, r.possibly_delivered, r.transport) for r in results
        ]
        assert [("a@example.net",), ("b@example.net",)] == [d.rcpt_tos for d in faulty.unanswered]
        assert [] == ok_peer.handler.rcpt_seen

    def test_roundrobin_does_not_send_it_to_another_member(self, ok_peer: SMTPPeer) -> None:
        """Round-robin's failover within the round skips such a message too."""
        faulty = FaultyServer(drop_at="final dot")
        with faulty.running(), RoundRobinTransport([smtp(faulty.port), smtp(ok_peer.port)]) as t:
            [result] = t.send([make_envelope("a@example.net")])
        assert (SendStatus.DEFERRED, True, "smtp[0]") == (
            result.status,
            result.possibly_delivered,
            result.transport,
        )
        assert [] == ok_peer.handler.rcpt_seen

    def test_failover_still_moves_a_drop_before_the_final_dot(self, ok_peer: SMTPPeer) -> None:
        """Lost between RCPT and DATA (nothing delivered): the next member takes it."""
        faulty = FaultyServer(drop_at="DATA")
        with faulty.running(), FailoverTransport([smtp(faulty.port), smtp(ok_peer.port)]) as t:
            [result] = t.send([make_envelope("a@example.net")])
        assert (SendStatus.ACCEPTED, False, "smtp[1]") == (
            result.status,
            result.possibly_delivered,
            result.transport,
        )
        assert [("a@example.net",)] == [r.rcpt_tos for r in ok_peer.received]

    def test_failover_delivers_what_a_421_after_rcpt_left_unsent(self, ok_peer: SMTPPeer) -> None:
        """ok1 (250), closing (421 + hang-up), ok2 at the first member: DATA never went, so
        the second member delivers to all three (ok1 was never lost)."""
        faulty = FaultyServer()
        env = make_envelope("ok1@example.net", "closing@example.net", "ok2@example.net")
        with faulty.running(), FailoverTransport([smtp(faulty.port), smtp(ok_peer.port)]) as t:
            [result] = t.send([env])
        assert [] == faulty.deliveries
        assert [env.recipients] == [r.rcpt_tos for r in ok_peer.received]
        assert (SendStatus.ACCEPTED, "smtp[1]") == (result.status, result.transport)
        assert {"accepted"} == {r.status.value for r in result.recipient_results}


class TestCapabilitiesPerInstance:
    def test_composites_take_their_members_batch_size_and_payload(self) -> None:
        """max_batch is the smallest member's; a retry wrapper reports its inner transport's
        payload; the class-level defaults stay untouched."""
        from mailscale.transports.sendgrid import SendGridTransport

        sendgrid = SendGridTransport("key-1")
        smtp = SMTPTransport("localhost", tls="none")
        failover = FailoverTransport([sendgrid, smtp])
        retry = RetryingTransport(sendgrid)
        assert (1000, 1000, "json") == (failover.max_batch, retry.max_batch, retry.payload)
        assert (1, "mime") == (RetryingTransport.max_batch, RetryingTransport.payload)
        assert 7 == RoundRobinTransport([MemoryTransport(), _Small()]).max_batch


class _Small(MemoryTransport):
    """A plugin-style transport with a plain class attribute."""

    max_batch = 7
