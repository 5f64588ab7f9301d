"""Where a signed message's time goes beyond the crypto limit, part by part.

Run:
    PYTHONPATH=src python -m benchmarks.dkim_parts [2kb|20kb|100kb] [rsa|ed25519] [text|html]

Each part runs over the same batch of 8 messages as ``bench_dkim``; the parts
alternate for 12 rounds and each keeps its best, in microseconds per message.
"""

from __future__ import annotations

import hashlib
import sys
import time
from collections.abc import Callable

from mailscale._hot import core
from mailscale.signing import DKIMSigner

from .bench_dkim import CORPORA, SIZES, batch, keys, limit_fn, mailscale_fn


def parts(size: str, alg: str, corpus: str = "text") -> dict[str, float]:
    """Best microseconds per message of each part, measured side by side."""
    msgs = batch(size, corpus)
    signer = DKIMSigner("example.com", "s", keys()[alg])
    plan = signer._plan
    signature = signer._sign_digest(b"\0" * 32)
    headers = [core.split_header(m) for m in msgs]
    prepared = [plan.prepare(m, b" t=1;") for m in msgs]
    fns: dict[str, Callable[[], object]] = {
        "sha256 of the message": lambda: [hashlib.sha256(m).digest() for m in msgs],
        "body hash": lambda: [
            core.body_hash(m, h.body_start, True) for m, h in zip(msgs, headers, strict=True)
        ],
        "SignPlan.prepare": lambda: [plan.prepare(m, b" t=1;") for m in msgs],
        "SignPlan.finish": lambda: [plan.finish(t, signature, w) for t, _, w in prepared],
        "signature of a digest": lambda: [signer._sign_digest(d) for _, d, _ in prepared],
        "crypto limit": limit_fn(alg, size, corpus),
        "sign_batch": mailscale_fn(alg, size, corpus=corpus),
    }
    best = dict.fromkeys(fns, float("inf"))
    for _ in range(12):
        for name, fn in fns.items():
            start = time.perf_counter()
            for _ in range(10):
                fn()
            best[name] = min(best[name], (time.perf_counter() - start) / 10 / len(msgs) * 1e6)
    return best


if __name__ == "__main__":
    size = sys.argv[1] if len(sys.argv) > 1 else "100kb"
    alg = sys.argv[2] if len(sys.argv) > 2 else "rsa"
    corpus = sys.argv[3] if len(sys.argv) > 3 else "text"
    if size not in SIZES or alg not in ("rsa", "ed25519") or corpus not in CORPORA:
        raise SystemExit(
            "usage: python -m benchmarks.dkim_parts [2kb|20kb|100kb] [rsa|ed25519] [text|html]"
        )
    result = parts(size, alg, corpus)
    for name, micro in result.items():
        print(f"{name:24s} {micro:9.2f} us/message")
    print(f"crypto limit / sign_batch {result['crypto limit'] / result['sign_batch']:.2f}")
