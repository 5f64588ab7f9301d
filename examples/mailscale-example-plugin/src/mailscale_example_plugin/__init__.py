"""``example+log://``: a mailscale transport that logs each message as one line in a file.

It shows everything a transport plugin needs: class attributes naming its
scheme and capabilities, ``from_url`` to build it from a URL (with its own
options and clear errors), ``send`` returning one result per envelope, and
``close``. ``TransportBase`` supplies the context manager, ``send_async`` and
a repr that hides secrets.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

from mailscale.message import Envelope, SendResult, SendStatus
from mailscale.transports.base import TransportBase, TransportURL

__all__ = ["LogTransport"]
__version__ = "0.1.1"


class LogTransport(TransportBase):
    """Appends ``<time> <id> <sender> -> <recipients> <size> bytes`` per message to a file.

    Args:
        path: the log file (created when missing).
        reject_domain: recipients in this domain are rejected, to show
            per-recipient results (optional).
    """

    name: ClassVar[str] = "example+log"
    schemes: ClassVar[tuple[str, ...]] = ("example+log",)
    payload: str = "mime"
    max_batch: int = 1000
    rate_preset: ClassVar[str | None] = None

    def __init__(self, path: str | Path, *, reject_domain: str | None = None) -> None:
        self.path = Path(path)
        self.reject_domain = reject_domain.lower() if reject_domain else None
        self._lock = threading.Lock()

    @classmethod
    def from_url(cls, url: TransportURL, **options: Any) -> LogTransport:
        """``example+log:///path/to/file.log?reject_domain=invalid.test``."""
        url.check_options(("reject_domain",))
        if not url.path or url.path.endswith("/"):
            raise url.error("missing log file: use example+log:///path/to/file.log")
        unknown = set(options) - {"reject_domain"}
        if unknown:
            raise url.error(f"unknown setting(s): {', '.join(sorted(unknown))}")
        reject = options.get("reject_domain", url.get_str("reject_domain"))
        return cls(url.path, reject_domain=reject)

    def send(self, batch: Sequence[Envelope]) -> list[SendResult]:
        """Log each message; one result per envelope, in order."""
        results = []
        lines = []
        for env in batch:
            start = time.perf_counter()
            rejected = [
                r
                for r in env.recipients
                if self.reject_domain and r.rpartition("@")[2].lower() == self.reject_domain
            ]
            accepted = [r for r in env.recipients if r not in rejected]
            if not accepted:
                results.append(
                    SendResult(
                        status=SendStatus.REJECTED,
                        recipients=env.recipients,
                        transport=self.name,
                        status_code=550,
                        status_text=f"domain {self.reject_domain} is not accepted",
                        idempotency_key=env.idempotency_key,
                    )
                )
                continue
            message_id = uuid.uuid4().hex
            size = len(env.to_bytes())
            stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
            rcpts = ",".join(accepted)
            lines.append(f"{stamp} {message_id} {env.sender} -> {rcpts} {size} bytes\n")
            results.append(
                SendResult(
                    status=SendStatus.ACCEPTED,
                    recipients=env.recipients,
                    transport=self.name,
                    message_id=message_id,
                    latency=time.perf_counter() - start,
                    idempotency_key=env.idempotency_key,
                )
            )
        if lines:
            with self._lock, self.path.open("a", encoding="utf-8") as fh:
                fh.writelines(lines)
        return results
