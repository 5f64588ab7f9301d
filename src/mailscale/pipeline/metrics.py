"""Live delivery metrics of a Sender, per route, and the planning KPIs derived from them.

``Metrics`` is fed by the Sender's workers once per batch (never per message in
a log) and read through :meth:`Metrics.snapshot`, a plain value an exporter
(Prometheus, a CLI summary) turns into its own format. Counters are
cumulative; the rate is over a trailing window of the sender's clock; delivery
and response times are quantiles over the most recent samples (a bounded
reservoir, so memory stays flat over millions of messages).
"""

from __future__ import annotations

import collections
import math
import threading
from collections.abc import Callable, Mapping, Sequence

import attrs

__all__ = ["Metrics", "MetricsSnapshot", "RouteMetrics", "quantile"]

_SAMPLES = 10_000
_WINDOW = 60.0


def quantile(samples: list[float], q: float) -> float | None:
    """The *q* quantile (0..1) of *samples* by the nearest-rank method, or None when empty."""
    if not samples:
        return None
    ordered = sorted(samples)
    rank = max(1, math.ceil(q * len(ordered)))
    return ordered[rank - 1]


@attrs.frozen(kw_only=True)
class RouteMetrics:
    """Cumulative counts and recent timings of one route (or of all routes together).

    Attributes:
        accepted, deferred, rejected: recipients per outcome.
        sent: messages fully settled with at least one recipient accepted.
        bounced: messages with at least one rejected recipient.
        expired: messages given up after the schedule's last attempt.
        failed_calls: whole transport calls that failed (the batch is retried).
        refused: messages the shaper sent back to wait (not attempts).
        calls: transport calls made.
        responses: provider response times measured (HTTP requests, SMTP transactions;
            one per call from a transport that times nothing).
        delivery_p50, delivery_p95: seconds from submit to acceptance, recent messages.
        response_p95: the provider's response time, recent samples: per HTTP request,
            per SMTP transaction (MAIL FROM to the answer after the final dot); a
            transport that does not time its exchanges gives one sample per call.
        processing_rate_per_minute: messages settled (done or given up) per minute over
            the trailing minute (over the time since the first settlement, when shorter).
    """

    accepted: int = 0
    deferred: int = 0
    rejected: int = 0
    sent: int = 0
    bounced: int = 0
    expired: int = 0
    failed_calls: int = 0
    refused: int = 0
    calls: int = 0
    responses: int = 0
    delivery_p50: float | None = None
    delivery_p95: float | None = None
    response_p95: float | None = None
    processing_rate_per_minute: float | None = None

    @property
    def bounce_rate(self) -> float | None:
        """Rejected recipients over settled recipients (accepted + rejected)."""
        settled = self.accepted + self.rejected
        return self.rejected / settled if settled else None

    @property
    def deferral_rate(self) -> float | None:
        """Deferred recipient-attempts over every recipient-attempt."""
        total = self.accepted + self.rejected + self.deferred
        return self.deferred / total if total else None


@attrs.frozen(kw_only=True)
class MetricsSnapshot:
    """Everything measured so far, at one instant.

    Attributes:
        at: when (the sender's clock).
        total: every route together.
        routes: per route name (``""`` for the default route).
        processing_rate_per_minute: messages settled (done or given up) per minute over
            the trailing minute (over the time since the first settlement, when shorter).
        queue_depth: messages in the outbox not yet settled, when known.
        by_state: the outbox's counts by state, when known.
        queue_by_route: messages not yet settled per route, when known.
        outbox_disk_bytes: bytes the outbox takes on disk, when it keeps any.
    """

    at: float
    total: RouteMetrics
    routes: Mapping[str, RouteMetrics]
    processing_rate_per_minute: float | None
    queue_depth: int | None = None
    by_state: Mapping[str, int] = attrs.field(factory=dict)
    queue_by_route: Mapping[str, int] = attrs.field(factory=dict)
    outbox_disk_bytes: int | None = None

    def kpis(self, route: str | None = None) -> dict[str, float]:
        """The planning KPIs (``mailscale.planning.evaluate_kpis``'s keys) measured so far,
        overall or for one *route*.

        A KPI with no measurement yet (no delivery, no call) is left out; the
        health report lists it as missing.
        """
        out: dict[str, float] = {}
        if route is None:
            counts, depth = self.total, self.queue_depth
            rate = self.processing_rate_per_minute
        else:
            counts = self.routes.get(route, RouteMetrics())
            depth = self.queue_by_route.get(route, 0) if self.queue_depth is not None else None
            rate = counts.processing_rate_per_minute
        if depth is not None:
            out["queue_depth"] = float(depth)
        if rate is not None:
            out["processing_rate_per_minute"] = rate
        if counts.delivery_p95 is not None:
            out["delivery_p95_seconds"] = counts.delivery_p95
        if counts.bounce_rate is not None:
            out["bounce_rate"] = counts.bounce_rate
        if counts.response_p95 is not None:
            out["api_response_seconds"] = counts.response_p95
        return out


