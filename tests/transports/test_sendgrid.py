"""SendGrid transport against the loopback v3 Mail Send peer."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Iterator

import pytest
from structlog.testing import capture_logs
from transport_helpers import INJECTIONS, PROVIDER_KEYS

from mailscale.errors import (
    ConfigurationError,
    TransportAuthError,
    TransportConnectionError,
    TransportError,
    TransportTimeout,
)
from mailscale.message import Envelope, SendStatus
from mailscale.transports.base import Transport, TransportURL
from mailscale.transports.sendgrid import SendGridTransport
from peers.esp_base import Recorded, Reply
from peers.esp_messages import make_envelope, make_message, named_envelope
from peers.sendgrid_peer import SendGridPeer

KEY = PROVIDER_KEYS["sendgrid"]


@pytest.fixture
def peer() -> Iterator[SendGridPeer]:
    with SendGridPeer(KEY) as p:
        yield p  # type: ignore[misc]


@pytest.fixture
def transport(peer: SendGridPeer) -> Iterator[SendGridTransport]:
    with SendGridTransport(KEY, base_url=peer.url) as t:
        yield t


class TestContract:
    def test_satisfies_protocol(self) -> None:
        """The class states its scheme, payload, batch size and rate preset."""
        t = SendGridTransport(KEY)
        assert isinstance(t, Transport)
        assert ("sendgrid", "json", 1000, "sendgrid") == (
            t.name,
            t.payload,
            t.max_batch,
            t.rate_preset,
        )
        t.close()

    def test_from_url(self) -> None:
        """The key comes from the URL's user part; the global host is the default."""
        t = SendGridTransport.from_url(TransportURL.parse(f"sendgrid://{KEY}@default"))
        assert "https://api.sendgrid.com" == t.base_url
        t.close()

    def test_eu_region(self) -> None:
        """?region=eu selects the EU host."""
        t = SendGridTransport.from_url(TransportURL.parse(f"sendgrid://{KEY}@default?region=eu"))
        assert "https://api.eu.sendgrid.com" == t.base_url
        t.close()

    def test_missing_key(self) -> None:
        """A URL without a key is a ConfigurationError naming the redacted URL."""
        with pytest.raises(ConfigurationError, match=r"sendgrid://default.*api key"):
            SendGridTransport.from_url(TransportURL.parse("sendgrid://default"))

    def test_unknown_region_and_option(self) -> None:
        """Unknown regions and options are errors that never show the key."""
        with pytest.raises(ConfigurationError) as info:
            SendGridTransport.from_url(TransportURL.parse(f"sendgrid://{KEY}@default?region=mars"))
        assert KEY not in str(info.value)
        with pytest.raises(ConfigurationError, match="colour") as info:
            SendGridTransport.from_url(TransportURL.parse(f"sendgrid://{KEY}@default?colour=red"))
        assert KEY not in str(info.value)

    def test_repr_hides_key(self) -> None:
        """repr shows the host, never the key."""
        t = SendGridTransport(KEY)
        assert KEY not in repr(t)
        assert "api.sendgrid.com" in repr(t)
        t.close()


