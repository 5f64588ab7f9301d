"""Direct-to-MX delivery against aiosmtpd peers and a local DNS server on loopback."""

from __future__ import annotations

import contextlib
import ssl
from collections.abc import Callable, Iterator

import attrs
import pytest
from structlog.testing import capture_logs
from transport_helpers import make_envelope

from mailscale.errors import ConfigurationError
from mailscale.message import SendResult, SendStatus
from mailscale.transports.mx import MXTransport
from mailscale.transports.registry import transport_from_url
from peers.dns_server import DNSServer, Zone
from peers.smtp_peer import FaultyServer, SMTPPeer, free_port, start_peer

ZONE = """
example.test.      300 IN MX 10 mx1.example.test.
mx1.example.test.  300 IN A  127.0.0.1
pref.test.         300 IN MX 10 backup.pref.test.
pref.test.         300 IN MX 5  primary.pref.test.
primary.pref.test. 300 IN A  127.0.0.1
backup.pref.test.  300 IN A  127.0.0.2
down.test.         300 IN MX 5  dead.down.test.
down.test.         300 IN MX 10 live.down.test.
dead.down.test.    300 IN A  127.0.0.3
live.down.test.    300 IN A  127.0.0.2
implicit.test.     300 IN A  127.0.0.1
nullmx.test.       300 IN MX 0 .
tls.test.          300 IN MX 10 mx.tls.test.
mx.tls.test.       300 IN A  127.0.0.4
gone.test.         300 IN MX 10 dead.gone.test.
dead.gone.test.    300 IN A  127.0.0.3
"""


@attrs.define
class World:
    dns: DNSServer
    port: int
    primary: SMTPPeer  # 127.0.0.1
    backup: SMTPPeer  # 127.0.0.2
    secure: SMTPPeer  # 127.0.0.4, STARTTLS with a certificate for mx.tls.test

    def mx(self, **kw: object) -> MXTransport:
        kw.setdefault("timeout", 5)
        return MXTransport(resolver=self.dns.client(), port=self.port, **kw)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def zone() -> Iterator[DNSServer]:
    """The DNS server for the test domains, shared by the module."""
    server = DNSServer(Zone.from_text(ZONE).fail("servfail.test")).start()
    yield server
    server.stop()


@pytest.fixture
def world(server_tls: ssl.SSLContext, zone: DNSServer) -> Iterator[World]:
    """DNS for the test domains plus SMTP peers on three loopback addresses, one port."""
    zone.queries.clear()
    port = free_port("127.0.0.1")
    peers = [
        start_peer(host="127.0.0.1", port=port),
        start_peer(host="127.0.0.2", port=port),
        start_peer(host="127.0.0.4", port=port, starttls=server_tls),
    ]
    world = World(zone, port, *peers)
    try:
        yield world
    finally:
        for p in (world.primary, world.backup, world.secure):  # a test may replace one
            p.stop()


