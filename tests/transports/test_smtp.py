"""SMTP relay transport against aiosmtpd on loopback."""

from __future__ import annotations

import asyncio
import ssl
import sys
import threading

import pytest
from structlog.testing import capture_logs
from transport_helpers import (
    SMTP_PASSWORD,
    SMTP_USER,
    make_envelope,
    make_message,
    unserializable_envelope,
)

from mailscale.errors import (
    ConfigurationError,
    TransportAuthError,
    TransportCertificateError,
    TransportConnectionError,
    TransportError,
    TransportTimeout,
)
from mailscale.message import Envelope, SendResult, SendStatus
from mailscale.transports.registry import transport_from_url
from mailscale.transports.smtp import SMTPTransport
from peers.smtp_peer import (
    DroppingServer,
    FaultyServer,
    ScriptedHandler,
    SMTPPeer,
    start_peer,
    unaccepting_listener,
)

#: A body larger than loopback socket buffers (so a drop is seen while sending).
BIG_BODY = (b"x" * 998 + b"\r\n") * 16_000


def plain(peer: SMTPPeer, **kw: object) -> SMTPTransport:
    return SMTPTransport("127.0.0.1", peer.port, tls="none", **kw)  # type: ignore[arg-type]


class TestDelivery:
    def test_received_bytes_equal_sent_bytes(self, plain_peer: SMTPPeer) -> None:
        """The server receives exactly the message bytes, dot-leading lines included."""
        body = b".leading dot\r\n..two dots\r\nplain line\r\n.\r\nend\r\n"
        env = make_envelope(body=body)
        with plain(plain_peer) as t:
            [result] = t.send([env])
        assert SendStatus.ACCEPTED == result.status
        assert [env.to_bytes()] == [r.content for r in plain_peer.received]

    def test_8bit_bytes_pass_untouched(self, plain_peer: SMTPPeer) -> None:
        """Non-ASCII body bytes are sent as they are (BODY=8BITMIME), not re-encoded."""
        env = make_envelope(body="Grüße aus Köln ✓\r\n".encode())
        with plain(plain_peer) as t:
            [result] = t.send([env])
        assert result.accepted
        assert env.to_bytes() == plain_peer.received[0].content
        assert "BODY=8BITMIME" in plain_peer.received[0].mail_options

    def test_email_message_is_sent_with_crlf_and_without_bcc(self, plain_peer: SMTPPeer) -> None:
        """An EmailMessage goes out in its SMTP wire form, Bcc removed."""
        from email.message import EmailMessage

        msg = EmailMessage()
        msg["From"] = "sender@example.com"
        msg["To"] = "rcpt@example.net"
        msg["Bcc"] = "hidden@example.net"
        msg["Subject"] = "Hi"
        msg.set_content("Body\n")
        env = Envelope.from_message(msg)
        with plain(plain_peer) as t:
            [result] = t.send([env])
        assert result.accepted
        got = plain_peer.received[0]
        assert env.to_bytes() == got.content
        assert b"Bcc" not in got.content
        assert ("rcpt@example.net", "hidden@example.net") == got.rcpt_tos

    def test_message_id_from_data_reply(self, plain_peer: SMTPPeer) -> None:
        """The id in '250 Ok: queued as X' becomes the result's message id."""
        with plain(plain_peer) as t:
            [result] = t.send([make_envelope()])
        assert "MSG42" == result.message_id
        assert 250 == result.status_code
        assert "2.0.0" == result.enhanced_status

    def test_signer_output_is_what_is_sent(self, plain_peer: SMTPPeer) -> None:
        """An attached signer's output is sent, unchanged."""

        class PrefixSigner:
            def sign(self, message: bytes) -> bytes:
                return b"DKIM-Signature: v=1; a=rsa-sha256; b=abc\r\n" + message

        env = make_envelope()
        with plain(plain_peer, signer=PrefixSigner()) as t:
            [result] = t.send([env])
        assert result.accepted
        expected = b"DKIM-Signature: v=1; a=rsa-sha256; b=abc\r\n" + env.to_bytes()
        assert expected == plain_peer.received[0].content

    def test_bare_lf_is_rejected_not_rewritten(self, plain_peer: SMTPPeer) -> None:
        """A message with bare LF line ends is rejected; nothing reaches the server."""
        env = Envelope(
            sender="sender@example.com",
            recipients=("rcpt@example.net",),
            message=b"Subject: x\n\nbody\n",
        )
        with plain(plain_peer) as t:
            [result] = t.send([env])
        assert SendStatus.REJECTED == result.status
        assert "CRLF" in result.status_text
        assert [] == plain_peer.received

    def test_message_spoiled_after_construction_is_rejected(self, plain_peer: SMTPPeer) -> None:
        """An EmailMessage given a header injection later is rejected, not sent, not raised."""
        from email.message import EmailMessage

        msg = EmailMessage()
        msg["From"] = "sender@example.com"
        msg.set_content("x")
        env = Envelope(sender="sender@example.com", recipients=("a@example.net",), message=msg)
        msg._headers.append(("Subject", "x\r\nBcc: victim@example.net"))  # type: ignore[attr-defined]
        with plain(plain_peer) as t:
            bad, good = t.send([env, make_envelope()])
        assert (SendStatus.REJECTED, SendStatus.ACCEPTED) == (bad.status, good.status)
        assert "header injection" in bad.status_text
        assert 1 == len(plain_peer.received)

    def test_internationalized_address_uses_smtputf8(self, plain_peer: SMTPPeer) -> None:
        """A UTF-8 recipient is sent with SMTPUTF8 when the server offers it."""
        env = make_envelope("jörg@example.net")
        with plain(plain_peer) as t:
            [result] = t.send([env])
        assert result.accepted
        assert ("jörg@example.net",) == plain_peer.received[0].rcpt_tos
        assert "SMTPUTF8" in plain_peer.received[0].mail_options