class TestRequestShape:
    def test_single_message(self, peer: SendGridPeer, transport: SendGridTransport) -> None:
        """One envelope becomes one request with the documented JSON fields."""
        env = make_envelope(
            html="<p>Hello</p>",
            tags=("welcome",),
            metadata={"user": "42"},
            extra={"List-Unsubscribe": "<mailto:u@x.org>"},
        )
        [result] = transport.send([env])
        assert SendStatus.ACCEPTED == result.status
        assert "sgpeer000001" == result.message_id
        assert 202 == result.status_code
        [req] = peer.requests
        assert f"Bearer {KEY}" == req.headers["authorization"]
        assert "application/json" == req.headers["content-type"]
        body = req.json()
        [pers] = body["personalizations"]
        assert [{"email": "alice@example.com"}] == pers["to"]
        assert {"user": "42"} == pers["custom_args"]
        assert "Hello" == pers["subject"]
        assert {"email": "news@mail.example.org", "name": "News"} == body["from"]
        assert [("text/plain", "Hello there.\n"), ("text/html", "<p>Hello</p>\n")] == [
            (c["type"], c["value"]) for c in body["content"]
        ]
        assert ["welcome"] == body["categories"]
        assert {"List-Unsubscribe": "<mailto:u@x.org>"} == pers["headers"]
        assert "subject" not in body and "headers" not in body

    def test_from_bytes(self, peer: SendGridPeer, transport: SendGridTransport) -> None:
        """A message given as bytes is parsed into the same fields."""
        raw = make_message(to="bob@example.com").as_bytes()
        env = Envelope(sender="news@mail.example.org", recipients=["bob@example.com"], message=raw)
        [result] = transport.send([env])
        assert result.accepted
        body = peer.requests[0].json()
        assert [{"email": "bob@example.com"}] == body["personalizations"][0]["to"]
        assert "Hello there.\n" == body["content"][0]["value"]

    def test_cc_and_bcc(self, peer: SendGridPeer, transport: SendGridTransport) -> None:
        """Envelope recipients split into to / cc / bcc by the message headers."""
        msg = make_message(to="a@example.com", cc="c@example.com")
        env = Envelope.from_message(
            msg, recipients=["a@example.com", "c@example.com", "hidden@example.com"]
        )
        assert transport.send([env])[0].accepted
        [p] = peer.requests[0].json()["personalizations"]
        assert [{"email": "a@example.com"}] == p["to"]
        assert [{"email": "c@example.com"}] == p["cc"]
        assert [{"email": "hidden@example.com"}] == p["bcc"]

    def test_all_hidden_recipients(self, peer: SendGridPeer, transport: SendGridTransport) -> None:
        """Recipients absent from To/Cc get one personalization each, never seeing each other."""
        msg = make_message(to="list@example.org")
        env = Envelope.from_message(msg, recipients=["x@example.com", "y@example.com"])
        [result] = transport.send([env])
        assert result.accepted
        pers = peer.requests[0].json()["personalizations"]
        assert [[{"email": "x@example.com"}], [{"email": "y@example.com"}]] == [
            p["to"] for p in pers
        ]

    def test_attachment(self, peer: SendGridPeer, transport: SendGridTransport) -> None:
        """Attachments travel base64-encoded with type, filename and disposition."""
        msg = make_message()
        msg.add_attachment(
            b"\x00\x01pdfdata", maintype="application", subtype="pdf", filename="report.pdf"
        )
        assert transport.send([Envelope.from_message(msg)])[0].accepted
        [att] = peer.requests[0].json()["attachments"]
        assert ("application/pdf", "report.pdf", "attachment") == (
            att["type"],
            att["filename"],
            att["disposition"],
        )
        assert b"\x00\x01pdfdata" == base64.b64decode(att["content"])


class TestAddresses:
    @pytest.mark.parametrize("form", ["bytes", "message"])
    def test_display_names_kept(
        self, peer: SendGridPeer, transport: SendGridTransport, form: str
    ) -> None:
        """to, cc, from and reply_to keep their decoded names; a name with a comma is quoted."""
        assert transport.send([named_envelope(form)])[0].accepted
        body = peer.requests[0].json()
        [pers] = body["personalizations"]
        assert [
            {"email": "a@example.com", "name": '"Smith, John"'},
            {"email": "b@example.com", "name": "Bob"},
        ] == pers["to"]
        assert [{"email": "c@example.com", "name": "Caröl"}] == pers["cc"]
        assert "bcc" not in pers
        assert {"email": "news@mail.example.org", "name": "Jörg Dœ"} == body["from"]
        assert {"email": "help@example.org", "name": 'Help "Desk"'} == body["reply_to"]

    def test_semicolon_and_quote_in_name(
        self, peer: SendGridPeer, transport: SendGridTransport
    ) -> None:
        """A personalization name with ';' is a quoted string, inner quotes escaped."""
        msg = make_message(to='"Ops; \\"Night\\" Shift" <ops@example.com>')
        assert transport.send([Envelope.from_message(msg)])[0].accepted
        [pers] = peer.requests[0].json()["personalizations"]
        assert [{"email": "ops@example.com", "name": '"Ops; \\"Night\\" Shift"'}] == pers["to"]

    def test_explicit_attachment_disposition_wins(
        self, peer: SendGridPeer, transport: SendGridTransport
    ) -> None:
        """Content-ID with Content-Disposition: attachment is an attachment, without content_id;
        a Content-ID without a disposition is inline."""
        msg = make_message(html='<img src="cid:logo">')
        msg.get_payload()[1].add_related(  # type: ignore[index]
            b"\x89PNG...", maintype="image", subtype="png", cid="<logo>"
        )
        msg.add_attachment(
            b"%PDF", maintype="application", subtype="pdf", filename="doc.pdf", cid="<doc1>"
        )
        assert transport.send([Envelope.from_message(msg)])[0].accepted
        atts = peer.requests[0].json()["attachments"]
        assert [("image/png", "inline", "logo"), ("application/pdf", "attachment", None)] == [
            (a["type"], a["disposition"], a.get("content_id")) for a in atts
        ]


