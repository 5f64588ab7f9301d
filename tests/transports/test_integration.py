"""Cross-area integration: URLs, composites, retries and asyncio over the loopback ESP peers."""

from __future__ import annotations

import asyncio
import email
import random
from collections.abc import Iterator

import boto3
import pytest
from transport_helpers import INTEGRATION_KEYS

from mailscale.errors import ConfigurationError
from mailscale.message import Envelope, SendStatus
from mailscale.transports.composite import FailoverTransport, RoundRobinTransport
from mailscale.transports.registry import transport_from_url
from mailscale.transports.retry import RetryingTransport, RetryPolicy
from peers.esp_base import ESPPeer, Reply
from peers.esp_messages import make_envelope
from peers.mailgun_peer import MailgunPeer
from peers.postmark_peer import PostmarkPeer
from peers.sendgrid_peer import SendGridPeer
from peers.ses_peer import MotoSES
from peers.smtp_peer import FaultyServer

SG_KEY = INTEGRATION_KEYS["sendgrid"]
MG_KEY = INTEGRATION_KEYS["mailgun"]
PM_TOKEN = INTEGRATION_KEYS["postmark"]
SECRET = INTEGRATION_KEYS["ses"]
DOMAIN = "mg.example.com"
SENDER = "news@mail.example.org"
REGION = "eu-west-1"
KEY_ID = "AKIAMAILSCALEINTEG01"
UNAVAILABLE = Reply.json(503, {"errors": [{"message": "Service Unavailable", "field": None}]})


@pytest.fixture
def sendgrid() -> Iterator[SendGridPeer]:
    with SendGridPeer(SG_KEY) as p:
        yield p  # type: ignore[misc]


@pytest.fixture
def mailgun() -> Iterator[MailgunPeer]:
    with MailgunPeer(MG_KEY, domains=(DOMAIN,)) as p:
        yield p  # type: ignore[misc]


@pytest.fixture
def postmark() -> Iterator[PostmarkPeer]:
    with PostmarkPeer(PM_TOKEN, senders=(SENDER,)) as p:
        yield p  # type: ignore[misc]


@pytest.fixture(scope="module")
def moto_ses() -> Iterator[MotoSES]:
    server = MotoSES().start()
    yield server
    server.stop()


def sendgrid_url(peer: ESPPeer) -> str:
    return f"sendgrid://{SG_KEY}@default?base_url={peer.url}"


def mailgun_url(peer: ESPPeer) -> str:
    return f"mailgun://{MG_KEY}@{DOMAIN}?base_url={peer.url}"


def postmark_url(peer: ESPPeer) -> str:
    return f"postmark://{PM_TOKEN}@default?base_url={peer.url}"


def envelopes(n: int) -> list[Envelope]:
    return [make_envelope(f"user{i}@example.com", subject=f"Message {i}") for i in range(n)]


