"""Provider transports' shared machinery: Retry-After, rate-limit headers, MIME, redaction."""

from __future__ import annotations

import asyncio
import email.utils
import ssl
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import attrs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from structlog.testing import capture_logs

from mailscale.errors import ConfigurationError, TransportConnectionError, TransportError
from mailscale.message import Envelope
from mailscale.transports._http import (
    credential_from_url,
    parse_retry_after,
    rate_limit_headers,
    retry_after_from,
)
from mailscale.transports._mime import BodyCache, decompose
from mailscale.transports.base import TransportURL
from mailscale.transports.mailgun import MailgunTransport
from mailscale.transports.postmark import PostmarkTransport
from mailscale.transports.sendgrid import SendGridTransport
from mailscale.transports.ses import SESTransport
from peers.esp_base import Reply
from peers.esp_messages import make_envelope, make_message
from peers.mailgun_peer import MailgunPeer
from peers.postmark_peer import PostmarkPeer
from peers.sendgrid_peer import SendGridPeer

NOW = 1_800_000_000.0


class TestRetryAfter:
    @pytest.mark.parametrize(
        ("value", "expected"),
        [
            ("120", 120.0),
            (" 7 ", 7.0),
            ("0", 0.0),
            ("-5", 0.0),
            ("1.5", 1.5),
            ("", None),
            ("soon", None),
            (None, None),
        ],
    )
    def test_seconds(self, value: str | None, expected: float | None) -> None:
        """Delta-seconds parse to seconds, never negative; junk gives None."""
        assert expected == parse_retry_after(value, now=NOW)

    def test_http_date(self) -> None:
        """An IMF-fixdate is seconds from now."""
        value = email.utils.formatdate(NOW + 90, usegmt=True)
        assert 90.0 == parse_retry_after(value, now=NOW)

    def test_past_date(self) -> None:
        """A date in the past means retry now."""
        assert 0.0 == parse_retry_after(email.utils.formatdate(NOW - 90, usegmt=True), now=NOW)

    def test_reset_fallback(self) -> None:
        """Without Retry-After, X-RateLimit-Reset as epoch or as a delta gives the wait."""
        assert 30.0 == retry_after_from({"x-ratelimit-reset": str(int(NOW) + 30)}, now=NOW)
        assert 12.0 == retry_after_from({"x-ratelimit-reset": "12"}, now=NOW)
        assert 3.0 == retry_after_from({"retry-after": "3", "x-ratelimit-reset": "12"}, now=NOW)
        assert retry_after_from({}, now=NOW) is None


class TestHelpers:
    def test_rate_limit_headers(self) -> None:
        """Only rate-limit headers are kept, names lower-cased."""
        headers = {
            "X-RateLimit-Limit": "600",
            "RateLimit-Remaining": "3",
            "Retry-After": "9",
            "Content-Type": "application/json",
            "X-Message-Id": "abc",
        }
        assert {
            "x-ratelimit-limit": "600",
            "ratelimit-remaining": "3",
            "retry-after": "9",
        } == rate_limit_headers(headers)

    def test_credential_from_url(self) -> None:
        """The secret is the password when given, else the user part."""
        assert "K" == credential_from_url(TransportURL.parse("x://K@default"), "api key")
        assert "P" == credential_from_url(TransportURL.parse("x://api:P@default"), "api key")
        with pytest.raises(ConfigurationError, match=r"'x://default'"):
            credential_from_url(TransportURL.parse("x://default"), "api key")


class TestDecompose:
    def test_bytes_and_message_agree(self) -> None:
        """A message and its wire bytes decompose to the same fields."""
        msg = make_message(html="<p>x</p>", cc="c@example.com", extra={"X-Id": "1"})
        from_msg = decompose(Envelope.from_message(msg))
        from_bytes = decompose(
            Envelope(
                sender="news@mail.example.org",
                recipients=["alice@example.com"],
                message=msg.as_bytes(),
            )
        )
        assert attrs.evolve(from_bytes, content_key=None) == from_msg
        assert from_bytes.content_key is not None
        assert (
            "News",
            "news@mail.example.org",
            (("", "alice@example.com"),),
            (("", "c@example.com"),),
        ) == (from_msg.from_name, from_msg.from_email, from_msg.to, from_msg.cc)
        assert ("Hello there.\n", "<p>x</p>\n") == (from_msg.text, from_msg.html)
        assert (("X-Id", "1"),) == from_msg.headers

    def test_inline_image(self) -> None:
        """A related image with a Content-ID is an inline attachment."""
        msg = make_message(html='<img src="cid:logo">')
        html_part = msg.get_payload()[1]  # type: ignore[index]
        html_part.add_related(b"\x89PNG...", maintype="image", subtype="png", cid="<logo>")
        [att] = decompose(Envelope.from_message(msg)).attachments
        assert ("image/png", True, "logo", b"\x89PNG...") == (
            att.content_type,
            att.inline,
            att.content_id,
            att.content,
        )

    def test_encoded_words_decoded(self) -> None:
        """RFC 2047 subjects and names reach JSON providers as text."""
        msg = make_message(subject="Grüße")
        raw = msg.as_bytes()
        assert b"=?utf-8?" in raw
        parts = decompose(
            Envelope(sender="news@mail.example.org", recipients=["alice@example.com"], message=raw)
        )
        assert "Grüße" == parts.subject


