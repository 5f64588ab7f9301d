"""Mailgun transport against the loopback messages.mime peer."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest
from structlog.testing import capture_logs
from transport_helpers import PROVIDER_KEYS

from mailscale.errors import (
    ConfigurationError,
    InvalidMessage,
    TransportAuthError,
    TransportConnectionError,
)
from mailscale.message import Envelope, SendStatus
from mailscale.transports._http import MAYBE_DELIVERED
from mailscale.transports.base import Transport, TransportURL
from mailscale.transports.mailgun import MailgunTransport
from peers.esp_base import Reply
from peers.esp_messages import make_envelope, make_message
from peers.mailgun_peer import MailgunPeer

KEY = PROVIDER_KEYS["mailgun"]
DOMAIN = "mg.example.com"

SIGNED = (
    b"DKIM-Signature: v=1; a=rsa-sha256; d=example.com; s=sel;\r\n"
    b"\th=from:to:subject; bh=abc=; b=def=\r\n"
    b"From: News <news@mg.example.com>\r\n"
    b"To: alice@example.com\r\n"
    b"Subject:   spacing  kept \r\n"
    b"\r\n"
    b"Body line with trailing spaces   \r\n"
    b"\xc3\xa9 8-bit stays 8-bit\r\n"
)


@pytest.fixture
def peer() -> Iterator[MailgunPeer]:
    with MailgunPeer(KEY, (DOMAIN,)) as p:
        yield p  # type: ignore[misc]


@pytest.fixture
def transport(peer: MailgunPeer) -> Iterator[MailgunTransport]:
    with MailgunTransport(KEY, DOMAIN, base_url=peer.url) as t:
        yield t


def raw_envelope(recipients: tuple[str, ...] = ("alice@example.com",), **kw: object) -> Envelope:
    return Envelope(sender="news@mg.example.com", recipients=recipients, message=SIGNED, **kw)  # type: ignore[arg-type]


class TestContract:
    def test_class_facts(self) -> None:
        """Raw MIME payload, one envelope per call, the mailgun preset."""
        t = MailgunTransport(KEY, DOMAIN)
        assert isinstance(t, Transport)
        assert ("mailgun", "mime", 1, "mailgun") == (t.name, t.payload, t.max_batch, t.rate_preset)
        t.close()

    def test_from_url_regions(self) -> None:
        """The host is the domain; ?region=eu picks the EU API host."""
        us = MailgunTransport.from_url(TransportURL.parse(f"mailgun://{KEY}@{DOMAIN}"))
        eu = MailgunTransport.from_url(TransportURL.parse(f"mailgun://{KEY}@{DOMAIN}?region=eu"))
        assert ("https://api.mailgun.net", "https://api.eu.mailgun.net") == (
            us.base_url,
            eu.base_url,
        )
        assert DOMAIN == eu.domain
        us.close()
        eu.close()

    def test_missing_key_or_domain(self) -> None:
        """No key or no domain: ConfigurationError with the URL redacted."""
        with pytest.raises(ConfigurationError, match="api key"):
            MailgunTransport.from_url(TransportURL.parse(f"mailgun://{DOMAIN}"))
        with pytest.raises(ConfigurationError, match="sending domain") as info:
            MailgunTransport.from_url(TransportURL.parse(f"mailgun://{KEY}@default"))
        assert KEY not in str(info.value)
        assert "***" in str(info.value)

    def test_repr_hides_key(self) -> None:
        """repr names the domain and region, never the key."""
        t = MailgunTransport(KEY, DOMAIN, region="eu")
        assert KEY not in repr(t) and DOMAIN in repr(t)
        t.close()


class TestRequestShape:
    def test_raw_bytes_pass_through(self, peer: MailgunPeer, transport: MailgunTransport) -> None:
        """The message part carries the exact bytes given, DKIM header and 8-bit body intact."""
        [result] = transport.send([raw_envelope()])
        assert SendStatus.ACCEPTED == result.status
        assert f"<000001.peer@{DOMAIN}>" == result.message_id
        assert "Queued. Thank you." == result.status_text
        [(domain, parts)] = peer.accepted
        assert DOMAIN == domain
        [message] = [p for p in parts if p.name == "message"]
        assert SIGNED == message.data
        assert "message/rfc822" == message.content_type

    def test_form_fields(self, peer: MailgunPeer, transport: MailgunTransport) -> None:
        """Recipients as repeated to, tags as o:tag, metadata as v: variables."""
        env = raw_envelope(
            ("a@example.com", "b@example.com"), tags=("news", "weekly"), metadata={"user": "42"}
        )
        assert transport.send([env])[0].accepted
        [req] = peer.requests
        assert f"/v3/{DOMAIN}/messages.mime" == req.path
        assert req.headers["authorization"].startswith("Basic ")
        parts = peer.accepted[0][1]
        assert [
            ("to", b"a@example.com"),
            ("to", b"b@example.com"),
            ("o:tag", b"news"),
            ("o:tag", b"weekly"),
            ("v:user", b"42"),
        ] == [(p.name, p.data) for p in parts if p.name != "message"]

    def test_email_message_serialized(self, peer: MailgunPeer, transport: MailgunTransport) -> None:
        """An EmailMessage is sent in its wire form, without Bcc."""
        msg = make_message(extra={"Bcc": "secret@example.com"})
        env = Envelope.from_message(msg)
        assert transport.send([env])[0].accepted
        [message] = [p for p in peer.accepted[0][1] if p.name == "message"]
        assert env.to_bytes() == message.data
        assert b"secret@example.com" not in message.data

    def test_one_call_per_envelope(self, peer: MailgunPeer, transport: MailgunTransport) -> None:
        """A batch of three makes three calls, results in order."""
        batch = [raw_envelope((f"u{i}@example.com",)) for i in range(3)]
        results = transport.send(batch)
        assert [(f"u{i}@example.com",) for i in range(3)] == [r.recipients for r in results]
        assert 3 == len(peer.requests)

    def test_limits_checked_locally(self, peer: MailgunPeer, transport: MailgunTransport) -> None:
        """Over 1,000 recipients or 3 tags: rejected without a call."""
        many = raw_envelope(tuple(f"r{i}@example.com" for i in range(1001)))
        tagged = raw_envelope(tags=("a", "b", "c", "d"))
        results = transport.send([many, tagged])
        assert [SendStatus.REJECTED] * 2 == [r.status for r in results]
        assert "1001 recipients" in results[0].status_text
        assert "4 tags" in results[1].status_text
        assert [] == peer.requests

    def test_unpreparable_message_rejected(
        self, peer: MailgunPeer, transport: MailgunTransport, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """A message that cannot be prepared is rejected; the rest of the batch is sent."""
        build = MailgunTransport.build_payload

        def failing(self: MailgunTransport, env: Envelope) -> object:
            if env.recipients == ("bad@example.com",):
                raise InvalidMessage("message: cannot be serialized")
            return build(self, env)

        monkeypatch.setattr(MailgunTransport, "build_payload", failing)
        bad, good = transport.send([raw_envelope(("bad@example.com",)), raw_envelope()])
        assert (SendStatus.REJECTED, "local") == (bad.status, bad.status_code)
        assert "message cannot be prepared: message: cannot be serialized" == bad.status_text
        assert good.accepted
        assert 1 == len(peer.requests)

    def test_test_mode(self, peer: MailgunPeer) -> None:
        """test_mode=yes in the URL adds o:testmode."""
        url = TransportURL.parse(f"mailgun://{KEY}@{DOMAIN}?test_mode=yes")
        with MailgunTransport.from_url(url, base_url=peer.url) as t:
            assert t.send([raw_envelope()])[0].accepted
        assert [b"yes"] == [p.data for p in peer.accepted[0][1] if p.name == "o:testmode"]


class TestErrors:
    def test_unknown_domain_rejected(self, peer: MailgunPeer) -> None:
        """404 for an unknown domain rejects with Mailgun's message."""
        with MailgunTransport(KEY, "other.example.com", base_url=peer.url) as t:
            [result] = t.send([raw_envelope()])
        assert (SendStatus.REJECTED, 404) == (result.status, result.status_code)
        assert "Domain not found: other.example.com" == result.status_text

    def test_bad_request_rejected(self, peer: MailgunPeer, transport: MailgunTransport) -> None:
        """400 rejects with the reason."""
        peer.fail_next(1, Reply.json(400, {"message": "to parameter is not a valid address"}))
        [result] = transport.send([raw_envelope()])
        assert (SendStatus.REJECTED, 400, "to parameter is not a valid address") == (
            result.status,
            result.status_code,
            result.status_text,
        )

    def test_forbidden_rejected(self, peer: MailgunPeer, transport: MailgunTransport) -> None:
        """403 (e.g. a sandbox domain's unauthorized recipient) rejects."""
        peer.fail_next(1, Reply.json(403, {"message": "Domain is not allowed to send"}))
        [result] = transport.send([raw_envelope()])
        assert (SendStatus.REJECTED, 403) == (result.status, result.status_code)

    def test_wrong_key_raises(self, peer: MailgunPeer) -> None:
        """401 is a TransportAuthError; neither it nor the logs show the key."""
        wrong = "key-wrong-secret"
        with MailgunTransport(wrong, DOMAIN, base_url=peer.url) as t, capture_logs() as logs:
            with pytest.raises(TransportAuthError) as info:
                t.send([raw_envelope()])
        assert ("mailgun", 401) == (info.value.provider, info.value.status)
        assert wrong not in str(info.value)
        assert all(wrong not in repr(e) for e in logs)

    def test_429_deferred(self, peer: MailgunPeer, transport: MailgunTransport) -> None:
        """429 defers with Retry-After and rate-limit headers."""
        peer.fail_next(1, Reply.json(429, {"message": "rate limited"}, peer.rate_limited("3")))
        [result] = transport.send([raw_envelope()])
        assert (SendStatus.DEFERRED, 3.0) == (result.status, result.retry_after)
        assert "600" == result.rate_limit["x-ratelimit-limit"]

    def test_http_date_retry_after(self, peer: MailgunPeer, transport: MailgunTransport) -> None:
        """Retry-After given as an HTTP date becomes seconds from now."""
        import email.utils
        import time

        when = email.utils.formatdate(time.time() + 60, usegmt=True)
        peer.fail_next(1, Reply.json(503, {"message": "busy"}, {"Retry-After": when}))
        [result] = transport.send([raw_envelope()])
        assert SendStatus.DEFERRED == result.status
        assert result.retry_after is not None and 55 <= result.retry_after <= 60

    def test_500_deferred(self, peer: MailgunPeer, transport: MailgunTransport) -> None:
        """5xx defers."""
        peer.fail_next(1, Reply(500, b"Internal Server Error"))
        [result] = transport.send([raw_envelope()])
        assert (SendStatus.DEFERRED, 500) == (result.status, result.status_code)

    def test_connection_refused(self) -> None:
        """Nothing listening: TransportConnectionError."""
        with MailgunTransport(KEY, DOMAIN, base_url="http://127.0.0.1:9") as t:
            with pytest.raises(TransportConnectionError):
                t.send([raw_envelope()])