class TestURLsToPeers:
    def test_sendgrid(self, sendgrid: SendGridPeer) -> None:
        """A sendgrid:// URL with base_url sends to the peer, which keeps the message."""
        with transport_from_url(sendgrid_url(sendgrid)) as t:
            [result] = t.send(envelopes(1))
        assert (SendStatus.ACCEPTED, "sendgrid") == (result.status, result.transport)
        [body] = sendgrid.accepted
        assert [[{"email": "user0@example.com"}]] == [p["to"] for p in body["personalizations"]]
        assert "Message 0" == body["personalizations"][0]["subject"]

    def test_mailgun(self, mailgun: MailgunPeer) -> None:
        """A mailgun:// URL with base_url posts the raw message to the peer's domain."""
        with transport_from_url(mailgun_url(mailgun)) as t:
            [result] = t.send(envelopes(1))
        assert (SendStatus.ACCEPTED, "mailgun") == (result.status, result.transport)
        [(domain, parts)] = mailgun.accepted
        assert DOMAIN == domain
        [raw] = [p.data for p in parts if p.name == "message"]
        assert "Message 0" == email.message_from_bytes(raw)["Subject"]
        assert ["user0@example.com"] == [p.data.decode() for p in parts if p.name == "to"]

    def test_postmark(self, postmark: PostmarkPeer) -> None:
        """A postmark:// URL with base_url sends to the peer."""
        with transport_from_url(postmark_url(postmark)) as t:
            [result] = t.send(envelopes(1))
        assert (SendStatus.ACCEPTED, "postmark") == (result.status, result.transport)
        assert [("user0@example.com", "Message 0")] == [
            (m["To"], m["Subject"]) for m in postmark.accepted
        ]

    def test_ses(self, moto_ses: MotoSES) -> None:
        """An ses:// URL with endpoint_url sends to moto, which keeps the raw message."""
        moto_ses.reset()
        admin = boto3.client(
            "sesv2",
            region_name=REGION,
            endpoint_url=moto_ses.url,
            aws_access_key_id=KEY_ID,
            aws_secret_access_key=SECRET,
        )
        admin.create_email_identity(EmailIdentity=SENDER)
        admin.close()
        url = f"ses://{KEY_ID}:{SECRET}@default?region={REGION}&endpoint_url={moto_ses.url}"
        with transport_from_url(url) as t:
            [result] = t.send(envelopes(1))
        assert (SendStatus.ACCEPTED, "ses") == (result.status, result.transport)
        [sent] = moto_ses.raw_messages()
        assert "Message 0" == email.message_from_string(sent["raw_data"])["Subject"]

    def test_options_for_reaches_members_of_composites(
        self, sendgrid: SendGridPeer, postmark: PostmarkPeer
    ) -> None:
        """options_for gives keyword settings to every member of that scheme."""
        url = f"failover(sendgrid://{SG_KEY}@default postmark://{PM_TOKEN}@default)"
        options = {
            "sendgrid": {"base_url": sendgrid.url, "timeout": 5.0},
            "postmark": {"base_url": postmark.url},
        }
        with transport_from_url(url, options_for=options) as t:
            assert isinstance(t, FailoverTransport)
            assert [sendgrid.url, postmark.url] == [m.base_url for m in t.members]  # type: ignore[attr-defined]
            assert 5.0 == t.members[0].timeout.read  # type: ignore[attr-defined]
            [result] = t.send(envelopes(1))
        assert "sendgrid" == result.transport
        assert 1 == len(sendgrid.accepted)

    def test_no_secret_in_the_repr_of_a_composite(
        self, sendgrid: SendGridPeer, mailgun: MailgunPeer, postmark: PostmarkPeer
    ) -> None:
        """The repr of a composite of every provider shows none of their credentials."""
        url = (
            f"failover({sendgrid_url(sendgrid)} roundrobin({mailgun_url(mailgun)} "
            f"{postmark_url(postmark)}) ses://{KEY_ID}:{SECRET}@default?region={REGION})"
        )
        with transport_from_url(url) as t:
            shown = repr(t)
        assert [] == [k for k in INTEGRATION_KEYS.values() if k in shown]
        assert sendgrid.url in shown

    def test_keyword_options_win_over_options_for(self, sendgrid: SendGridPeer) -> None:
        """For a single URL, **options override options_for of its scheme."""
        t = transport_from_url(
            f"sendgrid://{SG_KEY}@default",
            options_for={"sendgrid": {"base_url": "https://unused.invalid"}},
            base_url=sendgrid.url,
        )
        assert sendgrid.url == t.base_url  # type: ignore[attr-defined]
        t.close()

    @pytest.mark.parametrize(
        "base_url", ["ftp://127.0.0.1/", "127.0.0.1:8080", f"http://user:{SECRET}@127.0.0.1:1"]
    )
    def test_bad_base_url(self, base_url: str) -> None:
        """base_url must be http(s) without credentials; the error hides the key."""
        with pytest.raises(ConfigurationError, match="base_url") as info:
            transport_from_url(f"sendgrid://{SG_KEY}@default?base_url={base_url}")
        assert SG_KEY not in str(info.value)
        assert SECRET not in str(info.value)

    def test_invalid_later_member(self) -> None:
        """A composite whose second member is invalid raises, secrets redacted."""
        with pytest.raises(ConfigurationError, match="unknown option") as info:
            transport_from_url(
                f"failover(sendgrid://{SG_KEY}@default postmark://{PM_TOKEN}@default?x=1)"
            )
        assert PM_TOKEN not in str(info.value)


