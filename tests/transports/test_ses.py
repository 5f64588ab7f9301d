"""SES transport against moto's SES v2 server (and an SES error peer) on loopback."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import boto3
import pytest
from structlog.testing import capture_logs
from transport_helpers import PROVIDER_KEYS

from mailscale.errors import (
    ConfigurationError,
    TransportAuthError,
    TransportConnectionError,
    TransportError,
)
from mailscale.message import Envelope, SendStatus
from mailscale.transports._http import MAYBE_DELIVERED
from mailscale.transports.base import Transport, TransportURL
from mailscale.transports.ses import SESTransport, status_for_error
from peers.esp_base import Recorded, Reply
from peers.esp_messages import make_envelope
from peers.ses_peer import MotoSES, SESErrorPeer

REGION = "eu-west-1"
KEY_ID = "AKIAMAILSCALETEST01"
SECRET = PROVIDER_KEYS["ses"]
SENDER = "news@mail.example.org"
RAW = (
    b"DKIM-Signature: v=1; a=rsa-sha256; d=mail.example.org; s=sel;\r\n"
    b"\th=from:to:subject; bh=abc=; b=def=\r\n"
    b"From: News <news@mail.example.org>\r\n"
    b"To: alice@example.com\r\n"
    b"Subject:  kept   as is \r\n"
    b"\r\n"
    b"Body with trailing spaces   \r\n"
)


@pytest.fixture(scope="module")
def moto_ses() -> Iterator[MotoSES]:
    server = MotoSES().start()
    yield server
    server.stop()


@pytest.fixture
def ses(moto_ses: MotoSES) -> Iterator[MotoSES]:
    """moto, reset, with SENDER verified."""
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
    yield moto_ses


@pytest.fixture
def transport(ses: MotoSES) -> Iterator[SESTransport]:
    with SESTransport(
        region=REGION, endpoint_url=ses.url, access_key_id=KEY_ID, secret_access_key=SECRET
    ) as t:
        yield t


def raw_envelope(sender: str = SENDER, **kw: object) -> Envelope:
    return Envelope(sender=sender, recipients=("alice@example.com",), message=RAW, **kw)  # type: ignore[arg-type]


class TestContract:
    def test_class_facts(self) -> None:
        """Raw MIME, one message per call, the ses preset."""
        t = SESTransport(region=REGION)
        assert isinstance(t, Transport)
        assert ("ses", "mime", 1, "ses") == (t.name, t.payload, t.max_batch, t.rate_preset)

    def test_from_url(self) -> None:
        """Region and configuration set from the query; explicit keys from the user part."""
        url = TransportURL.parse(
            f"ses://{KEY_ID}:{SECRET}@default?region={REGION}&configuration_set=tx"
        )
        t = SESTransport.from_url(url)
        assert (REGION, "tx") == (t.region, t.configuration_set)
        assert SECRET not in repr(t) and KEY_ID not in repr(t)
        assert SECRET not in str(url)

    def test_half_credentials(self) -> None:
        """A key id without a secret is a ConfigurationError with the URL redacted."""
        with pytest.raises(ConfigurationError) as info:
            SESTransport.from_url(TransportURL.parse(f"ses://{KEY_ID}@default?region={REGION}"))
        assert KEY_ID not in str(info.value)

    def test_without_boto3(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """Without the ses extra, building the transport says how to install it."""
        import sys

        monkeypatch.setitem(sys.modules, "boto3", None)
        with pytest.raises(ConfigurationError, match=r"mailscale\[ses\]"):
            SESTransport(region=REGION)

    def test_unknown_option(self) -> None:
        """Unknown options are named."""
        with pytest.raises(ConfigurationError, match="colour"):
            SESTransport.from_url(TransportURL.parse("ses://?colour=red"))

    @pytest.mark.parametrize(
        ("code", "http", "status"),
        [
            ("MessageRejected", 400, SendStatus.REJECTED),
            ("MailFromDomainNotVerifiedException", 400, SendStatus.REJECTED),
            ("AccountSuspendedException", 400, SendStatus.REJECTED),
            ("SendingPausedException", 400, SendStatus.REJECTED),
            ("BadRequestException", 400, SendStatus.REJECTED),
            ("TooManyRequestsException", 429, SendStatus.DEFERRED),
            ("Throttling", 400, SendStatus.DEFERRED),
            ("InternalFailure", 500, SendStatus.DEFERRED),
            ("Anything", 503, SendStatus.DEFERRED),
        ],
    )
    def test_error_mapping(self, code: str, http: int, status: SendStatus) -> None:
        """SES error codes map to rejected or deferred."""
        assert status == status_for_error(code, http)


class TestMoto:
    def test_raw_message_byte_exact(self, ses: MotoSES, transport: SESTransport) -> None:
        """The raw bytes reach SES unchanged, with the envelope sender and recipients."""
        [result] = transport.send([raw_envelope()])
        assert (SendStatus.ACCEPTED, 200) == (result.status, result.status_code)
        [sent] = ses.raw_messages()
        assert result.message_id == sent["id"]
        assert RAW == sent["raw_data"].encode("utf-8")
        assert SENDER == sent["source"]
        assert "alice@example.com" in sent["destinations"]

    def test_email_message(self, ses: MotoSES, transport: SESTransport) -> None:
        """An EmailMessage is sent in its wire form."""
        env = make_envelope(sender=SENDER)
        assert transport.send([env])[0].accepted
        assert env.to_bytes() == ses.raw_messages()[0]["raw_data"].encode("utf-8")

    def test_unverified_sender_rejected(self, ses: MotoSES, transport: SESTransport) -> None:
        """An unverified sender is rejected (MessageRejected) without raising."""
        good, bad = transport.send([raw_envelope(), raw_envelope("x@unverified.example")])
        assert good.accepted
        assert (SendStatus.REJECTED, "MessageRejected") == (bad.status, bad.status_code)
        assert "x@unverified.example" in bad.status_text
        assert 1 == len(ses.raw_messages())

    def test_credentials_from_chain(self, ses: MotoSES, monkeypatch: pytest.MonkeyPatch) -> None:
        """Without explicit keys, boto3's environment chain supplies them."""
        monkeypatch.setenv("AWS_ACCESS_KEY_ID", KEY_ID)
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET)
        with SESTransport.from_url(
            TransportURL.parse(f"ses://?region={REGION}"), endpoint_url=ses.url
        ) as t:
            assert t.send([raw_envelope()])[0].accepted

    def test_no_credentials_raises(
        self, ses: MotoSES, monkeypatch: pytest.MonkeyPatch, tmp_path: object
    ) -> None:
        """No credentials anywhere: TransportAuthError, a whole-call failure."""
        for name in (
            "AWS_ACCESS_KEY_ID",
            "AWS_SECRET_ACCESS_KEY",
            "AWS_SESSION_TOKEN",
            "AWS_PROFILE",
        ):
            monkeypatch.delenv(name, raising=False)
        monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", f"{tmp_path}/none")
        monkeypatch.setenv("AWS_CONFIG_FILE", f"{tmp_path}/none")
        monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
        with SESTransport(region=REGION, endpoint_url=ses.url) as t:
            with pytest.raises(TransportAuthError) as info:
                t.send([raw_envelope()])
        assert "ses" == info.value.provider

    def test_send_async(self, ses: MotoSES, transport: SESTransport) -> None:
        """send_async (thread offload) returns the same results."""
        results = asyncio.run(transport.send_async([raw_envelope(), raw_envelope()]))
        assert [SendStatus.ACCEPTED] * 2 == [r.status for r in results]
        assert 2 == len(ses.raw_messages())

    def test_given_client(self, ses: MotoSES) -> None:
        """A client passed in is used as is (no region or credentials of its own needed)."""
        client = boto3.client(
            "sesv2",
            region_name=REGION,
            endpoint_url=ses.url,
            aws_access_key_id=KEY_ID,
            aws_secret_access_key=SECRET,
        )
        with SESTransport(client=client) as t:
            assert t.send([raw_envelope()])[0].accepted
        assert 1 == len(ses.raw_messages())
        client.close()

    def test_closed_transport_refuses(self, ses: MotoSES, transport: SESTransport) -> None:
        """After close, send raises TransportError instead of reopening."""
        transport.close()
        with pytest.raises(TransportError, match="closed"):
            transport.send([raw_envelope()])

    def test_too_many_recipients_local(self, ses: MotoSES, transport: SESTransport) -> None:
        """Over 50 recipients: rejected without a call."""
        env = Envelope(
            sender=SENDER, recipients=[f"r{i}@example.com" for i in range(51)], message=RAW
        )
        [result] = transport.send([env])
        assert (SendStatus.REJECTED, "local") == (result.status, result.status_code)
        assert [] == ses.raw_messages()