class TestRouting:
    def test_delivers_to_the_mx_host_byte_exact(self, world: World) -> None:
        """The domain's exchanger receives exactly the message bytes."""
        env = make_envelope("user@example.test")
        with world.mx() as t:
            [result] = t.send([env])
        assert SendStatus.ACCEPTED == result.status
        assert [env.to_bytes()] == [r.content for r in world.primary.received]

    def test_preference_order(self, world: World) -> None:
        """The lowest preference value is tried first, whatever the DNS order."""
        with world.mx() as t:
            assert t.send([make_envelope("user@pref.test")])[0].accepted
            routes = t.routes("pref.test")
        assert (1, 0) == (len(world.primary.received), len(world.backup.received))
        assert [("primary.pref.test", 5), ("backup.pref.test", 10)] == [
            (r.host, r.preference)
            for r in routes  # type: ignore[union-attr]
        ]

    def test_unreachable_mx_falls_through_to_the_next(self, world: World) -> None:
        """A refused connection to the preferred exchanger moves on to the next one."""
        with world.mx() as t:
            [result] = t.send([make_envelope("user@down.test")])
        assert result.accepted
        assert 1 == len(world.backup.received)

    def test_dead_exchanger_is_skipped_for_a_while(self, world: World) -> None:
        """An address that refused is skipped for down_for seconds, then tried again."""
        now = [100.0]
        with world.mx(down_for=60, clock=lambda: now[0]) as t:
            t.send([make_envelope("a@down.test")])
            assert ["127.0.0.3"] == t.down_addresses()  # down until 160
            now[0] = 130.0
            [second] = t.send([make_envelope("b@down.test")])
            now[0] = 161.0
            # Not tried at 130 (that would have pushed its bench to 190): free again now.
            assert [] == t.down_addresses()
            [only_dead] = t.send([make_envelope("c@gone.test")])
        assert second.accepted
        assert 2 == len(world.backup.received)
        # A domain whose only exchanger is down is still tried (and deferred), never skipped.
        assert (SendStatus.DEFERRED, "4.4.1") == (only_dead.status, only_dead.enhanced_status)
        assert "127.0.0.3" in only_dead.status_text

    def test_no_mx_falls_back_to_a_record(self, world: World) -> None:
        """RFC 5321 section 5.1: without MX the domain's own address is used."""
        with world.mx() as t:
            assert t.send([make_envelope("user@implicit.test")])[0].accepted
        assert 1 == len(world.primary.received)

    def test_null_mx_rejects(self, world: World) -> None:
        """RFC 7505: a null MX means no mail; rejected without connecting."""
        with world.mx() as t:
            [result] = t.send([make_envelope("user@nullmx.test")])
        assert (SendStatus.REJECTED, 556, "5.1.10") == (
            result.status,
            result.status_code,
            result.enhanced_status,
        )
        assert [] == world.primary.handler.rcpt_seen

    def test_nonexistent_domain_rejects(self, world: World) -> None:
        """NXDOMAIN is permanent (5.1.2)."""
        with world.mx() as t:
            [result] = t.send([make_envelope("user@nowhere.test")])
        assert (SendStatus.REJECTED, "5.1.2") == (result.status, result.enhanced_status)

    def test_dns_failure_defers(self, world: World) -> None:
        """SERVFAIL is transient (4.4.3), and not cached."""
        with world.mx() as t:
            [result] = t.send([make_envelope("user@servfail.test")])
            t.send([make_envelope("user@servfail.test")])
        assert (SendStatus.DEFERRED, "4.4.3") == (result.status, result.enhanced_status)
        assert 2 == [q[:2] for q in world.dns.queries].count(("servfail.test", "MX"))

    def test_every_exchanger_down_defers(self, world: World) -> None:
        """No exchanger reachable: deferred (4.4.1) with a warning event."""
        with capture_logs() as logs, world.mx() as t:
            [result] = t.send([make_envelope("user@gone.test")])
        assert (SendStatus.DEFERRED, "4.4.1") == (result.status, result.enhanced_status)
        assert ["transport.mx_unreachable"] == [e["event"] for e in logs]

    def test_routes_are_cached(self, world: World) -> None:
        """A domain's MX is looked up once for many messages."""
        with world.mx() as t:
            t.send([make_envelope("a@example.test"), make_envelope("b@example.test")])
            t.send([make_envelope("c@example.test")])
        assert 1 == [q[:2] for q in world.dns.queries].count(("example.test", "MX"))


class TestGrouping:
    def test_recipients_grouped_by_domain(self, world: World) -> None:
        """One transaction per domain; each recipient gets its own result, in order."""
        env = make_envelope("a@example.test", "b@nullmx.test", "c@down.test", "reject@example.test")
        with world.mx() as t:
            [result] = t.send([env])
        assert [("a@example.test",)] == [r.rcpt_tos for r in world.primary.received]
        assert [("c@down.test",)] == [r.rcpt_tos for r in world.backup.received]
        assert [
            ("a@example.test", SendStatus.ACCEPTED),
            ("b@nullmx.test", SendStatus.REJECTED),
            ("c@down.test", SendStatus.ACCEPTED),
            ("reject@example.test", SendStatus.REJECTED),
        ] == [(r.recipient, r.status) for r in result.recipient_results]
        assert SendStatus.ACCEPTED == result.status  # delivered where possible, the rest final
        assert "MSG42" == result.message_id

    def test_connection_reused_per_domain(self, world: World) -> None:
        """Several messages to one domain share one connection."""
        opened = []
        original = world.primary.controller.factory

        def counting() -> object:
            opened.append(1)
            return original()

        world.primary.controller.factory = counting  # type: ignore[method-assign]
        with world.mx() as t:
            t.send([make_envelope("a@example.test"), make_envelope("b@example.test")])
            t.send([make_envelope("c@implicit.test")])  # same exchanger address
        assert 3 == len(world.primary.received)
        assert 1 == len(opened)