class TestPerRecipientResults:
    def test_mixed_replies_per_recipient(self, plain_peer: SMTPPeer) -> None:
        """250 / 451 / 550 map to accepted / deferred / rejected, codes and enhanced codes kept."""
        env = make_envelope("ok@example.net", "defer@example.net", "reject@example.net")
        with plain(plain_peer) as t:
            [result] = t.send([env])
        by_rcpt = {r.recipient: r for r in result.recipient_results}
        assert SendStatus.ACCEPTED == by_rcpt["ok@example.net"].status
        assert (SendStatus.DEFERRED, 451, "4.7.1") == (
            by_rcpt["defer@example.net"].status,
            by_rcpt["defer@example.net"].status_code,
            by_rcpt["defer@example.net"].enhanced_status,
        )
        assert (SendStatus.REJECTED, 550, "5.1.1") == (
            by_rcpt["reject@example.net"].status,
            by_rcpt["reject@example.net"].status_code,
            by_rcpt["reject@example.net"].enhanced_status,
        )
        # The message went to the accepted recipient only, and waits for the deferred one.
        assert SendStatus.DEFERRED == result.status
        assert ("defer@example.net",) == result.pending_recipients
        assert [("ok@example.net",)] == [r.rcpt_tos for r in plain_peer.received]

    def test_all_rejected_sends_no_data(self, plain_peer: SMTPPeer) -> None:
        """When every RCPT is refused the message is rejected and DATA never sent."""
        with plain(plain_peer) as t:
            [result] = t.send([make_envelope("reject@example.net", "full@example.net")])
        assert SendStatus.REJECTED == result.status
        assert 550 == result.status_code
        assert [] == plain_peer.received

    def test_421_defers_and_reconnects(self, plain_peer: SMTPPeer) -> None:
        """A 421 defers the remaining recipients; the next message uses a new connection."""
        with plain(plain_peer) as t:
            first, second = t.send(
                [make_envelope("closing@example.net"), make_envelope("ok@example.net")]
            )
        assert (SendStatus.DEFERRED, 421) == (first.status, first.status_code)
        assert SendStatus.ACCEPTED == second.status

    @pytest.mark.parametrize(
        ("reply", "status"),
        [
            ("451 4.3.0 Queue full", SendStatus.DEFERRED),
            ("554 5.6.0 Bad content", SendStatus.REJECTED),
        ],
    )
    def test_data_reply_decides_the_message(self, reply: str, status: SendStatus) -> None:
        """A 4xx / 5xx answer to DATA defers / rejects the recipients RCPT accepted."""
        peer = start_peer(handler=ScriptedHandler(data_reply=reply))
        try:
            with plain(peer) as t:
                [result] = t.send([make_envelope("a@example.net", "reject@example.net")])
        finally:
            peer.stop()
        assert status == result.status
        assert reply[4:9] == result.enhanced_status
        assert status == result.recipient_results[0].status
        assert SendStatus.REJECTED == result.recipient_results[1].status


