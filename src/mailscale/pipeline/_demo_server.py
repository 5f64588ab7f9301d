"""The receiver of ``mailscale demo``: a small asyncio SMTP server on loopback.

It answers like a real receiving server, deterministically per recipient: a few
percent of recipients are greylisted (``451 4.3.0`` on the first try, accepted
on the next), a few are unknown (``550 5.1.1``), and every message is
DKIM-verified on receipt (``550 5.7.20`` when no signature passes). It uses only
the standard library and mailscale's own verifier, so the demo runs wherever
mailscale is installed (aiosmtpd is a test dependency only). It is a
demonstration peer, not a mail server: no TLS, no AUTH, nothing is stored.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import threading
import zlib
from typing import Any

__all__ = ["DemoReceiver", "ReceiverProcess"]

_MAX_LINE = 4096
_MAX_DATA = 32 * 1024 * 1024


class DemoReceiver:
    """An SMTP receiver on ``host`` (an ephemeral port) running in a background thread.

    Args:
        verifier: a ``DKIMVerifier`` (or anything with ``verify(bytes) -> [results]``)
            that knows the demo's key.
        defer_permille: recipients (per thousand) greylisted on their first try.
        reject_permille: recipients (per thousand) refused as unknown.
        host: the loopback address to listen on.

    Attributes (read after :meth:`stop`, or at any time for a live view):
        received: messages accepted at the end of DATA.
        verified: accepted messages whose DKIM signature verified.
        unverified: messages refused because no DKIM signature verified.
        deferred: RCPT commands answered 451.
        rejected: RCPT commands answered 550.
    """

    def __init__(
        self,
        verifier: Any,
        *,
        defer_permille: int = 40,
        reject_permille: int = 6,
        host: str = "127.0.0.1",
    ) -> None:
        self._verifier = verifier
        self._defer = defer_permille
        self._reject = reject_permille
        self._host = host
        self._seen: set[str] = set()
        self._lock = threading.Lock()
        self.received = 0
        self.verified = 0
        self.unverified = 0
        self.deferred = 0
        self.rejected = 0
        self.port = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: asyncio.base_events.Server | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None

    def classify(self, recipient: str) -> str:
        """``"reject"``, ``"defer"`` or ``"accept"``: fixed per recipient address."""
        bucket = zlib.crc32(recipient.lower().encode("utf-8", "replace")) % 1000
        if bucket < self._reject:
            return "reject"
        if bucket < self._reject + self._defer:
            return "defer"
        return "accept"

    # -- lifecycle -----------------------------------------------------------

    def start(self) -> int:
        """Start listening; return the port."""
        self._thread = threading.Thread(
            target=self._run, name="mailscale-demo-receiver", daemon=True
        )
        self._thread.start()
        self._ready.wait(10)
        if self._error is not None:
            raise self._error
        if not self.port:
            raise RuntimeError("the demo receiver did not start")
        return self.port

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        try:
            self._server = loop.run_until_complete(
                asyncio.start_server(self._session, self._host, 0, limit=_MAX_DATA)
            )
            self.port = int(self._server.sockets[0].getsockname()[1])
        except BaseException as exc:  # reported by start()
            self._error = exc
            self._ready.set()
            loop.close()
            return
        self._ready.set()
        try:
            loop.run_forever()
        finally:
            self._server.close()
            loop.run_until_complete(self._server.wait_closed())
            loop.close()

    def stop(self) -> None:
        """Stop listening and end the thread."""
        loop = self._loop
        if loop is not None and self._thread is not None and self._thread.is_alive():
            loop.call_soon_threadsafe(loop.stop)
            self._thread.join(10)

    def __enter__(self) -> DemoReceiver:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- the SMTP session ----------------------------------------------------

    def _rcpt(self, address: str) -> bytes:
        kind = self.classify(address)
        with self._lock:
            if kind == "reject":
                self.rejected += 1
                return b"550 5.1.1 mailbox unknown\r\n"
            if kind == "defer" and address not in self._seen:
                self._seen.add(address)
                self.deferred += 1
                return b"451 4.3.0 greylisted, try again later\r\n"
        return b"250 2.1.5 ok\r\n"

    def _data(self, data: bytes) -> bytes:
        # Undo dot-stuffing (RFC 5321 section 4.5.2).
        message = data.replace(b"\r\n..", b"\r\n.")
        if message.startswith(b".."):
            message = message[1:]
        try:
            results = self._verifier.verify(message)
        except Exception:
            results = []
        ok = any(r.ok for r in results)
        with self._lock:
            if not ok:
                self.unverified += 1
                return b"550 5.7.20 no valid DKIM signature\r\n"
            self.received += 1
            self.verified += 1
            number = self.received
        return b"250 2.0.0 queued as demo%d\r\n" % number

    async def _session(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            writer.write(b"220 demo.invalid ESMTP mailscale demo receiver\r\n")
            await writer.drain()
            sender: str | None = None
            recipients: list[str] = []
            while True:
                line = await reader.readline()
                if not line:
                    return
                if len(line) > _MAX_LINE:
                    writer.write(b"500 5.5.2 line too long\r\n")
                    await writer.drain()
                    continue
                text = line.decode("ascii", "replace").strip()
                verb = text[:4].upper()
                if verb in ("EHLO", "HELO"):
                    sender, recipients = None, []
                    if verb == "EHLO":
                        writer.write(
                            b"250-demo.invalid\r\n250-8BITMIME\r\n250 SIZE %d\r\n" % _MAX_DATA
                        )
                    else:
                        writer.write(b"250 demo.invalid\r\n")
                elif verb == "MAIL":
                    sender, recipients = _address(text), []
                    writer.write(b"250 2.1.0 ok\r\n")
                elif verb == "RCPT":
                    if sender is None:
                        writer.write(b"503 5.5.1 MAIL first\r\n")
                    else:
                        address = _address(text)
                        reply = self._rcpt(address)
                        if reply.startswith(b"250"):
                            recipients.append(address)
                        writer.write(reply)
                elif verb == "DATA":
                    if not recipients:
                        writer.write(b"554 5.5.1 no valid recipients\r\n")
                    else:
                        writer.write(b"354 end data with <CR><LF>.<CR><LF>\r\n")
                        await writer.drain()
                        data = await reader.readuntil(b"\r\n.\r\n")
                        writer.write(self._data(data[:-3]))
                    sender, recipients = None, []
                elif verb == "RSET":
                    sender, recipients = None, []
                    writer.write(b"250 2.0.0 ok\r\n")
                elif verb == "NOOP":
                    writer.write(b"250 2.0.0 ok\r\n")
                elif verb == "QUIT":
                    writer.write(b"221 2.0.0 bye\r\n")
                    await writer.drain()
                    return
                else:
                    writer.write(b"502 5.5.2 command not implemented\r\n")
                await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            return
        finally:
            writer.close()


def _address(command: str) -> str:
    """The address between ``<`` and ``>`` of a MAIL or RCPT command."""
    start = command.find("<")
    end = command.find(">", start + 1)
    if start < 0 or end < 0:
        return command.partition(":")[2].strip()
    return command[start + 1 : end]


_COUNTERS = ("received", "verified", "unverified", "deferred", "rejected")


class ReceiverProcess:
    """A :class:`DemoReceiver` in a child process (``python -m
    mailscale.pipeline._demo_server``), so that receiving and verifying do not share
    the sending process's interpreter lock, as with a real receiver.

    Args:
        record: the DKIM key record (TXT value) every signature is verified against.

    After :meth:`stop`, the receiver's counters are attributes (``received``,
    ``verified``, ``unverified``, ``deferred``, ``rejected``).
    """

    def __init__(self, record: str) -> None:
        self._record = record
        self._process: subprocess.Popen[str] | None = None
        self.port = 0
        self.received = self.verified = self.unverified = self.deferred = self.rejected = 0

    def start(self) -> int:
        self._process = subprocess.Popen(
            [sys.executable, "-m", "mailscale.pipeline._demo_server"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self._process.stdin is not None and self._process.stdout is not None
        self._process.stdin.write(self._record + "\n")
        self._process.stdin.flush()
        line = self._process.stdout.readline()
        if not line.strip().isdigit():
            self._process.kill()
            self._process.wait()
            raise RuntimeError("the demo receiver did not start")
        self.port = int(line)
        return self.port

    def stop(self) -> None:
        process = self._process
        if process is None or process.stdin is None or process.stdout is None:
            return
        self._process = None
        try:
            process.stdin.close()  # end of input: the child stops and reports
            report = process.stdout.read()
            process.wait(10)
        except (OSError, subprocess.TimeoutExpired):
            process.kill()
            process.wait()
            return
        try:
            counts = json.loads(report)
        except ValueError:
            return
        for name in _COUNTERS:
            setattr(self, name, int(counts.get(name, 0)))


def _main() -> None:
    """Read the key record from the first line of stdin, print the port, serve until
    stdin ends, then print the counters as JSON."""
    from mailscale.signing import DKIMVerifier

    record = sys.stdin.readline().strip()
    receiver = DemoReceiver(DKIMVerifier(key_lookup=lambda name: record))
    print(receiver.start(), flush=True)
    sys.stdin.read()
    receiver.stop()
    print(json.dumps({name: getattr(receiver, name) for name in _COUNTERS}), flush=True)


if __name__ == "__main__":
    _main()
