"""A loopback HTTP server base for the ESP API peers.

Each peer implements one provider's documented endpoint, authentication,
request validation and error responses, records every request it receives
so tests can assert the exact request shape, and can be told to fail the
next N requests (429 with Retry-After and rate-limit headers, 500, ...), to
drop the connection, or to handle a request as usual (the message is sent)
and garble the answer (hostile bodies: not JSON, wrong types, wrong counts).
"""

from __future__ import annotations

import json
import ssl
import threading
import time
from collections import deque
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import attrs


@attrs.frozen
class Recorded:
    """One request as the peer received it."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes
    client_port: int = 0

    def json(self) -> Any:
        return json.loads(self.body)


@attrs.frozen
class Reply:
    """What the peer answers."""

    status: int
    body: bytes = b""
    headers: dict[str, str] = attrs.field(factory=dict)

    @classmethod
    def json(cls, status: int, data: Any, headers: dict[str, str] | None = None) -> Reply:
        h = {"Content-Type": "application/json", **(headers or {})}
        return cls(status, json.dumps(data).encode(), h)

    def data(self) -> Any:
        """The body as JSON."""
        return json.loads(self.body)

    def with_body(self, body: bytes) -> Reply:
        """The same status and headers with another body."""
        return attrs.evolve(self, body=body)

    def with_json(self, data: Any) -> Reply:
        """The same status and headers with another JSON body."""
        return attrs.evolve(self, body=json.dumps(data).encode())


#: How :meth:`ESPPeer.garble_next` changes an answer: a new body, or a function of the reply.
Garble = bytes | Callable[[Reply], Reply]


class ESPPeer:
    """Base: a ThreadingHTTPServer on 127.0.0.1 in a daemon thread."""

    def __init__(self, ssl_context: ssl.SSLContext | None = None) -> None:
        self.requests: list[Recorded] = []
        self.scheme = "https" if ssl_context is not None else "http"
        self._failures: deque[Reply] = deque()
        self._garbles: deque[Garble] = deque()
        self._lock = threading.Lock()
        self._drop_next = 0
        #: Seconds to wait before answering, like a provider across the internet.
        self.delay = 0.0
        peer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            # Headers and body go out in separate writes: without TCP_NODELAY, Nagle's
            # algorithm meets the client's delayed ACK and adds ~40 ms per answer.
            disable_nagle_algorithm = True

            def _serve(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                parts = urlsplit(self.path)
                rec = Recorded(
                    method=self.command,
                    path=parts.path,
                    query=dict(parse_qsl(parts.query)),
                    headers={k.lower(): v for k, v in self.headers.items()},
                    body=body,
                    client_port=self.client_address[1],
                )
                with peer._lock:
                    peer.requests.append(rec)
                    if peer._drop_next:
                        peer._drop_next -= 1
                        drop = True
                    else:
                        drop = False
                    failure = peer._failures.popleft() if peer._failures and not drop else None
                    garble = (
                        peer._garbles.popleft()
                        if peer._garbles and not drop and failure is None
                        else None
                    )
                if drop:
                    self.close_connection = True
                    self.connection.close()
                    return
                if peer.delay:
                    time.sleep(peer.delay)
                reply = failure or peer.handle(rec)
                if isinstance(garble, bytes):
                    reply = reply.with_body(garble)
                elif garble is not None:
                    reply = garble(reply)
                self.send_response(reply.status)
                for k, v in reply.headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(reply.body)))
                self.end_headers()
                self.wfile.write(reply.body)

            do_POST = _serve
            do_GET = _serve

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        if ssl_context is not None:
            self._server.socket = ssl_context.wrap_socket(self._server.socket, server_side=True)
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"{self.scheme}://{host}:{port}"

    def start(self) -> ESPPeer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)

    def __enter__(self) -> ESPPeer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def fail_next(self, n: int, reply: Reply) -> None:
        """Answer the next *n* requests with *reply* instead of handling them."""
        with self._lock:
            self._failures.extend([reply] * n)

    def garble_next(self, n: int, change: Garble) -> None:
        """Handle the next *n* requests as usual (their messages are sent), then answer
        with *change*: the body to send instead, or a function from the real reply to
        the one sent (keep the status, break the body)."""
        with self._lock:
            self._garbles.extend([change] * n)

    def drop_next(self, n: int = 1) -> None:
        """Close the connection without answering the next *n* requests."""
        with self._lock:
            self._drop_next += n

    def handle(self, req: Recorded) -> Reply:
        raise NotImplementedError

    @staticmethod
    def rate_limited(retry_after: str = "7", limit: int = 600, reset: int = 0) -> dict[str, str]:
        """Headers of a 429 answer: Retry-After and the X-RateLimit-* trio."""
        return {
            "Retry-After": retry_after,
            "X-RateLimit-Limit": str(limit),
            "X-RateLimit-Remaining": "0",
            "X-RateLimit-Reset": str(reset),
        }
