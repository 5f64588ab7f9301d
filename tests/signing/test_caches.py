"""The verifier's caches: shared by the module-level ``verify()`` without mixing key
sources, and bounded in bytes against hostile messages."""

from __future__ import annotations

import gc
import tracemalloc

import pytest
from cryptography.hazmat.primitives.asymmetric import ed25519

from mailscale.signing import DKIMSigner, DKIMVerifier, _verify, dns_record, generate_key, verify

NOW = 1_700_000_000

MESSAGE = (
    b"From: a@example.com\r\nTo: b@example.net\r\nSubject: caches\r\n"
    b"Date: Tue, 14 Nov 2023 22:13:20 +0000\r\n\r\nHello.\r\n"
)


def _signed(key: ed25519.Ed25519PrivateKey, message: bytes = MESSAGE) -> bytes:
    return DKIMSigner("example.com", "s", key, clock=lambda: NOW).sign(message)


class TestModuleVerify:
    def test_lookups_never_see_each_others_keys(self) -> None:
        """Calls with different key_lookup functions for the same name get their own keys."""
        good, other = generate_key("ed25519"), generate_key("ed25519")
        signed = _signed(good)  # type: ignore[arg-type]
        good_txt, other_txt = dns_record(good), dns_record(other)
        statuses = []
        for _ in range(3):
            statuses += [r.status for r in verify(signed, key_lookup=lambda n: good_txt, now=NOW)]
            statuses += [r.status for r in verify(signed, key_lookup=lambda n: other_txt, now=NOW)]
        assert ["pass", "fail"] * 3 == statuses

    def test_parsed_key_shared_between_calls(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """A key record met again in a later call (through a new lambda) is parsed once."""
        key = generate_key("ed25519")
        signed, txt = _signed(key), dns_record(key)  # type: ignore[arg-type]
        parsed: list[object] = []
        real = _verify.parse_key_record

        def counting(found: bytes) -> object:
            parsed.append(found)
            return real(found)

        monkeypatch.setattr(_verify, "parse_key_record", counting)
        results = [verify(signed, key_lookup=lambda n: txt, now=NOW)[0].status for _ in range(4)]
        assert (["pass"] * 4, 1) == (results, len(parsed))

    def test_given_resolver_asked_every_call(
        self, zone: object, ed_key: ed25519.Ed25519PrivateKey
    ) -> None:
        """A resolver passed to verify() is used as it is: no answer is kept for later calls."""
        zone.add_key("s._domainkey.example.com", dns_record(ed_key))  # type: ignore[attr-defined]
        resolver = zone.resolver()  # type: ignore[attr-defined]
        statuses = [verify(_signed(ed_key), resolver, now=NOW)[0].status for _ in range(3)]
        assert (["pass"] * 3, 3) == (statuses, zone.queries)  # type: ignore[attr-defined]


def _unsigned(seed: int, fields: int) -> bytes:
    """An unsigned message whose header has ``fields`` distinct short field names."""
    names = b"".join(b"x%dy%d: v\r\n" % (seed, i) for i in range(fields))
    return b"From: a@example.com\r\n" + names + b"\r\nbody\r\n"


def _hostile_signed(key: ed25519.Ed25519PrivateKey, seed: int, fields: int) -> bytes:
    """A message signed (with the attacker's own key) over ``fields`` distinct names."""
    names = [f"x{seed}y{i}" for i in range(fields)]
    header = "".join(f"{n}: v\r\n" for n in names).encode()
    signer = DKIMSigner("example.com", "s", key, headers=["from", *names], clock=lambda: NOW)
    return signer.sign(b"From: a@example.com\r\n" + header + b"\r\nbody\r\n")


class TestBounds:
    def test_every_cache_has_a_byte_bound(self) -> None:
        """Each cache of a verifier is bounded in entries, in bytes, and per item; the sum
        of the byte bounds is the documented 17 MiB."""
        verifier = DKIMVerifier()
        caches = (*verifier._caches.all(), verifier._txt)
        assert all(c.max_entries and c.max_item < c.max_bytes for c in caches)
        assert 17 << 20 == sum(c.max_bytes for c in caches)
        assert 2 << 20 == verifier._shapes.max_bytes
        assert 16 << 10 == verifier._shapes.max_item

    def test_unsigned_messages_with_huge_header_name_lists(self) -> None:
        """Many unsigned messages with huge, distinct header-name lists (the attack that
        held 465 MB in keys) leave the shape cache within its byte bound, and memory
        grows by no more than the caches account for."""
        verifier = DKIMVerifier()
        messages = [_unsigned(seed, 1_000 if seed % 2 else 4_000) for seed in range(300)]
        held = sum(map(len, messages))  # about what the cache would keep of every shape
        gc.collect()
        tracemalloc.start()
        try:
            before = tracemalloc.get_traced_memory()[0]
            for message in messages:
                assert [] == verifier.verify(message)
                assert verifier._shapes.accounted <= verifier._shapes.max_bytes
            gc.collect()
            grown = tracemalloc.get_traced_memory()[0] - before
            accounted = verifier.cache_bytes()
            del verifier
            gc.collect()
            released = tracemalloc.get_traced_memory()[0] - before
        finally:
            tracemalloc.stop()
        assert held > 4 * (2 << 20)  # the attack is larger than the bound
        assert 0 < accounted <= 2 << 20
        assert grown <= accounted + (256 << 10)
        assert released <= 64 << 10

    def test_signed_messages_with_huge_h_lists(self, ed_key: ed25519.Ed25519PrivateKey) -> None:
        """Signatures that pass (the attacker's own key) over long, distinct h= lists and
        headers keep every cache within its bounds."""
        txt = dns_record(ed_key)
        verifier = DKIMVerifier(key_lookup=lambda name: txt, clock=lambda: NOW)
        messages = [_hostile_signed(ed_key, seed, 200 if seed % 3 else 1_500) for seed in range(90)]
        gc.collect()
        tracemalloc.start()
        try:
            before = tracemalloc.get_traced_memory()[0]
            for message in messages:
                assert ["pass"] == [r.status for r in verifier.verify(message)]
            gc.collect()
            grown = tracemalloc.get_traced_memory()[0] - before
        finally:
            tracemalloc.stop()
        caches = verifier._caches.all()
        assert all(c.accounted <= c.max_bytes and len(c) <= c.max_entries for c in caches)
        assert verifier._static.accounted > 0
        assert verifier._selected.accounted > 0
        assert grown <= verifier.cache_bytes() + (256 << 10)