class TestPool:
    def test_reuse_counted_by_server(self) -> None:
        """The server sees one connection for many messages on a pool of one.

        The refused transaction in the middle is cleared with RSET; without it the
        server would answer the next MAIL with 503 (nested MAIL command).
        """
        connections = []

        handler = ScriptedHandler()
        peer = start_peer(handler=handler)
        original = peer.controller.factory

        def factory() -> object:
            connections.append(1)
            return original()

        peer.controller.factory = factory  # type: ignore[method-assign]
        try:
            with plain(peer, pool_size=1) as t:
                t.send([make_envelope(), make_envelope()])
                t.send([make_envelope("reject@example.net"), make_envelope()])
                t.send([make_envelope(), make_envelope()])
        finally:
            peer.stop()
        assert 5 == len(handler.received)
        assert 1 == len(connections)

    def test_reconnects_after_the_server_dropped_an_idle_connection(self) -> None:
        """A pooled connection the server closed is replaced without losing the message."""
        peer = start_peer()
        port = peer.port
        t = SMTPTransport("127.0.0.1", port, tls="none", pool_size=1)
        try:
            assert t.send([make_envelope()])[0].accepted
            peer.stop()  # closes the idle pooled connection
            peer = start_peer(port=port)
            [result] = t.send([make_envelope()])
            assert SendStatus.ACCEPTED == result.status
            assert 1 == len(peer.received)
        finally:
            t.close()
            peer.stop()

    def test_concurrent_calls_use_several_connections(self, plain_peer: SMTPPeer) -> None:
        """Threads sending at once all succeed over a pool of several connections."""
        errors: list[BaseException] = []
        with plain(plain_peer, pool_size=3) as t:

            def work() -> None:
                try:
                    for r in t.send([make_envelope() for _ in range(5)]):
                        assert r.accepted
                except BaseException as exc:  # pragma: no cover - reported below
                    errors.append(exc)

            threads = [threading.Thread(target=work) for _ in range(4)]
            for th in threads:
                th.start()
            for th in threads:
                th.join()
        assert [] == errors
        assert 20 == len(plain_peer.received)

    def test_send_async_offloads_to_a_thread(self, plain_peer: SMTPPeer) -> None:
        """send_async gives the same results without blocking the loop."""

        async def main() -> list[SendStatus]:
            with plain(plain_peer) as t:
                batches = await asyncio.gather(
                    t.send_async([make_envelope()]), t.send_async([make_envelope()])
                )
            return [r.status for batch in batches for r in batch]

        assert [SendStatus.ACCEPTED] * 2 == asyncio.run(main())
        assert 2 == len(plain_peer.received)

    def test_closed_transport_refuses_to_send(self, plain_peer: SMTPPeer) -> None:
        """After close(), send raises a TransportError."""
        t = plain(plain_peer)
        t.close()
        with pytest.raises(TransportError, match="closed"):
            t.send([make_envelope()])


class TestDroppedConnection:
    def test_drop_mid_data_defers_then_next_message_reconnects(self) -> None:
        """A connection lost during DATA defers that message; the batch goes on.

        The message is larger than the socket buffers, so the client is still
        sending it when the server hangs up: it knows the final dot never left.
        """
        server = DroppingServer(drop_after=20)
        big = BIG_BODY
        with server.running():
            t = SMTPTransport("127.0.0.1", server.port, tls="none", timeout=5)
            with capture_logs() as logs:
                first, second = t.send([make_envelope(body=big), make_envelope(body=big)])
            t.close()
        assert SendStatus.DEFERRED == first.status
        assert "in DATA (before the final dot)" in first.status_text
        assert (False, False) == (first.possibly_delivered, second.possibly_delivered)
        assert SendStatus.DEFERRED == second.status
        assert 2 == server.dropped
        assert 2 == server.connections
        assert "transport.connection_lost" in [e["event"] for e in logs]

    def test_refused_connection_raises_transient(self) -> None:
        """Nothing listening: the whole call fails with a transient connection error."""
        from peers.smtp_peer import free_port

        t = SMTPTransport("127.0.0.1", free_port(), tls="none", timeout=2)
        with pytest.raises(TransportConnectionError) as info:
            t.send([make_envelope()])
        assert info.value.transient


