"""DKIM signing and verification against the crypto limit, dkimpy and the twin.

Run:
    PYTHONPATH=src python -m pytest benchmarks/bench_dkim.py             (pytest-benchmark figures)
    PYTHONPATH=src python -m pytest benchmarks/bench_dkim.py -m gate -s --benchmark-disable
    PYTHONPATH=src python -m benchmarks.bench_dkim                        (the ratio table)

"Crypto limit" is what any DKIM signer must spend per message: a ``cryptography``
signature of a 32-byte digest plus ``hashlib.sha256`` of the message. Every
figure compares rates measured in the same run, one thread, relaxed/relaxed.
"""

from __future__ import annotations

import base64
import hashlib
import itertools
import random
import threading
import time
from collections.abc import Callable
from functools import cache

import dkim
import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed

from mailscale import _hot
from mailscale._hot import _core_py
from mailscale.signing import DKIMSigner, DKIMVerifier, dns_record, generate_key, parse_key_record
from mailscale.signing.keys import PrivateKey, private_key_pem

from ._corpus import TEMPLATES, newsletter
from ._ratio import best_rate

#: The clock ``ratio`` reads (``python -m benchmarks.bench_dkim cpu`` sets time.thread_time).
CLOCK: Callable[[], float] = time.perf_counter


def ratio(
    fast: Callable[[], object], reference: Callable[[], object], rounds: int = 9
) -> float:
    """Rate of ``fast`` over rate of ``reference``, best of interleaved rounds.

    The two alternate in short rounds and each keeps its best round, so both
    see the same moments of a shared, noisy machine. ``CLOCK`` times them: the
    wall clock, or this thread's CPU time (``cpu`` on the command line), which
    leaves out the time other processes hold the core on a loaded machine.
    """

    def loops_for(fn: Callable[[], object]) -> int:
        n = 1
        while True:
            start = CLOCK()
            for _ in range(n):
                fn()
            if CLOCK() - start >= 0.02:
                return n
            n *= 2

    n_fast, n_ref = loops_for(fast), loops_for(reference)
    best_fast = best_ref = float("inf")
    for _ in range(rounds):
        for fn, n, is_fast in ((fast, n_fast, True), (reference, n_ref, False)):
            start = CLOCK()
            for _ in range(n):
                fn()
            per_call = (CLOCK() - start) / n
            if is_fast:
                best_fast = min(best_fast, per_call)
            else:
                best_ref = min(best_ref, per_call)
    return best_ref / best_fast

SIZES = {"2kb": 2_000, "20kb": 20_000, "100kb": 100_000}
BATCH = 8
_WORDS = (
    b"the quick brown fox jumps over lazy dog mail scale deliver inbox sender domain "
    b"message campaign unsubscribe preference account update weekly news offer"
).split()


def message(size: int, seed: int = 0) -> bytes:
    """A plain-text newsletter of about ``size`` bytes: CRLF lines of up to 72 characters."""
    rng = random.Random(size * 1000 + seed)
    header = (
        b"From: News <news@example.com>\r\n"
        b"To: reader%d@example.net\r\n"
        b"Subject: Weekly news %d\r\n"
        b"Date: Tue, 14 Nov 2023 22:13:20 +0000\r\n"
        b"Message-ID: <%d.%d@example.com>\r\n"
        b"MIME-Version: 1.0\r\n"
        b"Content-Type: text/plain; charset=utf-8\r\n"
        b"List-Unsubscribe: <https://example.com/u/%d>\r\n"
        b"List-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n"
        b"\r\n"
    ) % (seed, seed, size, seed, seed)
    body = bytearray()
    line: list[bytes] = []
    while len(header) + len(body) < size:
        word = rng.choice(_WORDS)
        if sum(len(w) + 1 for w in line) + len(word) > 72:
            body += b" ".join(line) + b"\r\n"
            line = []
            if rng.random() < 0.1:
                body += b"\r\n"
        line.append(word)
    body += b" ".join(line) + b"\r\n"
    return header + bytes(body)


