"""No credential in any repr, log event or error, across the transports' failure paths."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from structlog.testing import capture_logs
from transport_helpers import PROVIDER_KEYS, SECRETS, SMTP_PASSWORD, SMTP_USER, make_envelope

from mailscale.errors import MailscaleError
from mailscale.transports.base import Transport, redact_url
from mailscale.transports.registry import transport_from_url
from mailscale.transports.retry import RetryingTransport, RetryPolicy
from peers.smtp_peer import DroppingServer, SMTPPeer, free_port

WRONG = "not-the-Pa55word-42"


def exposed(obj: object) -> str:
    """Everything a user could see of *obj*: str, repr, args and chained causes."""
    parts = [str(obj), repr(obj)]
    if isinstance(obj, BaseException):
        parts += [repr(a) for a in obj.args]
        for linked in (obj.__cause__, obj.__context__):
            if linked is not None:
                parts.append(exposed(linked))
        parts += [repr(v) for v in vars(obj).values()]
    return "\n".join(parts)


def run(build: Callable[[], Transport], *, secret: str) -> str:
    """Build a transport, send through it, and collect every visible text."""
    seen: list[str] = []
    with capture_logs() as logs:
        try:
            t = build()
            seen.append(repr(t))
            try:
                seen += [repr(r) for r in t.send([make_envelope()])]
            finally:
                t.close()
        except MailscaleError as exc:
            seen.append(exposed(exc))
    seen += [repr(e) for e in logs]
    text = "\n".join(seen)
    assert secret not in text
    return text


class TestRedaction:
    def test_refused_connection(self) -> None:
        """Connection refused: the error names the host, not the credential."""
        url = f"smtp://{SMTP_USER}:{SMTP_PASSWORD}@127.0.0.1:{free_port()}?tls=none"
        text = run(lambda: transport_from_url(url), secret=SMTP_PASSWORD)
        assert "cannot connect" in text

    def test_wrong_password(self, starttls_peer: SMTPPeer, cafile: str) -> None:
        """AUTH refused: neither the wrong nor the right password shows."""
        url = f"smtp://{SMTP_USER}:{WRONG}@localhost:{starttls_peer.port}?cafile={cafile}"
        text = run(lambda: transport_from_url(url), secret=WRONG)
        assert "refused the credentials" in text

    def test_certificate_failure(self, starttls_peer: SMTPPeer) -> None:
        """TLS verification failure with credentials in the URL."""
        url = f"smtp://{SMTP_USER}:{SMTP_PASSWORD}@localhost:{starttls_peer.port}"
        assert "certificate" in run(lambda: transport_from_url(url), secret=SMTP_PASSWORD)

    def test_unverified_tls_warning(self, starttls_peer: SMTPPeer) -> None:
        """The verify=false warning event carries no secret."""
        url = f"smtp://{SMTP_USER}:{SMTP_PASSWORD}@localhost:{starttls_peer.port}?verify=false"
        assert "tls_unverified" in run(lambda: transport_from_url(url), secret=SMTP_PASSWORD)

    def test_dropped_connection(self) -> None:
        """Connection lost mid-DATA: results and events are clean."""
        server = DroppingServer()
        with server.running():
            url = f"smtp://{SMTP_USER}:{SMTP_PASSWORD}@127.0.0.1:{server.port}?tls=none"
            # The dropping peer offers no AUTH: the set-up error is checked too.
            text = run(lambda: transport_from_url(url), secret=SMTP_PASSWORD)
        assert "AUTH" in text

    def test_composites_and_retries(self) -> None:
        """Failover, round-robin and retry wrappers over credentialed members stay clean."""
        dead = f"smtp://{SMTP_USER}:{SMTP_PASSWORD}@127.0.0.1:{free_port()}?tls=none"
        for expr in (f"failover({dead} {dead})", f"roundrobin({dead} {dead})"):
            run(lambda e=expr: transport_from_url(e), secret=SMTP_PASSWORD)  # type: ignore[misc]
        run(
            lambda: RetryingTransport(
                transport_from_url(dead), RetryPolicy(max_attempts=2), sleep=lambda s: None
            ),
            secret=SMTP_PASSWORD,
        )

    @pytest.mark.parametrize(
        "url",
        [
            f"smtp://{SMTP_USER}:{SMTP_PASSWORD}@host?colour=red",
            f"smtp://{SMTP_USER}:{SMTP_PASSWORD}@host:notaport",
            f"smtps://{SMTP_USER}:{SMTP_PASSWORD}@host?tls=none",
            f"nosuch://{SMTP_USER}:{SMTP_PASSWORD}@host",
            f"failover(smtp://{SMTP_USER}:{SMTP_PASSWORD}@host",
            f"smtp://{SMTP_USER}:{SMTP_PASSWORD}@host?cafile=/nonexistent",
            f"mx://?source=1.2.3.4&token={SMTP_PASSWORD}",
            f"file:///tmp/x?password={SMTP_PASSWORD}",
        ],
    )
    def test_configuration_errors(self, url: str) -> None:
        """Every configuration error shows the URL redacted, or not at all when unparseable."""
        text = run(lambda: transport_from_url(url), secret=SMTP_PASSWORD)
        assert "***" in text or "(not shown)" in text


_SECRET_MIDDLE = st.text(
    alphabet=st.sampled_from(list("abcXYZ0189 \t\n/?#@:%&=+-_.!~*'()$,;[]")), max_size=12
).filter(lambda s: "://" not in s)


class TestRandomSecrets:
    @settings(max_examples=300, deadline=None)
    @given(
        middle=_SECRET_MIDDLE,
        template=st.sampled_from(
            [
                "smtp://user:{}@host",
                "smtp://user:{}@host:2525/",
                "postmark://{}@default",
                "sendgrid://{}@default?region=eu",
                "failover(smtp://user:{}@host memory://)",
                "roundrobin(memory:// postmark://{}@default)",
            ]
        ),
    )
    def test_secret_never_shown(self, middle: str, template: str) -> None:
        """Whatever a credential holds (spaces, '/', '?', '#', '@'), no part of it is shown."""
        secret = f"Zq9{middle}K7x"
        text = ""
        try:
            t = transport_from_url(template.format(secret))
        except MailscaleError as exc:
            text = exposed(exc)
        else:
            text = repr(t)
            t.close()
        assert [] == [m for m in ("Zq9", "K7x") if m in text]
        assert "Zq9" not in redact_url(template.format(secret))
        assert "K7x" not in redact_url(template.format(secret))

    @pytest.mark.parametrize(
        "url",
        [
            "postmark://abc-SECRET-123\n@default",
            "smtp://u:SEC RET@h",
            "smtp://user:pa/SECss@host",
            "failover(smtp://u:SEC RET@h memory://)",
        ],
    )
    def test_audit_cases(self, url: str) -> None:
        """Credentials with whitespace or '/' are never echoed, even in part."""
        with pytest.raises(MailscaleError) as info:
            transport_from_url(url)
        assert "SEC" not in exposed(info.value)


class TestLogCheckCoversStructlog:
    def test_captured_events_are_checked(self, _no_secret_in_any_log_event: list[str]) -> None:
        """Events caught by capture_logs reach the suite-wide secret check too."""
        from mailscale._log import get_logger

        with capture_logs() as logs:
            get_logger("mailscale.transports").warning("transport.test_event", detail="marker-77")
        assert ["transport.test_event"] == [e["event"] for e in logs]
        assert any("marker-77" in line for line in _no_secret_in_any_log_event)

    def test_every_provider_key_is_watched(self) -> None:
        """Each provider test key is one of the secrets the suite checks for."""
        assert set(PROVIDER_KEYS.values()) <= set(SECRETS)