class TestTLS:
    def test_starttls_with_verified_certificate_and_auth(
        self, starttls_peer: SMTPPeer, cafile: str
    ) -> None:
        """STARTTLS against the test CA, then AUTH, then delivery."""
        url = f"smtp://{SMTP_USER}:{SMTP_PASSWORD}@localhost:{starttls_peer.port}?cafile={cafile}"
        with transport_from_url(url) as t:
            [result] = t.send([make_envelope()])
        assert result.accepted
        got = starttls_peer.received[0]
        assert (True, SMTP_USER) == (got.tls, got.login)

    def test_starttls_is_required_by_default(self, plain_peer: SMTPPeer) -> None:
        """A server without STARTTLS is refused unless tls=none is explicit."""
        t = SMTPTransport("127.0.0.1", plain_peer.port)
        with pytest.raises(TransportError, match="STARTTLS") as info:
            t.send([make_envelope()])
        assert not info.value.transient
        assert [] == plain_peer.received

    def test_unknown_ca_fails_verification(self, starttls_peer: SMTPPeer) -> None:
        """The system trust store does not know the test CA: verification fails."""
        t = SMTPTransport(
            "localhost", starttls_peer.port, username=SMTP_USER, password=SMTP_PASSWORD
        )
        with pytest.raises(TransportCertificateError, match="certificate verification failed"):
            t.send([make_envelope()])
        assert [] == starttls_peer.received

    def test_verify_false_is_an_explicit_opt_out(self, starttls_peer: SMTPPeer) -> None:
        """verify=false connects without checking, and says so in a warning event."""
        url = f"smtp://{SMTP_USER}:{SMTP_PASSWORD}@localhost:{starttls_peer.port}?verify=false"
        with capture_logs() as logs:
            t = transport_from_url(url)
        with t:
            assert t.send([make_envelope()])[0].accepted
        assert ["transport.tls_unverified"] == [e["event"] for e in logs]

    def test_implicit_tls_with_ssl_context(
        self, implicit_peer: SMTPPeer, client_tls: ssl.SSLContext
    ) -> None:
        """smtps:// with a custom ssl_context delivers over implicit TLS."""
        url = f"smtps://{SMTP_USER}:{SMTP_PASSWORD}@localhost:{implicit_peer.port}"
        with transport_from_url(url, ssl_context=client_tls) as t:
            [result] = t.send([make_envelope()])
        assert result.accepted
        assert implicit_peer.received[0].tls

    def test_wrong_password_raises_auth_error(self, starttls_peer: SMTPPeer, cafile: str) -> None:
        """Refused credentials fail the call with TransportAuthError, never showing the secret."""
        wrong = "not-the-Pa55word-42"
        url = f"smtp://{SMTP_USER}:{wrong}@localhost:{starttls_peer.port}?cafile={cafile}"
        with capture_logs() as logs, transport_from_url(url) as t:
            with pytest.raises(TransportAuthError) as info:
                t.send([make_envelope()])
            text = f"{info.value} {info.value!r} {t!r} {logs!r}"
        assert 535 == info.value.status
        assert wrong not in text
        assert not info.value.transient

    def test_auth_over_plaintext_when_server_allows(self) -> None:
        """AUTH works without TLS only with tls=none set explicitly."""
        peer = start_peer(credentials={SMTP_USER: SMTP_PASSWORD}, auth_require_tls=False)
        try:
            url = f"smtp://{SMTP_USER}:{SMTP_PASSWORD}@127.0.0.1:{peer.port}?tls=none"
            with transport_from_url(url) as t:
                assert t.send([make_envelope()])[0].accepted
        finally:
            peer.stop()
        assert SMTP_USER == peer.received[0].login