@pytest.fixture
def error_peer() -> Iterator[SESErrorPeer]:
    with SESErrorPeer() as p:
        yield p  # type: ignore[misc]


@pytest.fixture
def peer_transport(error_peer: SESErrorPeer) -> Iterator[SESTransport]:
    with SESTransport(
        region=REGION, endpoint_url=error_peer.url, access_key_id=KEY_ID, secret_access_key=SECRET
    ) as t:
        yield t


class TestErrors:
    def test_throttled_deferred(
        self, error_peer: SESErrorPeer, peer_transport: SESTransport
    ) -> None:
        """TooManyRequestsException (429) defers, with no retry inside boto3."""
        error_peer.fail_with(
            1,
            429,
            "TooManyRequestsException",
            "Maximum sending rate exceeded.",
            {"Retry-After": "2"},
        )
        [result] = peer_transport.send([raw_envelope()])
        assert (SendStatus.DEFERRED, "TooManyRequestsException", 2.0) == (
            result.status,
            result.status_code,
            result.retry_after,
        )
        assert 1 == len(error_peer.requests)

    def test_service_unavailable_deferred(
        self, error_peer: SESErrorPeer, peer_transport: SESTransport
    ) -> None:
        """A 503 defers."""
        error_peer.fail_with(1, 503, "ServiceUnavailable", "try later")
        [result] = peer_transport.send([raw_envelope()])
        assert SendStatus.DEFERRED == result.status

    def test_account_suspended_rejected(
        self, error_peer: SESErrorPeer, peer_transport: SESTransport
    ) -> None:
        """AccountSuspendedException rejects with SES's message."""
        error_peer.fail_with(1, 400, "AccountSuspendedException", "account is suspended")
        [result] = peer_transport.send([raw_envelope()])
        assert (SendStatus.REJECTED, "AccountSuspendedException", "account is suspended") == (
            result.status,
            result.status_code,
            result.status_text,
        )

    def test_signed_request(self, error_peer: SESErrorPeer, peer_transport: SESTransport) -> None:
        """Requests are SigV4-signed for the ses service; the secret never travels."""
        assert peer_transport.send([raw_envelope()])[0].accepted
        [req] = error_peer.requests
        auth = req.headers["authorization"]
        assert auth.startswith(f"AWS4-HMAC-SHA256 Credential={KEY_ID}/")
        assert f"/{REGION}/ses/aws4_request" in auth
        assert SECRET.encode() not in req.body and SECRET not in str(req.headers)

    def test_bad_credentials_raise(
        self, error_peer: SESErrorPeer, peer_transport: SESTransport
    ) -> None:
        """UnrecognizedClientException raises TransportAuthError without any secret."""
        error_peer.fail_with(
            1,
            403,
            "UnrecognizedClientException",
            "The security token included in the request is invalid.",
        )
        with capture_logs() as logs, pytest.raises(TransportAuthError) as info:
            peer_transport.send([raw_envelope()])
        assert SECRET not in str(info.value) and KEY_ID not in str(info.value)
        assert all(SECRET not in repr(e) for e in logs)

    def test_concurrent_calls(self, error_peer: SESErrorPeer, peer_transport: SESTransport) -> None:
        """A batch runs several SendEmail calls at once; results keep the batch order."""
        error_peer.delay = 0.05
        batch = [
            Envelope(sender=SENDER, recipients=[f"u{i}@example.com"], message=RAW) for i in range(8)
        ]
        results = peer_transport.send(batch)
        assert [(f"u{i}@example.com",) for i in range(8)] == [r.recipients for r in results]
        assert all(r.accepted for r in results)
        assert 1 < len({r.client_port for r in error_peer.requests}) <= 4

    def test_one_failure_among_answers_defers(self, error_peer: SESErrorPeer) -> None:
        """A dropped call among answered ones is deferred, not raised."""
        with SESTransport(
            region=REGION,
            endpoint_url=error_peer.url,
            access_key_id=KEY_ID,
            secret_access_key=SECRET,
            concurrency=1,
        ) as t:
            answer = error_peer.handle

            def answer_then_drop_next(req: Recorded) -> Reply:
                error_peer.drop_next(1)
                return answer(req)

            error_peer.handle = answer_then_drop_next  # type: ignore[method-assign]
            first, second = t.send([raw_envelope(), raw_envelope()])
        assert (SendStatus.ACCEPTED, SendStatus.DEFERRED) == (first.status, second.status)

    def test_connection_refused(self) -> None:
        """Nothing listening: TransportConnectionError."""
        with SESTransport(
            region=REGION,
            endpoint_url="http://127.0.0.1:9",
            access_key_id=KEY_ID,
            secret_access_key=SECRET,
            connect_timeout=1,
        ) as t:
            with pytest.raises(TransportConnectionError) as info:
                t.send([raw_envelope()])
        assert SECRET not in str(info.value)


