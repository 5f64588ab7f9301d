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
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from mailscale.message import Envelope
from mailscale.transports.mailgun import MailgunTransport
from mailscale.transports.sendgrid import SendGridTransport

from ._ratio import gates, ratio

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
        out.append(
            Envelope(
                sender="news@mail.example.org",
                recipients=[rcpt],
                message=raw,
                metadata={"user": str(i)},
            )
        )
    return out


@pytest.fixture(scope="module")
def peer() -> Iterator[SendGridPeer]:
    with SendGridPeer(KEY) as p:
        yield p  # type: ignore[misc]


def _reference_bodies(transport: SendGridTransport, batch: list[Envelope]) -> list[bytes]:
    calls, _ = transport._plan(batch)
    return [json.dumps(c.request["json"]).encode() for c in calls]


def sendgrid_ratio(peer: SendGridPeer, batch_size: int, rounds: int = 5) -> float:
    """mailscale over bare httpx posting the same bodies to the same peer (wall clock)."""
    batch = _batch(batch_size)
    with (
        SendGridTransport(KEY, base_url=peer.url) as t,
        httpx.Client(
            base_url=peer.url,
            headers={"Authorization": f"Bearer {KEY}", "Content-Type": "application/json"},
        ) as raw,
    ):
        bodies = _reference_bodies(t, batch)
        assert (batch_size + 999) // 1000 == len(bodies)

        def via_mailscale() -> None:
            results = t.send(batch)
            assert results[-1].accepted

        def via_httpx() -> None:
            for body in bodies:
                assert 202 == raw.post("/v3/mail/send", content=body).status_code

        r = ratio(via_mailscale, via_httpx, rounds=rounds, min_time=0.05, clock="wall")
    peer.requests.clear()
    peer.accepted.clear()
    return r


@pytest.mark.gate
def test_gate_sendgrid_batched_vs_bare_httpx(peer: SendGridPeer) -> None:
    """SendGrid sends keep a share of the bare-HTTP rate to the same peer, batched
    (500 envelopes, one request) and one envelope per send (one request each)."""
    batched = sendgrid_ratio(peer, BATCH)
    single = sendgrid_ratio(peer, 1)
    gates(
        (f"sendgrid {BATCH} per send vs bare httpx", batched, 0.05),
        ("sendgrid 1 per send vs bare httpx", single, 0.03),
    )


MG_KEY = "key-bench"
LATENCY = 0.02


@pytest.mark.gate
def test_gate_concurrent_calls_hide_provider_latency() -> None:
    """With 20 ms of provider latency, concurrent Mailgun calls beat one at a time
    (target 4x), and keep pace with bare httpx making the same calls as concurrently."""
    batch = _batch(8)
    with MailgunPeer(MG_KEY, ("mail.example.org",)) as peer:
        peer.delay = LATENCY  # type: ignore[attr-defined]
        url = peer.url  # type: ignore[attr-defined]
        kw: dict[str, object] = {"rounds": 5, "min_time": 0.05, "clock": "wall"}
        with (
            MailgunTransport(MG_KEY, "mail.example.org", base_url=url, concurrency=1) as one,
            MailgunTransport(MG_KEY, "mail.example.org", base_url=url, concurrency=4) as four,
        ):
            calls, _ = four._plan(batch)
            assert len(batch) == len(calls)
            pool = ThreadPoolExecutor(4)
            with httpx.Client(**four._client_kwargs()) as raw:

                def post(call: object) -> None:
                    c = call  # a _Call: method, path, request
                    response = raw.request(c.method, c.path, **c.request)  # type: ignore[attr-defined]
                    assert 200 == response.status_code

                def bare_four() -> None:
                    list(pool.map(post, calls))

                r_self = ratio(lambda: four.send(batch), lambda: one.send(batch), **kw)  # type: ignore[arg-type]
                r_four = ratio(lambda: four.send(batch), bare_four, **kw)  # type: ignore[arg-type]
            pool.shutdown()

        async def session() -> float:
            async with (
                MailgunTransport(MG_KEY, "mail.example.org", base_url=url, concurrency=8) as t,
                httpx.AsyncClient(**t._client_kwargs()) as raw,
            ):
                await t.send_async(batch)  # open the pooled connections
                calls, _ = t._plan(batch)

                async def bare() -> None:
                    responses = await asyncio.gather(
                        *(raw.request(c.method, c.path, **c.request) for c in calls)
                    )
                    assert all(200 == x.status_code for x in responses)

                await bare()
                loop = asyncio.get_running_loop()
                out = []
                for i in range(7):
                    sides = [t.send_async(batch), bare()]
                    times = []
                    for coro in sides if i % 2 == 0 else sides[::-1]:
                        start = loop.time()
                        await coro
                        times.append(loop.time() - start)
                    t_ours, t_bare = times if i % 2 == 0 else times[::-1]
                    out.append(t_bare / t_ours)
                return sorted(out)[len(out) // 2]

        r_async = asyncio.run(session())
    gates(
        ("mailgun concurrency 4 vs concurrency 1", r_self, 1.43),
        ("mailgun concurrency 4 vs bare httpx on 4 threads", r_four, 0.34),
        ("mailgun send_async 8 tasks vs bare httpx.AsyncClient", r_async, 0.43),
    )


def test_sendgrid_batched(benchmark: pytest.FixtureRequest, peer: SendGridPeer) -> None:
    batch = _batch()
    with SendGridTransport(KEY, base_url=peer.url) as t:
        results = benchmark(t.send, batch)  # type: ignore[operator]
    assert all(r.accepted for r in results)
    peer.requests.clear()
    peer.accepted.clear()
