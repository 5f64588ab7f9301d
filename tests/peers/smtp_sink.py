"""Postfix's ``smtp-sink`` on a loopback port: a fast real SMTP peer that records what arrived.

``smtp-sink`` (Debian package ``postfix``) is a C program far faster than aiosmtpd, so a
throughput or crash test measures the sender, not the peer. It appends every mail
transaction to one dump file (``-D``); :meth:`SMTPSink.arrivals` reads the chosen header
of each message back from it.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

BINARY = shutil.which("smtp-sink") or next(
    (p for p in ("/usr/sbin/smtp-sink", "/usr/lib/postfix/sbin/smtp-sink") if os.path.exists(p)),
    None,
)
MISSING = "smtp-sink not found (Debian: apt-get install postfix, which ships /usr/sbin/smtp-sink)"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class SMTPSink:
    """An ``smtp-sink`` process dumping every transaction into one file.

    The dump goes to a directory of its own under the system's temporary directory
    (the sink runs as ``nobody``, which cannot enter pytest's private ``tmp_path``);
    :meth:`close` removes it.

    Args:
        options: extra ``smtp-sink`` options (``["-r", "rcpt"]`` answers RCPT with 4xx...).
    """

    def __init__(self, options: list[str] | None = None) -> None:
        if BINARY is None:
            raise FileNotFoundError(MISSING)
        self.directory = Path(tempfile.mkdtemp(prefix="smtp-sink-"))
        os.chmod(self.directory, 0o777)
        self.dump = self.directory / "dump"
        self.port = _free_port()
        self.process = subprocess.Popen(
            [
                BINARY,
                "-u",
                "nobody",
                "-D",
                str(self.dump),
                *(options or []),
                f"127.0.0.1:{self.port}",
                "256",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline or self.process.poll() is not None:
                    self.close()
                    raise RuntimeError("smtp-sink did not start listening") from None
                time.sleep(0.02)

    @property
    def url(self) -> str:
        """A plaintext ``smtp://`` URL for the sink (it offers no STARTTLS)."""
        return f"smtp://127.0.0.1:{self.port}?tls=none"

    def headers(self, *names: str) -> list[tuple[str | None, ...]]:
        """For each message received so far, in order, the values of the headers *names*
        (None where a message lacks one). Messages are told apart by the ``X-Client-Addr``
        line the sink writes first for every transaction."""
        if not self.dump.exists():
            return []
        wanted = {n.lower(): i for i, n in enumerate(names)}
        out: list[tuple[str | None, ...]] = []
        current: list[str | None] | None = None
        with open(self.dump, encoding="latin-1") as f:
            for line in f:
                if line.startswith("X-Client-Addr:"):
                    if current is not None:
                        out.append(tuple(current))
                    current = [None] * len(names)
                    continue
                name, sep, value = line.partition(":")
                index = wanted.get(name.strip().lower()) if sep else None
                if current is not None and index is not None and current[index] is None:
                    current[index] = value.strip()
        if current is not None:
            out.append(tuple(current))
        return out

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        shutil.rmtree(self.directory, ignore_errors=True)