class TestSourceAndTLS:
    def test_source_address_from_url(self, world: World) -> None:
        """?source= binds the outgoing connection to that local address."""
        url = f"mx://?source=127.0.0.5&port={world.port}"
        with transport_from_url(url, resolver=world.dns.client()) as t:
            assert t.send([make_envelope("user@example.test")])[0].accepted
        assert "127.0.0.5" == world.primary.received[0].peer_ip

    def test_ip_pool_chooses_per_domain(self, world: World) -> None:
        """An IP pool's choose(domain) picks the source address per destination domain."""

        class Pool:
            def __init__(self) -> None:
                self.asked: list[str] = []

            def choose(self, domain: str) -> str:
                self.asked.append(domain)
                return {"example.test": "127.0.0.6", "down.test": "127.0.0.7"}[domain]

        pool = Pool()
        with world.mx(ip_pool=pool) as t:
            t.send([make_envelope("a@example.test", "b@down.test")])
        assert ["example.test", "down.test"] == pool.asked
        assert "127.0.0.6" == world.primary.received[0].peer_ip
        assert "127.0.0.7" == world.backup.received[0].peer_ip

    def test_shaping_ip_pool_binds_its_choice(self, world: World) -> None:
        """mailscale.shaping.IPPool answers with a PoolChoice: its ip is the source address."""
        from mailscale.shaping import IPPool

        with world.mx(ip_pool=IPPool(["127.0.0.6"])) as t:
            assert t.send([make_envelope("a@example.test")])[0].accepted
        assert "127.0.0.6" == world.primary.received[0].peer_ip

    def test_full_ip_pool_defers_without_connecting(self, world: World) -> None:
        """No IP with capacity for the domain: its recipients are deferred with the pool's
        wait, and no exchanger is contacted."""
        from mailscale.shaping import IPPool, Limit

        pool = IPPool(["127.0.0.6"], per_domain=Limit(1, 3600.0, burst=1))
        with world.mx(ip_pool=pool) as t:
            batch = [make_envelope("a@example.test"), make_envelope("b@example.test")]
            first, second = t.send(batch)
        assert first.accepted
        assert (SendStatus.DEFERRED, "4.7.0", ("b@example.test",)) == (
            second.status,
            second.enhanced_status,
            second.pending_recipients,
        )
        assert second.retry_after is not None and 3500 < second.retry_after <= 3600
        assert 1 == len(world.primary.received)

    def test_opportunistic_starttls(self, world: World) -> None:
        """STARTTLS is used when offered, even with an unknown certificate, by default."""
        with world.mx() as t:
            assert t.send([make_envelope("user@tls.test")])[0].accepted
        assert world.secure.received[0].tls

    def test_required_tls_verifies_the_mx_name(self, world: World, cafile: str) -> None:
        """tls=required checks the certificate against the MX host name."""
        with world.mx(tls="required", cafile=cafile) as t:
            assert t.send([make_envelope("user@tls.test")])[0].accepted
        assert world.secure.received[0].tls

    def test_required_tls_defers_without_trust_or_tls(self, world: World) -> None:
        """tls=required defers when the certificate is untrusted or TLS is not offered."""
        with world.mx(tls="required") as t:
            untrusted, plaintext = t.send(
                [make_envelope("user@tls.test"), make_envelope("user@example.test")]
            )
        assert ("4.4.1", "4.4.1") == (untrusted.enhanced_status, plaintext.enhanced_status)
        assert "certificate verification failed" in untrusted.status_text
        assert "STARTTLS" in plaintext.status_text
        assert ([], []) == (world.secure.received, world.primary.received)

    def test_opportunistic_tls_falls_back_to_plaintext(
        self, world: World, server_tls: ssl.SSLContext
    ) -> None:
        """RFC 7435: when the STARTTLS handshake fails, the message goes in plaintext."""
        world.secure.stop()
        world.secure = start_peer(
            host="127.0.0.4", port=world.port, starttls=server_tls, require_starttls=False
        )
        client = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        client.check_hostname = False
        client.verify_mode = ssl.CERT_NONE
        client.set_ciphers("aNULL")  # no cipher the server can use: the handshake fails
        client.maximum_version = ssl.TLSVersion.TLSv1_2
        with capture_logs() as logs, world.mx(ssl_context=client) as t:
            [result] = t.send([make_envelope("user@tls.test")])
        assert result.accepted
        assert not world.secure.received[0].tls
        assert "transport.mx_tls_fallback" in [e["event"] for e in logs]

    def test_signer_applies_to_direct_delivery(self, world: World) -> None:
        """An attached signer's output is what the exchanger receives."""

        class Stamp:
            def sign(self, message: bytes) -> bytes:
                return b"DKIM-Signature: v=1; b=x\r\n" + message

        env = make_envelope("user@example.test")
        with world.mx(signer=Stamp()) as t:
            assert t.send([env])[0].accepted
        assert b"DKIM-Signature: v=1; b=x\r\n" + env.to_bytes() == world.primary.received[0].content

    def test_tls_none_never_upgrades(self, world: World) -> None:
        """tls=none stays in plaintext; the STARTTLS-requiring peer refuses the mail."""
        with world.mx(tls="none") as t:
            [result] = t.send([make_envelope("user@tls.test")])
        assert not result.accepted
        assert [] == world.secure.received