@cache
def keys() -> dict[str, PrivateKey]:
    """One RSA-2048 and one Ed25519 key for the whole run."""
    return {"rsa": generate_key("rsa", 2048), "ed25519": generate_key("ed25519")}


#: The corpora every figure is measured on: plain-text newsletters, and multipart
#: newsletters with deeply indented HTML (benchmarks/_corpus.py, the templates in turn).
CORPORA = ("text", "html")


@cache
def batch(size: str, corpus: str = "text") -> list[bytes]:
    if corpus == "html":
        return [newsletter(SIZES[size], seed, TEMPLATES[seed % 3]) for seed in range(BATCH)]
    return [message(SIZES[size], seed) for seed in range(BATCH)]


def limit_fn(alg: str, size: str, corpus: str = "text") -> Callable[[], object]:
    """The crypto limit: sign a SHA-256 digest of each message with ``cryptography``."""
    key = keys()[alg]
    msgs = batch(size, corpus)
    if isinstance(key, rsa.RSAPrivateKey):
        rsa_key = key
        pad, pre = padding.PKCS1v15(), Prehashed(hashes.SHA256())
        return lambda: [rsa_key.sign(hashlib.sha256(m).digest(), pad, pre) for m in msgs]
    assert isinstance(key, ed25519.Ed25519PrivateKey)
    ed_key = key
    return lambda: [ed_key.sign(hashlib.sha256(m).digest()) for m in msgs]


def limit_batch(alg: str, msgs: list[bytes], workers: int) -> list[bytes]:
    """The crypto limit of ``msgs`` on ``workers`` threads, shared out as sign_batch does:
    the calling thread and ``workers - 1`` others each take the next message."""
    key = keys()[alg]
    if isinstance(key, rsa.RSAPrivateKey):
        rsa_key, pad, pre = key, padding.PKCS1v15(), Prehashed(hashes.SHA256())

        def sign_one(m: bytes) -> bytes:
            return rsa_key.sign(hashlib.sha256(m).digest(), pad, pre)
    else:
        assert isinstance(key, ed25519.Ed25519PrivateKey)
        ed_key = key

        def sign_one(m: bytes) -> bytes:
            return ed_key.sign(hashlib.sha256(m).digest())

    out = [b""] * len(msgs)
    claim = itertools.count().__next__

    def work() -> None:
        while (i := claim()) < len(msgs):
            out[i] = sign_one(msgs[i])

    threads = [threading.Thread(target=work) for _ in range(workers - 1)]
    for t in threads:
        t.start()
    work()
    for t in threads:
        t.join()
    return out


def mailscale_fn(
    alg: str, size: str, workers: int | None = None, corpus: str = "text"
) -> Callable[[], object]:
    signer = DKIMSigner("example.com", "s", keys()[alg])
    msgs = batch(size, corpus)
    return lambda: signer.sign_batch(msgs, workers=workers)


def dkimpy_fn(alg: str, size: str, corpus: str = "text") -> Callable[[], object]:
    key = keys()[alg]
    msgs = batch(size, corpus)
    if isinstance(key, ed25519.Ed25519PrivateKey):
        seed = key.private_bytes(
            serialization.Encoding.Raw,
            serialization.PrivateFormat.Raw,
            serialization.NoEncryption(),
        )
        priv, algo = base64.b64encode(seed), b"ed25519-sha256"
    else:
        priv, algo = private_key_pem(key), b"rsa-sha256"
    canon = (b"relaxed", b"relaxed")
    return lambda: [
        dkim.sign(m, b"s", b"example.com", priv, canonicalize=canon, signature_algorithm=algo)
        for m in msgs
    ]


