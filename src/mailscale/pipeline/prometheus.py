"""Prometheus exposition of a Sender's metrics (``pip install 'mailscale[prometheus]'``).

:class:`SenderCollector` turns :meth:`Sender.metrics` into Prometheus metric
families at every scrape; nothing is recorded twice and nothing runs between
scrapes. Names follow Prometheus conventions (a ``mailscale_`` prefix, base units,
``_total`` for counters); labels are ``route`` (``"default"`` for the default
route) and ``status``:

=====================================================  =======  ==============================
metric                                                 type     labels
=====================================================  =======  ==============================
``mailscale_recipients_total``                         counter  route, status: accepted,
                                                                deferred, rejected
``mailscale_messages_total``                           counter  route, status: sent, bounced,
                                                                expired, refused
``mailscale_transport_calls_total``                    counter  route, status: ok, failed
``mailscale_delivery_time_seconds``                    gauge    route, quantile: 0.5, 0.95
``mailscale_transport_response_time_seconds``          gauge    route, quantile: 0.95
``mailscale_outbox_messages``                          gauge    state: queued, leased, done,
                                                                dead
``mailscale_queue_depth``                              gauge    (none)
``mailscale_outbox_disk_bytes``                        gauge    (none): only for an outbox
                                                                on disk (SQLite)
``mailscale_processing_rate_per_minute``               gauge    (none)
``mailscale_healthy``                                  gauge    (none): 1 when every measured
                                                                KPI meets the planning
                                                                guide's target
=====================================================  =======  ==============================

``sent`` counts messages with at least one accepted recipient, ``bounced`` those
with a rejected one, ``refused`` the times the shaper sent a message back to wait.
Delivery times are from submit to acceptance, over recent messages (quantiles of
a bounded sample, hence gauges rather than a summary without sum and count).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from mailscale.errors import ConfigurationError

try:
    from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
    from prometheus_client.registry import Collector, CollectorRegistry
except ImportError as _exc:  # pragma: no cover - exercised without the extra
    raise ConfigurationError(
        "Prometheus exposition needs prometheus_client: pip install 'mailscale[prometheus]'"
    ) from _exc

__all__ = ["SenderCollector", "serve"]

_PREFIX = "mailscale"


def _route(name: str) -> str:
    return name or "default"


class SenderCollector(Collector):
    """A Prometheus collector over a Sender's metrics snapshot, taken at each scrape.

    Args:
        sender: a ``Sender`` (anything with ``metrics()`` returning a ``MetricsSnapshot``
            and ``health()``).
    """

    def __init__(self, sender: Any) -> None:
        self._sender = sender

    def describe(self) -> list[Metric]:
        return []  # collected at scrape time only; no duplicate-name check at registration

    def collect(self) -> Iterator[Metric]:
        snap = self._sender.metrics()
        recipients = CounterMetricFamily(
            f"{_PREFIX}_recipients",
            "Recipients by delivery outcome (each attempt counts).",
            labels=["route", "status"],
        )
        messages = CounterMetricFamily(
            f"{_PREFIX}_messages",
            "Messages by outcome: sent (a recipient accepted), bounced "
            "(a recipient rejected), expired, refused (sent back by the shaper).",
            labels=["route", "status"],
        )
        calls = CounterMetricFamily(
            f"{_PREFIX}_transport_calls",
            "Transport calls, ok or failed as a whole.",
            labels=["route", "status"],
        )
        delivery = GaugeMetricFamily(
            f"{_PREFIX}_delivery_time_seconds",
            "Seconds from submit to acceptance, quantile over recent messages.",
            labels=["route", "quantile"],
        )
        response = GaugeMetricFamily(
            f"{_PREFIX}_transport_response_time_seconds",
            "Provider response time in seconds (per HTTP request, per SMTP transaction), "
            "quantile over recent responses.",
            labels=["route", "quantile"],
        )
        for name, r in snap.routes.items():
            route = _route(name)
            for status in ("accepted", "deferred", "rejected"):
                recipients.add_metric([route, status], getattr(r, status))
            for status in ("sent", "bounced", "expired", "refused"):
                messages.add_metric([route, status], getattr(r, status))
            calls.add_metric([route, "ok"], r.calls - r.failed_calls)
            calls.add_metric([route, "failed"], r.failed_calls)
            for q, value in (("0.5", r.delivery_p50), ("0.95", r.delivery_p95)):
                if value is not None:
                    delivery.add_metric([route, q], value)
            if r.response_p95 is not None:
                response.add_metric([route, "0.95"], r.response_p95)
        yield from (recipients, messages, calls, delivery, response)
        states = GaugeMetricFamily(
            f"{_PREFIX}_outbox_messages", "Messages in the outbox by state.", labels=["state"]
        )
        for state in ("queued", "leased", "done", "dead"):
            states.add_metric([state], snap.by_state.get(state, 0))
        yield states
        if snap.queue_depth is not None:
            yield GaugeMetricFamily(
                f"{_PREFIX}_queue_depth",
                "Messages not yet settled (queued plus leased).",
                value=snap.queue_depth,
            )
        if snap.outbox_disk_bytes is not None:
            yield GaugeMetricFamily(
                f"{_PREFIX}_outbox_disk_bytes",
                "Bytes the outbox takes on disk (database, WAL and body segments).",
                value=snap.outbox_disk_bytes,
            )
        if snap.processing_rate_per_minute is not None:
            yield GaugeMetricFamily(
                f"{_PREFIX}_processing_rate_per_minute",
                "Messages settled per minute over the trailing minute.",
                value=snap.processing_rate_per_minute,
            )
        from mailscale.planning import evaluate_kpis

        healthy = evaluate_kpis(snap.kpis()).healthy
        yield GaugeMetricFamily(
            f"{_PREFIX}_healthy",
            "1 when every measured KPI meets the planning guide's target.",
            value=1.0 if healthy else 0.0,
        )


def serve(
    sender: Any,
    *,
    port: int = 0,
    address: str = "127.0.0.1",
    registry: CollectorRegistry | None = None,
) -> tuple[Any, Any]:
    """Serve ``/metrics`` for *sender* over HTTP in a background thread.

    Args:
        port: the TCP port (0: any free one; read it from ``server.server_port``).
        address: where to listen (loopback by default).
        registry: the registry to add the collector to (default: a new one, so the
            process's default metrics are not mixed in).

    Returns:
        ``(server, thread)``; ``server.shutdown()`` then ``server.server_close()`` stop it.
    """
    from prometheus_client import start_http_server

    registry = registry if registry is not None else CollectorRegistry(auto_describe=False)
    registry.register(SenderCollector(sender))
    server, thread = start_http_server(port, addr=address, registry=registry)
    return server, thread
