"""Postmark transport against the loopback /email and /email/batch peer."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from structlog.testing import capture_logs
from transport_helpers import INJECTIONS, PROVIDER_KEYS

from mailscale.errors import ConfigurationError, TransportAuthError
from mailscale.message import Envelope, SendStatus
from mailscale.transports._http import MAYBE_DELIVERED
from mailscale.transports.base import Transport, TransportURL
from mailscale.transports.postmark import PostmarkTransport, status_for_error_code
from peers.esp_base import Reply
from peers.esp_messages import make_envelope, make_message, named_envelope
from peers.postmark_peer import PostmarkPeer

TOKEN = PROVIDER_KEYS["postmark"]


@pytest.fixture
def peer() -> Iterator[PostmarkPeer]:
    with PostmarkPeer(TOKEN) as p:
        yield p  # type: ignore[misc]


@pytest.fixture
def transport(peer: PostmarkPeer) -> Iterator[PostmarkTransport]:
    with PostmarkTransport(TOKEN, base_url=peer.url) as t:
        yield t


class TestContract:
    def test_class_facts(self) -> None:
        """JSON payload, batches of 500, the postmark preset."""
        t = PostmarkTransport(TOKEN)
        assert isinstance(t, Transport)
        assert ("postmark", "json", 500, "postmark", "https://api.postmarkapp.com") == (
            t.name,
            t.payload,
            t.max_batch,
            t.rate_preset,
            t.base_url,
        )
        t.close()

    def test_from_url(self) -> None:
        """Token from the URL, message stream from the query."""
        url = TransportURL.parse(f"postmark://{TOKEN}@default?message_stream=broadcast")
        t = PostmarkTransport.from_url(url)
        assert "broadcast" == t.message_stream
        assert TOKEN not in repr(t)
        t.close()

    def test_missing_token(self) -> None:
        """No token: ConfigurationError."""
        with pytest.raises(ConfigurationError, match="server token"):
            PostmarkTransport.from_url(TransportURL.parse("postmark://default"))

    @pytest.mark.parametrize(
        ("code", "status"),
        [
            (0, SendStatus.ACCEPTED),
            (100, SendStatus.DEFERRED),
            (300, SendStatus.REJECTED),
            (406, SendStatus.REJECTED),
            (10, SendStatus.REJECTED),
            (400, SendStatus.REJECTED),
            (401, SendStatus.REJECTED),
            (405, SendStatus.REJECTED),
            (410, SendStatus.REJECTED),
            (411, SendStatus.REJECTED),
            (412, SendStatus.REJECTED),
            (413, SendStatus.REJECTED),
            (429, SendStatus.DEFERRED),
        ],
    )
    def test_error_code_mapping(self, code: int, status: SendStatus) -> None:
        """Postmark ErrorCodes map to accepted / deferred / rejected."""
        assert status == status_for_error_code(code)


class TestSingle:
    def test_email_shape(self, peer: PostmarkPeer, transport: PostmarkTransport) -> None:
        """One envelope posts to /email with Postmark's field names."""
        env = make_envelope(
            html="<b>hi</b>", tags=("welcome",), metadata={"user": "42"}, extra={"X-Campaign": "c1"}
        )
        [result] = transport.send([env])
        assert (SendStatus.ACCEPTED, 0, "OK") == (
            result.status,
            result.status_code,
            result.status_text,
        )
        assert str(uuid.UUID(int=1)) == result.message_id
        [req] = peer.requests
        assert "/email" == req.path
        assert TOKEN == req.headers["x-postmark-server-token"]
        body = req.json()
        assert "News <news@mail.example.org>" == body["From"]
        assert "alice@example.com" == body["To"]
        assert ("Hello", "Hello there.\n", "<b>hi</b>\n") == (
            body["Subject"],
            body["TextBody"],
            body["HtmlBody"],
        )
        assert "welcome" == body["Tag"]
        assert {"user": "42"} == body["Metadata"]
        assert {"Name": "X-Campaign", "Value": "c1"} in body["Headers"]
        assert "MessageStream" not in body

    def test_message_stream(self, peer: PostmarkPeer) -> None:
        """The message_stream option is sent as MessageStream."""
        with PostmarkTransport(TOKEN, base_url=peer.url, message_stream="broadcast") as t:
            assert t.send([make_envelope()])[0].accepted
        assert "broadcast" == peer.requests[0].json()["MessageStream"]

    def test_unsigned_sender_rejected(
        self, peer: PostmarkPeer, transport: PostmarkTransport
    ) -> None:
        """422 with ErrorCode 400 (no sender signature) rejects with Postmark's message."""
        [result] = transport.send([make_envelope(sender="other@elsewhere.example")])
        assert (SendStatus.REJECTED, 400) == (result.status, result.status_code)
        assert "not a Sender Signature" in result.status_text

    def test_inactive_recipient(self, peer: PostmarkPeer, transport: PostmarkTransport) -> None:
        """ErrorCode 406 (inactive recipient) rejects."""
        peer.inactive.add("alice@example.com")
        [result] = transport.send([make_envelope()])
        assert (SendStatus.REJECTED, 406) == (result.status, result.status_code)

    def test_maintenance_deferred(self, peer: PostmarkPeer, transport: PostmarkTransport) -> None:
        """ErrorCode 100 defers."""
        peer.maintenance = True
        [result] = transport.send([make_envelope()])
        assert (SendStatus.DEFERRED, 100) == (result.status, result.status_code)

    def test_bad_token_raises(self, peer: PostmarkPeer) -> None:
        """401 (ErrorCode 10) raises TransportAuthError without the token anywhere."""
        wrong = "pm-wrong-token-secret"
        with PostmarkTransport(wrong, base_url=peer.url) as t, capture_logs() as logs:
            with pytest.raises(TransportAuthError) as info:
                t.send([make_envelope()])
        assert wrong not in str(info.value)
        assert all(wrong not in repr(e) for e in logs)

    def test_test_token(self, peer: PostmarkPeer) -> None:
        """POSTMARK_API_TEST is accepted like a real token."""
        with PostmarkTransport("POSTMARK_API_TEST", base_url=peer.url) as t:
            assert t.send([make_envelope()])[0].accepted

    @pytest.mark.parametrize("code", [429, 500, 503])
    def test_transient_http(
        self, peer: PostmarkPeer, transport: PostmarkTransport, code: int
    ) -> None:
        """429, 500 and 503 defer with the HTTP status and any Retry-After."""
        peer.fail_next(
            1, Reply.json(code, {"ErrorCode": 0, "Message": "slow down"}, {"Retry-After": "4"})
        )
        [result] = transport.send([make_envelope()])
        assert (SendStatus.DEFERRED, code, 4.0, "slow down") == (
            result.status,
            result.status_code,
            result.retry_after,
            result.status_text,
        )

    def test_hidden_recipients(self, peer: PostmarkPeer, transport: PostmarkTransport) -> None:
        """Recipients absent from To/Cc become one message each in a batch call."""
        env = Envelope.from_message(
            make_message(to="list@example.org"), recipients=["x@example.com", "y@example.com"]
        )
        peer.inactive.add("y@example.com")
        [result] = transport.send([env])
        assert "/email/batch" == peer.requests[0].path
        assert ["x@example.com", "y@example.com"] == [m["To"] for m in peer.requests[0].json()]
        assert SendStatus.ACCEPTED == result.status
        assert [("x@example.com", SendStatus.ACCEPTED), ("y@example.com", SendStatus.REJECTED)] == [
            (r.recipient, r.status) for r in result.recipient_results
        ]

    def test_cc_bcc(self, peer: PostmarkPeer, transport: PostmarkTransport) -> None:
        """Envelope recipients split into To / Cc / Bcc."""
        env = Envelope.from_message(
            make_message(to="a@example.com", cc="c@example.com"),
            recipients=["a@example.com", "c@example.com", "h@example.com"],
        )
        assert transport.send([env])[0].accepted
        body = peer.requests[0].json()
        assert ("a@example.com", "c@example.com", "h@example.com") == (
            body["To"],
            body["Cc"],
            body["Bcc"],
        )

    def test_too_many_recipients_local(
        self, peer: PostmarkPeer, transport: PostmarkTransport
    ) -> None:
        """Over 50 recipients: rejected without a call."""
        env = Envelope.from_message(
            make_message(to="list@example.org"), recipients=[f"r{i}@example.com" for i in range(51)]
        )
        [result] = transport.send([env])
        assert (SendStatus.REJECTED, "local") == (result.status, result.status_code)
        assert [] == peer.requests


