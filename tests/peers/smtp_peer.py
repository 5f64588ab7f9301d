"""SMTP servers on loopback for transport tests: aiosmtpd with a scripted handler, and a
tiny hand-written server that drops the connection in the middle of DATA.

The scripted handler answers each RCPT by the recipient's local part:
``defer@…`` → 451, ``closing@…`` → 421, ``reject@…`` → 550 (with enhanced
status codes), anything else → 250, and records every message it accepts with
the exact bytes received. ``rcpt_reply`` answers every RCPT the same way (a peer
that defers or rejects everything); ``defer_first`` defers the first N RCPTs.
"""

from __future__ import annotations

import contextlib
import socket
import socketserver
import ssl
import threading
from collections.abc import Iterator
from typing import Any

import attrs
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

__all__ = [
    "DroppingServer",
    "Received",
    "ScriptedHandler",
    "SMTPPeer",
    "free_port",
    "start_peer",
]

RCPT_REPLIES = {
    "defer": "451 4.7.1 Greylisted, try again later",
    "closing": "421 4.3.2 Service shutting down",
    "reject": "550 5.1.1 No such user here",
    "full": "552 5.2.2 Mailbox full",
}


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nothing listens on right now."""
    with contextlib.closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


@attrs.frozen
class Received:
    """One message the peer accepted."""

    mail_from: str
    rcpt_tos: tuple[str, ...]
    content: bytes
    peer_ip: str
    mail_options: tuple[str, ...]
    tls: bool
    login: str | None


@attrs.define
class ScriptedHandler:
    """An aiosmtpd handler with per-recipient answers and a configurable DATA reply."""

    data_reply: str = "250 2.0.0 Ok: queued as MSG42"
    rcpt_reply: str | None = None
    defer_first: int = 0
    received: list[Received] = attrs.field(factory=list)
    rcpt_seen: list[str] = attrs.field(factory=list)
    connections: int = 0

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, rcpt_options: list[str]
    ) -> str:
        self.rcpt_seen.append(address)
        if len(self.rcpt_seen) <= self.defer_first:
            return RCPT_REPLIES["defer"]
        if self.rcpt_reply is not None:
            if self.rcpt_reply.startswith("250"):
                envelope.rcpt_tos.append(address)
            return self.rcpt_reply
        local = address.rpartition("@")[0]
        if local in RCPT_REPLIES:
            return RCPT_REPLIES[local]
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 Ok"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        if self.data_reply.startswith("250"):
            self.received.append(
                Received(
                    mail_from=envelope.mail_from,
                    rcpt_tos=tuple(envelope.rcpt_tos),
                    content=bytes(envelope.original_content),
                    peer_ip=session.peer[0],
                    mail_options=tuple(envelope.mail_options),
                    tls=server.transport.get_extra_info("ssl_object") is not None,
                    login=(
                        session.auth_data.login.decode()
                        if isinstance(session.auth_data, LoginPassword)
                        else None
                    ),
                )
            )
        return self.data_reply


@attrs.define
class SMTPPeer:
    """A running aiosmtpd server and what it received."""

    controller: Controller
    handler: ScriptedHandler
    host: str
    port: int

    @property
    def received(self) -> list[Received]:
        return self.handler.received

    def stop(self) -> None:
        self.controller.stop()


def _authenticator(credentials: dict[str, str]) -> Any:
    def authenticate(
        server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any
    ) -> AuthResult:
        if not isinstance(auth_data, LoginPassword):
            return AuthResult(success=False, handled=False)
        ok = credentials.get(auth_data.login.decode()) == auth_data.password.decode()
        return AuthResult(success=ok, handled=False, auth_data=auth_data)

    return authenticate


def start_peer(
    *,
    host: str = "127.0.0.1",
    port: int | None = None,
    handler: ScriptedHandler | None = None,
    starttls: ssl.SSLContext | None = None,
    implicit_tls: ssl.SSLContext | None = None,
    credentials: dict[str, str] | None = None,
    auth_require_tls: bool = True,
    smtputf8: bool = True,
    require_starttls: bool = True,
) -> SMTPPeer:
    """Start aiosmtpd on *host* (a free port unless given) and return it running."""
    handler = handler or ScriptedHandler()
    kwargs: dict[str, Any] = {"enable_SMTPUTF8": smtputf8}
    if starttls is not None:
        kwargs.update(tls_context=starttls, require_starttls=require_starttls)
    if credentials is not None:
        kwargs.update(
            authenticator=_authenticator(credentials),
            auth_require_tls=auth_require_tls,
            auth_required=auth_require_tls,
        )
    elif not auth_require_tls:
        kwargs.update(auth_require_tls=False)
    controller = Controller(
        handler,
        hostname=host,
        port=port or free_port(host),
        ssl_context=implicit_tls,
        server_hostname="peer.test",
        **kwargs,
    )
    controller.start()
    return SMTPPeer(controller=controller, handler=handler, host=host, port=controller.port)


class _DroppingHandler(socketserver.StreamRequestHandler):
    """Speaks just enough SMTP to reach DATA, then hangs up after some message bytes."""

    def handle(self) -> None:
        server: DroppingServer = self.server  # type: ignore[assignment]
        server.connections += 1
        self.wfile.write(b"220 drop.test ESMTP\r\n")
        while True:
            line = self.rfile.readline()
            if not line:
                return
            verb = line[:4].upper()
            if verb in (b"EHLO", b"HELO"):
                self.wfile.write(b"250-drop.test\r\n250 8BITMIME\r\n")
            elif verb in (b"MAIL", b"RCPT", b"RSET", b"NOOP"):
                self.wfile.write(b"250 2.0.0 Ok\r\n")
            elif verb == b"DATA":
                self.wfile.write(b"354 End data with <CR><LF>.<CR><LF>\r\n")
                self.rfile.read(server.drop_after)
                server.dropped += 1
                self.connection.shutdown(socket.SHUT_RDWR)
                return
            elif verb == b"QUIT":
                self.wfile.write(b"221 Bye\r\n")
                return
            else:
                self.wfile.write(b"502 5.5.2 Command not recognized\r\n")


class DroppingServer(socketserver.ThreadingTCPServer):
    """An SMTP server that closes the connection in the middle of every DATA."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, drop_after: int = 10) -> None:
        super().__init__(("127.0.0.1", 0), _DroppingHandler)
        self.drop_after = drop_after
        self.connections = 0
        self.dropped = 0

    @property
    def port(self) -> int:
        return int(self.server_address[1])

    @contextlib.contextmanager
    def running(self) -> Iterator[DroppingServer]:
        thread = threading.Thread(target=self.serve_forever, daemon=True)
        thread.start()
        try:
            yield self
        finally:
            self.shutdown()
            self.server_close()