class TestBatching:
    def test_identical_content_shares_a_request(
        self, peer: SendGridPeer, transport: SendGridTransport
    ) -> None:
        """Envelopes with the same content go in one request, one personalization each."""
        batch = [make_envelope(f"user{i}@example.com", metadata={"n": str(i)}) for i in range(5)]
        # The To header differs per envelope, but SendGrid builds To from personalizations.
        results = transport.send(batch)
        assert [SendStatus.ACCEPTED] * 5 == [r.status for r in results]
        assert 1 == len(peer.requests)
        pers = peer.requests[0].json()["personalizations"]
        assert [f"user{i}@example.com" for i in range(5)] == [p["to"][0]["email"] for p in pers]
        assert [str(i) for i in range(5)] == [p["custom_args"]["n"] for p in pers]
        assert {"sgpeer000001"} == {r.message_id for r in results}

    def test_different_content_separate_requests(
        self, peer: SendGridPeer, transport: SendGridTransport
    ) -> None:
        """Different bodies cannot share a request; results keep the batch order."""
        batch = [
            make_envelope("a@example.com", text="A"),
            make_envelope("b@example.com", text="B"),
            make_envelope("c@example.com", text="A"),
        ]
        results = transport.send(batch)
        assert [("a@example.com",), ("b@example.com",), ("c@example.com",)] == [
            r.recipients for r in results
        ]
        assert 2 == len(peer.requests)
        assert ["A\n", "B\n"] == sorted(r.json()["content"][0]["value"] for r in peer.requests)
        assert results[0].message_id == results[2].message_id != results[1].message_id

    def test_per_message_subject_and_headers(
        self, peer: SendGridPeer, transport: SendGridTransport
    ) -> None:
        """Subjects and headers (Message-ID) differ per personalization, so they still batch."""
        batch = [
            make_envelope(
                f"u{i}@example.com",
                subject=f"Hi {i}",
                extra={"Message-ID": f"<m{i}@mail.example.org>"},
            )
            for i in range(3)
        ]
        assert all(r.accepted for r in transport.send(batch))
        [req] = peer.requests
        assert [(f"Hi {i}", f"<m{i}@mail.example.org>") for i in range(3)] == [
            (p["subject"], p["headers"]["Message-ID"]) for p in req.json()["personalizations"]
        ]

    def test_personalization_limit(self, peer: SendGridPeer, transport: SendGridTransport) -> None:
        """1,001 envelopes need two requests: 1,000 personalizations, then 1."""
        batch = [make_envelope(f"u{i}@example.com") for i in range(1001)]
        results = transport.send(batch)
        assert 1001 == sum(r.accepted for r in results)
        assert [1, 1000] == sorted(len(r.json()["personalizations"]) for r in peer.requests)

    def test_recipient_limit(self, peer: SendGridPeer, transport: SendGridTransport) -> None:
        """The 1,000-recipient total splits requests before an envelope would cross it."""
        msg = make_message(to="list@example.org")
        big = [
            Envelope.from_message(msg, recipients=[f"r{j}-{i}@example.com" for j in range(400)])
            for i in range(3)
        ]
        results = transport.send(big)
        assert 3 == sum(r.accepted for r in results)
        assert [400, 800] == sorted(len(r.json()["personalizations"]) for r in peer.requests)

    def test_too_many_recipients_rejected_locally(
        self, peer: SendGridPeer, transport: SendGridTransport
    ) -> None:
        """An envelope over 1,000 recipients is rejected without a request."""
        msg = make_message(to="list@example.org")
        env = Envelope.from_message(msg, recipients=[f"r{j}@example.com" for j in range(1001)])
        [result] = transport.send([env])
        assert SendStatus.REJECTED == result.status
        assert "1001 recipients" in result.status_text
        assert [] == peer.requests