class TestConfiguration:
    @pytest.mark.parametrize(
        ("url", "problem"),
        [
            ("mx://relay.example.com", "takes no host"),
            ("mx://?tls=sometimes", "tls must be one of"),
            ("mx://?port=0", "at least 1"),
            ("mx://?via=x", "unknown option"),
        ],
    )
    def test_bad_urls(self, url: str, problem: str) -> None:
        """mx:// mistakes are configuration errors."""
        with pytest.raises(ConfigurationError, match=problem):
            transport_from_url(url)

    def test_ip_pool_needs_choose(self) -> None:
        """An ip_pool without choose() is refused."""
        with pytest.raises(ConfigurationError, match="choose"):
            MXTransport(ip_pool=object())  # type: ignore[arg-type]


def outcome(result: SendResult) -> dict[str, tuple[str, int | str | None]]:
    return {r.recipient: (r.status.value, r.status_code) for r in result.recipient_results}


@pytest.fixture
def faulty_primary(world: World) -> Iterator[Callable[..., FaultyServer]]:
    """Replace the exchanger on 127.0.0.1 with a FaultyServer configured by the test."""
    world.primary.stop()
    servers: list[FaultyServer] = []
    stack = contextlib.ExitStack()

    def start(**kw: object) -> FaultyServer:
        server = FaultyServer(host="127.0.0.1", port=world.port, **kw)  # type: ignore[arg-type]
        stack.enter_context(server.running())
        servers.append(server)
        return server

    try:
        with stack:
            yield start
    finally:
        world.primary = start_peer(host="127.0.0.1")  # a running peer for the world's teardown


class TestFaults:
    """Exchangers that misbehave: nobody is accepted before the answer after DATA, and a
    message that may have been delivered is never given to a second exchanger."""

    @pytest.mark.parametrize("fault", [{"drop_at": "final dot"}, {"stall_at": "final dot"}])
    def test_possibly_delivered_stays_with_its_exchanger(
        self, world: World, faulty_primary: Callable[..., FaultyServer], fault: dict[str, str]
    ) -> None:
        """Lost after the final dot at pref.test's first exchanger: not sent to the backup."""
        server = faulty_primary(**fault)
        with world.mx(timeout=1) as t:
            [result] = t.send([make_envelope("user@pref.test", "other@down.test")])
        assert {
            "user@pref.test": ("deferred", None),
            "other@down.test": ("accepted", 250),
        } == outcome(result)
        assert (SendStatus.DEFERRED, True) == (result.status, result.possibly_delivered)
        assert ("user@pref.test",) == result.pending_recipients
        assert [("user@pref.test",)] == [d.rcpt_tos for d in server.unanswered]
        assert [("other@down.test",)] == [r.rcpt_tos for r in world.backup.received]

    def test_drop_before_the_final_dot_moves_to_the_next_exchanger(
        self, world: World, faulty_primary: Callable[..., FaultyServer]
    ) -> None:
        """Lost at DATA (nothing can have been delivered): the backup exchanger takes it."""
        server = faulty_primary(drop_at="DATA")
        with world.mx() as t:
            [result] = t.send([make_envelope("user@pref.test")])
        assert {"user@pref.test": ("accepted", 250)} == outcome(result)
        assert not result.possibly_delivered
        assert [] == server.deliveries
        assert [("user@pref.test",)] == [r.rcpt_tos for r in world.backup.received]

    def test_421_after_a_rcpt_accepts_nobody(
        self, world: World, faulty_primary: Callable[..., FaultyServer]
    ) -> None:
        """ok (250), reject (550), closing (421 + hang-up) at the only exchanger: no DATA,
        so the 250 recipient is pending, not accepted."""
        server = faulty_primary()
        with world.mx() as t:
            [result] = t.send(
                [make_envelope("ok@example.test", "reject@example.test", "closing@example.test")]
            )
        assert {
            "ok@example.test": ("deferred", 421),
            "reject@example.test": ("rejected", 550),
            "closing@example.test": ("deferred", 421),
        } == outcome(result)
        assert ("ok@example.test", "closing@example.test") == result.pending_recipients
        assert "DATA" not in server.commands()
        assert [] == server.deliveries

    def test_greeting_stall_moves_on_and_marks_the_address_down(
        self, world: World, faulty_primary: Callable[..., FaultyServer]
    ) -> None:
        """An exchanger that never greets times out (named so) and is skipped for a while."""
        faulty_primary(stall_at="greeting")
        with capture_logs() as logs, world.mx(timeout=1) as t:
            [first] = t.send([make_envelope("user@pref.test")])
            down = t.down_addresses()
        assert {"user@pref.test": ("accepted", 250)} == outcome(first)
        assert ["127.0.0.1"] == down
        assert 1 == len(world.backup.received)
        assert [] == [e for e in logs if e["event"] == "transport.mx_unreachable"]