class TestAddresses:
    @pytest.mark.parametrize("form", ["bytes", "message"])
    def test_display_names_kept(
        self, peer: PostmarkPeer, transport: PostmarkTransport, form: str
    ) -> None:
        """To, Cc, From and ReplyTo keep their names: decoded text, RFC 5322-quoted as needed."""
        [result] = transport.send([named_envelope(form)])
        assert (SendStatus.ACCEPTED, 0) == (result.status, result.status_code)
        body = peer.requests[0].json()
        assert (
            "Jörg Dœ <news@mail.example.org>",
            '"Smith, John" <a@example.com>, Bob <b@example.com>',
            "Caröl <c@example.com>",
            '"Help \\"Desk\\"" <help@example.org>',
        ) == (body["From"], body["To"], body["Cc"], body["ReplyTo"])
        assert "Bcc" not in body

    def test_explicit_attachment_disposition_wins(
        self, peer: PostmarkPeer, transport: PostmarkTransport
    ) -> None:
        """A part with a Content-ID and Content-Disposition: attachment gets no ContentID."""
        msg = make_message(html='<img src="cid:logo">')
        msg.get_payload()[1].add_related(  # type: ignore[index]
            b"\x89PNG...", maintype="image", subtype="png", cid="<logo>"
        )
        msg.add_attachment(
            b"%PDF", maintype="application", subtype="pdf", filename="doc.pdf", cid="<doc1>"
        )
        assert transport.send([Envelope.from_message(msg)])[0].accepted
        atts = peer.requests[0].json()["Attachments"]
        assert [("image/png", "cid:logo"), ("application/pdf", None)] == [
            (a["ContentType"], a.get("ContentID")) for a in atts
        ]