class TestErrors:
    def test_400_rejected_with_reasons(
        self, peer: SendGridPeer, transport: SendGridTransport
    ) -> None:
        """A 400 rejects with SendGrid's error messages."""
        env = make_envelope(extra={"X-Sg-Id": "forged"})
        [result] = transport.send([env])
        assert SendStatus.REJECTED == result.status
        assert 400 == result.status_code
        assert "personalizations.0.headers: The header X-Sg-Id is reserved" in result.status_text

    def test_400_names_one_envelope(self, peer: SendGridPeer, transport: SendGridTransport) -> None:
        """When errors point at one personalization, only its envelope is rejected.

        The others of that request were not sent; they go again at once, without it.
        """
        peer.invalid_recipients.add("bad@example.com")
        batch = [
            make_envelope("good@example.com"),
            make_envelope("bad@example.com"),
            make_envelope("fine@example.com"),
        ]
        good, bad, fine = transport.send(batch)
        assert SendStatus.REJECTED == bad.status
        assert "valid address" in bad.status_text
        assert (SendStatus.ACCEPTED, SendStatus.ACCEPTED) == (good.status, fine.status)
        assert [
            ["good@example.com", "bad@example.com", "fine@example.com"],
            ["good@example.com", "fine@example.com"],
        ] == [[p["to"][0]["email"] for p in r.json()["personalizations"]] for r in peer.requests]

    def test_400_resend_failure_keeps_results(
        self, peer: SendGridPeer, transport: SendGridTransport
    ) -> None:
        """If the second pass cannot connect, the held-back envelopes stay deferred."""
        peer.invalid_recipients.add("bad@example.com")
        answer = peer.handle

        def answer_then_drop_next(req: Recorded) -> Reply:
            peer.drop_next(1)
            return answer(req)

        peer.handle = answer_then_drop_next  # type: ignore[method-assign]
        bad, good = transport.send([make_envelope("bad@example.com"), make_envelope()])
        assert (SendStatus.REJECTED, SendStatus.DEFERRED) == (bad.status, good.status)
        assert "not sent" in good.status_text

    def test_400_resend_is_async_too(self, peer: SendGridPeer) -> None:
        """send_async also sends the held-back envelopes again."""
        peer.invalid_recipients.add("bad@example.com")

        async def go() -> list[SendStatus]:
            async with SendGridTransport(KEY, base_url=peer.url) as t:
                res = await t.send_async([make_envelope("bad@example.com"), make_envelope()])
                return [r.status for r in res]

        assert [SendStatus.REJECTED, SendStatus.ACCEPTED] == asyncio.run(go())
        assert 2 == len(peer.requests)

    def test_auth_refused_raises(self, peer: SendGridPeer) -> None:
        """A wrong key is a whole-call TransportAuthError that never shows the key."""
        wrong = "SG.wrong-key-secret"
        with SendGridTransport(wrong, base_url=peer.url) as t, capture_logs() as logs:
            with pytest.raises(TransportAuthError) as info:
                t.send([make_envelope()])
        assert ("sendgrid", 401) == (info.value.provider, info.value.status)
        assert ("alice@example.com",) == info.value.recipients
        assert wrong not in str(info.value) and wrong not in repr(info.value)
        assert logs and all(wrong not in repr(e) for e in logs)

    @pytest.mark.parametrize("code", [403, 413])
    def test_permanent_codes(
        self, peer: SendGridPeer, transport: SendGridTransport, code: int
    ) -> None:
        """403 and 413 reject."""
        peer.fail_next(1, Reply.json(code, {"errors": [{"message": "nope", "field": None}]}))
        [result] = transport.send([make_envelope()])
        assert (SendStatus.REJECTED, code, "nope") == (
            result.status,
            result.status_code,
            result.status_text,
        )

    def test_429_deferred_with_headers(
        self, peer: SendGridPeer, transport: SendGridTransport
    ) -> None:
        """429 defers with Retry-After and the rate-limit headers for the shaper."""
        peer.fail_next(
            1,
            Reply.json(
                429, {"errors": [{"message": "too many requests"}]}, peer.rate_limited("12", 600)
            ),
        )
        [result] = transport.send([make_envelope()])
        assert SendStatus.DEFERRED == result.status
        assert 12.0 == result.retry_after
        assert {
            "retry-after": "12",
            "x-ratelimit-limit": "600",
            "x-ratelimit-remaining": "0",
            "x-ratelimit-reset": "0",
        } == dict(result.rate_limit)

    def test_429_reset_header_only(self, peer: SendGridPeer, transport: SendGridTransport) -> None:
        """Without Retry-After, X-RateLimit-Reset (epoch seconds) gives the wait."""
        import time

        reset = int(time.time()) + 30
        peer.fail_next(1, Reply.json(429, {}, {"X-RateLimit-Reset": str(reset)}))
        [result] = transport.send([make_envelope()])
        assert result.retry_after is not None and 20 < result.retry_after <= 30

    @pytest.mark.parametrize("code", [500, 503])
    def test_5xx_deferred(
        self, peer: SendGridPeer, transport: SendGridTransport, code: int
    ) -> None:
        """5xx defers."""
        peer.fail_next(1, Reply(code, b"oops"))
        [result] = transport.send([make_envelope()])
        assert (SendStatus.DEFERRED, code) == (result.status, result.status_code)
        assert transport.send([make_envelope()])[0].accepted

    @pytest.mark.parametrize("body", [b"<html>OK</html>", b"[null]", b'{"errors": 1}'])
    def test_success_body_not_read(
        self, peer: SendGridPeer, transport: SendGridTransport, body: bytes
    ) -> None:
        """SendGrid's success is the 202 status (its body is empty): a hostile body on a 202
        changes nothing, the X-Message-Id header is the id."""
        peer.garble_next(1, body)
        [result] = transport.send([make_envelope()])
        assert (SendStatus.ACCEPTED, 202, "sgpeer000001") == (
            result.status,
            result.status_code,
            result.message_id,
        )

    def test_success_carries_rate_headers(
        self, peer: SendGridPeer, transport: SendGridTransport
    ) -> None:
        """Rate-limit headers of a success are on the result too."""
        peer.fail_next(1, Reply(202, b"", {"X-Message-Id": "m1", "X-RateLimit-Remaining": "5"}))
        [result] = transport.send([make_envelope()])
        assert ("m1", "5", None) == (
            result.message_id,
            result.rate_limit["x-ratelimit-remaining"],
            result.retry_after,
        )

    def test_connection_refused(self) -> None:
        """Nothing listening: TransportConnectionError, transient, naming the provider."""
        with SendGridTransport(KEY, base_url="http://127.0.0.1:9") as t:
            with pytest.raises(TransportConnectionError) as info:
                t.send([make_envelope()])
        assert info.value.transient and "sendgrid" == info.value.provider
        assert KEY not in str(info.value)

    def test_timeout(self, peer: SendGridPeer) -> None:
        """A peer that never answers gives TransportTimeout."""
        import socket

        with socket.socket() as silent:
            silent.bind(("127.0.0.1", 0))
            silent.listen(1)
            url = f"http://127.0.0.1:{silent.getsockname()[1]}"
            with SendGridTransport(KEY, base_url=url, timeout=0.2) as t:
                with pytest.raises(TransportTimeout):
                    t.send([make_envelope()])

    def test_later_failure_defers_instead_of_raising(self, peer: SendGridPeer) -> None:
        """Once a request succeeded, a dropped connection defers the rest, keeping results."""
        transport = SendGridTransport(KEY, base_url=peer.url, concurrency=1)
        batch = [make_envelope("a@example.com", text="A"), make_envelope("b@example.com", text="B")]
        answer = peer.handle

        def answer_then_drop_next(req: Recorded) -> Reply:
            peer.drop_next(1)
            return answer(req)

        peer.handle = answer_then_drop_next  # type: ignore[method-assign]
        with transport:
            first, second = transport.send(batch)
        assert (SendStatus.ACCEPTED, SendStatus.DEFERRED) == (first.status, second.status)
        assert "may or may not have been delivered" in second.status_text


