"""Measure this machine's per-core sending rate for ``mailscale plan --calibrate``.

Planning measures nothing and imports none of the stack it plans for: it takes
measured figures as data (`mailscale.planning.Measurements`). This module, on
the command line's side, does the measuring and hands the result over through
`measurements`, the seam any other measurement (the sending pipeline's own,
once it exists) feeds in the same way.

The measurement runs mailscale's per-message path on one thread: DKIM
signing (RSA-2048, relaxed/relaxed, the costliest common choice), a
rate-limit decision over three keys (API key, sending IP, destination
domain), and a hand-off to the ``null`` transport. Network and provider time
are not included, nor an outbox: the result is the rate one core can prepare
and hand off messages at, which is what the planner's core count divides by.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import attrs

from mailscale.errors import PlanningError
from mailscale.planning import Measurements

__all__ = ["METHOD", "Calibration", "measure_per_core_rate", "measurements"]

METHOD = "DKIM signing (RSA-2048), shaping over 3 keys and a null-transport hand-off"
"""What `measure_per_core_rate` measures, in words."""


def measurements(emails_per_minute_per_core: float, *, method: str = METHOD) -> Measurements:
    """The figures planning takes, from a measured per-core rate.

    This is the one place a measurement becomes planning data: the sending
    pipeline can measure its whole path (outbox, shaping, signing, hand-off) and
    call this with its rate and a ``method`` saying what it measured.

    Raises:
        PlanningError: the rate is not a usable per-core rate (see `Workload`).
    """
    return Measurements(emails_per_minute_per_core=emails_per_minute_per_core, method=method)


@attrs.frozen(kw_only=True)
class Calibration:
    """One measurement of the per-message path on one core.

    Attributes:
        emails_per_minute: the whole path's rate, per core (the planner's ``per_core_rate``).
        messages: how many messages were measured.
        seconds: how long the measurement took.
        message_size: the size of each message in bytes.
        stages: each stage's own rate in messages per second (``sign``, ``shape``, ``send``).
    """

    emails_per_minute: float
    messages: int
    seconds: float
    message_size: int
    stages: dict[str, float]

    def to_measurements(self) -> Measurements:
        """This measurement as the figures planning takes."""
        return measurements(self.emails_per_minute, method=METHOD)

    def explain(self) -> str:
        """One line saying what was measured."""
        parts = ", ".join(f"{name} {rate:,.0f}/s" for name, rate in self.stages.items())
        return (
            f"measured {self.emails_per_minute:,.0f} emails/minute/core over {self.messages:,} "
            f"messages of {self.message_size:,} bytes ({parts})"
        )


def _message(size: int) -> bytes:
    head = (
        b"From: News <news@example.com>\r\nTo: reader@example.org\r\n"
        b"Subject: Calibration\r\nDate: Fri, 27 Nov 2026 12:00:00 +0000\r\n"
        b"Message-ID: <calibration@example.com>\r\nMIME-Version: 1.0\r\n"
        b"Content-Type: text/plain; charset=utf-8\r\n\r\n"
    )
    line = b"The quick brown fox jumps over the lazy dog, and then it writes some mail.\r\n"
    body = line * max(1, (size - len(head)) // len(line))
    return head + body


def _rate(step: Callable[[], object], batch: int, seconds: float) -> tuple[float, int, float]:
    done = 0
    start = time.perf_counter()
    elapsed = 0.0
    while True:
        step()
        done += batch
        elapsed = time.perf_counter() - start
        if elapsed >= seconds:
            return done / elapsed, done, elapsed


def measure_per_core_rate(*, seconds: float = 1.0, message_size: int = 20_000) -> Calibration:
    """Measure the per-message path on this core for about ``3 * seconds``.

    Args:
        seconds: time spent on each stage (and on the whole path).
        message_size: bytes per message (the workload's average size).

    Raises:
        PlanningError: for a non-positive duration or a message size outside 1 KB and 10 MB.
    """
    if not isinstance(seconds, (int, float)) or not 0 < seconds <= 60:
        raise PlanningError(f"seconds must be in (0, 60], got {seconds!r}", field="seconds")
    if not isinstance(message_size, int) or not 1_000 <= message_size <= 10_000_000:
        raise PlanningError(
            f"message_size must be 1,000-10,000,000 bytes, got {message_size!r}",
            field="message_size",
        )
    from mailscale.message import Envelope
    from mailscale.shaping import Limit, Shaper
    from mailscale.signing import DKIMSigner, generate_key
    from mailscale.transports.dev import NullTransport

    batch = 20
    signer = DKIMSigner("example.com", "calibration", generate_key("rsa", 2048))
    messages = [_message(message_size)] * batch
    keys = [("esp:key", "ip:192.0.2.1", "domain:example.org")] * batch
    unlimited = Limit(10**9, 1.0, burst=1_000)
    shaper = Shaper({"esp:*": unlimited, "ip:*": unlimited, "domain:*": unlimited})
    transport = NullTransport()
    signed = signer.sign_batch(messages)
    envelopes = [
        Envelope(sender="news@example.com", recipients=["reader@example.org"], message=m)
        for m in signed
    ]

    def whole() -> None:
        out = signer.sign_batch(messages)
        shaper.acquire_many(keys)
        transport.send(
            [
                Envelope(sender="news@example.com", recipients=["reader@example.org"], message=m)
                for m in out
            ]
        )

    stages = {
        "sign": _rate(lambda: signer.sign_batch(messages), batch, seconds)[0],
        "shape": _rate(lambda: shaper.acquire_many(keys), batch, seconds / 4)[0],
        "send": _rate(lambda: transport.send(envelopes), batch, seconds / 4)[0],
    }
    rate, done, elapsed = _rate(whole, batch, seconds)
    transport.close()
    return Calibration(
        emails_per_minute=rate * 60,
        messages=done,
        seconds=elapsed,
        message_size=message_size,
        stages=stages,
    )
