"""A scripted SMTP server on loopback for fault cases aiosmtpd cannot play: a 421 greeting,
a server that never greets, a server that goes silent after the message data."""

from __future__ import annotations

import contextlib
import socketserver
import threading
from collections.abc import Iterator


class _Handler(socketserver.StreamRequestHandler):
    def handle(self) -> None:
        server: FaultServer = self.server  # type: ignore[assignment]
        server.connections += 1
        mode = server.mode
        if mode == "greet421":
            self.wfile.write(b"421 4.3.2 Too busy, try again later\r\n")
            return
        if mode == "stall_greeting":
            server.release.wait(30)
            return
        self.wfile.write(b"220 faults.test ESMTP\r\n")
        while True:
            line = self.rfile.readline()
            if not line:
                return
            verb = line[:4].upper()
            if verb in (b"EHLO", b"HELO"):
                self.wfile.write(b"250-faults.test\r\n250 8BITMIME\r\n")
            elif verb in (b"MAIL", b"RCPT", b"RSET", b"NOOP"):
                self.wfile.write(b"250 2.0.0 Ok\r\n")
            elif verb == b"DATA":
                self.wfile.write(b"354 go ahead\r\n")
                while self.rfile.readline() not in (b".\r\n", b""):
                    pass
                server.release.wait(30)  # stall_data: never answers the final dot
                return
            elif verb == b"QUIT":
                self.wfile.write(b"221 Bye\r\n")
                return
            else:
                self.wfile.write(b"502 5.5.2 Command not recognized\r\n")


class FaultServer(socketserver.ThreadingTCPServer):
    """``mode``: ``greet421``, ``stall_greeting`` or ``stall_data``."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, mode: str) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.mode = mode
        self.connections = 0
        self.release = threading.Event()

    @property
    def port(self) -> int:
        return int(self.server_address[1])

    @contextlib.contextmanager
    def running(self) -> Iterator[FaultServer]:
        thread = threading.Thread(target=self.serve_forever, daemon=True)
        thread.start()
        try:
            yield self
        finally:
            self.release.set()
            self.shutdown()
            self.server_close()