class TestConfiguration:
    @pytest.mark.parametrize(
        ("url", "problem"),
        [
            ("smtp://user@host", "missing password"),
            ("smtp://:pw-123@host", "missing user name"),
            ("smtp://", "missing host"),
            ("smtp://host?tls=maybe", "tls"),
            ("smtps://host?tls=none", "implicit"),
            ("smtp://host?pool_size=0", "pool_size"),
            ("smtp://host?verify=perhaps", "verify"),
            ("smtp://host?colour=blue", "unknown option"),
            ("smtp://host?cafile=/nonexistent/ca.pem", "CA file"),
        ],
    )
    def test_bad_urls(self, url: str, problem: str) -> None:
        """Each configuration mistake is a ConfigurationError naming it."""
        with pytest.raises(ConfigurationError, match=problem):
            transport_from_url(url)

    def test_defaults_from_scheme(self) -> None:
        """smtp:// defaults to STARTTLS on 587, smtps:// to implicit TLS on 465."""
        a = transport_from_url("smtp://relay.example.com")
        b = transport_from_url("smtps://relay.example.com")
        c = transport_from_url("smtp://relay.example.com?tls=none")
        assert [("starttls", 587), ("implicit", 465), ("none", 25)] == [
            (t.tls, t.port)
            for t in (a, b, c)  # type: ignore[attr-defined]
        ]

    def test_repr_masks_password(self) -> None:
        """repr shows the user but never the password."""
        t = transport_from_url(f"smtp://{SMTP_USER}:{SMTP_PASSWORD}@relay.example.com")
        assert SMTP_PASSWORD not in repr(t)
        assert "password='***'" in repr(t)

    def test_source_address_is_bound(self, plain_peer: SMTPPeer) -> None:
        """?source= binds the connection to that local address."""
        url = f"smtp://127.0.0.1:{plain_peer.port}?tls=none&source=127.0.0.9"
        with transport_from_url(url) as t:
            assert t.send([make_envelope()])[0].accepted
        assert "127.0.0.9" == plain_peer.received[0].peer_ip

    def test_signer_must_have_sign(self) -> None:
        """A signer without sign() is refused at construction."""
        with pytest.raises(ConfigurationError, match="sign"):
            SMTPTransport("relay.example.com", signer=object())  # type: ignore[arg-type]


def test_message_helper_is_crlf() -> None:
    """The helper builds CRLF-only messages (so tests exercise the real path)."""
    data = make_message()
    assert data.count(b"\n") == data.count(b"\r\n")


class TestOneBadMessage:
    def test_unserializable_message_rejected_alone(self, plain_peer: SMTPPeer) -> None:
        """A message that cannot be serialized is rejected; the others of the batch are sent."""
        with plain(plain_peer) as t:
            results = t.send([make_envelope(), unserializable_envelope(), make_envelope()])
        assert [SendStatus.ACCEPTED, SendStatus.REJECTED, SendStatus.ACCEPTED] == [
            r.status for r in results
        ]
        assert "cannot be serialized" in results[1].status_text
        assert 2 == len(plain_peer.received)

    def test_failing_signer_rejects_that_message(self, plain_peer: SMTPPeer) -> None:
        """A signer that raises (any exception) rejects only the message it failed on."""

        class PickySigner:
            def sign(self, message: bytes) -> bytes:
                if b"Subject: boom" in message:
                    raise RuntimeError("no key for this domain")
                return message

        boom = Envelope(
            sender="sender@example.com",
            recipients=("rcpt@example.net",),
            message=make_message(subject="boom"),
        )
        with plain(plain_peer, signer=PickySigner()) as t:
            results = t.send([make_envelope(), boom, make_envelope()])
        assert [SendStatus.ACCEPTED, SendStatus.REJECTED, SendStatus.ACCEPTED] == [
            r.status for r in results
        ]
        assert "signing failed: RuntimeError: no key for this domain" == results[1].status_text


class TestBadSettings:
    @pytest.mark.parametrize(
        "url",
        [
            "smtp://relay.example.com?tls=none&local_hostname=a%0D%0AMAIL%20FROM:x",
            "smtp://relay.example.com?tls=none&local_hostname=a%20b",
            "smtp://relay.example.com?tls=none&local_hostname=",
            "smtp://relay.example.com?tls=none&source=bogus",
            "smtp://relay.example.com?tls=none&source=300.1.1.1",
            "mx://?helo=mx.example.com%0D%0AQUIT",
            "mx://?source=bogus",
        ],
    )
    def test_configuration_error_at_build(self, url: str) -> None:
        """A CR/LF or space in the EHLO name, or a source that is no IP, fails when built."""
        with pytest.raises(
            ConfigurationError, match=r"EHLO name|not an IP address|control character|is empty"
        ):
            transport_from_url(url)

    def test_valid_settings_accepted(self) -> None:
        """A domain, an address literal and IPv4/IPv6 sources are fine."""
        for url in (
            "smtp://h.example?tls=none&local_hostname=[192.0.2.1]&source=127.0.0.1",
            "mx://?helo=mx.example.com&source=::1",
        ):
            transport_from_url(url).close()


