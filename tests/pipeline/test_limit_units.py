"""The Sender charges each limit in its unit: provider requests (SendGrid, Mailgun,
Postmark), messages (destination domains, IPs) or recipients (Amazon SES), checked on
what the peers receive."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from mailscale.message import Envelope, SendResult
from mailscale.pipeline import Sender
from mailscale.pipeline.metrics import quantile
from mailscale.shaping import Shaper, presets
from mailscale.transports import MemoryTransport
from mailscale.transports.smtp import SMTPTransport
from peers.esp_base import Recorded, Reply
from peers.sendgrid_peer import SendGridPeer
from peers.smtp_peer import SMTPPeer, start_peer

from .conftest import Clock
from .helpers import envelope
from .test_peers import busiest_second

KEY = "SG.units-key-0123456789"


def issue(number: int, reader: int) -> Envelope:
    """A newsletter issue to one reader: the issues' bodies differ, the readers' do not."""
    head = (
        f"From: news@example.com\r\nTo: reader{reader}@example.org\r\nSubject: issue {number}\r\n"
    )
    return Envelope(
        sender="news@example.com",
        recipients=(f"reader{reader}@example.org",),
        message=(head + f"\r\nThis is issue {number}.\r\n").encode(),
    )


def sendgrid_url(base_url: str) -> str:
    return f"sendgrid://{KEY}@default?base_url={base_url}"


class TimedSendGrid(SendGridPeer):
    """The SendGrid peer noting, per request, the sender's clock and the messages it held."""

    def __init__(self, clock: Clock) -> None:
        super().__init__(KEY)
        self.clock = clock
        self.arrivals: list[tuple[float, int]] = []

    def handle(self, req: Recorded) -> Reply:
        self.arrivals.append((self.clock(), len(req.json()["personalizations"])))
        return super().handle(req)


class TestPerRequest:
    def test_a_batch_request_is_charged_once(self, clock: Clock) -> None:
        """SendGrid's preset counts requests: six issues of ten messages each go in six
        requests (one per issue, ten personalizations each), paced at the preset's two
        requests a second, where charging per message would have sent one message
        every half second."""
        shaper = Shaper({"route:default": presets.sendgrid(2, 1.0, burst=1)}, clock=clock)
        with TimedSendGrid(clock) as peer:
            assert isinstance(peer, TimedSendGrid)
            sender = Sender(sendgrid_url(peer.url), shaper=shaper, clock=clock, sleep=clock.advance)
            try:
                start = clock.now
                sender.submit([issue(n, r) for n in range(6) for r in range(10)])
                assert sender.drain(timeout=60)
                metrics = sender.metrics()
            finally:
                sender.close()
        assert [10] * 6 == [n for _, n in peer.arrivals]
        times = [t - start for t, _ in peer.arrivals]
        assert [0.0, 0.5, 1.0, 1.5, 2.0, 2.5] == pytest.approx(times, abs=0.01)
        assert busiest_second(times) <= 2
        assert (60, 6) == (metrics.total.sent, metrics.total.responses)

    def test_messages_in_no_request_are_not_charged(self, clock: Clock) -> None:
        """A message the transport refuses before any request (over SendGrid's recipient
        limit) costs no request: the other message goes at once."""
        shaper = Shaper({"route:default": presets.sendgrid(1, 60.0, burst=1)}, clock=clock)
        crowded = envelope(1, [f"r{i}@example.org" for i in range(1001)])
        with TimedSendGrid(clock) as peer:
            assert isinstance(peer, TimedSendGrid)
            sender = Sender(sendgrid_url(peer.url), shaper=shaper, clock=clock)
            try:
                sender.submit([crowded, issue(1, 1)])
                assert 2 == sender.step()
                metrics = sender.metrics()
            finally:
                sender.close()
        assert [1] == [n for _, n in peer.arrivals]
        assert (1, 1, 0) == (metrics.total.sent, metrics.total.bounced, metrics.total.refused)


