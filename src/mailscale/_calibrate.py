"""Measure this machine's per-core sending rate for ``mailscale plan --calibrate``.

Planning measures nothing and imports none of the stack it plans for: it takes
measured figures as data (`mailscale.planning.Measurements`). This module, on
the command line's side, does the measuring and hands the result over through
`measurements`, the seam any other measurement (the sending pipeline's own,
once it exists) feeds in the same way.

The measurement runs the sending pipeline itself on one thread
(`mailscale.pipeline.Sender` without workers): submit into the memory outbox,
lease, a shaping decision per destination domain, DKIM signing with the chosen
algorithm (RSA-2048 by default, the costliest common choice; or Ed25519), the
hand-off to the ``null`` transport and the settlement. Network and provider
time are not included: the result is the rate one core can take messages
through the pipeline at, which is what the planner's core count divides by.
The signing, shaping and hand-off stages are also timed alone, for context.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import attrs

from mailscale.errors import PlanningError
from mailscale.planning import Measurements

__all__ = ["ALGORITHMS", "METHOD", "Calibration", "measure_per_core_rate", "measurements", "method"]

ALGORITHMS = {"rsa": "RSA-2048", "ed25519": "Ed25519"}


def method(algorithm: str = "rsa") -> str:
    """What `measure_per_core_rate` measures, in words."""
    return (
        "the sending pipeline on one core: memory outbox, shaping, DKIM "
        f"{ALGORITHMS[algorithm]} signing, null-transport hand-off"
    )


METHOD = method("rsa")
"""What `measure_per_core_rate` measures by default, in words."""


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
        algorithm: the DKIM algorithm signed with (``rsa`` or ``ed25519``).
    """

    emails_per_minute: float
    messages: int
    seconds: float
    message_size: int
    stages: dict[str, float]
    algorithm: str = "rsa"

    def to_measurements(self) -> Measurements:
        """This measurement as the figures planning takes."""
        return measurements(self.emails_per_minute, method=method(self.algorithm))

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


def measure_per_core_rate(
    *, seconds: float = 1.0, message_size: int = 20_000, algorithm: str = "rsa"
) -> Calibration:
    """Measure the sending pipeline on this core for about ``2.5 * seconds``.

    Args:
        seconds: time spent on the pipeline (and on the signing stage alone).
        message_size: bytes per message (the workload's average size).
        algorithm: the DKIM algorithm, ``rsa`` (2048 bits) or ``ed25519``.

    Raises:
        PlanningError: for a non-positive duration, a message size outside 1 KB and
            10 MB, or an unknown algorithm.
    """
    if algorithm not in ALGORITHMS:
        raise PlanningError(
            f"algorithm must be one of {', '.join(ALGORITHMS)}, got {algorithm!r}",
            field="algorithm",
        )
    if not isinstance(seconds, (int, float)) or not 0 < seconds <= 60:
        raise PlanningError(f"seconds must be in (0, 60], got {seconds!r}", field="seconds")
    if not isinstance(message_size, int) or not 1_000 <= message_size <= 10_000_000:
        raise PlanningError(
            f"message_size must be 1,000-10,000,000 bytes, got {message_size!r}",
            field="message_size",
        )
    from mailscale.message import Envelope
    from mailscale.pipeline import MemoryOutbox, Sender
    from mailscale.shaping import Limit, Shaper
    from mailscale.signing import DKIMSigner, generate_key
    from mailscale.transports.dev import NullTransport

    batch = 20
    key = generate_key("rsa", 2048) if algorithm == "rsa" else generate_key("ed25519")
    signer = DKIMSigner("example.com", "calibration", key)
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

    unsigned = [
        Envelope(sender="news@example.com", recipients=["reader@example.org"], message=m)
        for m in messages
    ]
    sender = Sender(
        "null://",
        outbox=MemoryOutbox(),
        signer=signer,
        shaper=Shaper({"domain:*": unlimited}, strict=False),
    )

    def whole() -> None:
        sender.submit(unsigned)
        sender.drain()

    stages = {
        "sign": _rate(lambda: signer.sign_batch(messages), batch, seconds)[0],
        "shape": _rate(lambda: shaper.acquire_many(keys), batch, seconds / 4)[0],
        "send": _rate(lambda: transport.send(envelopes), batch, seconds / 4)[0],
    }
    try:
        rate, done, elapsed = _rate(whole, batch, seconds)
        sent = sender.metrics().total.sent
    finally:
        sender.close()
        transport.close()
    if sent != done:  # pragma: no cover - the null transport accepts everything
        raise PlanningError(f"the calibration sent {sent:,} of {done:,} messages", field="seconds")
    return Calibration(
        emails_per_minute=rate * 60,
        messages=done,
        seconds=elapsed,
        message_size=message_size,
        stages=stages,
        algorithm=algorithm,
    )
