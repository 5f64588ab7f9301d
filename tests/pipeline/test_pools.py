"""Routes with a pool of sending IPs: direct-to-MX over a local DNS zone and SMTP peers on
loopback, sent from 127.0.0.6 and 127.0.0.7 (local addresses on Linux loopback)."""

from __future__ import annotations

import datetime as dt
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest

from mailscale.errors import ConfigurationError
from mailscale.pipeline import Event, EventKind, Route, Sender
from mailscale.shaping import IPPool, Limit, Shaper, WarmupSchedule
from peers.dns_server import DNSServer, Zone
from peers.smtp_peer import ScriptedHandler, SMTPPeer, start_peer

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


class _ByIP(ScriptedHandler):
    """Defers every recipient of mail from *slowed* with a rate (4.7.x) answer."""

    def __init__(self, slowed: str) -> None:
        super().__init__()
        self.slowed = slowed

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, rcpt_options: list[str]
    ) -> str:
        if session.peer[0] == self.slowed:
            return "451 4.7.28 Unusual rate of mail from your IP address, try again later"
        return await super().handle_RCPT(server, session, envelope, address, rcpt_options)


def test_a_rate_deferral_throttles_the_sending_ip(clock: Clock, dns_zone: DNSServer) -> None:
    """A receiver deferring mail from one pool IP with 4.7.x slows that IP (the Sender's
    ``ip:ADDRESS`` key and the pool's key for the IP at that domain) and the domain, not
    the pool's other IP."""
    throttled: list[tuple[str, str]] = []

    class Spy(Shaper):
        def throttle(self, key: str, factor: float, duration: float) -> None:
            throttled.append((self.name, key))
            super().throttle(key, factor, duration)

    sender_shaper, pool_shaper = Spy(strict=False, clock=clock), Spy(clock=clock)
    sender_shaper.name, pool_shaper.name = "sender", "pool"
    sender_shaper.set_limit("ip:*", Limit(100, 1.0))
    sender_shaper.set_limit("domain:*", Limit(100, 1.0))
    pool = IPPool(
        [WARMING, WARM],
        per_domain=Limit(1000, 60.0),
        shaper=pool_shaper,
        today=lambda: TODAY,
        clock=clock,
    )
    peer = start_peer(host="127.0.0.1", handler=_ByIP(WARMING))
    route = Route(
        transport=f"mx://?port={peer.port}&tls=none&timeout=5",
        options={"resolver": dns_zone.client()},
        ip_pool=pool,
    )
    sender = Sender(routes={"mx": route}, shaper=sender_shaper, clock=clock, sleep=clock.advance)
    try:
        sender.submit([envelope(i, [f"reader{i}@news.test"]) for i in range(4)])
        assert sender.drain(timeout=60)
        assert 4 == len(peer.received) + sender.metrics().queue_depth  # deferred: retried later
    finally:
        sender.close()
        peer.stop()
    assert {WARM} == {r.peer_ip for r in peer.received}
    assert {
        ("sender", f"ip:{WARMING}"),
        ("pool", f"ipdomain:{WARMING}:news.test"),
        ("sender", "domain:news.test"),
    } == set(throttled)


def test_the_sender_charges_the_chosen_ip(
    clock: Clock, dns_zone: DNSServer, mx_peer: SMTPPeer
) -> None:
    """A pool route's messages are charged on the key of the IP chosen for them
    (``ip:ADDRESS``), the key a deferral throttles: 2 a day from it, the third waits."""
    shaper = Shaper({"ip:*": Limit(2, 86400.0, burst=2)}, strict=False, clock=clock)
    pool = IPPool([WARMING], today=lambda: TODAY, clock=clock)
    route = pool_route(clock, dns_zone, mx_peer.port, pool)
    sender = Sender(routes={"mx": route}, shaper=shaper, clock=clock)
    try:
        sender.submit([envelope(i, [f"reader{i}@news.test"]) for i in range(3)])
        assert 3 == sender.step()
        assert (1, 1) == (sender.metrics().queue_depth, sender.metrics().total.refused)
    finally:
        sender.close()
    assert [WARMING] * 2 == [r.peer_ip for r in mx_peer.received]