class TestBatch:
    def test_batch_checks_each_entry(
        self, peer: PostmarkPeer, transport: PostmarkTransport
    ) -> None:
        """The batch answers 200, yet each entry's ErrorCode decides its envelope."""
        peer.inactive.add("b@example.com")
        batch = [
            make_envelope("a@example.com"),
            make_envelope("b@example.com"),
            make_envelope("c@example.com"),
        ]
        results = transport.send(batch)
        assert [SendStatus.ACCEPTED, SendStatus.REJECTED, SendStatus.ACCEPTED] == [
            r.status for r in results
        ]
        assert [0, 406, 0] == [r.status_code for r in results]
        assert ["/email/batch"] == [r.path for r in peer.requests]
        assert 3 == len(peer.requests[0].json())

    def test_batch_limit(self, peer: PostmarkPeer, transport: PostmarkTransport) -> None:
        """501 envelopes make two batch calls: 500 and 1."""
        batch = [make_envelope(f"u{i}@example.com") for i in range(501)]
        results = transport.send(batch)
        assert 501 == sum(r.accepted for r in results)
        assert [1, 500] == sorted(len(r.json()) for r in peer.requests)
        assert len({r.message_id for r in results}) == 501

    def test_whole_batch_422(self, peer: PostmarkPeer, transport: PostmarkTransport) -> None:
        """A 422 for the whole batch rejects every envelope with its ErrorCode."""
        peer.fail_next(1, Reply.json(422, {"ErrorCode": 411, "Message": "Forbidden attachment"}))
        results = transport.send([make_envelope("a@example.com"), make_envelope("b@example.com")])
        assert [(SendStatus.REJECTED, 411)] * 2 == [(r.status, r.status_code) for r in results]

    def test_batch_429(self, peer: PostmarkPeer, transport: PostmarkTransport) -> None:
        """A 429 defers every envelope of the batch."""
        peer.fail_next(1, Reply.json(429, {"ErrorCode": 429, "Message": "Rate limit exceeded"}))
        results = transport.send([make_envelope("a@example.com"), make_envelope("b@example.com")])
        assert [SendStatus.DEFERRED] * 2 == [r.status for r in results]

    def test_send_async_batch(self, peer: PostmarkPeer) -> None:
        """send_async posts the same batch natively."""

        async def go() -> list[SendStatus]:
            async with PostmarkTransport(TOKEN, base_url=peer.url) as t:
                res = await t.send_async([make_envelope(f"u{i}@example.com") for i in range(3)])
                return [r.status for r in res]

        assert [SendStatus.ACCEPTED] * 3 == asyncio.run(go())
        assert ["/email/batch"] == [r.path for r in peer.requests]


