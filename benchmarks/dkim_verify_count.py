"""Verify one signed 20 KB message N times with the signature check stubbed out.

For instruction counts under callgrind, which are repeatable where timings are
not: the difference between N and 0 verifications, divided by N, is what
mailscale spends per verification besides the signature check itself.

    mailscale dkim keygen /tmp/k.pem --algorithm rsa --bits 2048
    PYTHONHASHSEED=0 PYTHONPATH=src valgrind --tool=callgrind --callgrind-out-file=/dev/null \\
        python -m benchmarks.dkim_verify_count /tmp/k.pem 0      (then 1000)

A fixed key file and hash seed keep the counts the same from run to run.
"""

from __future__ import annotations

import sys

from cryptography.hazmat.primitives import serialization

from mailscale.signing import DKIMSigner, DKIMVerifier, dns_record, parse_key_record

from .bench_dkim import batch


class _AcceptAll:
    """Stands in for the public key: every signature is accepted, at no cost."""

    def verify(self, *args: object) -> None:
        return None


def main(key_file: str, count: int) -> None:
    key = serialization.load_pem_private_key(open(key_file, "rb").read(), None)
    message = DKIMSigner("example.com", "s", key, clock=lambda: 1_700_000_000).sign(  # type: ignore[arg-type]
        batch("20kb")[0]
    )
    record = parse_key_record(dns_record(key))  # type: ignore[arg-type]
    verifier = DKIMVerifier(key_lookup=lambda name: record, clock=lambda: 1_700_000_000)
    assert verifier.verify(message)[0].ok
    for shape, checked in list(verifier._checked.items()):
        verifier._checked[shape] = (checked[0], _AcceptAll(), *checked[2:])
    for _ in range(count):
        verifier.verify(message)


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]))
