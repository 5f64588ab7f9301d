"""Routes with a pool of sending IPs: direct-to-MX over a local DNS zone and SMTP peers on
loopback, sent from 127.0.0.6 and 127.0.0.7 (local addresses on Linux loopback)."""

from __future__ import annotations

import datetime as dt
from collections import Counter
from collections.abc import Iterator

import pytest

from mailscale.errors import ConfigurationError
from mailscale.pipeline import Event, EventKind, Route, Sender
from mailscale.shaping import IPPool, Limit, WarmupSchedule
from peers.dns_server import DNSServer, Zone
from peers.smtp_peer import SMTPPeer, start_peer

from .conftest import Clock
from .helpers import envelope, of_kind

ZONE = """
news.test.      300 IN MX 10 mx.news.test.
mx.news.test.   300 IN A  127.0.0.1
"""
TODAY = dt.date(2027, 1, 15)
WARMING, WARM = "127.0.0.6", "127.0.0.7"


@pytest.fixture
def dns_zone() -> Iterator[DNSServer]:
    server = DNSServer(Zone.from_text(ZONE)).start()
    yield server
    server.stop()


@pytest.fixture
def mx_peer() -> Iterator[SMTPPeer]:
    peer = start_peer(host="127.0.0.1")
    yield peer
    peer.stop()


def pool_route(clock: Clock, dns_zone: DNSServer, port: int, pool: IPPool) -> Route:
    return Route(
        transport=f"mx://?port={port}&tls=none&timeout=5",
        options={"resolver": dns_zone.client()},
        ip_pool=pool,
        domain_keys=False,
    )


def deliver_for(sender: Sender, clock: Clock, hours: int) -> None:
    """Drain every 20 minutes for *hours* hours of the test clock."""
    for _ in range(hours * 3):
        assert sender.drain(timeout=60)  # what waits on the pool does not hold drain
        clock.advance(1200.0)


def test_warming_ip_stays_within_its_budget(
    clock: Clock, dns_zone: DNSServer, mx_peer: SMTPPeer
) -> None:
    """One IP warming up with 3 a day, the other warm with 5 a day for the domain: on the
    first day 8 of 12 messages arrive (3 and 5 by source address); the other 4 wait in the
    outbox without an attempt and
    arrive on the next days."""
    pool = IPPool(
        [WARM],
        schedule=WarmupSchedule(daily=(3,), spread_hours=1),
        per_domain=Limit(5, 86400.0, burst=5),
        today=lambda: TODAY,
        clock=clock,
    )
    pool.add(WARMING, warm_since=TODAY)
    events: list[Event] = []
    route = pool_route(clock, dns_zone, mx_peer.port, pool)
    sender = Sender(routes={"mx": route}, clock=clock, on_event=events.append)
    try:
        sender.submit([envelope(i, [f"reader{i}@news.test"]) for i in range(12)])
        deliver_for(sender, clock, hours=6)
        first_day = Counter(r.peer_ip for r in mx_peer.received)
        assert {WARMING: 3, WARM: 5} == dict(first_day)
        assert 4 == sender.metrics().queue_depth
        assert [] == [e for e in events if e.kind not in (EventKind.QUEUED, EventKind.SENT)]

        # The budgets refill over the following days (a rolling day, paced).
        seen = 8
        for _day in range(5):
            clock.advance(18 * 3600.0)
            deliver_for(sender, clock, hours=6)
            day = Counter(r.peer_ip for r in mx_peer.received[seen:])
            assert day[WARMING] <= 3 and day[WARM] <= 5, day
            seen = len(mx_peer.received)
            if not sender.metrics().queue_depth:
                break
    finally:
        sender.close()
    assert 0 == sender.metrics().queue_depth
    assert 12 == len(mx_peer.received)
    assert 12 == len({r.content for r in mx_peer.received})  # each message once
    sent = of_kind(events, EventKind.SENT)
    assert 12 == len(sent)
    assert {1} == {e.attempts for e in sent}  # waiting on the pool was never an attempt


def test_budget_charged_once_per_message(
    clock: Clock, dns_zone: DNSServer, mx_peer: SMTPPeer
) -> None:
    """A pool of one IP with exactly 4 a day sends 4 of 4 messages: the transport does not
    charge the pool a second time."""
    pool = IPPool(
        [WARMING], per_domain=Limit(4, 86400.0, burst=4), today=lambda: TODAY, clock=clock
    )
    sender = Sender(routes={"mx": pool_route(clock, dns_zone, mx_peer.port, pool)}, clock=clock)
    try:
        sender.submit([envelope(i, [f"reader{i}@news.test"]) for i in range(5)])
        assert sender.drain(timeout=60)
        assert 1 == sender.metrics().queue_depth
    finally:
        sender.close()
    assert [WARMING] * 4 == [r.peer_ip for r in mx_peer.received]


@pytest.mark.parametrize(
    ("route", "message"),
    [
        (Route(transport="mx://?source=127.0.0.6", ip_pool=IPPool([WARM])), "source address"),
        (
            Route(transport="mx://", ip_pool=IPPool([WARM]), source_ip=WARM),
            "source_ip or ip_pool",
        ),
        (Route(transport="mx://", ip_pool=object()), "choose"),
        (
            Route(transport="mx://", ip_pool=IPPool([WARM]), options={"ip_pool": IPPool([])}),
            "not from options",
        ),
    ],
)
def test_pool_route_misconfigured(route: Route, message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        Sender(routes={"mx": route})


def test_pool_route_needs_a_url() -> None:
    from mailscale.transports.dev import MemoryTransport

    with pytest.raises(ConfigurationError, match="as a URL"):
        Sender(routes={"mx": Route(transport=MemoryTransport(), ip_pool=IPPool([WARM]))})