# --- fault injection: a server that misbehaves at every stage ---------------------------

OK1, OK2 = "ok1@example.net", "ok2@example.net"


def outcome(result: SendResult) -> dict[str, tuple[str, int | str | None]]:
    """Each recipient's status and code."""
    return {r.recipient: (r.status.value, r.status_code) for r in result.recipient_results}


def server_truth(result: SendResult, server: FaultyServer) -> None:
    """What the result reports accepted is exactly what the server accepted after DATA."""
    reported = sorted(r.recipient for r in result.recipient_results if r.status.value == "accepted")
    accepted = sorted(rcpt for rcpts in server.accepted() for rcpt in rcpts)
    assert accepted == reported


def send_one(
    server: FaultyServer,
    *recipients: str,
    timeout: float = 5.0,
    body: bytes = b"Hello there.\r\n",
    **kw: object,
) -> SendResult:
    with server.running():
        t = SMTPTransport("127.0.0.1", server.port, timeout=timeout, **kw)  # type: ignore[arg-type]
        with t:
            [result] = t.send([make_envelope(*recipients, body=body)])
    server_truth(result, server)
    return result


class TestFaultInjection:
    """Against a server that misbehaves on purpose; its own log is the truth."""

    def test_421_greeting_refuses_the_call(self) -> None:
        """A 421 greeting fails the call with a transient error carrying 421; nothing is sent."""
        server = FaultyServer(greeting="421 4.3.2 Too busy, try later")
        with pytest.raises(TransportConnectionError) as info, server.running():
            SMTPTransport("127.0.0.1", server.port, tls="none").send([make_envelope(OK1)])
        assert (421, True) == (info.value.status, info.value.transient)
        assert "421 4.3.2 Too busy" in str(info.value)
        assert ["greeting 421", "drop greeting"] == server.commands()
        assert [] == server.deliveries

    def test_temporary_and_permanent_refusals_per_recipient(self) -> None:
        """451 and 550/552 recipients keep their codes; the others are accepted after DATA."""
        server = FaultyServer()
        result = send_one(
            server,
            OK1,
            "defer@example.net",
            "reject@example.net",
            "full@example.net",
            OK2,
            tls="none",
        )
        assert {
            OK1: ("accepted", 250),
            "defer@example.net": ("deferred", 451),
            "reject@example.net": ("rejected", 550),
            "full@example.net": ("rejected", 552),
            OK2: ("accepted", 250),
        } == outcome(result)
        assert (SendStatus.DEFERRED, ("defer@example.net",)) == (
            result.status,
            result.pending_recipients,
        )
        assert [(OK1, OK2)] == server.accepted()
        assert not result.possibly_delivered

    def test_421_and_close_after_a_rcpt_accepts_nobody(self) -> None:
        """ok1 (250), closing (421 + hang-up), ok2: DATA was never sent, so all three wait."""
        server = FaultyServer()
        result = send_one(server, OK1, "closing@example.net", OK2, tls="none")
        assert {
            OK1: ("deferred", 421),
            "closing@example.net": ("deferred", 421),
            OK2: ("deferred", 421),
        } == outcome(result)
        assert (OK1, "closing@example.net", OK2) == result.pending_recipients
        assert "before DATA" in result.recipient_results[0].status_text
        commands = server.commands()
        # SMTP verbs and keywords are case-insensitive (smtplib's casing differs by version).
        assert [
            "RCPT TO:<OK1@EXAMPLE.NET>",
            "RCPT TO:<CLOSING@EXAMPLE.NET>",
            "DROP RCPT",
        ] == [c.upper() for c in commands[-3:]]
        assert "DATA" not in commands

    def test_drop_between_rcpt_and_data(self) -> None:
        """The connection lost at DATA: the RCPT-accepted recipient waits, the 550 stands."""
        server = FaultyServer(drop_at="DATA")
        result = send_one(server, OK1, "reject@example.net", tls="none")
        assert {OK1: ("deferred", None), "reject@example.net": ("rejected", 550)} == outcome(result)
        assert "4.4.2" == result.recipient_results[0].enhanced_status
        assert "connection lost in DATA (before the final dot)" in result.status_text
        assert not result.possibly_delivered
        assert ([], []) == (server.deliveries, server.unanswered)

    def test_drop_mid_data(self) -> None:
        """Lost while the message is being sent: deferred, and known not delivered."""
        server = FaultyServer(drop_at="message", drop_after=100)
        result = send_one(server, OK1, OK2, body=BIG_BODY, tls="none")
        assert {OK1: ("deferred", None), OK2: ("deferred", None)} == outcome(result)
        assert not result.possibly_delivered
        assert ([], []) == (server.deliveries, server.unanswered)

    def test_drop_after_the_final_dot(self) -> None:
        """The whole message arrived, the answer never came: deferred, possibly delivered."""
        server = FaultyServer(drop_at="final dot")
        env = make_envelope(OK1, "reject@example.net")
        with server.running(), SMTPTransport("127.0.0.1", server.port, tls="none") as t:
            [result] = t.send([env])
        server_truth(result, server)
        assert {OK1: ("deferred", None), "reject@example.net": ("rejected", 550)} == outcome(result)
        assert (SendStatus.DEFERRED, True) == (result.status, result.possibly_delivered)
        assert "it may have been delivered" in result.status_text
        assert [(OK1,)] == [d.rcpt_tos for d in server.unanswered]
        assert env.to_bytes() == server.unanswered[0].content

    @pytest.mark.parametrize(
        ("reply", "status"),
        [("451 4.3.0 Try again later", "deferred"), ("554 5.7.1 Not from you", "rejected")],
    )
    def test_data_command_refused(self, reply: str, status: str) -> None:
        """A 4xx/5xx to DATA itself defers/rejects the RCPT-accepted recipients with its code."""
        server = FaultyServer(data_command_reply=reply)
        result = send_one(server, OK1, "reject@example.net", tls="none")
        assert {OK1: (status, int(reply[:3])), "reject@example.net": ("rejected", 550)} == outcome(
            result
        )
        assert reply[4:9] == result.recipient_results[0].enhanced_status
        assert [] == server.deliveries

    def test_421_to_mail_defers_with_its_code(self) -> None:
        """A 421 to MAIL FROM (and a hang-up): every recipient waits, with the server's code."""
        server = FaultyServer(mail_reply="421 4.3.2 Shutting down")
        result = send_one(server, OK1, OK2, tls="none")
        assert {OK1: ("deferred", 421), OK2: ("deferred", 421)} == outcome(result)
        assert ("4.3.2", "MAIL: 421 4.3.2 Shutting down") == (
            result.enhanced_status,
            result.status_text,
        )
        assert not [c for c in server.commands() if c.startswith("RCPT")]

    def test_data_command_answered_out_of_step(self) -> None:
        """A 250 where 354 was due is no go-ahead: nobody is accepted, nothing is sent."""
        server = FaultyServer(data_command_reply="250 2.0.0 Ok")
        result = send_one(server, OK1, tls="none")
        assert {OK1: ("deferred", None)} == outcome(result)
        assert "unexpected reply 250" in result.status_text
        assert [] == server.deliveries

    @pytest.mark.parametrize(
        "rset_reply", ["500 5.5.1 Unrecognized command", "421 4.3.2 Shutting down"]
    )
    def test_failed_rset_on_a_pooled_connection(self, rset_reply: str) -> None:
        """RSET refused on a reused connection: the message goes on a new connection."""
        server = FaultyServer(rset_reply=rset_reply)
        with (
            server.running(),
            SMTPTransport("127.0.0.1", server.port, tls="none", pool_size=1) as t,
        ):
            first, second = t.send([make_envelope("reject@example.net"), make_envelope(OK1)])
        assert {"reject@example.net": ("rejected", 550)} == outcome(first)
        assert {OK1: ("accepted", 250)} == outcome(second)
        assert [(OK1,)] == server.accepted()
        assert 2 == server.connections
        assert "RSET" in server.commands(1)