def verify_fns(
    alg: str, size: str, corpus: str = "text"
) -> tuple[Callable[[], object], Callable[[], object]]:
    """mailscale verification with a cached key, and raw verify + hash of the same messages."""
    key = keys()[alg]
    signed = DKIMSigner("example.com", "s", key).sign_batch(batch(size, corpus))
    record = parse_key_record(dns_record(key))
    verifier = DKIMVerifier(key_lookup=lambda name: record)
    assert all(r.ok for m in signed for r in verifier.verify(m))
    pub = key.public_key()
    sigs = [
        key.sign(hashlib.sha256(m).digest(), padding.PKCS1v15(), Prehashed(hashes.SHA256()))
        if isinstance(key, rsa.RSAPrivateKey)
        else key.sign(hashlib.sha256(m).digest())
        for m in signed
    ]
    pairs = list(zip(signed, sigs, strict=True))
    pad, pre = padding.PKCS1v15(), Prehashed(hashes.SHA256())

    def raw() -> None:
        for m, s in pairs:
            digest = hashlib.sha256(m).digest()
            if isinstance(pub, rsa.RSAPublicKey):
                pub.verify(s, digest, pad, pre)
            else:
                pub.verify(s, digest)  # type: ignore[call-arg]

    return (lambda: [verifier.verify(m) for m in signed]), raw


def module_verify_fn(alg: str, size: str) -> Callable[[], object]:
    """The README's call: module-level ``verify()`` with a new key_lookup lambda per call,
    returning the TXT text (so the key record is found by its text, not by the lambda)."""
    from mailscale.signing import verify

    key = keys()[alg]
    signed = DKIMSigner("example.com", "s", key).sign_batch(batch(size))
    txt = dns_record(key)
    assert all(r.ok for m in signed for r in verify(m, key_lookup=lambda name: txt))
    return lambda: [verify(m, key_lookup=lambda name: txt) for m in signed]


# --- pytest-benchmark figures -------------------------------------------------------


@pytest.mark.parametrize("size", list(SIZES))
@pytest.mark.parametrize("alg", ["rsa", "ed25519"])
@pytest.mark.parametrize("who", ["limit", "mailscale", "dkimpy"])
def test_sign(benchmark: pytest.FixtureRequest, who: str, alg: str, size: str) -> None:
    fn = {"limit": limit_fn, "mailscale": mailscale_fn, "dkimpy": dkimpy_fn}[who](alg, size)
    out = benchmark(fn)  # type: ignore[operator]
    assert BATCH == len(out)


@pytest.mark.parametrize("alg", ["rsa", "ed25519"])
@pytest.mark.parametrize("who", ["mailscale", "raw"])
def test_verify_20kb(benchmark: pytest.FixtureRequest, who: str, alg: str) -> None:
    ours, raw = verify_fns(alg, "20kb")
    benchmark(ours if who == "mailscale" else raw)  # type: ignore[operator]


# --- ratio gates (looser floors than the targets; ratios measured in one run) ---------