class TestDecodedHeaderInjection:
    @pytest.mark.parametrize("case", sorted(INJECTIONS))
    def test_rejected_locally(
        self, peer: PostmarkPeer, transport: PostmarkTransport, case: str
    ) -> None:
        """A decoded header value with a line break rejects the message; nothing is sent."""
        env = Envelope(
            sender="sender@example.com", recipients=["rcpt@example.net"], message=INJECTIONS[case]
        )
        [result] = transport.send([env])
        assert (SendStatus.REJECTED, "local") == (result.status, result.status_code)
        assert "header injection" in result.status_text
        assert [] == peer.requests


class TestRequestSizeLimit:
    def test_documented_limit(self) -> None:
        """Requests are capped at Postmark's 50 MB."""
        assert 50_000_000 == PostmarkTransport.max_request_bytes

    def test_batch_split_by_size(self, peer: PostmarkPeer, transport: PostmarkTransport) -> None:
        """A batch whose JSON would exceed the request limit is split; no request exceeds it."""
        transport.max_request_bytes = 3_000
        envs = [make_envelope(f"r{i}@example.com", text="x" * 900 + "\n") for i in range(6)]
        results = transport.send(envs)
        assert [SendStatus.ACCEPTED] * 6 == [r.status for r in results]
        assert len(peer.requests) >= 2
        assert all(len(r.body) <= 3_000 for r in peer.requests)
        # Requests of one batch may run concurrently: compare what arrived, not its order.
        assert [f"r{i}@example.com" for i in range(6)] == sorted(
            m["To"] for r in peer.requests for m in r.json()
        )

    def test_single_message_over_limit_rejected(
        self, peer: PostmarkPeer, transport: PostmarkTransport
    ) -> None:
        """A message larger than the limit on its own is rejected locally; the rest is sent."""
        transport.max_request_bytes = 3_000
        big = make_envelope("big@example.com", text="y" * 5_000 + "\n")
        results = transport.send([big, make_envelope("small@example.com")])
        assert [SendStatus.REJECTED, SendStatus.ACCEPTED] == [r.status for r in results]
        assert "at most 3000 bytes per request" in results[0].status_text
        assert ["small@example.com"] == [peer.requests[0].json()["To"]]


