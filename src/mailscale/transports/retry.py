"""Retries with exponential backoff and jitter, around any transport.

Only transient outcomes are retried: deferred results (just their pending
recipients) and transient whole-call errors. A rejected message is never
retried. A provider's ``Retry-After`` is honoured: the wait is never shorter
than it, and a ``Retry-After`` beyond ``max_retry_after`` ends in-process
retrying (the deferred result goes back to the caller, e.g. the outbox, to
reschedule).

A deferred result marked ``possibly_delivered`` (the whole message reached the
peer, its answer was lost) is different: the message may already be in the
recipient's mailbox. It is set aside and sent at most once more, after
``RetryPolicy.possibly_delivered_delay`` seconds (None: not at all, the result
goes back to the caller), with the same Message-ID: every message gets one
before its first attempt if it has none, so a duplicate is recognisable.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Sequence
from typing import Any, ClassVar

import attrs

from mailscale._log import get_logger
from mailscale.errors import ConfigurationError, TransportError
from mailscale.message import Envelope, SendResult, with_message_id
from mailscale.transports import _results
from mailscale.transports.base import Transport, TransportBase, TransportURL

__all__ = ["RetryPolicy", "RetryingTransport"]

_log = get_logger("mailscale.transports")


def _positive(inst: object, attribute: attrs.Attribute[Any], value: float) -> None:
    if not value >= 0:
        raise ConfigurationError(f"RetryPolicy.{attribute.name} must be >= 0, got {value!r}")


def _positive_or_none(inst: object, attribute: attrs.Attribute[Any], value: float | None) -> None:
    if value is not None:
        _positive(inst, attribute, value)


def _at_least_one(inst: object, attribute: attrs.Attribute[Any], value: int) -> None:
    if not isinstance(value, int) or value < 1:
        raise ConfigurationError(f"RetryPolicy.{attribute.name} must be >= 1, got {value!r}")


def _fraction(inst: object, attribute: attrs.Attribute[Any], value: float) -> None:
    if not 0 <= value <= 1:
        raise ConfigurationError(f"RetryPolicy.{attribute.name} must be in [0, 1], got {value!r}")


@attrs.frozen(kw_only=True)
class RetryPolicy:
    """Exponential backoff with jitter.

    The n-th retry (n = 1, 2, ...) waits ``min(max_delay, base * multiplier**(n-1))``
    scaled by a random factor in ``[1 - jitter, 1]``, and never less than the
    provider's ``Retry-After``.

    Attributes:
        max_attempts: total attempts including the first (1 = no retry).
        base: the first retry's delay in seconds.
        multiplier: growth factor per retry.
        max_delay: cap on the computed backoff.
        jitter: fraction of the delay that is randomized (0 = none, 1 = full jitter).
        max_retry_after: a ``Retry-After`` longer than this ends in-process retrying.
        max_elapsed: no retry starts later than this many seconds after the
            first attempt (None: only ``max_attempts`` limits).
        possibly_delivered_delay: a message whose result is ``possibly_delivered``
            is sent once more, at least this many seconds after that attempt
            (and within ``max_attempts`` and ``max_elapsed``); None: never again
            here, the deferred result goes back to the caller.

    Raises:
        ConfigurationError: a value out of range (``max_attempts`` below 1, a
            negative delay, ``jitter`` outside 0-1).
    """

    max_attempts: int = attrs.field(default=4, validator=_at_least_one)
    base: float = attrs.field(default=0.5, validator=_positive)
    multiplier: float = attrs.field(default=2.0, validator=_positive)
    max_delay: float = attrs.field(default=30.0, validator=_positive)
    jitter: float = attrs.field(default=0.2, validator=_fraction)
    max_retry_after: float = attrs.field(default=300.0, validator=_positive)
    max_elapsed: float | None = attrs.field(
        default=None, validator=attrs.validators.optional(_positive)
    )
    possibly_delivered_delay: float | None = attrs.field(default=60.0, validator=_positive_or_none)

    def backoff(self, retry: int, rng: random.Random | None = None) -> float:
        """Seconds to wait before retry number *retry* (1-based), jitter applied."""
        delay = min(self.max_delay, self.base * self.multiplier ** max(0, retry - 1))
        if self.jitter:
            draw = (rng or random).random()
            delay *= 1.0 - self.jitter * draw
        return delay

    def delay(
        self, retry: int, retry_after: float | None = None, rng: random.Random | None = None
    ) -> float | None:
        """Seconds to wait before retry *retry*, or None when no retry should happen."""
        if retry >= self.max_attempts:
            return None
        wait = self.backoff(retry, rng)
        if retry_after is not None:
            if retry_after > self.max_retry_after:
                return None
            wait = max(wait, retry_after)
        return wait


class RetryingTransport(TransportBase):
    """Wraps a transport and retries its transient failures per a :class:`RetryPolicy`.

    Args:
        inner: the transport to retry.
        policy: the backoff policy.
        sleep: how to wait (injectable for tests).
        clock: monotonic seconds, for ``max_elapsed`` (injectable for tests).
        rng: randomness for jitter (injectable for tests).
    """

    name: ClassVar[str] = "retry"

    def __init__(
        self,
        inner: Transport,
        policy: RetryPolicy | None = None,
        *,
        sleep: Callable[[float], object] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
        rng: random.Random | None = None,
    ) -> None:
        self.inner = inner
        self.policy = policy or RetryPolicy()
        self._sleep = sleep
        self._clock = clock
        self._rng = rng or random.Random()
        self.max_batch = int(getattr(inner, "max_batch", 1))
        self.payload = str(getattr(inner, "payload", "mime"))

    @classmethod
    def from_url(cls, url: TransportURL, **options: Any) -> TransportBase:
        """Always raises ConfigurationError: write ``RetryingTransport(transport, policy)``."""
        raise url.error("wrap a transport with RetryingTransport(transport, policy)")

    def send(self, batch: Sequence[Envelope]) -> list[SendResult]:
        """Send *batch*, retrying deferred messages and transient errors.

        Messages that may have been delivered are set aside and get at most one
        more attempt, after the others (see ``possibly_delivered_delay``).
        """
        # Before the first attempt: a message sent twice must be recognisable as one.
        envs = [with_message_id(env) for env in batch]
        results: list[SendResult | None] = [None] * len(envs)
        pending = list(range(len(envs)))
        tries = [0] * len(envs)
        unsure: list[int] = []
        unsure_since = 0.0
        attempt = 0
        retry_after: float | None = None
        started = self._clock()
        budget = self.policy.max_elapsed
        last_error: TransportError | None = None
        while pending:
            if attempt:
                wait = self.policy.delay(attempt, retry_after, self._rng)
                if wait is None:
                    break
                if budget is not None and self._clock() - started + wait > budget:
                    break
                _log.debug("transport.retry", attempt=attempt + 1, wait=wait, messages=len(pending))
                self._sleep(wait)
            attempt += 1
            for i in pending:
                tries[i] += 1
            sub = [_results.trim(envs[i], results[i]) for i in pending]
            try:
                out = self.inner.send(sub)
            except TransportError as exc:
                last_error = exc
                if not exc.transient:
                    if all(r is None for r in results):
                        raise
                    if _results.member_fault(exc):
                        # Refused credentials or an untrusted certificate say nothing about
                        # the messages: they keep their earlier (deferred) results rather
                        # than become rejections.
                        break
                    for i, env in zip(pending, sub, strict=True):
                        results[i] = _results.merge(
                            results[i], _results.from_error(env, exc, self._inner_name())
                        )
                    break
                if attempt >= self.policy.max_attempts:
                    if all(r is None for r in results):
                        raise
                    break
                hint = getattr(exc, "retry_after", None)
                retry_after = float(hint) if isinstance(hint, (int, float)) else None
                continue
            self._check_count(out, sub)
            still = _results.merge_into(results, pending, out)
            aside = [i for i in still if _results.unsure(results[i])]
            if aside:
                unsure.extend(aside)
                unsure_since = self._clock()
                still = [i for i in still if i not in aside]
            waiting = set(still)
            hints = [
                res.retry_after
                for i, res in zip(pending, out, strict=True)
                if i in waiting and res.retry_after is not None
            ]
            pending = still
            retry_after = max(hints) if hints else None
        if unsure:
            self._once_more(envs, results, unsure, tries, started, unsure_since)
        return self._complete(envs, results, last_error)

    def _once_more(
        self,
        envs: list[Envelope],
        results: list[SendResult | None],
        unsure: list[int],
        tries: list[int],
        started: float,
        since: float,
    ) -> None:
        """The single later attempt for messages that may have been delivered."""
        delay = self.policy.possibly_delivered_delay
        chosen = [i for i in unsure if tries[i] < self.policy.max_attempts]
        if delay is None or not chosen:
            return
        hints = [r.retry_after for i in chosen if (r := results[i]) and r.retry_after is not None]
        retry_after = max(hints) if hints else None
        if retry_after is not None and retry_after > self.policy.max_retry_after:
            return
        wait = max(0.0, delay - (self._clock() - since), retry_after or 0.0)
        budget = self.policy.max_elapsed
        if budget is not None and self._clock() - started + wait > budget:
            return
        _log.debug(
            "transport.retry",
            attempt=max(tries[i] for i in chosen) + 1,
            wait=wait,
            messages=len(chosen),
            possibly_delivered=True,
        )
        self._sleep(wait)
        sub = [_results.trim(envs[i], results[i]) for i in chosen]
        try:
            out = self.inner.send(sub)
        except TransportError as exc:
            # The earlier deferred results say more than this error: they stay.
            _log.debug("transport.retry_failed", error=str(exc), messages=len(chosen))
            return
        self._check_count(out, sub)
        _results.merge_into(results, chosen, out)

    def _check_count(self, out: Sequence[SendResult], sub: Sequence[Envelope]) -> None:
        if len(out) != len(sub):
            raise TransportError(
                f"{self._inner_name()} returned {len(out)} results for {len(sub)} messages",
                provider=self._inner_name(),
            )

    def _complete(
        self,
        envs: list[Envelope],
        results: list[SendResult | None],
        last_error: TransportError | None,
    ) -> list[SendResult]:
        """One result per envelope: the error stands in for any message without an answer.

        Raises:
            TransportError: the last error, when no attempt got an answer at all.
        """
        if all(r is not None for r in results):
            return [r for r in results if r is not None]
        if last_error is None or all(r is None for r in results):
            raise last_error or TransportError(
                f"{self._inner_name()} gave no result", provider=self._inner_name()
            )
        name = self._inner_name()
        return [
            r if r is not None else _results.from_error(env, last_error, name)
            for env, r in zip(envs, results, strict=True)
        ]

    def _inner_name(self) -> str:
        return str(getattr(self.inner, "name", type(self.inner).__name__))

    def close(self) -> None:
        """Close the wrapped transport."""
        self.inner.close()

    def _repr_fields(self) -> dict[str, Any]:
        return {"inner": self.inner, "policy": self.policy}
