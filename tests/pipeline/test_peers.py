"""The Sender against real peers on loopback: SMTP servers (aiosmtpd and scripted fault
servers) and the local Postmark API peer."""

from __future__ import annotations

import email
import email.policy
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from mailscale.message import Envelope
from mailscale.pipeline import (
    DeliverySchedule,
    Event,
    EventKind,
    Route,
    RouteRule,
    Sender,
)
from mailscale.shaping import Limit, Shaper
from mailscale.signing import DKIMSigner, DKIMVerifier, dns_record, generate_key
from peers.esp_base import ESPPeer, Reply
from peers.postmark_peer import PostmarkPeer
from peers.smtp_peer import FaultyServer, SMTPPeer, free_port, start_peer

from .conftest import Clock
from .helpers import envelope, of_kind

SCHEDULE = DeliverySchedule(first=60, factor=2, max_interval=3600, max_age=86400)


@pytest.fixture
def smtp_peer() -> Iterator[SMTPPeer]:
    peer = start_peer()
    yield peer
    peer.stop()


def smtp(port: int, timeout: float = 5.0) -> str:
    """The URL of a plaintext SMTP relay on loopback (the Sender owns and closes it)."""
    return f"smtp://127.0.0.1:{port}?tls=none&timeout={timeout}"


def message_id_of(content: bytes) -> str:
    msg = email.message_from_bytes(content, policy=email.policy.default)
    return str(msg["Message-ID"])


def outcomes(events: list[Event]) -> dict[str, set[tuple[str, str]]]:
    """(kind, recipient) pairs per message id, for every outcome event."""
    out: dict[str, set[tuple[str, str]]] = {}
    for e in events:
        if e.kind is not EventKind.QUEUED:
            out.setdefault(e.id, set()).update((e.kind.value, r) for r in e.recipients)
    return out


class TestFaults:
    """Every message ends accepted, rescheduled or rejected with its reason, and nothing
    is reported accepted that the server did not accept."""

    def _run(
        self, clock: Clock, transport: str, envs: list[Envelope]
    ) -> tuple[Sender, list[Event], list[str]]:
        events: list[Event] = []
        sender = Sender(transport, clock=clock, retry=SCHEDULE, on_event=events.append)
        ids = sender.submit(envs)
        assert sender.drain(timeout=120)
        return sender, events, ids

    def test_451_some_recipients_550_others(self, clock: Clock, smtp_peer: SMTPPeer) -> None:
        envs = [
            envelope(i, (f"ok{i}@a.example", "defer@b.example", "reject@c.example"))
            for i in range(10)
        ] + [envelope(99, ("defer@b.example",)), envelope(98, ("reject@c.example",))]
        sender, events, ids = self._run(clock, smtp(smtp_peer.port), envs)
        got = outcomes(events)
        assert set(ids) == set(got)
        for i, mid in enumerate(ids[:10]):
            assert {
                ("sent", f"ok{i}@a.example"),
                ("deferred", "defer@b.example"),
                ("bounced", "reject@c.example"),
            } == got[mid]
        assert {("deferred", "defer@b.example")} == got[ids[10]]
        assert {("bounced", "reject@c.example")} == got[ids[11]]
        bounced = of_kind(events, EventKind.BOUNCED)
        assert {(550, "5.1.1")} == {(e.code, e.enhanced) for e in bounced}
        assert {clock.now + 60} == {e.retry_at for e in of_kind(events, EventKind.DEFERRED)}
        # What was reported accepted is exactly what the server took.
        received = {
            (message_id_of(r.content), rcpt) for r in smtp_peer.received for rcpt in r.rcpt_tos
        }
        reported = {
            (e.message_id, rcpt) for e in of_kind(events, EventKind.SENT) for rcpt in e.recipients
        }
        assert received == reported
        assert 11 == sender.outbox.stats().depth  # the deferred recipients wait, alone
        # On the next attempt the server takes the deferred recipient: it alone is sent.
        smtp_peer.handler.rcpt_reply = "250 2.1.5 Ok"
        clock.advance(60)
        sender.drain(timeout=120)
        later = smtp_peer.received[10:]
        assert 11 == len(later)
        assert {("defer@b.example",)} == {r.rcpt_tos for r in later}
        assert 0 == sender.outbox.stats().depth
        sender.close()

    def test_421_on_connect(self, clock: Clock) -> None:
        with FaultyServer(greeting="421 4.3.2 Too busy, try again later").running() as server:
            sender, events, ids = self._run(
                clock, smtp(server.port), [envelope(i) for i in range(5)]
            )
        failed = of_kind(events, EventKind.FAILED)
        assert ids == [e.id for e in failed]
        assert all("421" in e.text for e in failed)
        assert [] == of_kind(events, EventKind.SENT)
        assert (5, clock.now + 60) == (sender.outbox.stats().depth, sender.outbox.next_due())
        sender.close()

    def test_drop_mid_data(self, clock: Clock) -> None:
        with FaultyServer(drop_at="message", drop_after=20).running() as server:
            sender, events, ids = self._run(
                clock, smtp(server.port), [envelope(i) for i in range(3)]
            )
        deferred = of_kind(events, EventKind.DEFERRED)
        assert ids == [e.id for e in deferred]
        assert all("connection lost" in e.text for e in deferred)
        assert [] == of_kind(events, EventKind.SENT)
        assert 3 == sender.outbox.stats().depth
        # The whole message had gone: retried once at most, and the store knows why.
        clock.advance(60)
        leases = sender.outbox.lease(3, visibility=60)
        assert {True} == {x.last_reason.startswith("possibly delivered: ") for x in leases}
        sender.close()

    @pytest.mark.parametrize("stall_at", ["greeting", "final dot"])
    def test_stall_past_the_timeout(self, clock: Clock, stall_at: str) -> None:
        with FaultyServer(stall_at=stall_at).running() as server:
            sender, events, ids = self._run(
                clock, smtp(server.port, timeout=0.3), [envelope(i) for i in range(2)]
            )
        retried = of_kind(events, EventKind.FAILED) + of_kind(events, EventKind.DEFERRED)
        assert set(ids) == {e.id for e in retried}
        assert [] == of_kind(events, EventKind.SENT)
        assert 2 == sender.outbox.stats().depth
        sender.close()


