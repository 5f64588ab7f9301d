"""The Prometheus exposition of a Sender's metrics, scraped over HTTP on loopback."""

from __future__ import annotations

import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from mailscale.message import Envelope
from mailscale.pipeline import Route, Sender
from peers.smtp_peer import SMTPPeer, start_peer

parser = pytest.importorskip("prometheus_client.parser")

from mailscale.pipeline.prometheus import serve  # noqa: E402


@pytest.fixture
def peer() -> Iterator[SMTPPeer]:
    p = start_peer()
    yield p
    p.stop()


def _env(local: str, i: int) -> Envelope:
    return Envelope(
        sender="s@example.com",
        recipients=(f"{local}@example.org",),
        message=f"From: s@example.com\r\nTo: {local}@example.org\r\n"
        f"Subject: {i}\r\n\r\nbody\r\n".encode(),
    )


def _scrape(port: int) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        assert response.status == 200
        text = response.read().decode()
    out = {}
    for family in parser.text_string_to_metric_families(text):
        for sample in family.samples:
            out[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return out


def _serve_and_scrape(sender: Sender) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Serve *sender*'s metrics on loopback, scrape them once, stop the server."""
    server, _ = serve(sender)
    try:
        return _scrape(server.server_port)
    finally:
        server.shutdown()
        server.server_close()


def test_scrape_reports_outcomes_by_route_and_status(peer: SMTPPeer) -> None:
    url = f"smtp://127.0.0.1:{peer.port}?tls=none"
    sender = Sender(
        routes={
            "default": Route(transport=url, domain_keys=False),
            "bulk": Route(transport=url, domain_keys=False),
        }
    )
    try:
        sender.submit([_env("ok", i) for i in range(4)] + [_env("reject", 9)])
        sender.submit([_env("defer", 5), _env("ok", 6)], route="bulk")
        assert sender.drain(timeout=60)
        got = _serve_and_scrape(sender)
    finally:
        sender.close()

    def value(name: str, **labels: str) -> float:
        return got[(name, tuple(sorted(labels.items())))]

    assert value("mailscale_recipients_total", route="default", status="accepted") == 4
    assert value("mailscale_recipients_total", route="default", status="rejected") == 1
    assert value("mailscale_recipients_total", route="default", status="deferred") == 0
    assert value("mailscale_recipients_total", route="bulk", status="accepted") == 1
    assert value("mailscale_recipients_total", route="bulk", status="deferred") == 1
    assert value("mailscale_messages_total", route="default", status="sent") == 4
    assert value("mailscale_messages_total", route="default", status="bounced") == 1
    assert value("mailscale_messages_total", route="bulk", status="expired") == 0
    assert value("mailscale_transport_calls_total", route="default", status="failed") == 0
    assert value("mailscale_transport_calls_total", route="default", status="ok") >= 1
    assert value("mailscale_outbox_messages", state="done") == 6
    assert value("mailscale_outbox_messages", state="queued") == 1  # the deferred one
    assert value("mailscale_queue_depth") == 1
    assert ("mailscale_outbox_disk_bytes", ()) not in got  # the memory outbox: nothing on disk
    assert value("mailscale_delivery_time_seconds", route="default", quantile="0.95") >= 0
    assert value("mailscale_transport_response_time_seconds", route="bulk", quantile="0.95") > 0
    # bounce rate 1 / 6 settled recipients is far above 1 %: unhealthy.
    assert value("mailscale_healthy") == 0


def test_an_outbox_on_disk_reports_its_bytes(tmp_path: Path) -> None:
    """A SQLite outbox: the gauge is what the outbox's stats say, the body included."""
    sender = Sender("null://", outbox=f"sqlite:///{tmp_path}/o.db")
    try:
        sender.submit(_env("ok", 1))
        assert sender.drain(timeout=60)
        sender.submit(
            Envelope(
                sender="s@example.com",
                recipients=("later@example.org",),
                message=b"Subject: later\r\n\r\n" + b"x" * 200_000,
            ),
            not_before=time.time() + 3600,
        )
        got = _serve_and_scrape(sender)
        stats = sender.outbox.stats()
    finally:
        sender.close()
    assert stats.disk_bytes is not None and stats.disk_bytes > 200_000
    assert abs(got[("mailscale_outbox_disk_bytes", ())] - stats.disk_bytes) < 100_000