class TestUnreadableAnswers:
    @pytest.mark.parametrize(
        "body", [b"<html>OK</html>", b"", b"{}", b'{"MessageId": null}', b'{"MessageId": 5}']
    )
    def test_no_message_id(
        self, error_peer: SESErrorPeer, peer_transport: SESTransport, body: bytes
    ) -> None:
        """A 200 without a MessageId is deferred, marked maybe delivered."""
        error_peer.garble_next(1, body)
        [result] = peer_transport.send([raw_envelope()])
        assert 1 == len(error_peer.requests)
        assert (
            SendStatus.DEFERRED,
            200,
            None,
            f"SES's answer has no MessageId; {MAYBE_DELIVERED}",
            True,
        ) == (
            result.status,
            result.status_code,
            result.message_id,
            result.status_text,
            result.possibly_delivered,
        )

    def test_unparseable_answer_keeps_the_batch(self, error_peer: SESErrorPeer) -> None:
        """An answer botocore cannot parse defers its message; the others keep their results."""
        error_peer.garble_next(1, b"[1, 2]")
        with SESTransport(
            region=REGION,
            endpoint_url=error_peer.url,
            access_key_id=KEY_ID,
            secret_access_key=SECRET,
            concurrency=1,
        ) as t:
            results = t.send([raw_envelope(), raw_envelope(), raw_envelope()])
        assert [SendStatus.DEFERRED, SendStatus.ACCEPTED, SendStatus.ACCEPTED] == [
            r.status for r in results
        ]
        assert [None, "peer-2", "peer-3"] == [r.message_id for r in results]
        assert results[0].status_text.startswith("SES's answer could not be read (")
        assert results[0].status_text.endswith(f"); {MAYBE_DELIVERED}")


