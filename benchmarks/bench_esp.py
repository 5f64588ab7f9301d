"""HTTP provider transports: messages/s to the loopback SendGrid peer, beside the peer alone.

The reference posts the very JSON body mailscale would send with a bare
``httpx.Client`` (no message parsing, no payload building, no result
mapping), so the ratio isolates the transport layer's cost over the HTTP
round trip and the peer's own work.

Run: ``python -m pytest benchmarks/bench_esp.py -m gate -s --benchmark-disable``
(the ratio gate and the figures for docs/performance.md).
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from mailscale.message import Envelope
from mailscale.transports.mailgun import MailgunTransport
from mailscale.transports.sendgrid import SendGridTransport

from ._ratio import best_rate

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from peers.mailgun_peer import MailgunPeer
from peers.sendgrid_peer import SendGridPeer

KEY = "SG.bench-key"
BATCH = 500

MESSAGE = (
    b"From: News <news@mail.example.org>\r\n"
    b"To: {rcpt}\r\n"
    b"Subject: Your weekly digest\r\n"
    b"Message-ID: <{n}@mail.example.org>\r\n"
    b"MIME-Version: 1.0\r\n"
    b"Content-Type: text/plain; charset=utf-8\r\n"
    b"\r\n" + b"A line of the weekly digest, long enough to look like mail.\r\n" * 30
)


def _batch(n: int = BATCH) -> list[Envelope]:
    out = []
    for i in range(n):
        rcpt = f"user{i}@example.com"
        raw = MESSAGE.replace(b"{rcpt}", rcpt.encode()).replace(b"{n}", str(i).encode())
        out.append(Envelope(sender="news@mail.example.org", recipients=[rcpt], message=raw,
                            metadata={"user": str(i)}))
    return out


@pytest.fixture(scope="module")
def peer() -> Iterator[SendGridPeer]:
    with SendGridPeer(KEY) as p:
        yield p  # type: ignore[misc]


def _reference_bodies(transport: SendGridTransport, batch: list[Envelope]) -> list[bytes]:
    calls, _ = transport._plan(batch)
    return [json.dumps(c.request["json"]).encode() for c in calls]


def measure(peer: SendGridPeer, batch_size: int, rounds: int = 3) -> dict[str, float]:
    """Messages/s through mailscale and through bare httpx with the same bodies."""
    batch = _batch(batch_size)
    with SendGridTransport(KEY, base_url=peer.url) as t, httpx.Client(
        base_url=peer.url, headers={"Authorization": f"Bearer {KEY}",
                                    "Content-Type": "application/json"}) as raw:
        bodies = _reference_bodies(t, batch)

        def via_mailscale() -> None:
            results = t.send(batch)
            assert results[-1].accepted

        def via_httpx() -> None:
            for body in bodies:
                assert 202 == raw.post("/v3/mail/send", content=body).status_code

        kw = {"ops": len(batch), "rounds": rounds, "min_time": 0.1}
        ms1 = best_rate(via_mailscale, **kw)  # type: ignore[arg-type]
        ref = best_rate(via_httpx, **kw)  # type: ignore[arg-type]
        ms2 = best_rate(via_mailscale, **kw)  # type: ignore[arg-type]
    peer.requests.clear()
    peer.accepted.clear()
    ms = max(ms1, ms2)
    return {"mailscale": ms, "reference": ref, "ratio": ms / ref,
            "overhead_us": (1 / ms - 1 / ref) * 1e6, "requests": len(bodies)}


@pytest.mark.gate
def test_gate_sendgrid_batched_vs_bare_httpx(peer: SendGridPeer) -> None:
    """Batched SendGrid sends keep a fair share of the bare-HTTP rate to the same peer."""
    m = measure(peer, BATCH)
    print(f"\nsendgrid, {BATCH} envelopes per send (1 request): "
          f"mailscale {m['mailscale']:.0f} msg/s, "
          f"bare httpx {m['reference']:.0f} msg/s, ratio {m['ratio']:.2f}, "
          f"transport overhead {m['overhead_us']:.0f} us/message")
    one = measure(peer, 1, rounds=2)
    print(f"sendgrid, 1 envelope per send: mailscale {one['mailscale']:.0f} msg/s, "
          f"bare httpx {one['reference']:.0f} msg/s, ratio {one['ratio']:.2f}")
    print(f"batching gain (500 per request / 1 per request): "
          f"{m['mailscale'] / one['mailscale']:.1f}x")
    assert 1 == m["requests"]
    assert m["ratio"] >= 0.05
    assert m["mailscale"] > 5 * one["mailscale"]


MG_KEY = "key-bench"
LATENCY = 0.02


@pytest.mark.gate
def test_gate_concurrent_calls_hide_provider_latency() -> None:
    """With 20 ms of provider latency, concurrent Mailgun calls beat one at a time (target 4x)."""
    batch = _batch(8)
    with MailgunPeer(MG_KEY, ("mail.example.org",)) as peer:
        peer.delay = LATENCY  # type: ignore[attr-defined]
        url = peer.url  # type: ignore[attr-defined]
        kw = {"ops": len(batch), "rounds": 2, "min_time": 0.05}
        rates = {}
        for n in (1, 4):
            with MailgunTransport(MG_KEY, "mail.example.org", base_url=url, concurrency=n) as t:
                rates[n] = best_rate(lambda t=t: t.send(batch), **kw)  # type: ignore[arg-type]

        async def session() -> float:
            async with MailgunTransport(MG_KEY, "mail.example.org", base_url=url,
                                        concurrency=8) as t:
                await t.send_async(batch)  # open the pooled connections
                best = float("inf")
                for _ in range(4):
                    start = asyncio.get_running_loop().time()
                    await t.send_async(batch)
                    best = min(best, asyncio.get_running_loop().time() - start)
                return len(batch) / best

        rates[8] = asyncio.run(session())
    print(f"\nmailgun, {LATENCY * 1000:.0f} ms provider latency, {len(batch)} envelopes per send: "
          f"concurrency 1: {rates[1]:.0f} msg/s, 4 threads: {rates[4]:.0f} msg/s "
          f"({rates[4] / rates[1]:.1f}x), send_async with 8 tasks: {rates[8]:.0f} msg/s "
          f"({rates[8] / rates[1]:.1f}x)")
    assert rates[4] >= 2 * rates[1]
    assert rates[8] >= 1.5 * rates[1]


def test_sendgrid_batched(benchmark: pytest.FixtureRequest, peer: SendGridPeer) -> None:
    batch = _batch()
    with SendGridTransport(KEY, base_url=peer.url) as t:
        results = benchmark(t.send, batch)  # type: ignore[operator]
    assert all(r.accepted for r in results)
    peer.requests.clear()
    peer.accepted.clear()