class TestFailover:
    def test_moves_to_the_next_provider_on_503(
        self, sendgrid: SendGridPeer, postmark: PostmarkPeer
    ) -> None:
        """SendGrid answers 503: Postmark handles the message, and the result names it."""
        sendgrid.fail_next(1, UNAVAILABLE)
        with transport_from_url(
            f"failover({sendgrid_url(sendgrid)} {postmark_url(postmark)})"
        ) as t:
            [result] = t.send(envelopes(1))
        assert (SendStatus.ACCEPTED, "postmark") == (result.status, result.transport)
        assert 1 == len(sendgrid.requests)
        assert [] == sendgrid.accepted
        assert ["user0@example.com"] == [m["To"] for m in postmark.accepted]

    def test_permanent_400_is_not_failed_over(
        self, sendgrid: SendGridPeer, postmark: PostmarkPeer
    ) -> None:
        """SendGrid's 400 for a bad recipient is final: Postmark never sees the message."""
        sendgrid.invalid_recipients.add("user0@example.com")
        with transport_from_url(
            f"failover({sendgrid_url(sendgrid)} {postmark_url(postmark)})"
        ) as t:
            [result] = t.send(envelopes(1))
        assert (SendStatus.REJECTED, "sendgrid", 400) == (
            result.status,
            result.transport,
            result.status_code,
        )
        assert [] == postmark.requests

    def test_permanent_422_is_not_failed_over(
        self, sendgrid: SendGridPeer, postmark: PostmarkPeer
    ) -> None:
        """Postmark's 422 (sender signature not confirmed) is final: SendGrid never sees it."""
        postmark.senders.clear()
        with transport_from_url(
            f"failover({postmark_url(postmark)} {sendgrid_url(sendgrid)})"
        ) as t:
            [result] = t.send(envelopes(1))
        assert (SendStatus.REJECTED, "postmark") == (result.status, result.transport)
        assert 1 == len(postmark.requests)
        assert [] == sendgrid.requests

    def test_send_async(self, sendgrid: SendGridPeer, postmark: PostmarkPeer) -> None:
        """send_async through a failover of HTTP providers moves on after a 503 too."""
        sendgrid.fail_next(2, UNAVAILABLE)

        async def main() -> list[str]:
            t = transport_from_url(f"failover({sendgrid_url(sendgrid)} {postmark_url(postmark)})")
            try:
                results = await t.send_async(envelopes(2))
            finally:
                t.close()
            assert [SendStatus.ACCEPTED] * 2 == [r.status for r in results]
            return [r.transport for r in results]

        assert ["postmark", "postmark"] == asyncio.run(main())
        assert ["user0@example.com", "user1@example.com"] == sorted(
            m["To"] for m in postmark.accepted
        )


class TestRoundRobin:
    def test_spreads_over_mailgun_and_postmark(
        self, mailgun: MailgunPeer, postmark: PostmarkPeer
    ) -> None:
        """Four single sends alternate between the two providers."""
        with transport_from_url(
            f"roundrobin({mailgun_url(mailgun)} {postmark_url(postmark)})"
        ) as t:
            assert isinstance(t, RoundRobinTransport)
            handled = [t.send([env])[0].transport for env in envelopes(4)]
        assert ["mailgun", "postmark", "mailgun", "postmark"] == handled
        assert (2, 2) == (len(mailgun.accepted), len(postmark.accepted))

    def test_a_failing_member_is_benched(
        self, mailgun: MailgunPeer, postmark: PostmarkPeer
    ) -> None:
        """Mailgun answering 500: its message goes to Postmark and Mailgun sits out."""
        mailgun.fail_next(1, Reply.json(500, {"message": "Internal Server Error"}))
        with transport_from_url(
            f"roundrobin({mailgun_url(mailgun)} {postmark_url(postmark)})", cooldown=60
        ) as t:
            handled = [t.send([env])[0].transport for env in envelopes(3)]
            assert ["mailgun"] == t.benched()  # type: ignore[attr-defined]
        assert ["postmark"] * 3 == handled
        assert (0, 3) == (len(mailgun.accepted), len(postmark.accepted))