class TestTags:
    def test_valid_tags_sent(self, ses: MotoSES, transport: SESTransport) -> None:
        """Tags and metadata made of letters, digits, '_' and '-' become EmailTags."""
        env = raw_envelope(tags=("welcome-1",), metadata={"campaign_id": "c-42"})
        assert [
            {"Name": "campaign_id", "Value": "c-42"},
            {"Name": "welcome-1", "Value": "true"},
        ] == transport.build_payload(env)["EmailTags"]
        [result] = transport.send([env])
        assert result.accepted

    @pytest.mark.parametrize(
        ("tags", "metadata"),
        [
            (("spring sale",), {}),
            ((), {"user": "a@b.example"}),
            ((), {"kéy": "v"}),
            (("x" * 257,), {}),
            ((), {"k": "v" * 257}),
        ],
    )
    def test_invalid_tag_rejects_that_message(
        self,
        ses: MotoSES,
        transport: SESTransport,
        tags: tuple[str, ...],
        metadata: dict[str, str],
    ) -> None:
        """A tag SES would refuse rejects that message locally; the others are sent."""
        bad = raw_envelope(tags=tags, metadata=metadata)
        results = transport.send([bad, raw_envelope()])
        assert [SendStatus.REJECTED, SendStatus.ACCEPTED] == [r.status for r in results]
        assert ("local", True) == (
            results[0].status_code,
            "only letters, digits, '_' and '-'" in results[0].status_text,
        )
        assert 1 == len(ses.raw_messages())


class TestLaterAuthFailure:
    def test_refused_later_call_defers_instead_of_raising(self, error_peer: SESErrorPeer) -> None:
        """One call answered, another's credentials refused: results kept, the rest deferred."""
        error_peer.fail_with(1, 403, "UnrecognizedClientException", "invalid token")
        with SESTransport(
            region=REGION,
            endpoint_url=error_peer.url,
            access_key_id=KEY_ID,
            secret_access_key=SECRET,
            concurrency=1,
        ) as t:
            results = t.send([raw_envelope(), raw_envelope(), raw_envelope()])
        assert [SendStatus.DEFERRED, SendStatus.ACCEPTED, SendStatus.ACCEPTED] == [
            r.status for r in results
        ]
        assert "credentials were refused" in results[0].status_text

    def test_every_call_refused_raises(self, error_peer: SESErrorPeer) -> None:
        """When no call was answered otherwise, the refusal is still raised."""
        error_peer.fail_with(2, 403, "UnrecognizedClientException", "invalid token")
        with SESTransport(
            region=REGION,
            endpoint_url=error_peer.url,
            access_key_id=KEY_ID,
            secret_access_key=SECRET,
            concurrency=1,
        ) as t:
            with pytest.raises(TransportAuthError):
                t.send([raw_envelope(), raw_envelope()])
