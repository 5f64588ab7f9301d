"""Transports for development and tests: ``memory://``, ``null://`` and ``file:///dir``."""

from __future__ import annotations

import contextlib
import os
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar

from mailscale.errors import ConfigurationError, MailscaleError
from mailscale.message import Envelope, SendResult, SendStatus
from mailscale.transports.base import TransportBase, TransportURL

__all__ = ["FileTransport", "MemoryTransport", "NullTransport"]

_ACCEPTED = SendStatus.ACCEPTED


class NullTransport(TransportBase):
    """Accepts every message and keeps nothing: a sink for benchmarks and dry runs."""

    name: ClassVar[str] = "null"
    schemes: ClassVar[tuple[str, ...]] = ("null",)
    max_batch: int = 1_000_000

    @classmethod
    def from_url(cls, url: TransportURL, **options: Any) -> NullTransport:
        """``null://`` takes no options."""
        url.check_options(())
        if options:
            raise url.error(f"unknown setting(s) {', '.join(sorted(options))}")
        return cls()

    def send(self, batch: Sequence[Envelope]) -> list[SendResult]:
        """Accept every envelope."""
        return [
            SendResult(
                status=_ACCEPTED,
                recipients=env.recipients,
                transport="null",
                idempotency_key=env.idempotency_key,
            )
            for env in batch
        ]


class MemoryTransport(TransportBase):
    """Keeps every accepted envelope in :attr:`outbox`, for tests and examples.

    Args:
        outcome: optional callable deciding the result of each envelope (to
            simulate a provider that defers or rejects); it returns a
            :class:`SendResult` or None for "accepted". Only accepted
            envelopes are kept.
    """

    name: ClassVar[str] = "memory"
    schemes: ClassVar[tuple[str, ...]] = ("memory",)
    max_batch: int = 1_000_000

    def __init__(self, *, outcome: Callable[[Envelope], SendResult | None] | None = None) -> None:
        self.outbox: list[Envelope] = []
        self._outcome = outcome
        self._lock = threading.Lock()
        self._counter = 0

    @classmethod
    def from_url(cls, url: TransportURL, **options: Any) -> MemoryTransport:
        """``memory://`` takes no query options; ``outcome=`` may be given as a setting."""
        url.check_options(())
        unknown = set(options) - {"outcome"}
        if unknown:
            raise url.error(f"unknown setting(s) {', '.join(sorted(unknown))}")
        return cls(**options)

    @property
    def messages(self) -> list[bytes]:
        """The wire form of every kept message, in order."""
        with self._lock:
            return [env.to_bytes() for env in self.outbox]

    def clear(self) -> None:
        """Forget every kept message."""
        with self._lock:
            self.outbox.clear()

    def send(self, batch: Sequence[Envelope]) -> list[SendResult]:
        """Keep each envelope and answer accepted (or what ``outcome`` says)."""
        results: list[SendResult] = []
        with self._lock:
            for env in batch:
                custom = self._outcome(env) if self._outcome is not None else None
                if custom is not None and not custom.accepted:
                    results.append(custom)
                    continue
                self._counter += 1
                self.outbox.append(env)
                results.append(
                    custom
                    if custom is not None
                    else SendResult(
                        status=_ACCEPTED,
                        recipients=env.recipients,
                        transport="memory",
                        message_id=f"memory-{self._counter}",
                        idempotency_key=env.idempotency_key,
                    )
                )
        return results

    def _repr_fields(self) -> Mapping[str, Any]:
        return {"kept": len(self.outbox)}


class FileTransport(TransportBase):
    """Writes each message as an ``.eml`` file in a directory, atomically.

    Each file is written to a temporary name in the same directory and moved
    into place with ``os.replace``, so a reader never sees a partial file. The
    file holds exactly the message bytes; the envelope is not recorded.
    """

    name: ClassVar[str] = "file"
    schemes: ClassVar[tuple[str, ...]] = ("file",)
    max_batch: int = 10_000

    def __init__(self, directory: str | os.PathLike[str], *, create: bool = True) -> None:
        path = Path(directory)
        if create:
            try:
                path.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise ConfigurationError(
                    f"file transport: cannot create directory {str(path)!r}: {exc.strerror}"
                ) from None
        if not path.is_dir():
            raise ConfigurationError(f"file transport: {str(path)!r} is not a directory")
        self.directory = path

    @classmethod
    def from_url(cls, url: TransportURL, **options: Any) -> FileTransport:
        """``file:///path/to/dir?create=false``."""
        url.check_options(("create",))
        if url.host not in (None, "", "localhost"):
            raise url.error("a file URL names a local directory: file:///path/to/dir")
        if not url.path or url.path == "/":
            raise url.error("missing directory: use file:///path/to/dir")
        unknown = set(options) - {"create"}
        if unknown:
            raise url.error(f"unknown setting(s) {', '.join(sorted(unknown))}")
        create = options.get("create", url.get_bool("create", True))
        return cls(url.path, create=bool(create))

    def send(self, batch: Sequence[Envelope]) -> list[SendResult]:
        """Write each envelope's message; results name the file as the message id."""
        results: list[SendResult] = []
        for env in batch:
            start = time.perf_counter()
            try:
                data = env.to_bytes()
            except MailscaleError as exc:  # an EmailMessage changed into something unsendable
                results.append(
                    SendResult(
                        status=SendStatus.REJECTED,
                        recipients=env.recipients,
                        transport="file",
                        status_text=str(exc),
                        idempotency_key=env.idempotency_key,
                    )
                )
                continue
            name = f"{time.strftime('%Y%m%dT%H%M%S', time.gmtime())}-{uuid.uuid4().hex}.eml"
            target = self.directory / name
            try:
                fd, tmp = tempfile.mkstemp(dir=self.directory, prefix=".tmp-", suffix=".eml")
                try:
                    with os.fdopen(fd, "wb") as fh:
                        fh.write(data)
                        fh.flush()
                        os.fsync(fh.fileno())
                    os.replace(tmp, target)
                except BaseException:
                    with contextlib.suppress(OSError):
                        os.unlink(tmp)
                    raise
            except OSError as exc:
                # A full or read-only disk may recover: deferred, never lost silently.
                results.append(
                    SendResult(
                        status=SendStatus.DEFERRED,
                        recipients=env.recipients,
                        transport="file",
                        status_text=f"cannot write to {str(self.directory)!r}: {exc.strerror}",
                        latency=time.perf_counter() - start,
                        idempotency_key=env.idempotency_key,
                    )
                )
                continue
            results.append(
                SendResult(
                    status=_ACCEPTED,
                    recipients=env.recipients,
                    transport="file",
                    message_id=name,
                    latency=time.perf_counter() - start,
                    idempotency_key=env.idempotency_key,
                )
            )
        return results
