"""SMTP servers on loopback for the transport and pipeline tests: aiosmtpd with a
scripted handler, and :class:`FaultyServer`, the one fault-injecting peer: it
misbehaves on purpose at any stage of a session (a refusing greeting, a stall, a
hang-up, odd replies) and keeps its own log of what it accepted (the truth tests
compare results with). :class:`DroppingServer` is its preset that hangs up in the
middle of every DATA.

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
    "Delivery",
    "DroppingServer",
    "FaultyServer",
    "Received",
    "ScriptedHandler",
    "SMTPPeer",
    "free_port",
    "start_peer",
    "unaccepting_listener",
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


#: Stages at which :class:`FaultyServer` can stop answering (``stall_at``).
STALL_STAGES = (
    "greeting",
    "EHLO",
    "STARTTLS",
    "TLS handshake",
    "AUTH",
    "RSET",
    "MAIL",
    "DATA",
    "final dot",
)
#: Stages at which it can hang up without answering (``drop_at``).
DROP_STAGES = ("DATA", "message", "final dot")


@attrs.frozen
class Delivery:
    """A message the faulty server received in full (after the final dot)."""

    mail_from: str
    rcpt_tos: tuple[str, ...]
    content: bytes


class _FaultyHandler(socketserver.StreamRequestHandler):
    """One session of :class:`FaultyServer`."""

    server: FaultyServer

    def handle(self) -> None:
        server = self.server
        self.connection.settimeout(30)  # never a thread for ever, whatever the client does
        with server.lock:
            server.connections += 1
            self.number = server.connections
            server.sockets.append(self.connection)
        try:
            self._session()
        except OSError:
            pass
        finally:
            with server.lock:
                server.sockets.remove(self.connection)

    def _log(self, event: str) -> None:
        with self.server.lock:
            self.server.events.append((self.number, event))

    def _say(self, reply: str) -> None:
        self.wfile.write(reply.encode() + b"\r\n")

    def _stall(self, stage: str) -> None:
        """Answer nothing more; wait until the client hangs up."""
        self._log(f"stall {stage}")
        while self.rfile.read1(4096):
            pass

    def _hang_up(self, stage: str) -> None:
        self._log(f"drop {stage}")
        self.connection.shutdown(socket.SHUT_RDWR)

    def _session(self) -> None:
        server = self.server
        if server.stall_at == "greeting":
            self._stall("greeting")
            return
        self._say(server.greeting)
        if not server.greeting.startswith("220"):
            self._log(f"greeting {server.greeting[:3]}")
            self._hang_up("greeting")
            return
        mail_from: str | None = None
        rcpts: list[str] = []
        while True:
            line = self.rfile.readline()
            if not line:
                self._log("client hung up")
                return
            command = line.decode("utf-8", "replace").rstrip("\r\n")
            verb = command.split(" ", 1)[0].upper()
            arg = command[len(verb) + 1 :]
            # The verb in capitals (smtplib sends "mail FROM:"); AUTH's secret is not kept.
            self._log(verb if verb in ("AUTH", "EHLO", "HELO") else f"{verb} {arg}".rstrip())
            if verb in ("EHLO", "HELO", "STARTTLS", "AUTH", "RSET", "MAIL", "DATA") and (
                server.stall_at == verb or (verb == "HELO" and server.stall_at == "EHLO")
            ):
                self._stall(verb)
                return
            if verb == "EHLO":
                lines = ["fault.test", "8BITMIME", "SMTPUTF8"]
                if server.starttls:
                    lines.append("STARTTLS")
                if server.auth:
                    lines.append("AUTH PLAIN")
                self._say(
                    "\r\n".join(
                        f"250{'-' if i < len(lines) - 1 else ' '}{text}"
                        for i, text in enumerate(lines)
                    )
                )
            elif verb == "HELO":
                self._say("250 fault.test")
            elif verb == "STARTTLS":
                self._say("220 2.0.0 Ready to start TLS")
                self._stall("TLS handshake")  # no TLS here: the handshake never completes
                return
            elif verb == "AUTH":
                self._say("235 2.7.0 Authentication successful")
            elif verb == "RSET":
                self._say(server.rset_reply)
                if server.rset_reply.startswith("421"):
                    self._hang_up("RSET")
                    return
                mail_from, rcpts = None, []
            elif verb == "NOOP":
                self._say("250 2.0.0 Ok")
            elif verb == "MAIL":
                mail_from, rcpts = arg.partition(":")[2].split(" ")[0].strip("<>"), []
                self._say(server.mail_reply)
                if server.mail_reply.startswith("421"):
                    self._hang_up("MAIL")
                    return
            elif verb == "RCPT":
                address = arg.partition(":")[2].split(" ")[0].strip("<>")
                local = address.rpartition("@")[0]
                if local == "stall":
                    self._stall("RCPT")
                    return
                if local == "drop":
                    self._hang_up("RCPT")
                    return
                reply = RCPT_REPLIES.get(local, "250 2.1.5 Ok")
                self._say(reply)
                if reply.startswith("421"):  # RFC 5321 section 3.8: 421 closes the session
                    self._hang_up("RCPT")
                    return
                if reply.startswith("250"):
                    rcpts.append(address)
            elif verb == "DATA":
                if server.drop_at == "DATA":
                    self._hang_up("DATA")
                    return
                if not rcpts:
                    self._say("554 5.5.1 No valid recipients")
                    continue
                self._say(server.data_command_reply)
                if not server.data_command_reply.startswith("354"):
                    if server.data_command_reply.startswith("421"):
                        self._hang_up("DATA")
                        return
                    continue
                if server.drop_at == "message":
                    self.rfile.read(server.drop_after)
                    self._hang_up("message")
                    return
                content = self._read_message()
                if content is None:
                    self._log("client hung up")
                    return
                got = Delivery(mail_from or "", tuple(rcpts), content)
                mail_from, rcpts = None, []
                if server.stall_at == "final dot" or server.drop_at == "final dot":
                    with server.lock:
                        server.unanswered.append(got)
                    if server.drop_at == "final dot":
                        self._hang_up("final dot")
                    else:
                        self._stall("final dot")
                    return
                if server.data_reply.startswith("250"):
                    with server.lock:
                        server.deliveries.append(got)
                self._say(server.data_reply)
            elif verb == "QUIT":
                self._say("221 2.0.0 Bye")
                return
            else:
                self._say("502 5.5.2 Command not recognized")

    def _read_message(self) -> bytes | None:
        """The message up to the final dot, dot-unstuffed (None: the client hung up)."""
        lines: list[bytes] = []
        while True:
            line = self.rfile.readline()
            if not line:
                return None
            if line == b".\r\n":
                self._log(".")
                return b"".join(lines)
            lines.append(line[1:] if line.startswith(b".") else line)


class FaultyServer(socketserver.ThreadingTCPServer):
    """An SMTP server on loopback that misbehaves on purpose, with its own log.

    Recipients are answered by local part like :class:`ScriptedHandler`
    (``defer`` 451, ``reject`` 550, ``full`` 552, ``closing`` 421 and then it hangs
    up), plus ``stall`` (never answers that RCPT) and ``drop`` (hangs up instead
    of answering); anyone else gets 250.

    Args:
        host, port: where to listen (default: a free port on 127.0.0.1).
        greeting: the first reply; anything but 220 is followed by hanging up.
        stall_at: a stage of :data:`STALL_STAGES` at which it stops answering
            and waits for the client to give up.
        drop_at: ``"DATA"`` (hang up at the DATA command: the connection is lost
            between RCPT and DATA), ``"message"`` (after ``drop_after`` bytes of
            the message) or ``"final dot"`` (after the whole message, unanswered).
        data_command_reply: the answer to the DATA command (354 to go ahead).
        data_reply: the answer to the final dot.
        rset_reply: the answer to RSET (421 is followed by hanging up).
        mail_reply: the answer to MAIL FROM (421 is followed by hanging up).
        starttls, auth: offer STARTTLS (whose handshake never completes) / AUTH PLAIN.

    The log: ``deliveries`` (messages answered 250 after the final dot: the only
    ones the server accepted), ``unanswered`` (received in full, never answered),
    ``events`` (``(connection number, command or event)``), ``connections``.
    """

    daemon_threads = True
    allow_reuse_address = True

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        greeting: str = "220 fault.test ESMTP",
        stall_at: str | None = None,
        drop_at: str | None = None,
        drop_after: int = 10,
        data_command_reply: str = "354 End data with <CR><LF>.<CR><LF>",
        data_reply: str = "250 2.0.0 Ok: queued as FAULT1",
        rset_reply: str = "250 2.0.0 Ok",
        mail_reply: str = "250 2.1.0 Ok",
        starttls: bool = False,
        auth: bool = False,
    ) -> None:
        if stall_at not in (None, *STALL_STAGES):
            raise ValueError(f"stall_at must be one of {STALL_STAGES}")
        if drop_at not in (None, *DROP_STAGES):
            raise ValueError(f"drop_at must be one of {DROP_STAGES}")
        super().__init__((host, port), _FaultyHandler)
        self.greeting = greeting
        self.stall_at = stall_at
        self.drop_at = drop_at
        self.drop_after = drop_after
        self.data_command_reply = data_command_reply
        self.data_reply = data_reply
        self.rset_reply = rset_reply
        self.mail_reply = mail_reply
        self.starttls = starttls or stall_at in ("STARTTLS", "TLS handshake")
        self.auth = auth or stall_at == "AUTH"
        self.lock = threading.Lock()
        self.connections = 0
        self.sockets: list[socket.socket] = []
        self.events: list[tuple[int, str]] = []
        self.deliveries: list[Delivery] = []
        self.unanswered: list[Delivery] = []

    @property
    def port(self) -> int:
        return int(self.server_address[1])

    def commands(self, connection: int = 1) -> list[str]:
        """The commands and events of one connection, in order."""
        with self.lock:
            return [event for number, event in self.events if number == connection]

    def accepted(self) -> list[tuple[str, ...]]:
        """The recipients of each message the server accepted (answered 250 after DATA)."""
        with self.lock:
            return [d.rcpt_tos for d in self.deliveries]

    @contextlib.contextmanager
    def running(self) -> Iterator[FaultyServer]:
        thread = threading.Thread(target=self.serve_forever, daemon=True)
        thread.start()
        try:
            yield self
        finally:
            self.shutdown()
            with self.lock:
                for sock in self.sockets:
                    with contextlib.suppress(OSError):
                        sock.shutdown(socket.SHUT_RDWR)
            self.server_close()


class DroppingServer(FaultyServer):
    """A :class:`FaultyServer` that hangs up in the middle of every DATA, after
    ``drop_after`` bytes of the message (``drop_at="message"``)."""

    def __init__(self, drop_after: int = 10) -> None:
        super().__init__(drop_at="message", drop_after=drop_after)

    @property
    def dropped(self) -> int:
        """How many messages it hung up in the middle of."""
        with self.lock:
            return sum(1 for _, event in self.events if event == "drop message")


@contextlib.contextmanager
def unaccepting_listener() -> Iterator[int]:
    """A port whose accept queue is full (Linux drops further SYNs): connecting times out."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    filler = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        listener.bind(("127.0.0.1", 0))
        listener.listen(0)
        filler.settimeout(5)
        filler.connect(listener.getsockname())
        yield int(listener.getsockname()[1])
    finally:
        filler.close()
        listener.close()