@pytest.fixture
def arrival_server(tmp_path: Path) -> Iterator[tuple[int, Path]]:
    """An SMTP server in a child process logging each arrival (monotonic time, recipient)."""
    port = free_port()
    log = tmp_path / "arrivals.log"
    proc = subprocess.Popen(
        [sys.executable, str(Path(__file__).with_name("arrival_server.py")), str(port), str(log)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None and "ready" == proc.stdout.readline().strip()
        yield port, log
    finally:
        proc.kill()
        proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()


def busiest_second(times: list[float]) -> int:
    """The most arrivals in any closed window of one second."""
    times = sorted(times)
    busiest = j = 0
    for i, start in enumerate(times):
        while j < len(times) and times[j] <= start + 1.0:
            j += 1
        busiest = max(busiest, j - i)
    return busiest


@pytest.mark.slow
def test_domain_limit_holds_in_the_arrival_log(arrival_server: tuple[int, Path]) -> None:
    """A shaper of 100/s on a destination domain: no 1-second window of the server's
    arrival log holds more than 100 messages for it (the other domain is not held back)."""
    port, log = arrival_server
    # No burst: admissions are spaced evenly, so the transport's jitter (a few ms) cannot
    # bring two bursts' worth into one second of the peer's log. (With the default burst
    # of 3 the admission log still never exceeds 100, but the arrival log can, by one.)
    shaper = Shaper({"domain:limited.example": Limit(100, 1.0, burst=1)}, strict=False)
    with Sender(smtp(port), shaper=shaper, batch_size=50) as sender:
        sender.submit(
            [envelope(i, (f"u{i}@limited.example",)) for i in range(350)]
            + [envelope(i, (f"u{i}@free.example",)) for i in range(100)]
        )
        assert sender.drain(timeout=120)
        metrics = sender.metrics()
    arrivals = [line.split() for line in log.read_text().splitlines()]
    limited = [float(t) for t, rcpt in arrivals if rcpt.endswith("@limited.example")]
    assert (350, 100) == (len(limited), len(arrivals) - len(limited))
    assert busiest_second(limited) <= 100
    # Admitted at the limit: the 350 took at least 2.5 s, and the shaper did the holding back.
    assert max(limited) - min(limited) >= 2.5
    assert metrics.total.refused > 0


class TestHybridRoutes:
    def test_transactional_through_postmark_bulk_through_smtp_signed(
        self, clock: Clock, smtp_peer: SMTPPeer
    ) -> None:
        """Password resets through the Postmark API, the newsletter through SMTP signed with
        DKIM (verified on arrival); a 429 from Postmark throttles and blocks its route key."""
        from mailscale.transports.postmark import PostmarkTransport

        key = generate_key("rsa", 2048)
        signer = DKIMSigner("example.com", "s1", key)
        record = dns_record(key)
        with PostmarkPeer("pm-token-1", senders=("sender@example.com",)) as pm:
            assert isinstance(pm, ESPPeer)
            postmark = PostmarkTransport("pm-token-1", base_url=pm.url)
            shaper = Shaper({"route:postmark": Limit(500, 60.0)}, strict=False, clock=clock)
            events: list[Event] = []
            sender = Sender(
                routes={
                    "postmark": postmark,
                    "mx": Route(transport=smtp(smtp_peer.port), domain_keys=False),
                },
                rule=RouteRule(default="mx", streams={"transactional": "postmark"}),
                signer=signer,
                shaper=shaper,
                clock=clock,
                retry=SCHEDULE,
                on_event=events.append,
            )
            sender.submit(envelope(1, ("reset@example.org",)), priority="transactional")
            sender.submit([envelope(i, (f"n{i}@example.net",)) for i in range(5)], priority="bulk")
            sender.drain(timeout=60)
            assert ["reset@example.org"] == [m["To"] for m in pm.accepted]
            assert 5 == len(smtp_peer.received)
            verifier = DKIMVerifier(key_lookup=lambda name: record)
            assert all(verifier.verify(r.content)[0].ok for r in smtp_peer.received)
            assert {"mx", "postmark"} == set(sender.metrics().routes)
            # A 429 with Retry-After: the route key is blocked that long.
            pm.fail_next(
                1,
                Reply.json(
                    429,
                    {"ErrorCode": 429, "Message": "slow down"},
                    headers=ESPPeer.rate_limited("7"),
                ),
            )
            sender.submit(envelope(2, ("again@example.org",)), priority="transactional")
            sender.drain(timeout=60)
            assert EventKind.DEFERRED is events[-1].kind
            decision = shaper.acquire("route:postmark")
            assert (False, 7.0) == (decision.allowed, round(decision.retry_after, 3))
            sender.close()
            postmark.close()