class TestGates:
    # Floors sit well below the ratios measured on this shared 2-core machine
    # (docs/performance.md), so that a loaded moment does not fail a sound build.
    @pytest.mark.gate
    @pytest.mark.parametrize("corpus", CORPORA)
    @pytest.mark.parametrize("size", list(SIZES))
    def test_rsa_near_crypto_limit(self, size: str, corpus: str) -> None:
        """RSA-2048 sign_batch nears the crypto limit at every size, plain text and
        indented HTML (target 0.9x, floor 0.6x)."""
        r = ratio(
            mailscale_fn("rsa", size, corpus=corpus), limit_fn("rsa", size, corpus), rounds=9
        )
        print(f"RSA-2048 {size} {corpus}: mailscale / crypto limit = {r:.2f}")
        assert r >= 0.6

    @pytest.mark.gate
    @pytest.mark.parametrize("corpus", CORPORA)
    @pytest.mark.parametrize("size", ["2kb", "20kb", "100kb"])
    def test_ed25519_near_crypto_limit(self, size: str, corpus: str) -> None:
        """Ed25519 sign_batch runs near the crypto limit, plain text and indented HTML
        (target 0.75x text, 0.8x HTML; floor 0.5x)."""
        r = ratio(
            mailscale_fn("ed25519", size, corpus=corpus),
            limit_fn("ed25519", size, corpus),
            rounds=9,
        )
        print(f"Ed25519 {size} {corpus}: mailscale / crypto limit = {r:.2f}")
        assert r >= 0.5

    @pytest.mark.gate
    def test_faster_than_dkimpy(self) -> None:
        """At 20 KB mailscale outsigns dkimpy (targets 10x RSA / 20x Ed25519; floors 10x / 10x)."""
        r_rsa = ratio(mailscale_fn("rsa", "20kb"), dkimpy_fn("rsa", "20kb"), rounds=5)
        r_ed = ratio(mailscale_fn("ed25519", "20kb"), dkimpy_fn("ed25519", "20kb"), rounds=5)
        print(f"20 KB: mailscale / dkimpy = {r_rsa:.1f} (RSA), {r_ed:.1f} (Ed25519)")
        assert r_rsa >= 10.0
        assert r_ed >= 10.0

    @pytest.mark.gate
    def test_brief_per_core_target(self) -> None:
        """One thread signs (RSA-2048, 20 KB) far above the brief's 1,000 emails/minute/core."""
        per_second = best_rate(mailscale_fn("rsa", "20kb"), ops=BATCH, rounds=9)
        r = per_second * 60 / 1000
        print(f"RSA-2048 20 KB: {per_second * 60:,.0f} emails/minute/core = {r:.0f}x the brief")
        assert r >= 1.0

    @pytest.mark.gate
    @pytest.mark.parametrize("corpus", CORPORA)
    @pytest.mark.parametrize(("alg", "floor"), [("rsa", 0.35), ("ed25519", 0.4)])
    def test_verify_near_raw(self, alg: str, floor: float, corpus: str) -> None:
        """Verification with a cached key nears raw verify + hash, plain text and
        indented HTML (target 0.7x text, 0.75x HTML RSA; floors half the measured ratio)."""
        ours, raw = verify_fns(alg, "20kb", corpus)
        r = ratio(ours, raw, rounds=9)
        print(f"{alg} 20 KB {corpus}: verify / (raw verify + hash) = {r:.2f}")
        assert r >= floor

    @pytest.mark.gate
    @pytest.mark.skipif(not _hot.USING_EXTENSIONS, reason="compiled core not built")
    def test_compiled_canonicalization(self) -> None:
        """Compiled relaxed canonicalization of a 100 KB body beats the twin (target, floor 10x)."""
        body = batch("100kb")[0]
        assert _core_py._canon_body_relaxed(body) == _hot.core._canon_body_relaxed(body)
        r = ratio(
            lambda: _hot.core._canon_body_relaxed(body),
            lambda: _core_py._canon_body_relaxed(body),
            rounds=3,
        )
        print(f"relaxed body canonicalization, 100 KB newsletter: compiled / twin = {r:.1f}x")
        assert r >= 10.0


# --- the ratio table for docs/performance.md ---------------------------------------


def _threads_ratio(work: Callable[[], object], items: int) -> float:
    """Throughput of ``items`` calls of ``work`` on two threads over one thread."""
    import threading
    import time

    def run(threads: int) -> float:
        per = items // threads
        pool = [
            threading.Thread(target=lambda: [work() for _ in range(per)]) for _ in range(threads)
        ]
        start = time.perf_counter()
        for t in pool:
            t.start()
        for t in pool:
            t.join()
        return time.perf_counter() - start

    best1 = min(run(1) for _ in range(3))
    best2 = min(run(2) for _ in range(3))
    return best1 / best2


def html_report() -> list[tuple[str, float]]:
    """The indented-HTML corpus rows: sign and verify against the crypto limit, and
    the body hash against SHA-256 of the same bytes alone."""
    rows: list[tuple[str, float]] = []
    for alg in ("rsa", "ed25519"):
        for size in SIZES:
            ours = mailscale_fn(alg, size, corpus="html")
            rows.append(
                (f"html {alg} {size}: sign_batch / crypto limit",
                 ratio(ours, limit_fn(alg, size, "html")))
            )
    for alg in ("rsa", "ed25519"):
        ours, raw = verify_fns(alg, "20kb", "html")
        rows.append((f"html {alg} 20kb: verify (cached key) / (raw verify + hash)",
                     ratio(ours, raw)))
    for size in SIZES:
        msgs = batch(size, "html")
        starts = [_hot.core.split_header(m).body_start for m in msgs]
        pairs = list(zip(msgs, starts, strict=True))
        rows.append(
            (
                f"html {size}: relaxed body hash / sha256 of the body",
                ratio(
                    lambda pairs=pairs: [_hot.core.body_hash(m, s, True) for m, s in pairs],
                    lambda pairs=pairs: [hashlib.sha256(m[s:]).digest() for m, s in pairs],
                ),
            )
        )
    return rows