class TestConnections:
    def test_concurrent_requests(self, peer: SendGridPeer) -> None:
        """A batch needing several requests runs `concurrency` at once; results stay in order."""
        peer.delay = 0.05
        batch = [make_envelope(f"u{i}@example.com", text=f"body {i}") for i in range(8)]
        with SendGridTransport(KEY, base_url=peer.url, concurrency=4) as t:
            results = t.send(batch)
        assert [(f"u{i}@example.com",) for i in range(8)] == [r.recipients for r in results]
        assert all(r.accepted for r in results)
        assert 8 == len(peer.requests)
        assert 1 < len({r.client_port for r in peer.requests}) <= 4

    def test_sync_pool_reused(self, peer: SendGridPeer, transport: SendGridTransport) -> None:
        """Successive sends reuse one pooled connection."""
        transport.send([make_envelope()])
        transport.send([make_envelope()])
        assert 1 == len({r.client_port for r in peer.requests})

    def test_async_session_reuses_pool(self, peer: SendGridPeer) -> None:
        """Inside async with, send_async calls share one connection pool."""

        async def go() -> None:
            async with SendGridTransport(KEY, base_url=peer.url) as t:
                for _ in range(3):
                    assert (await t.send_async([make_envelope()]))[0].accepted

        asyncio.run(go())
        assert 1 == len({r.client_port for r in peer.requests})

    def test_async_without_session_across_loops(self, peer: SendGridPeer) -> None:
        """Without a session, each event loop's call cleans up after itself (no leaked socket)."""
        t = SendGridTransport(KEY, base_url=peer.url)
        first = asyncio.run(t.send_async([make_envelope()]))
        second = asyncio.run(t.send_async([make_envelope()]))
        t.close()
        assert [True, True] == [first[0].accepted, second[0].accepted]

    def test_closed_transport_refuses(self, peer: SendGridPeer) -> None:
        """A closed transport raises TransportError instead of reopening."""
        t = SendGridTransport(KEY, base_url=peer.url)
        t.close()
        with pytest.raises(TransportError, match="closed"):
            t.send([make_envelope()])