class _Counts:
    __slots__ = (
        "accepted",
        "bounced",
        "calls",
        "deferred",
        "delivery",
        "expired",
        "failed_calls",
        "first_settled",
        "refused",
        "rejected",
        "response",
        "responses",
        "sent",
        "settled",
    )

    def __init__(self) -> None:
        self.accepted = self.deferred = self.rejected = 0
        self.sent = self.bounced = self.expired = 0
        self.failed_calls = self.refused = self.calls = self.responses = 0
        self.delivery: collections.deque[float] = collections.deque(maxlen=_SAMPLES)
        self.response: collections.deque[float] = collections.deque(maxlen=_SAMPLES)
        # [second, messages settled in it], oldest first, over the trailing window
        self.settled: collections.deque[list[float]] = collections.deque()
        self.first_settled: float | None = None

    def add_settled(self, now: float, n: int, window: float) -> None:
        if self.first_settled is None:
            self.first_settled = now
        second = math.floor(now)
        if self.settled and self.settled[-1][0] == second:
            self.settled[-1][1] += n
        else:
            self.settled.append([second, n])
        self.trim(now, window)

    def trim(self, now: float, window: float) -> None:
        while self.settled and self.settled[0][0] <= now - window:
            self.settled.popleft()

    def rate(self, now: float, window: float) -> float | None:
        if self.first_settled is None:
            return None
        self.trim(now, window)
        span = min(window, max(now - self.first_settled, 1.0))
        return sum(n for _, n in self.settled) * 60.0 / span

    def view(self, now: float, window: float) -> RouteMetrics:
        delivery = list(self.delivery)
        return RouteMetrics(
            accepted=self.accepted,
            deferred=self.deferred,
            rejected=self.rejected,
            sent=self.sent,
            bounced=self.bounced,
            expired=self.expired,
            failed_calls=self.failed_calls,
            refused=self.refused,
            calls=self.calls,
            responses=self.responses,
            delivery_p50=quantile(delivery, 0.5),
            delivery_p95=quantile(delivery, 0.95),
            response_p95=quantile(list(self.response), 0.95),
            processing_rate_per_minute=self.rate(now, window),
        )


class Metrics:
    """Thread-safe accumulation of a Sender's outcomes.

    Args:
        clock: epoch seconds (the sender's clock).
        window: seconds of the trailing window of the processing rate.
    """

    def __init__(self, clock: Callable[[], float], window: float = _WINDOW) -> None:
        self._clock = clock
        self._window = window
        self._lock = threading.Lock()
        self._total = _Counts()
        self._routes: dict[str, _Counts] = {}

    def _both(self, route: str) -> tuple[_Counts, _Counts]:
        counts = self._routes.get(route)
        if counts is None:
            counts = self._routes[route] = _Counts()
        return self._total, counts

    def record_call(
        self,
        route: str,
        seconds: float,
        *,
        failed: bool = False,
        responses: Sequence[float] | None = None,
    ) -> None:
        """Count one transport call on *route* taking *seconds* (a failed call when *failed*).

        *responses* are the provider's response times within the call (one per HTTP
        request, one per SMTP transaction), the samples of ``response_p95``; without
        them the whole call is one sample.
        """
        with self._lock:
            for c in self._both(route):
                c.calls += 1
                if responses:
                    c.response.extend(responses)
                    c.responses += len(responses)
                else:
                    c.response.append(seconds)
                    c.responses += 1
                if failed:
                    c.failed_calls += 1

    def record_refused(self, route: str, messages: int) -> None:
        """Count *messages* the shaper refused on *route*."""
        with self._lock:
            for c in self._both(route):
                c.refused += messages

    def record_outcomes(
        self,
        route: str,
        *,
        accepted: int = 0,
        deferred: int = 0,
        rejected: int = 0,
        sent: int = 0,
        bounced: int = 0,
        expired: int = 0,
        settled: int = 0,
        delivery_times: list[float] | None = None,
    ) -> None:
        """Add one batch's outcomes (recipient and message counts, delivery times)."""
        now = self._clock()
        with self._lock:
            for c in self._both(route):
                c.accepted += accepted
                c.deferred += deferred
                c.rejected += rejected
                c.sent += sent
                c.bounced += bounced
                c.expired += expired
                if delivery_times:
                    c.delivery.extend(delivery_times)
                if settled:
                    c.add_settled(now, settled, self._window)

    def snapshot(
        self,
        *,
        queue_depth: int | None = None,
        by_state: Mapping[str, int] | None = None,
        queue_by_route: Mapping[str, int] | None = None,
        outbox_disk_bytes: int | None = None,
    ) -> MetricsSnapshot:
        """The counters and rates now, overall and per route, with the given queue figures."""
        now = self._clock()
        window = self._window
        with self._lock:
            total = self._total.view(now, window)
            return MetricsSnapshot(
                at=now,
                total=total,
                routes={name: c.view(now, window) for name, c in sorted(self._routes.items())},
                processing_rate_per_minute=total.processing_rate_per_minute,
                queue_depth=queue_depth,
                by_state=dict(by_state or {}),
                queue_by_route=dict(queue_by_route or {}),
                outbox_disk_bytes=outbox_disk_bytes,
            )