class TestTLS:
    @pytest.fixture
    def ca(self) -> Any:
        trustme = pytest.importorskip("trustme")
        return trustme.CA()

    def test_verified_by_default(self, ca: Any) -> None:
        """An HTTPS peer whose certificate the system does not trust is refused."""
        server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ca.issue_cert("127.0.0.1").configure_cert(server_ctx)
        with SendGridPeer("SG.k", ssl_context=server_ctx) as peer:
            assert peer.url.startswith("https://")
            with SendGridTransport("SG.k", base_url=peer.url) as t:
                with pytest.raises(TransportConnectionError):
                    t.send([make_envelope()])
            client_ctx = ssl.create_default_context()
            ca.configure_trust(client_ctx)
            with SendGridTransport("SG.k", base_url=peer.url, verify=client_ctx) as t:
                assert t.send([make_envelope()])[0].accepted
            assert 1 == len(peer.accepted)

    def test_ca_bundle_path(self, ca: Any, tmp_path: Path) -> None:
        """verify may name a CA bundle file."""
        server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ca.issue_cert("127.0.0.1").configure_cert(server_ctx)
        bundle = tmp_path / "ca.pem"
        ca.cert_pem.write_to_path(str(bundle))
        with (
            SendGridPeer("SG.k", ssl_context=server_ctx) as peer,
            SendGridTransport("SG.k", base_url=peer.url, verify=str(bundle)) as t,
        ):
            assert t.send([make_envelope()])[0].accepted

    def test_base_url_credentials_redacted(self) -> None:
        """Credentials embedded in a base URL never show in repr or errors."""
        url = "http://proxyuser:proxy-pw-secret@127.0.0.1:9"
        with SendGridTransport("SG.k", base_url=url) as t:
            assert "proxy-pw-secret" not in repr(t)
            with pytest.raises(TransportConnectionError) as info:
                t.send([make_envelope()])
        assert "proxy-pw-secret" not in str(info.value)


# -- redaction across every provider ------------------------------------------

SECRETS = {
    "sendgrid": "SG.redaction-secret-111",
    "mailgun": "key-redaction-secret-222",
    "postmark": "pm-redaction-secret-333",
}


@pytest.fixture
def peers() -> Iterator[dict[str, Any]]:
    with (
        SendGridPeer("SG.other") as sg,
        MailgunPeer("key-other") as mg,
        PostmarkPeer("pm-other") as pm,
    ):
        yield {"sendgrid": sg, "mailgun": mg, "postmark": pm}


def _transports(peers: dict[str, Any]) -> list[Any]:
    return [
        SendGridTransport.from_url(
            TransportURL.parse(f"sendgrid://{SECRETS['sendgrid']}@default"),
            base_url=peers["sendgrid"].url,
        ),
        MailgunTransport.from_url(
            TransportURL.parse(f"mailgun://{SECRETS['mailgun']}@mg.example.com"),
            base_url=peers["mailgun"].url,
        ),
        PostmarkTransport.from_url(
            TransportURL.parse(f"postmark://{SECRETS['postmark']}@default"),
            base_url=peers["postmark"].url,
        ),
    ]