@pytest.fixture
def sendgrid_log(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """The SendGrid peer in a child process, logging each request's arrival."""
    log = tmp_path / "requests.log"
    proc = subprocess.Popen(
        [sys.executable, str(Path(__file__).with_name("esp_arrival_server.py")), KEY, str(log)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        ready, url = proc.stdout.readline().split()
        assert "ready" == ready
        yield url, log
    finally:
        proc.kill()
        proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()


@pytest.mark.slow
def test_request_limit_holds_in_the_arrival_log(sendgrid_log: tuple[str, Path]) -> None:
    """50 requests a second to SendGrid: no 1-second window of the provider's arrival log
    holds more than 50 requests, while it holds far more than 50 messages (one request
    carries a whole issue)."""
    url, log = sendgrid_log
    # No burst: admissions are spaced evenly, each a little later than the limit allows,
    # and over 50 of them that slack absorbs the transport's jitter (a few ms).
    shaper = Shaper({"route:default": presets.sendgrid(50, 1.0, burst=1)})
    with Sender(sendgrid_url(url), shaper=shaper, batch_size=400) as sender:
        # The transport's first call opens its client and connection (~0.1 s here): it
        # would reach the peer late, next to the following request. Open it first.
        sender.submit(issue(99, 0))
        assert sender.drain(timeout=60)
        time.sleep(1.1)
        sender.submit([issue(n, 0) for n in range(1, 121)] + [issue(0, r) for r in range(200)])
        assert sender.drain(timeout=120)
        metrics = sender.metrics()
    arrivals = [line.split() for line in log.read_text().splitlines()]
    assert {"202"} == {status for _, _, status in arrivals}
    times = [float(t) for t, _, _ in arrivals]
    assert (122, 321) == (len(arrivals), sum(int(n) for _, n, _ in arrivals))
    assert busiest_second(times) <= 50
    by_time = sorted((float(t), int(n)) for t, n, _ in arrivals)
    most = max(sum(n for u, n in by_time if t <= u <= t + 1.0) for t, _ in by_time)
    assert most > 50
    assert metrics.total.refused > 0  # the shaper did the holding back


class TestPerRecipient:
    def test_ses_counts_recipients(self, clock: Clock) -> None:
        """SES's send rate counts recipients: at 4 a second (5 with a burst of 2), messages
        to 2 recipients go two a second; one to 6 recipients (more than the burst) goes
        when the burst is there, and the next message waits for all six."""
        rate = presets.ses(5, 10_000, rate_burst=2).rate
        shaper = Shaper({"route:default": rate}, clock=clock)
        sent: list[tuple[float, int]] = []

        def outcome(env: Envelope) -> SendResult | None:
            sent.append((clock.now, len(env.recipients)))
            return None

        sender = Sender(
            MemoryTransport(outcome=outcome), shaper=shaper, clock=clock, sleep=clock.advance
        )
        try:
            start = clock.now
            pair = ("a@example.org", "b@example.org")
            sender.submit([envelope(i, pair) for i in range(4)])
            assert sender.drain(timeout=60)
            sender.submit(envelope(9, [f"r{i}@example.org" for i in range(6)]))
            assert sender.drain(timeout=60)
            sender.submit(envelope(10, pair))
            assert sender.drain(timeout=60)
        finally:
            sender.close()
        times = [t - start for t, _ in sent]
        assert [2, 2, 2, 2, 6, 2] == [n for _, n in sent]
        # A pair every half second; the six go when the last pair's charge has run out,
        # and the next pair 1.5 s later, when theirs has.
        assert [0.0, 0.5, 1.0, 1.5, 2.0, 3.5] == pytest.approx(times, abs=0.01)


class Recording(SMTPTransport):
    """The SMTP transport keeping every result it returned."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.results: list[SendResult] = []

    def send(self, batch: Any) -> list[SendResult]:
        results = super().send(batch)
        self.results.extend(results)
        return results


@pytest.fixture
def smtp_peer() -> Iterator[SMTPPeer]:
    peer = start_peer()
    yield peer
    peer.stop()


class TestResponseTime:
    def test_smtp_is_timed_per_transaction(self, clock: Clock, smtp_peer: SMTPPeer) -> None:
        """One pooled SMTP call of 40 messages gives 40 response times (MAIL FROM to the
        answer after the final dot), not one for the whole call: the KPI is their p95."""
        transport = Recording("127.0.0.1", smtp_peer.port, tls="none", timeout=5)
        sender = Sender(transport, clock=clock)
        try:
            sender.submit([envelope(i) for i in range(40)])
            assert 40 == sender.step()
            metrics = sender.metrics()
            kpis = sender.kpis()
        finally:
            sender.close()
            transport.close()
        assert 40 == len(smtp_peer.received)
        assert (1, 40) == (metrics.total.calls, metrics.total.responses)
        latencies = [r.latency for r in transport.results]
        assert all(t > 0 for t in latencies)
        assert quantile(latencies, 0.95) == kpis["api_response_seconds"]

    def test_http_is_timed_per_request(self, clock: Clock) -> None:
        """Three SendGrid requests carrying 30 messages are three response times."""
        with TimedSendGrid(clock) as peer:
            sender = Sender(sendgrid_url(peer.url), clock=clock)
            try:
                sender.submit([issue(n, r) for n in range(3) for r in range(10)])
                assert 30 == sender.step()
                metrics = sender.metrics()
            finally:
                sender.close()
        assert (1, 3, 3) == (metrics.total.calls, metrics.total.responses, len(peer.requests))