def report() -> list[tuple[str, float]]:
    """Every ratio the DKIM section of docs/performance.md records, measured in one run."""
    rows: list[tuple[str, float]] = html_report()
    for alg in ("rsa", "ed25519"):
        for size in SIZES:
            ours = mailscale_fn(alg, size)
            limit = ratio(ours, limit_fn(alg, size))
            rows.append((f"{alg} {size}: sign_batch / crypto limit", limit))
            versus_dkimpy = ratio(ours, dkimpy_fn(alg, size), 3)
            rows.append((f"{alg} {size}: sign_batch / dkimpy", versus_dkimpy))
        per_minute = best_rate(mailscale_fn(alg, "20kb"), ops=BATCH) * 60
        rows.append((f"{alg} 20kb: emails/minute/core", per_minute))
    big = [message(SIZES["20kb"], seed) for seed in range(32)]
    signer = DKIMSigner("example.com", "s", keys()["rsa"])

    def two() -> list[bytes]:
        return signer.sign_batch(big, workers=2)

    rows.append(
        (
            "rsa 20kb: sign_batch workers=2 / workers=1",
            ratio(two, lambda: signer.sign_batch(big), 9),
        )
    )
    rows.append(
        (
            "same run: crypto limit on 2 threads / 1 thread",
            ratio(lambda: limit_batch("rsa", big, 2), lambda: limit_batch("rsa", big, 1), 9),
        )
    )
    rows.append(
        (
            "same run: sign_batch workers=2 / crypto limit on 2 threads",
            ratio(two, lambda: limit_batch("rsa", big, 2), 9),
        )
    )
    blob = b"x" * 1_000_000
    rows.append(
        (
            "machine: hashlib.sha256 1 MB, 2 threads / 1 thread",
            _threads_ratio(lambda: hashlib.sha256(blob).digest(), 200),
        )
    )
    for alg in ("rsa", "ed25519"):
        ours, raw = verify_fns(alg, "20kb")
        rows.append((f"{alg} 20kb: verify (cached key) / (raw verify + hash)", ratio(ours, raw)))
        module = module_verify_fn(alg, "20kb")
        label = f"{alg} 20kb: module-level verify() / (raw verify + hash)"
        rows.append((label, ratio(module, raw)))
    if _hot.USING_EXTENSIONS:
        body = batch("100kb")[0]
        rows.append(
            (
                "relaxed body canonicalization 100 KB: compiled / twin",
                ratio(
                    lambda: _hot.core._canon_body_relaxed(body),
                    lambda: _core_py._canon_body_relaxed(body),
                ),
            )
        )
        rows.append(
            (
                "body hash (relaxed) 100 KB: compiled / twin",
                ratio(
                    lambda: _hot.core.body_hash(body, 0, True),
                    lambda: _core_py.body_hash(body, 0, True),
                ),
            )
        )
    return rows


if __name__ == "__main__":
    import os
    import sys

    # ``html``: only the indented-HTML corpus rows; ``cpu``: ratios of this thread's
    # CPU time instead of the wall clock (for a loaded machine).
    if "cpu" in sys.argv[1:]:
        CLOCK = time.thread_time
    print("load average before: " + " ".join(f"{x:.2f}" for x in os.getloadavg()))
    for label, value in html_report() if "html" in sys.argv[1:] else report():
        print(f"{label:60s} {value:10.2f}")
    print("load average after:  " + " ".join(f"{x:.2f}" for x in os.getloadavg()))
