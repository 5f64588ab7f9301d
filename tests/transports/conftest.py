"""Fixtures for transport tests: loopback SMTP peers, a test CA, envelopes, secrets."""

from __future__ import annotations

import importlib
import logging
import shutil
import ssl
import subprocess
import sys
from collections.abc import Iterator, MutableMapping
from pathlib import Path
from typing import Any, NoReturn

import pytest
import structlog.testing
import trustme
from transport_helpers import SECRETS, SMTP_PASSWORD, SMTP_USER

from peers.smtp_peer import ScriptedHandler, SMTPPeer, start_peer


class _Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


@pytest.fixture(autouse=True)
def _no_secret_in_any_log_event(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """Every transport test: no test credential appears in any mailscale log event.

    Events outside a ``capture_logs`` block reach the stdlib ``mailscale`` logger;
    it is opened to DEBUG here so every event is checked. Events a test captures
    with ``structlog.testing.capture_logs`` never reach it, so structlog's
    ``LogCapture`` is wrapped to record them too. Yields the recorded lines.
    """
    logger = logging.getLogger("mailscale")
    handler = _Records()
    original = structlog.testing.LogCapture.__call__

    def recording(
        self: structlog.testing.LogCapture,
        logger_: object,
        method: str,
        event_dict: MutableMapping[str, Any],
    ) -> NoReturn:
        handler.lines.append(repr(dict(event_dict)))
        original(self, logger_, method, event_dict)  # type: ignore[arg-type]
        raise AssertionError("LogCapture always drops the event")  # pragma: no cover

    monkeypatch.setattr(structlog.testing.LogCapture, "__call__", recording)
    old_level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    try:
        yield handler.lines
    finally:
        logger.removeHandler(handler)
        logger.setLevel(old_level)
    leaked = [line for line in handler.lines for secret in SECRETS if secret in line]
    assert [] == leaked


@pytest.fixture(scope="session")
def ca() -> trustme.CA:
    """A throwaway certificate authority."""
    return trustme.CA()


@pytest.fixture(scope="session")
def server_tls(ca: trustme.CA) -> ssl.SSLContext:
    """The peers' TLS context: a certificate for localhost / 127.0.0.1 from the test CA."""
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("localhost", "127.0.0.1", "mx.tls.test").configure_cert(ctx)
    return ctx


@pytest.fixture(scope="session")
def cafile(ca: trustme.CA, tmp_path_factory: pytest.TempPathFactory) -> str:
    """The test CA as a PEM file."""
    path: Path = tmp_path_factory.mktemp("ca") / "ca.pem"
    ca.cert_pem.write_to_path(str(path))
    return str(path)


@pytest.fixture(scope="session")
def client_tls(ca: trustme.CA) -> ssl.SSLContext:
    """A verifying client context that trusts the test CA."""
    ctx = ssl.create_default_context()
    ca.configure_trust(ctx)
    return ctx


@pytest.fixture
def plain_peer() -> Iterator[SMTPPeer]:
    """aiosmtpd without TLS, answering per recipient."""
    peer = start_peer(handler=ScriptedHandler())
    yield peer
    peer.stop()


@pytest.fixture
def starttls_peer(server_tls: ssl.SSLContext) -> Iterator[SMTPPeer]:
    """aiosmtpd requiring STARTTLS, with AUTH for SMTP_USER."""
    peer = start_peer(starttls=server_tls, credentials={SMTP_USER: SMTP_PASSWORD})
    yield peer
    peer.stop()


@pytest.fixture
def implicit_peer(server_tls: ssl.SSLContext) -> Iterator[SMTPPeer]:
    """aiosmtpd with implicit TLS (smtps), with AUTH for SMTP_USER."""
    # aiosmtpd only counts STARTTLS as TLS for AUTH; the implicit-TLS session is encrypted.
    peer = start_peer(
        implicit_tls=server_tls, credentials={SMTP_USER: SMTP_PASSWORD}, auth_require_tls=False
    )
    yield peer
    peer.stop()


EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
PLUGIN_PACKAGES = ("mailscale-example-plugin", "mailscale-broken-plugin")
PLUGIN_MODULES = ("mailscale_example_plugin", "mailscale_broken_plugin")


def _forget_plugin_modules() -> None:
    """Drop imported plugin modules, so the next import finds them on the current path."""
    for module in [m for m in sys.modules if m.startswith(PLUGIN_MODULES)]:
        del sys.modules[module]
    importlib.invalidate_caches()


@pytest.fixture(scope="session")
def example_plugins(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Install the example and the broken plugin packages into a temporary directory and put
    it first on ``sys.path`` for the session.

    Each is built from a temporary copy (the source tree stays clean) by pip with build
    isolation, so the build uses the requirements the plugin declares and nothing is
    installed into the interpreter that runs the tests.
    """
    from mailscale.transports.registry import reset_plugins

    target = tmp_path_factory.mktemp("plugins") / "site"
    for name in PLUGIN_PACKAGES:
        copy = tmp_path_factory.mktemp("plugin") / name
        shutil.copytree(EXAMPLES / name, copy)
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "install",
                "--no-deps",
                "-q",
                "--disable-pip-version-check",
                "--target",
                str(target),
                str(copy),
            ],
            capture_output=True,
            text=True,
            timeout=600,
        )
        if done.returncode != 0:
            pytest.fail(f"pip could not install {name}:\n{done.stderr}", pytrace=False)
    # First on the path: a copy installed in the interpreter by hand is shadowed, not used.
    sys.path.insert(0, str(target))
    _forget_plugin_modules()
    reset_plugins()
    yield target
    sys.path.remove(str(target))
    _forget_plugin_modules()
    reset_plugins()
