"""The transport contract: TransportURL parsing and redaction, TransportBase behaviour."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from urllib.parse import quote

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from transport_helpers import make_envelope

from mailscale.errors import ConfigurationError
from mailscale.message import Envelope, SendResult, SendStatus
from mailscale.transports.base import (
    Transport,
    TransportBase,
    TransportURL,
    is_secret_option,
    redact_url,
)
from mailscale.transports.dev import MemoryTransport

SECRET = "Sup3r-Secret-Value"
SRC = Path(__file__).resolve().parents[2] / "src"


class Recorder(TransportBase):
    """A minimal transport recording the thread each send runs on."""

    name = "recorder"
    schemes = ("recorder",)

    def __init__(self, api_key: str) -> None:
        self.api_key = api_key
        self.region = "eu"
        self.threads: list[str] = []
        self.closed = False

    def send(self, batch: Sequence[Envelope]) -> list[SendResult]:
        self.threads.append(threading.current_thread().name)
        return [SendResult(status=SendStatus.ACCEPTED, recipients=e.recipients) for e in batch]

    def close(self) -> None:
        self.closed = True


class TestTransportURL:
    def test_parts(self) -> None:
        """Scheme, credentials (unquoted), host, port, path and options are split out."""
        url = TransportURL.parse("MAILGUN://api:k%40y@mg.Example.com:8443/v3?region=eu")
        assert ("mailgun", "api", "k@y", "mg.example.com", 8443, "/v3", {"region": "eu"}) == (
            url.scheme,
            url.username,
            url.password,
            url.host,
            url.port,
            url.path,
            dict(url.query),
        )

    def test_str_and_repr_are_redacted(self) -> None:
        """Neither str nor repr shows credentials or secret options."""
        url = TransportURL.parse(f"smtp://user:{SECRET}@h:25?token={SECRET}&tls=none")
        assert "smtp://***:***@h:25?token=***&tls=none" == str(url)
        assert SECRET not in repr(url)

    def test_username_only_is_redacted(self) -> None:
        """A bare API key in the user part is redacted too."""
        assert "sendgrid://***@default" == str(TransportURL.parse(f"sendgrid://{SECRET}@default"))

    def test_ipv6_host(self) -> None:
        """IPv6 literals keep their brackets in the redacted form."""
        url = TransportURL.parse("smtp://[::1]:2525")
        assert ("::1", 2525, "smtp://[::1]:2525") == (url.host, url.port, str(url))

    @pytest.mark.parametrize(
        ("text", "problem"),
        [
            ("smtp:/host", "scheme://"),
            (f"smtp://u:{SECRET}@host:70000", "out of range"),
            (f"smtp://u:{SECRET}@host?a=1&a=2", "twice"),
            (f"smtp://u:{SECRET}@ho\nst", "control character"),
            ("://host", "no scheme"),
        ],
    )
    def test_malformed(self, text: str, problem: str) -> None:
        """Malformed URLs are ConfigurationErrors that never show the secret."""
        with pytest.raises(ConfigurationError, match=problem) as info:
            TransportURL.parse(text)
        assert SECRET not in str(info.value)

    @pytest.mark.parametrize(
        ("text", "problem"),
        [
            (f"a:b://u:{SECRET}@host", "':' in its scheme"),
            (f"smtp:x://u:{SECRET}@host", "':' in its scheme"),
            (f"smtp:/u:{SECRET}@host://x", "':' in its scheme"),
            (f"1smtp://u:{SECRET}@host", "scheme starting with '1'"),
            (f"+smtp://u:{SECRET}@host", "scheme starting with '\\+'"),
            (f"sm_tp://u:{SECRET}@host", "'_' in its scheme"),
            (f"\u212asmtp://u:{SECRET}@host", "scheme starting with"),  # the Kelvin sign
            (f"://u:{SECRET}@host", "no scheme"),
        ],
    )
    def test_scheme_is_rfc3986(self, text: str, problem: str) -> None:
        """A scheme is ALPHA *( ALPHA / DIGIT / "+" / "-" / "." ) before "://" (RFC 3986 3.1);
        anything else is refused, naming the problem and never showing the URL."""
        with pytest.raises(ConfigurationError, match=problem) as info:
            TransportURL.parse(text)
        assert SECRET not in str(info.value)
        assert "RFC 3986" in str(info.value)

    def test_scheme_characters_allowed(self) -> None:
        """Letters, digits, '+', '-' and '.' after the first letter; case is folded."""
        assert "x.y-z+1" == TransportURL.parse("X.Y-z+1://host").scheme

    def test_typed_options(self) -> None:
        """Options read as bool, int and float, with defaults and clear errors."""
        url = TransportURL.parse("x://h?a=yes&b=0&n=12&f=1.5&bad=maybe")
        assert (True, False, True) == (
            url.get_bool("a", False),
            url.get_bool("b", True),
            url.get_bool("missing", True),
        )
        assert (12, 1.5, 7) == (url.get_int("n", 0), url.get_float("f", 0.0), url.get_int("m", 7))
        with pytest.raises(ConfigurationError, match="'bad' must be true or false"):
            url.get_bool("bad", False)
        with pytest.raises(ConfigurationError, match="'f' must be an integer"):
            url.get_int("f", 0)
        with pytest.raises(ConfigurationError, match="at least 20"):
            url.get_int("n", 0, minimum=20)
        with pytest.raises(ConfigurationError, match="must be a number"):
            url.get_float("bad", 0.0)

    def test_check_options(self) -> None:
        """Unknown options are named, with the known ones listed."""
        url = TransportURL.parse(f"x://h?region=eu&api_key={SECRET}&colour=red")
        with pytest.raises(ConfigurationError, match=r"colour \(known: api_key, region\)"):
            url.check_options(("region", "api_key"))
        url.check_options(("region", "api_key", "colour"))

    def test_query_is_read_only(self) -> None:
        """A parsed URL cannot be changed."""
        url = TransportURL.parse("x://h?a=1")
        with pytest.raises(TypeError):
            url.query["a"] = "2"  # type: ignore[index]


class TestRedactURL:
    @pytest.mark.parametrize(
        ("text", "expected"),
        [
            (f"smtp://u:{SECRET}@h", "smtp://***@h"),
            (f"smtp://u:{SECRET}@h/p?x=1", "smtp://***@h/p?x=1"),
            (
                f"ses://?region=eu&aws_secret_access_key={SECRET}",
                "ses://?region=eu&aws_secret_access_key=***",
            ),
            (
                f"failover(smtp://a:{SECRET}@h1 smtp://b:{SECRET}@h2)",
                "failover(smtp://***@h1 smtp://***@h2)",
            ),
            (f"u:{SECRET}@host", "***@host"),
            ("memory://", "memory://"),
            (f"smtp://u:p@ss:{SECRET}@h:25", "smtp://***@h:25"),
            (f"smtp://u:p(a,{SECRET})@h", "smtp://***@h"),
            (f"roundrobin(memory:// smtp://u:{SECRET}@h)", "roundrobin(memory:// smtp://***@h)"),
        ],
    )
    def test_redacts(self, text: str, expected: str) -> None:
        """Userinfo and secret options vanish, in single URLs, composites and junk."""
        assert expected == redact_url(text)

    def test_secret_option_names(self) -> None:
        """Option names that carry secrets are recognized."""
        assert [True, True, True, True, False, False] == [
            is_secret_option(n)
            for n in ("password", "api_key", "Token", "client_secret", "region", "tls")
        ]


class TestTransportBase:
    def test_context_manager_closes(self) -> None:
        """Leaving the with block closes the transport."""
        with Recorder("k") as t:
            pass
        assert t.closed

    def test_send_async_runs_in_a_worker_thread(self) -> None:
        """send_async offloads send to a thread and returns its results."""
        t = Recorder("k")

        async def main() -> list[SendResult]:
            async with t:
                return await t.send_async([make_envelope()])

        [result] = asyncio.run(main())
        assert result.accepted
        assert [threading.main_thread().name] != t.threads
        assert t.closed

    def test_repr_masks_secret_attributes(self) -> None:
        """repr shows configuration, with secret attributes as ***."""
        text = repr(Recorder(SECRET))
        assert SECRET not in text
        assert "api_key='***'" in text
        assert "region='eu'" in text

    def test_default_from_url_refuses(self) -> None:
        """A transport without URL support says so, as a ConfigurationError."""
        with pytest.raises(ConfigurationError, match="cannot be configured from a URL"):
            Recorder.from_url(TransportURL.parse("recorder://"))

    @pytest.mark.parametrize(
        "make", [lambda: Recorder("k"), MemoryTransport], ids=["recorder", "memory"]
    )
    def test_protocol_is_satisfied(self, make: Callable[[], TransportBase]) -> None:
        """Beyond the names isinstance checks: attribute types, results in order, close."""
        transport = make()
        assert isinstance(transport, Transport)
        assert_transport_contract(transport)

    def test_names_alone_are_not_the_contract(self) -> None:
        """A class with the right names but a send that drops envelopes fails the contract."""

        class Lossy(Recorder):
            def send(self, batch: Sequence[Envelope]) -> list[SendResult]:
                return super().send(batch)[:1]

        assert isinstance(Lossy("k"), Transport)  # runtime_checkable sees only the names
        with pytest.raises(AssertionError):
            assert_transport_contract(Lossy("k"))


def assert_transport_contract(transport: TransportBase) -> None:
    """Assert what the Transport protocol promises, on a transport that accepts everything."""
    cls = type(transport)
    assert isinstance(cls.name, str) and cls.name
    assert isinstance(cls.schemes, tuple) and all(isinstance(s, str) for s in cls.schemes)
    assert cls.payload in ("mime", "json")
    assert isinstance(cls.max_batch, int) and cls.max_batch >= 1
    assert cls.rate_preset is None or isinstance(cls.rate_preset, str)
    batch = [make_envelope(f"r{i}@example.net") for i in range(3)]
    results = transport.send(batch)
    assert [e.recipients for e in batch] == [r.recipients for r in results]
    assert all(isinstance(r, SendResult) and r.accepted for r in results)
    results = asyncio.run(transport.send_async(batch))
    assert [e.recipients for e in batch] == [r.recipients for r in results]
    assert [] == transport.send([])
    with transport as entered:
        assert transport is entered


class TestParsingNeverCrashes:
    @settings(max_examples=300, deadline=None)
    @given(st.text(max_size=80))
    def test_any_text(self, text: str) -> None:
        """Any string parses (its scheme lower-cased) or raises a ConfigurationError naming
        the transport URL; redaction masks what precedes an '@' of text that is no URL."""
        try:
            url = TransportURL.parse(text)
        except ConfigurationError as exc:
            assert str(exc).startswith("transport URL ")
        else:
            assert text.lower().startswith(url.scheme + ":")
        redacted = redact_url(text)
        if "://" not in text and "=" not in text:
            expected = "***" + text[text.rindex("@") :] if "@" in text else text
            assert expected == redacted

    @settings(max_examples=200, deadline=None)
    @given(
        # Control characters and line breaks are refused (see test_registry.TestBadURLs).
        st.text(
            st.characters(blacklist_categories=("Cc", "Cs", "Zl", "Zp")), min_size=6, max_size=30
        ).filter(lambda s: s not in "TransportURL('smtp://***:***@relay.example.com') smtp://***@h")
    )
    def test_any_password_is_redacted(self, password: str) -> None:
        """Whatever the password, no representation of a parsed URL shows it."""
        url = TransportURL.parse(f"smtp://user:{quote(password, safe='')}@relay.example.com")
        assert password == url.password
        for text in (str(url), repr(url), redact_url(f"smtp://user:{quote(password, safe='')}@h")):
            assert quote(password, safe="") not in text


class TestReprMasking:
    @pytest.mark.parametrize(
        "field",
        [
            "api_token",
            "signing_key",
            "client_secret",
            "smtp_passphrase",
            "auth_header",
            "credentials",
            "Token",
        ],
    )
    def test_secret_looking_fields_masked(self, field: str) -> None:
        """Any field whose name looks secret is masked, including a subclass's own fields."""

        class Custom(TransportBase):
            def _repr_fields(self) -> dict[str, object]:
                return {"host": "h.example", field: "Sup3r-Secret-Value", "empty_token": ""}

        text = repr(Custom())
        assert f"Custom(host='h.example', {field}='***', empty_token='')" == text


class TestImportCost:
    @pytest.mark.parametrize("module", ["mailgun", "ses", "sendgrid", "postmark"])
    def test_provider_transports_do_not_load_smtplib(self, module: str) -> None:
        """The API transports share the signing glue in transports.base, not the SMTP session."""
        code = (
            f"import sys, mailscale.transports.{module}; "
            "print(sorted(m for m in ('smtplib', 'mailscale.transports._session', "
            "'mailscale.transports.smtp') if m in sys.modules))"
        )
        out = subprocess.run(
            [sys.executable, "-c", code],
            capture_output=True,
            text=True,
            check=True,
            env={**os.environ, "PYTHONPATH": str(SRC)},
        )
        assert "[]\n" == out.stdout