class TestBodyCache:
    def test_same_body_decoded_once(self) -> None:
        """Envelopes with one body share its decoded form; headers stay their own."""
        cache = BodyCache()
        a, b = (
            Envelope(
                sender="n@example.org",
                recipients=[r],
                message=make_message(to=r, subject=r).as_bytes(),
            )
            for r in ("a@example.com", "b@example.com")
        )
        da, db = decompose(a, cache), decompose(b, cache)
        assert da.body is db.body
        assert ("a@example.com", "b@example.com") == (da.subject, db.subject)

    def test_unusual_header_block_falls_back(self) -> None:
        """A header block the fast path does not handle goes through the email package."""
        raw = b" folded-first: x\r\nFrom: a@example.org\r\nSubject: s\r\n\r\nbody\r\n"
        parts = decompose(
            Envelope(sender="a@example.org", recipients=["b@example.com"], message=raw)
        )
        assert (None, "body\r\n") == (parts.content_key, parts.text)

    def test_bounded(self) -> None:
        """The cache keeps at most maxsize bodies, dropping the least recently used."""
        cache = BodyCache(maxsize=2)
        for i in range(3):
            decompose(
                Envelope(
                    sender="a@example.org",
                    recipients=["b@example.com"],
                    message=b"Subject: x\r\n\r\nbody %d\r\n" % i,
                ),
                cache,
            )
        assert 2 == len(cache._items)


class TestRedaction:
    def test_no_secret_anywhere(self, peers: dict[str, Any]) -> None:
        """Refused keys, 429s and closed transports: no secret in repr, error or log event."""
        seen: list[str] = []
        with capture_logs() as logs:
            for t in _transports(peers):
                seen.append(repr(t))
                with pytest.raises(TransportError) as info:
                    t.send([make_envelope()])
                seen += [str(info.value), repr(info.value), repr(info.value.args)]
                peers[t.name].api_key = SECRETS[t.name]
                if t.name == "postmark":
                    peers[t.name].token = SECRETS[t.name]
                slow = Reply.json(429, {"message": "slow"}, {"Retry-After": "1"})
                peers[t.name].fail_next(1, slow)
                seen += [repr(r) for r in t.send([make_envelope()])]
                seen += [repr(r) for r in asyncio.run(_send_async(t))]
                t.close()
                with pytest.raises(TransportError) as closed:
                    t.send([make_envelope()])
                seen.append(str(closed.value))
            ses = SESTransport.from_url(
                TransportURL.parse(
                    "ses://AKIAREDACTED0001:ses-redaction-secret-444@default?region=eu-west-1"
                )
            )
            seen.append(repr(ses))
        seen += [repr(e) for e in logs]
        assert len(logs) >= 3
        text = "\n".join(seen)
        for secret in [*SECRETS.values(), "ses-redaction-secret-444"]:
            assert secret not in text


async def _send_async(t: Any) -> list[Any]:
    res: list[Any] = await t.send_async([make_envelope()])
    await t.close_async()
    return res


class TestArbitraryMessages:
    @settings(max_examples=200, deadline=None)
    @given(
        st.binary(max_size=600)
        | st.lists(
            st.sampled_from(
                [
                    b"From: a@example.org",
                    b"To: b@example.com",
                    b"Subject: =?utf-8?q?x?=",
                    b"Content-Type: multipart/mixed; boundary=z",
                    b"--z",
                    b"--z--",
                    b"",
                    b"Content-Transfer-Encoding: base64",
                    b" folded",
                    b"\xff\xfe",
                    b"Content-Type: text/html; charset=x-nope",
                    b"body",
                ]
            ),
            max_size=14,
        ).map(b"\r\n".join)
    )
    def test_json_providers_never_crash(self, raw: bytes) -> None:
        """Any bytes become a request or a local rejection, never an exception."""
        env = Envelope(sender="a@example.org", recipients=["b@example.com"], message=raw)
        for transport in (SendGridTransport("SG.k"), PostmarkTransport("pm")):
            calls, local = transport._plan([env])
            assert 1 == len(calls) + len(local)
            if local:
                assert local[0].result.rejected
            transport.close()


class TestBadSettings:
    @pytest.mark.parametrize("cls", [SendGridTransport, MailgunTransport, PostmarkTransport])
    @pytest.mark.parametrize(
        ("kw", "problem"),
        [
            ({"verify": "/missing/ca-bundle.pem"}, "not a usable CA bundle"),
            ({"timeout": "abc"}, "timeout must be a positive number"),
            ({"timeout": -1}, "timeout must be a positive number"),
            ({"timeout": True}, "timeout must be a positive number"),
            ({"verify": 42}, "verify must be"),
        ],
    )
    def test_configuration_error_at_build(
        self, cls: type, kw: dict[str, Any], problem: str
    ) -> None:
        """A missing CA bundle or a non-numeric timeout is a ConfigurationError when built."""
        args = ("key-1", "mg.example.com") if cls is MailgunTransport else ("key-1",)
        with pytest.raises(ConfigurationError, match=problem):
            cls(*args, **kw)
