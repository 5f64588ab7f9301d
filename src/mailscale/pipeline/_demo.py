"""``mailscale demo``: the whole pipeline on one machine, with no service to install.

Plans the demo's volume, generates a DKIM key, starts a receiver on loopback that
verifies every signature and answers like a real server (a few percent greylisted
with 451, some unknown recipients refused with 550), submits synthetic messages to
many domains into a SQLite outbox in a temporary directory, delivers them through
shaping, signing and the SMTP transport with a progress display, and ends with the
KPIs, the health verdict and how many signatures verified on arrival.

The delivery schedule is compressed (first retry after half a second instead of a
minute) so that greylisted messages are retried within the demo.
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

__all__ = ["run_demo"]

_SENDER_DOMAIN = "demo.example"
_SELECTOR = "demo"
_BODY_LINE = b"This is a synthetic message of the mailscale demo; nobody reads it.\r\n"
_DEADLINE = 25.0


def _message(i: int, domains: int) -> Any:
    from mailscale.message import Envelope

    domain = f"mail{i % domains:02d}.example"
    rcpt = f"user{i}@{domain}"
    head = (
        f"From: Demo <news@{_SENDER_DOMAIN}>\r\nTo: <{rcpt}>\r\n"
        f"Subject: mailscale demo message {i}\r\n"
        f"Date: Thu, 01 Jan 2026 00:00:00 +0000\r\nMIME-Version: 1.0\r\n"
        f"Content-Type: text/plain; charset=utf-8\r\n\r\n"
    ).encode()
    return Envelope(
        sender=f"bounces@{_SENDER_DOMAIN}", recipients=(rcpt,), message=head + _BODY_LINE * 30
    )


def _print_plan(console: Any, messages: int) -> None:
    from mailscale.planning import Workload, plan

    monthly = messages * 30
    p = plan(Workload(monthly_volume=monthly, use_case="transactional"))
    console.print(
        f"[bold]plan[/bold] for {messages:,} messages a day ({monthly:,} a month, "
        f"transactional): tier {p.tier.label}/month, {p.tier.architecture}; "
        f"ESP {p.esp.chosen_name}; hosting "
        f"{p.hosting.recommendation.replace('_', '-')}; peak hour "
        f"{p.derived_value('peak_hour_messages'):,.0f} messages "
        f"('mailscale plan {monthly}' for the reasoning)"
    )


def run_demo(
    *, messages: int = 3000, domains: int = 40, as_json: bool = False, progress: bool = True
) -> int:
    """Run the demo; return the exit status (0 when every figure adds up)."""
    from mailscale.cli import make_console
    from mailscale.pipeline._demo_server import ReceiverProcess
    from mailscale.pipeline._report import Progress, Tally, health_dict, render_summary
    from mailscale.pipeline.schedule import DeliverySchedule
    from mailscale.pipeline.sender import Sender
    from mailscale.shaping import Limit, Shaper
    from mailscale.signing import DKIMSigner, dns_record, generate_key

    started = time.monotonic()
    console = make_console(sys.stderr if as_json else None)
    say = console.print if not as_json else (lambda *a, **k: None)
    if not as_json:
        _print_plan(console, messages)
    key = generate_key("rsa", 2048)
    record = dns_record(key)
    say(
        f"[bold]DKIM[/bold]: generated an RSA-2048 key; the record to publish at "
        f"{_SELECTOR}._domainkey.{_SENDER_DOMAIN} is {record[:40]}...",
        highlight=False,
    )
    signer = DKIMSigner(_SENDER_DOMAIN, _SELECTOR, key)
    receiver = ReceiverProcess(record)
    receiver.start()
    tally = Tally()
    try:
        with tempfile.TemporaryDirectory(prefix="mailscale-demo-") as tmp:
            outbox_url = f"sqlite:///{Path(tmp).resolve() / 'outbox.db'}"  # absolute: ////
            say(
                f"[bold]receiver[/bold]: SMTP on 127.0.0.1:{receiver.port}, verifies DKIM on "
                f"receipt, greylists ~4 % (451), refuses ~0.6 % as unknown (550)"
            )
            say(f"[bold]outbox[/bold]: SQLite in {tmp}")
            shaper = Shaper({"domain:*": Limit(200, 1.0)}, strict=False)
            sender = Sender(
                f"smtp://127.0.0.1:{receiver.port}?tls=none&pool_size=4",
                outbox=outbox_url,
                signer=signer,
                shaper=shaper,
                retry=DeliverySchedule(first=0.5, factor=2.0, max_interval=2.0, max_age=60.0),
                workers=4,
                batch_size=20,
                on_event=tally,
                poll_interval=0.1,
            )
            with sender:
                say(
                    f"submitting {messages:,} messages to {domains} domains "
                    f"(1 in 20 transactional, the rest bulk)"
                )
                for start in range(0, messages, 500):
                    numbers = range(start, min(start + 500, messages))
                    trans = [_message(i, domains) for i in numbers if i % 20 == 0]
                    bulk = [_message(i, domains) for i in numbers if i % 20]
                    if trans:
                        sender.submit(trans, priority="transactional")
                    if bulk:
                        sender.submit(bulk, priority="bulk")
                deadline = started + _DEADLINE
                with Progress(
                    lambda: tally.settled, lambda: messages, label="delivering", enabled=progress
                ) as bar:
                    while tally.pending > 0 and time.monotonic() < deadline:
                        bar.update()
                        time.sleep(0.1)
                sender.stop(graceful=True)
                counts = tally.counts()
                kpis = sender.kpis()
                report = sender.health()
                snapshot = sender.metrics()
    finally:
        receiver.stop()
    seconds = time.monotonic() - started
    ok = (
        counts["accepted"] + counts["rejected"] + counts["expired"] + counts["pending"]
        == counts["submitted"]
        == messages
        and receiver.verified == receiver.received == tally.recipients["accepted"]
        and receiver.unverified == 0
    )
    figures = {
        "messages": counts,
        "recipients": dict(tally.recipients),
        "receiver": {
            "received": receiver.received,
            "dkim_verified": receiver.verified,
            "dkim_failed": receiver.unverified,
            "greylisted": receiver.deferred,
            "refused": receiver.rejected,
        },
        "refused_by_shaper": snapshot.total.refused,
        "kpis": kpis,
        "health": health_dict(report),
        "seconds": round(seconds, 2),
        "consistent": ok,
    }
    if as_json:
        print(json.dumps(figures, indent=2, sort_keys=True))
    else:
        render_summary(
            console,
            counts,
            report,
            [
                (
                    "recipients",
                    f"{tally.recipients['accepted']:,} accepted, "
                    f"{tally.recipients['rejected']:,} rejected (550), "
                    f"{tally.recipients['deferrals']:,} greylisted and retried",
                ),
                (
                    "on arrival",
                    f"{receiver.verified:,} of {receiver.received:,} DKIM signatures verified",
                ),
                ("time", f"{seconds:.1f} s"),
            ],
        )
        if not ok:
            console.print("[bold red]the figures do not add up[/bold red]")
        console.print(
            "next: 'mailscale send --via smtp://... --outbox sqlite:///outbox.db "
            "PATH' sends your own .eml files; docs/pipeline.md explains the Sender."
        )
    return 0 if ok else 1