class TestRetry:
    def test_waits_for_retry_after_then_succeeds(self, sendgrid: SendGridPeer) -> None:
        """SendGrid answers 429 with Retry-After: 7: the retry waits at least 7 s, then 202."""
        sendgrid.fail_next(
            1,
            Reply.json(
                429,
                {"errors": [{"message": "Too many requests", "field": None}]},
                ESPPeer.rate_limited(retry_after="7"),
            ),
        )
        waits: list[float] = []
        inner = transport_from_url(sendgrid_url(sendgrid))
        policy = RetryPolicy(max_attempts=3, base=0.5, jitter=0.5)
        with RetryingTransport(
            inner, policy, sleep=waits.append, clock=lambda: 0.0, rng=random.Random(5)
        ) as t:
            [result] = t.send(envelopes(1))
        assert SendStatus.ACCEPTED == result.status
        assert 1 == len(waits)
        assert waits[0] >= 7.0
        assert 2 == len(sendgrid.requests)
        assert 1 == len(sendgrid.accepted)

    def test_retries_stop_at_max_attempts(self, sendgrid: SendGridPeer) -> None:
        """429 on every attempt: the message comes back deferred with the provider's delay."""
        sendgrid.fail_next(
            3,
            Reply.json(
                429,
                {"errors": [{"message": "Too many requests", "field": None}]},
                ESPPeer.rate_limited(retry_after="2"),
            ),
        )
        waits: list[float] = []
        with RetryingTransport(
            transport_from_url(sendgrid_url(sendgrid)),
            RetryPolicy(max_attempts=3),
            sleep=waits.append,
        ) as t:
            [result] = t.send(envelopes(1))
        assert (SendStatus.DEFERRED, 429, 2.0) == (
            result.status,
            result.status_code,
            result.retry_after,
        )
        assert 2 == len(waits)
        assert all(w >= 2.0 for w in waits)
        assert 3 == len(sendgrid.requests)


class TestDuplicatesAfterTheFinalDot:
    def test_retry_over_failover_sends_two_copies_to_one_server(self) -> None:
        """The server got the whole message and hung up before answering, every time:
        retry(max_attempts=4) over failover(a, b) leaves two copies with one Message-ID
        at a, and none at b (it was four copies at a and more at b)."""
        first = FaultyServer(drop_at="final dot")
        second = FaultyServer()
        env = Envelope(
            sender=SENDER,
            recipients=("ada@example.net",),
            message=b"From: news@mail.example.org\r\nSubject: once\r\n\r\nHi.\r\n",
        )
        waits: list[float] = []
        with first.running(), second.running():
            url = (
                f"failover(smtp://127.0.0.1:{first.port}?tls=none "
                f"smtp://127.0.0.1:{second.port}?tls=none)"
            )
            with RetryingTransport(
                transport_from_url(url),
                RetryPolicy(max_attempts=4, jitter=0.0),
                sleep=waits.append,
                clock=lambda: 0.0,
            ) as t:
                [result] = t.send([env])
        assert (SendStatus.DEFERRED, True, "smtp[0]") == (
            result.status,
            result.possibly_delivered,
            result.transport,
        )
        assert [60.0] == waits
        copies = [d.content for d in first.unanswered]
        assert 2 == len(copies)
        assert copies[0] == copies[1]
        assert copies[0].startswith(b"Message-ID: <")
        assert (0, [], []) == (second.connections, second.deliveries, second.unanswered)