class TestAsync:
    def test_send_async(self, peer: SendGridPeer) -> None:
        """send_async uses httpx.AsyncClient and returns the same results."""

        async def go() -> list[SendStatus]:
            async with SendGridTransport(KEY, base_url=peer.url) as t:
                res = await t.send_async(
                    [
                        make_envelope("a@example.com", text="A"),
                        make_envelope("b@example.com", text="B"),
                    ]
                )
                return [r.status for r in res]

        assert [SendStatus.ACCEPTED] * 2 == asyncio.run(go())
        assert 2 == len(peer.requests)
        assert all("python-httpx" not in r.headers.get("user-agent", "") for r in peer.requests)

    def test_send_async_auth_refused(self, peer: SendGridPeer) -> None:
        """Async sends raise the same typed errors."""

        async def go() -> None:
            async with SendGridTransport("SG.wrong", base_url=peer.url) as t:
                await t.send_async([make_envelope()])

        with pytest.raises(TransportAuthError):
            asyncio.run(go())

    def test_async_connection_refused(self) -> None:
        """Nothing listening: the async path raises TransportConnectionError too."""

        async def go() -> None:
            async with SendGridTransport(KEY, base_url="http://127.0.0.1:9") as t:
                await t.send_async([make_envelope()])

        with pytest.raises(TransportConnectionError):
            asyncio.run(go())


class TestDecodedHeaderInjection:
    @pytest.mark.parametrize("case", sorted(INJECTIONS))
    def test_rejected_locally(
        self, peer: SendGridPeer, transport: SendGridTransport, case: str
    ) -> None:
        """A decoded header value with a line break rejects the message; nothing is sent."""
        env = Envelope(
            sender="sender@example.com", recipients=["rcpt@example.net"], message=INJECTIONS[case]
        )
        [result] = transport.send([env])
        assert (SendStatus.REJECTED, "local") == (result.status, result.status_code)
        assert "header injection" in result.status_text
        assert [] == peer.requests

    def test_other_messages_still_sent(
        self, peer: SendGridPeer, transport: SendGridTransport
    ) -> None:
        """Only the injecting message is rejected; the rest of the batch goes out."""
        bad = Envelope(
            sender="sender@example.com",
            recipients=["rcpt@example.net"],
            message=INJECTIONS["subject"],
        )
        results = transport.send([bad, make_envelope()])
        assert [SendStatus.REJECTED, SendStatus.ACCEPTED] == [r.status for r in results]
        assert "evil" not in peer.requests[0].body.decode()


class TestLaterAuthFailure:
    def test_refused_request_defers_answered_kept(self, peer: SendGridPeer) -> None:
        """A 401 on one request of a batch defers its envelopes; the answered ones are kept."""
        peer.fail_next(1, Reply.json(401, {"errors": [{"message": "bad key"}]}))
        with SendGridTransport(KEY, base_url=peer.url, concurrency=1) as t:
            results = t.send([make_envelope(text="one\n"), make_envelope(text="two\n")])
        assert [SendStatus.DEFERRED, SendStatus.ACCEPTED] == [r.status for r in results]
        assert (401, True) == (
            results[0].status_code,
            "refused the credentials" in results[0].status_text,
        )

    def test_async_too(self, peer: SendGridPeer) -> None:
        """The same holds for send_async."""
        peer.fail_next(1, Reply.json(401, {"errors": [{"message": "bad key"}]}))

        async def go() -> list[SendStatus]:
            async with SendGridTransport(KEY, base_url=peer.url, concurrency=1) as t:
                envs = [make_envelope(text="one\n"), make_envelope(text="two\n")]
                return [r.status for r in await t.send_async(envs)]

        assert [SendStatus.DEFERRED, SendStatus.ACCEPTED] == asyncio.run(go())