class TestUnreadableAnswers:
    @pytest.mark.parametrize(
        ("body", "what"),
        [
            (b"<html>OK</html>", "not JSON"),
            (b"", "not JSON"),
            (b'{"message": "Queued. Thank you."}', 'no "id"'),
            (b'{"id": null}', 'no "id"'),
            (b'{"id": 7}', 'no "id"'),
            (b'{"id": ""}', 'no "id"'),
            (b'["<1.peer@x>"]', 'no "id"'),
        ],
    )
    def test_unreadable_success(
        self, peer: MailgunPeer, transport: MailgunTransport, body: bytes, what: str
    ) -> None:
        """A 200 without Mailgun's {"id": ...} is deferred, marked maybe delivered."""
        peer.garble_next(1, body)
        [result] = transport.send([make_envelope()])
        assert 1 == len(peer.accepted)  # Mailgun did queue it
        assert (
            SendStatus.DEFERRED,
            200,
            None,
            f"Mailgun's HTTP 200 answer could not be read ({what}); {MAYBE_DELIVERED}",
            True,
        ) == (
            result.status,
            result.status_code,
            result.message_id,
            result.status_text,
            result.possibly_delivered,
        )

    def test_others_keep_results(self, peer: MailgunPeer) -> None:
        """One unreadable answer in a batch defers only its own message."""
        peer.garble_next(1, b"<html>OK</html>")
        with MailgunTransport(KEY, DOMAIN, base_url=peer.url, concurrency=1) as t:
            results = t.send([make_envelope(f"{c}@example.com") for c in "abc"])
        assert [SendStatus.DEFERRED, SendStatus.ACCEPTED, SendStatus.ACCEPTED] == [
            r.status for r in results
        ]
        assert [None, "<000002.peer@mg.example.com>", "<000003.peer@mg.example.com>"] == [
            r.message_id for r in results
        ]


class TestAsync:
    def test_send_async_concurrent(self, peer: MailgunPeer) -> None:
        """send_async sends each envelope's call, results in batch order."""

        async def go() -> list[tuple[str, ...]]:
            async with MailgunTransport(KEY, DOMAIN, base_url=peer.url, concurrency=3) as t:
                res = await t.send_async([raw_envelope((f"u{i}@example.com",)) for i in range(6)])
                assert all(r.accepted for r in res)
                return [r.recipients for r in res]

        assert [(f"u{i}@example.com",) for i in range(6)] == asyncio.run(go())
        assert 6 == len(peer.accepted)

    def test_send_async_from_envelope_helper(self, peer: MailgunPeer) -> None:
        """An EmailMessage envelope goes through the async path byte for byte."""
        env = make_envelope()

        async def go() -> None:
            async with MailgunTransport(KEY, DOMAIN, base_url=peer.url) as t:
                [r] = await t.send_async([env])
                assert r.accepted

        asyncio.run(go())
        [message] = [p for p in peer.accepted[0][1] if p.name == "message"]
        assert env.to_bytes() == message.data
