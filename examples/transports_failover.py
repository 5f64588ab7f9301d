"""Fail over from an unreachable SMTP relay to a directory of .eml files, with retries.

Run: ``python examples/transports_failover.py [OUTBOX_DIR]`` — no network needed:
the relay on 127.0.0.1:1 refuses the connection (a transient failure), so
every message moves on to the ``file://`` member and is written there.
"""

from __future__ import annotations

import sys
import tempfile
from email.message import EmailMessage

from mailscale.message import Envelope
from mailscale.transports import RetryingTransport, RetryPolicy, transport_from_url


def main() -> int:
    outbox = sys.argv[1] if len(sys.argv) > 1 else tempfile.mkdtemp(prefix="mailscale-outbox-")
    url = f"failover(smtp://relay-user:relay-pass@127.0.0.1:1?tls=none&timeout=2 file://{outbox})"
    envelopes = []
    for n in range(3):
        msg = EmailMessage()
        msg["From"] = "news@example.com"
        msg["To"] = f"reader{n}@example.net"
        msg["Subject"] = f"Issue {n}"
        msg.set_content("Hello from mailscale.\n")
        envelopes.append(Envelope.from_message(msg))

    transport = RetryingTransport(transport_from_url(url), RetryPolicy(max_attempts=2))
    print(transport)  # the relay's password shows as ***
    with transport:
        for env, result in zip(envelopes, transport.send(envelopes), strict=True):
            print(
                f"{env.recipients[0]:22} {result.status.value:9} via {result.transport}: "
                f"{result.message_id}"
            )
    print(f"written to {outbox}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