class TestTags:
    def test_more_than_one_tag_rejected_locally(
        self, peer: PostmarkPeer, transport: PostmarkTransport
    ) -> None:
        """Postmark holds one tag: two are rejected locally, never silently dropped."""
        results = transport.send(
            [make_envelope(tags=("welcome", "second")), make_envelope(tags=("welcome",))]
        )
        assert [SendStatus.REJECTED, SendStatus.ACCEPTED] == [r.status for r in results]
        assert "2 tags; Postmark keeps at most 1 per message" == results[0].status_text
        assert ["welcome"] == [
            m["Tag"]
            for r in peer.requests
            for m in (r.json() if isinstance(r.json(), list) else [r.json()])
        ]


def _set_entry(n: int, value: Any) -> Any:
    """A garble: the batch answer with entry *n* replaced by *value*."""

    def change(reply: Reply) -> Reply:
        data = reply.data()
        data[n] = value
        return reply.with_json(data)

    return change


class TestUnreadableAnswers:
    """A 2xx answer the transport cannot interpret never makes a message accepted."""

    def batch(self) -> list[Envelope]:
        return [make_envelope(f"{c}@example.com") for c in "abc"]

    @pytest.mark.parametrize(
        "entry",
        [
            {"ErrorCode": None, "Message": "OK"},
            {"ErrorCode": "0"},
            {"ErrorCode": True},
            {"Message": "OK"},
            "OK",
            None,
            [0],
        ],
    )
    def test_one_bad_entry(
        self, peer: PostmarkPeer, transport: PostmarkTransport, entry: Any
    ) -> None:
        """Only the message whose entry is unreadable is deferred, marked maybe delivered;
        the others keep their results."""
        peer.garble_next(1, _set_entry(1, entry))
        results = transport.send(self.batch())
        assert 3 == len(peer.accepted)  # Postmark did send all three
        assert [SendStatus.ACCEPTED, SendStatus.DEFERRED, SendStatus.ACCEPTED] == [
            r.status for r in results
        ]
        assert [str(uuid.UUID(int=1)), None, str(uuid.UUID(int=3))] == [
            r.message_id for r in results
        ]
        assert (
            "Postmark's answer for this message could not be read (no integer ErrorCode); "
            f"{MAYBE_DELIVERED}"
        ) == results[1].status_text
        assert [False, True, False] == [r.possibly_delivered for r in results]
        assert ("b@example.com",) == results[1].pending_recipients

    @pytest.mark.parametrize(
        ("body", "what"),
        [
            (b"<html>OK</html>", "not JSON"),
            (b"", "not JSON"),
            (b"[]", "0 entries for 3 messages"),
            (b'[{"ErrorCode": 0}, {"ErrorCode": 0}]', "2 entries for 3 messages"),
            (
                b'[{"ErrorCode": 0}, {"ErrorCode": 0}, {"ErrorCode": 0}, {"ErrorCode": 0}]',
                "4 entries for 3 messages",
            ),
            (b'{"ErrorCode": 0, "Message": "OK"}', "one answer for a batch of 3 messages"),
            (b'{"Message": "OK"}', "no integer ErrorCode"),
            (b'"OK"', "a JSON str, not an object or a list"),
        ],
    )
    def test_whole_batch_unreadable(
        self, peer: PostmarkPeer, transport: PostmarkTransport, body: bytes, what: str
    ) -> None:
        """An answer that cannot be matched to the messages defers them all, none accepted."""
        peer.garble_next(1, body)
        with capture_logs() as logs:
            results = transport.send(self.batch())
        assert 3 == len(peer.accepted)
        assert [SendStatus.DEFERRED] * 3 == [r.status for r in results]
        assert {f"Postmark's HTTP 200 answer could not be read ({what}); {MAYBE_DELIVERED}"} == {
            r.status_text for r in results
        }
        assert [True] * 3 == [r.possibly_delivered for r in results]
        assert [("transport.answer_unreadable", 200, what)] == [
            (e["event"], e["status"], e["problem"])
            for e in logs
            if e["event"] == "transport.answer_unreadable"
        ]

    @pytest.mark.parametrize(
        ("body", "what"),
        [
            (b"<html>OK</html>", "not JSON"),
            (b"{}", "no integer ErrorCode"),
            (b'{"ErrorCode": null}', "no integer ErrorCode"),
            (b'[{"ErrorCode": 0}]', "a list answering one message"),
        ],
    )
    def test_single_unreadable(
        self, peer: PostmarkPeer, transport: PostmarkTransport, body: bytes, what: str
    ) -> None:
        """/email answered 200 with something unreadable: deferred, maybe delivered."""
        peer.garble_next(1, body)
        [result] = transport.send([make_envelope()])
        assert 1 == len(peer.accepted)
        assert (SendStatus.DEFERRED, 200) == (result.status, result.status_code)
        assert (
            f"Postmark's HTTP 200 answer could not be read ({what}); {MAYBE_DELIVERED}"
            == result.status_text
        )

    def test_hidden_recipient_copies(
        self, peer: PostmarkPeer, transport: PostmarkTransport
    ) -> None:
        """Per-copy answers: the unreadable copy's recipient stays pending, the other not."""
        env = Envelope.from_message(
            make_message(to="list@example.org"), recipients=["x@example.com", "y@example.com"]
        )
        peer.garble_next(1, _set_entry(0, {"ErrorCode": None}))
        [result] = transport.send([env])
        assert SendStatus.DEFERRED == result.status
        assert [("x@example.com", SendStatus.DEFERRED), ("y@example.com", SendStatus.ACCEPTED)] == [
            (r.recipient, r.status) for r in result.recipient_results
        ]
        assert ("x@example.com",) == result.pending_recipients

    def test_unreadable_error_answer(
        self, peer: PostmarkPeer, transport: PostmarkTransport
    ) -> None:
        """A 422 whose ErrorCode is null or 0 is a refusal by its HTTP status, never accepted."""
        peer.fail_next(1, Reply.json(422, {"ErrorCode": None, "Message": "Bad thing"}))
        peer.fail_next(1, Reply.json(422, {"ErrorCode": 0, "Message": "Odd thing"}))
        first = transport.send([make_envelope()])
        second = transport.send([make_envelope()])
        assert [
            (SendStatus.REJECTED, 422, "Bad thing"),
            (SendStatus.REJECTED, 422, "Odd thing"),
        ] == [(r.status, r.status_code, r.status_text) for r in first + second]

    def test_async(self, peer: PostmarkPeer) -> None:
        """send_async reads answers the same way."""
        peer.garble_next(1, _set_entry(2, {"ErrorCode": None}))

        async def go() -> list[SendStatus]:
            async with PostmarkTransport(TOKEN, base_url=peer.url) as t:
                return [r.status for r in await t.send_async(self.batch())]

        assert [SendStatus.ACCEPTED, SendStatus.ACCEPTED, SendStatus.DEFERRED] == asyncio.run(go())

    def test_interpreter_failure_keeps_other_calls(self, peer: PostmarkPeer) -> None:
        """Should reading one answer fail unexpectedly, that call's messages are deferred
        (maybe delivered) and the batch's other calls keep their results."""

        class Fragile(PostmarkTransport):
            def _envelope_result(self, env: Envelope, *args: Any, **kwargs: Any) -> Any:
                if env.recipients == ("b@example.com",):
                    raise RuntimeError("unexpected")
                return super()._envelope_result(env, *args, **kwargs)

        with Fragile(TOKEN, base_url=peer.url) as t:
            t.max_request_bytes = 150  # one message per call
            results = t.send(self.batch())
        assert 3 == len(peer.requests)
        assert [SendStatus.ACCEPTED, SendStatus.DEFERRED, SendStatus.ACCEPTED] == [
            r.status for r in results
        ]
        assert (f"HTTP 200 answer could not be read (RuntimeError); {MAYBE_DELIVERED}") == results[
            1
        ].status_text