#: Set-up stages where a stall fails the call: (stage, transport settings, phrase).
SETUP_STALLS = [
    ("greeting", {"tls": "none"}, "waiting for the greeting"),
    ("EHLO", {"tls": "none"}, "waiting for the EHLO reply"),
    ("STARTTLS", {"tls": "starttls"}, "in STARTTLS"),
    ("TLS handshake", {"tls": "starttls"}, "in STARTTLS"),
    ("AUTH", {"tls": "none", "username": SMTP_USER, "password": SMTP_PASSWORD}, "in AUTH"),
]


class TestTimeouts:
    """A server that stops answering, at each stage, with timeout=1: a time-out, named."""

    @pytest.mark.parametrize(
        ("stage", "settings", "phrase"), SETUP_STALLS, ids=[s[0] for s in SETUP_STALLS]
    )
    def test_setup_stall_raises_transport_timeout(
        self, stage: str, settings: dict[str, object], phrase: str
    ) -> None:
        """No answer during set-up: TransportTimeout (transient) naming the stage."""
        server = FaultyServer(stall_at=stage)
        with pytest.raises(TransportError) as info, server.running():
            SMTPTransport("127.0.0.1", server.port, timeout=1, **settings).send(  # type: ignore[arg-type]
                [make_envelope(OK1)]
            )
        assert TransportTimeout is type(info.value)
        assert isinstance(info.value, TimeoutError)
        assert info.value.transient
        assert f"127.0.0.1:{server.port}: timed out after 1s {phrase}" == str(info.value)
        assert f"stall {stage}" in server.commands()
        assert [] == server.deliveries

    @pytest.mark.skipif(
        sys.platform != "linux", reason="relies on Linux dropping SYNs to a full accept queue"
    )
    def test_connect_stall_raises_transport_timeout(self) -> None:
        """A peer that never completes the TCP handshake: a time-out while connecting."""
        with unaccepting_listener() as port:
            t = SMTPTransport("127.0.0.1", port, tls="none", timeout=1)
            with pytest.raises(TransportTimeout, match="timed out after 1s connecting"):
                t.send([make_envelope(OK1)])

    @pytest.mark.parametrize(
        ("stage", "recipients", "expected", "phrase"),
        [
            ("MAIL", (OK1,), {OK1: ("deferred", None)}, "waiting for the MAIL FROM reply"),
            (
                "RCPT",
                (OK1, "reject@example.net", "stall@example.net", OK2),
                {
                    OK1: ("deferred", None),
                    "reject@example.net": ("rejected", 550),
                    "stall@example.net": ("deferred", None),
                    OK2: ("deferred", None),
                },
                "waiting for a RCPT TO reply",
            ),
            (
                "DATA",
                (OK1, "defer@example.net"),
                {OK1: ("deferred", None), "defer@example.net": ("deferred", 451)},
                "in DATA (before the final dot)",
            ),
            (
                "final dot",
                (OK1,),
                {OK1: ("deferred", None)},
                "waiting for the reply to the final dot",
            ),
        ],
    )
    def test_transaction_stall_defers_with_the_stage(
        self,
        stage: str,
        recipients: tuple[str, ...],
        expected: dict[str, tuple[str, int | None]],
        phrase: str,
    ) -> None:
        """No answer during a transaction: deferred (4.4.1), the stage named, nobody accepted."""
        server = FaultyServer(stall_at=None if stage == "RCPT" else stage)
        with capture_logs() as logs:
            result = send_one(server, *recipients, timeout=1, tls="none")
        assert expected == outcome(result)
        assert result.status_text.startswith(f"timed out after 1s {phrase}")
        assert "4.4.1" == result.enhanced_status
        assert (stage == "final dot") == result.possibly_delivered
        assert [] == server.deliveries
        assert [(stage, True)] == [
            (e["stage"], e["timed_out"]) for e in logs if e["event"] == "transport.connection_lost"
        ]

    def test_rset_stall_on_a_pooled_connection_reconnects(self) -> None:
        """A reused connection that stops answering RSET is replaced; the message is sent."""
        server = FaultyServer(stall_at="RSET")
        with (
            server.running(),
            SMTPTransport("127.0.0.1", server.port, tls="none", pool_size=1, timeout=1) as t,
        ):
            first, second = t.send([make_envelope("reject@example.net"), make_envelope(OK1)])
        assert {"reject@example.net": ("rejected", 550)} == outcome(first)
        assert {OK1: ("accepted", 250)} == outcome(second)
        assert [(OK1,)] == server.accepted()
        assert 2 == server.connections
        assert "stall RSET" in server.commands(1)
