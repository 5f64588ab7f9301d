"""A bounded fuzz run of DKIM verification: the compiled core against the twin.

Signed messages are mutated (tag values at integer limits, truncated base64,
empty headers, no body, huge whitespace runs, stray bytes) and verified once
with each implementation; the results, or the exception, must be identical.
A few thousand examples per run in all, a few seconds of the suite.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import ModuleType

import pytest
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mailscale import _hot
from mailscale._hot import _core_py
from mailscale.signing import DKIMSigner, DKIMVerifier, _signer, _verify, _wire, dns_record
from mailscale.signing.keys import PrivateKey

NOW = 1_700_000_000

pytestmark = pytest.mark.skipif(
    not _hot.USING_EXTENSIONS, reason="the compiled core is not in use: nothing to compare"
)

HEADER = (
    b"From: News <news@example.com>\r\n"
    b"To: reader@example.net\r\n"
    b"Subject: Weekly   news\r\n"
    b"Date: Tue, 14 Nov 2023 22:13:20 +0000\r\n"
    b"Message-ID: <fuzz@example.com>\r\n"
    b"\r\n"
)
BODIES = [
    b"Hello reader,\r\n\r\nthe news.\r\n",
    b'<table>\r\n    <tr>\r\n\t\t<td  style="x">cell</td>  \r\n    </tr>\r\n</table>\r\n\r\n',
    b"",
    b"no final line end",
]

# Tag values at and around the limits of C integers, and not numbers at all.
INT_VALUES = [
    b"0",
    b"1",
    b"2147483647",
    b"2147483648",
    b"4294967296",
    b"9223372036854775807",
    b"9223372036854775808",
    b"18446744073709551615",
    b"18446744073709551616",
    b"9" * 76,
    b"1" + b"0" * 75,
    b"9" * 77,
    b"-1",
    b"",
    b" 12 ",
    b"1e3",
    b"0x10",
    b"+5",
    b"\xef\xbc\x91",
]
TAGS = [b"l", b"t", b"x", b"b", b"bh", b"h", b"c", b"a", b"d", b"s", b"v", b"i", b"q"]


def _twin_verifier_modules() -> list[tuple[ModuleType, str, object, object]]:
    """(module, name, compiled value, twin value) for every core binding signing uses."""
    swaps: list[tuple[ModuleType, str, object, object]] = []
    compiled = _hot.core
    by_id = {id(getattr(compiled, n)): n for n in dir(compiled) if not n.startswith("__")}
    for module in (_verify, _signer, _wire):
        for name, value in list(vars(module).items()):
            if value is compiled:
                swaps.append((module, name, compiled, _core_py))
            elif id(value) in by_id and hasattr(_core_py, by_id[id(value)]):
                swaps.append((module, name, value, getattr(_core_py, by_id[id(value)])))
    return swaps


@contextmanager
def _on_twin() -> Iterator[None]:
    """Signing and verification run on the twin inside the block."""
    swaps = _twin_verifier_modules()
    for module, name, _, twin in swaps:
        setattr(module, name, twin)
    try:
        yield
    finally:
        for module, name, compiled, _ in swaps:
            setattr(module, name, compiled)


def test_swap_reaches_the_verifier() -> None:
    """The twin really replaces the core in verification (else the fuzz compares one
    implementation with itself)."""
    swaps = _twin_verifier_modules()
    names = {(module.__name__, name) for module, name, _, _ in swaps}
    # Signing imports the core's names from the gateway: each binding is swapped.
    assert {
        ("mailscale.signing._verify", "_parse_signature"),
        ("mailscale.signing._verify", "_normalize"),
        ("mailscale.signing._verify", "_split_header"),
        ("mailscale.signing._verify", "_body_hash"),
        ("mailscale.signing._verify", "parse_signature"),
        ("mailscale.signing._verify", "normalize_line_endings"),
        ("mailscale.signing._verify", "split_header"),
        ("mailscale.signing._verify", "body_hash"),
        ("mailscale.signing._verify", "_verify_step"),
        ("mailscale.signing._verify", "verify_step"),
        ("mailscale.signing._signer", "SignPlan"),
        ("mailscale.signing._wire", "normalize_line_endings"),
    } == names
    for _, _, compiled, twin in swaps:
        assert compiled is not twin
        assert getattr(twin, "__module__", "").startswith("mailscale._hot._core_")


def _outcome(data: bytes, lookup: Callable[[str], object], warm: bytes | None = None) -> object:
    """The results of ``data`` on a new verifier; with ``warm``, on a verifier that
    verified ``warm`` first, and then again (shapes met before: verify_step's path)."""
    verifier = DKIMVerifier(key_lookup=lookup, clock=lambda: NOW)  # type: ignore[arg-type]
    try:
        if warm is not None:
            verifier.verify(warm)
        runs = [verifier.verify(data) for _ in range(1 if warm is None else 2)]
        return [
            (r.status, r.reason, r.domain, r.selector, r.algorithm, r.identity, r.testing)
            for results in runs
            for r in results
        ]
    except Exception as exc:  # both sides must raise the same
        return (type(exc).__name__, str(exc))


def _both(
    data: bytes, lookup: Callable[[str], object], warm: bytes | None = None
) -> tuple[object, object]:
    compiled = _outcome(data, lookup, warm)
    with _on_twin():
        twin = _outcome(data, lookup, warm)
    return compiled, twin


@pytest.fixture(scope="module")
def corpus(
    rsa_key: rsa.RSAPrivateKey, ed_key: ed25519.Ed25519PrivateKey
) -> tuple[list[bytes], Callable[[str], object]]:
    """Messages signed with both keys, canonicalizations, l= and x=, and the key lookup."""
    keys: dict[str, PrivateKey] = {"rsa": rsa_key, "ed": ed_key}
    records = {f"{sel}._domainkey.example.com": dns_record(k) for sel, k in keys.items()}
    signed = []
    for i, body in enumerate(BODIES):
        for sel, key in keys.items():
            canon = ["relaxed/relaxed", "simple/simple", "relaxed/simple", "simple/relaxed"][i]
            signer = DKIMSigner(
                "example.com",
                sel,
                key,
                canonicalization=canon,
                clock=lambda: NOW,
                body_length=i % 2 == 0,
                expire_after=3600 if i < 2 else None,
            )
            signed.append(signer.sign(HEADER + body))
    # Relaxed/relaxed with neither l= nor x= (the shape verify_step takes), both keys.
    for sel, key in keys.items():
        signer = DKIMSigner("example.com", sel, key, clock=lambda: NOW)
        signed.append(signer.sign(HEADER + BODIES[1]))
    # Two signatures on one message: a bad one must not cost the other its result.
    rsa_signer = DKIMSigner("example.com", "rsa", rsa_key, clock=lambda: NOW)
    ed_signer = DKIMSigner("example.com", "ed", ed_key, clock=lambda: NOW, body_length=True)
    signed.append(rsa_signer.sign(ed_signer.sign(HEADER + BODIES[1])))
    return signed, records.get


def _set_tag(data: bytes, tag: bytes, value: bytes) -> bytes:
    """The first DKIM-Signature's ``tag`` set to ``value`` (added when absent)."""
    start = data.find(b"DKIM-Signature:")
    end = data.find(b"\r\n", start)
    while data[end + 2 : end + 3] in (b" ", b"\t"):
        end = data.find(b"\r\n", end + 2)
    field = data[start:end]
    pattern = re.compile(rb"(?<![A-Za-z0-9_])(" + re.escape(tag) + rb"\s*=)[^;]*")
    if pattern.search(field):
        field = pattern.sub(lambda m: m.group(1) + value.replace(b"\\", b"\\\\"), field, count=1)
    else:
        field = field.replace(b"DKIM-Signature:", b"DKIM-Signature: " + tag + b"=" + value + b";")
    return data[:start] + field + data[end:]


def _truncate_b64(data: bytes, tag: bytes, keep: int) -> bytes:
    m = re.search(rb"(?<![A-Za-z0-9_])" + re.escape(tag) + rb"=([A-Za-z0-9+/=\r\n \t]*)", data)
    if m is None:
        return data
    value = m.group(1)
    return data[: m.start(1)] + value[: keep % (len(value) + 1)] + data[m.end(1) :]


# (kind, what, amount): a tag and its new value, base64 cut to a length, the body
# removed, a field emptied, a whitespace run of some length, bytes inserted, a cut.
_MUTATION = st.one_of(
    st.tuples(st.just("tag"), st.sampled_from([b"l", b"t", b"x"]), st.sampled_from(INT_VALUES)),
    st.tuples(st.just("tag"), st.sampled_from(TAGS), st.sampled_from([*INT_VALUES, b"x"])),
    st.tuples(st.just("b64"), st.sampled_from([b"b", b"bh"]), st.integers(0, 400)),
    st.tuples(st.just("no-body"), st.just(b""), st.just(0)),
    st.tuples(st.just("empty-header"), st.sampled_from([b"Subject", b"To", b"From"]), st.just(0)),
    st.tuples(
        st.just("whitespace"),
        st.sampled_from([b" ", b"\t", b" \t", b"\r\n", b" \r\n", b"\r\n\r\n "]),
        st.integers(1, 200_000),
    ),
    st.tuples(st.just("insert"), st.binary(min_size=1, max_size=8), st.integers(0, 10_000)),
    st.tuples(st.just("cut"), st.just(b""), st.integers(0, 10_000)),
)


def _mutate(data: bytes, mutation: tuple[str, bytes, object], where: int) -> bytes:
    kind, what, amount = mutation
    if kind == "tag":
        assert isinstance(amount, bytes)
        return _set_tag(data, what, amount)
    assert isinstance(amount, int)
    split = data.find(b"\r\n\r\n")
    body_at = split + 4 if split >= 0 else len(data)
    if kind == "b64":
        return _truncate_b64(data, what, amount)
    if kind == "no-body":
        return data[: split + 2] if split >= 0 else data
    if kind == "empty-header":
        return re.sub(rb"(?m)^" + what + rb":[^\r\n]*", what + b":", data, count=1)
    if kind == "whitespace":
        pos = body_at + where % (len(data) - body_at + 1)
        run = (what * (amount // len(what) + 1))[:amount]
        return data[:pos] + run + data[pos:]
    if kind == "insert":
        pos = amount % (len(data) + 1)
        return data[:pos] + what + data[pos:]
    return data[: amount % (len(data) + 1)]


@settings(
    max_examples=2000,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(
    st.integers(0, 64),
    st.lists(st.tuples(_MUTATION, st.integers(0, 10_000)), min_size=1, max_size=3),
)
def test_mutated_signed_messages_agree(
    corpus: tuple[list[bytes], Callable[[str], object]],
    pick: int,
    mutations: list[tuple[tuple[str, bytes, object], int]],
) -> None:
    """Any mutation of a signed message verifies to the same results (status, reason
    and the rest) on the compiled core and the twin, or raises the same error."""
    messages, lookup = corpus
    original = data = messages[pick % len(messages)]
    for mutation, where in mutations:
        data = _mutate(data, mutation, where)
    compiled, twin = _both(data, lookup)
    assert twin == compiled
    assert not (isinstance(compiled, tuple) and compiled[0] == "OverflowError")
    # Verified again after the original (its shape cached), twice: the same results.
    warmed, warmed_twin = _both(data, lookup, warm=original)
    assert warmed_twin == warmed
    if isinstance(compiled, list):
        assert compiled + compiled == warmed


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=600), st.integers(0, 2000))
def test_random_bytes_in_a_signed_message_agree(
    corpus: tuple[list[bytes], Callable[[str], object]], junk: bytes, where: int
) -> None:
    """Arbitrary bytes spliced into a signed message: the same outcome on both."""
    messages, lookup = corpus
    data = messages[where % len(messages)]
    pos = where % (len(data) + 1)
    spliced = data[:pos] + junk + data[pos:]
    compiled, twin = _both(spliced, lookup)
    assert twin == compiled
    warmed, warmed_twin = _both(spliced, lookup, warm=data)
    assert warmed_twin == warmed


def _step(
    core: ModuleType, data: bytes, static: dict[object, object], selected: dict[object, object]
) -> object:
    try:
        header = core.split_header(data)
        index = header.names.split(b":").index(b"dkim-signature")
        return [core.verify_step(header, index, static, selected, check) for check in (0, 1)]
    except Exception as exc:  # both sides must raise the same
        return (type(exc).__name__, str(exc))


@settings(
    max_examples=1500,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(
    st.integers(0, 64),
    st.lists(st.tuples(_MUTATION, st.integers(0, 10_000)), min_size=0, max_size=3),
)
def test_verify_step_agrees(
    corpus: tuple[list[bytes], Callable[[str], object]],
    pick: int,
    mutations: list[tuple[tuple[str, bytes, object], int]],
) -> None:
    """verify_step on a mutated message, with the caches a verifier filled from the
    original: the same result (or error) on the compiled core and the twin."""
    messages, lookup = corpus
    original = data = messages[pick % len(messages)]
    verifier = DKIMVerifier(key_lookup=lookup, clock=lambda: NOW)  # type: ignore[arg-type]
    verifier.verify(original)
    for mutation, where in mutations:
        data = _mutate(data, mutation, where)
    static, selected = dict(verifier._static), dict(verifier._selected)
    compiled = _step(_hot.core, data, static, selected)
    assert _step(_core_py, data, static, selected) == compiled
    if not mutations and pick % len(messages) in (len(messages) - 3, len(messages) - 2):
        # The relaxed/relaxed messages with neither l= nor x=: the one-call path.
        assert isinstance(compiled, list) and compiled[0] is not None and compiled[0][3] is True


class TestIntegerTagsAtLimits:
    @pytest.mark.parametrize(
        "value", [b"9223372036854775808", b"18446744073709551616", b"9" * 76, b"2147483648"]
    )
    def test_huge_l_fails_only_its_signature(
        self, corpus: tuple[list[bytes], Callable[[str], object]], value: bytes
    ) -> None:
        """An l= past any C size fails its own signature ("l= is longer than the
        body" or the changed tag), and the other signature of the message still
        gets its result: no OverflowError aborts the call, on either core."""
        messages, lookup = corpus
        dual = messages[-1]
        # The second DKIM-Signature field (the Ed25519 one, which carries l=).
        first = dual.find(b"DKIM-Signature:")
        second = dual.find(b"DKIM-Signature:", first + 1)
        mutated = dual[:second] + _set_tag(dual[second:], b"l", value)
        compiled, twin = _both(mutated, lookup)
        assert twin == compiled
        assert [("pass", ""), ("fail", "l= is longer than the body")] == [
            (status, reason)
            for status, reason, *_ in compiled  # type: ignore[attr-defined]
        ]

    @pytest.mark.parametrize("tag", [b"t", b"x"])
    @pytest.mark.parametrize("value", [b"9223372036854775808", b"18446744073709551616", b"9" * 76])
    def test_huge_times_agree(
        self, corpus: tuple[list[bytes], Callable[[str], object]], tag: bytes, value: bytes
    ) -> None:
        """t= and x= past any C size give one result on both cores, never an error:
        a t= after the signature's x= is a permerror, a changed x= breaks b=."""
        messages, lookup = corpus
        compiled, twin = _both(_set_tag(messages[0], tag, value), lookup)
        assert twin == compiled
        expected = {
            b"t": ("permerror", "x= is earlier than t="),
            b"x": ("fail", "the signature does not verify (signed headers changed)"),
        }[tag]
        assert isinstance(compiled, list) and [expected] == [r[:2] for r in compiled]

    def test_header_without_body_agrees(
        self, corpus: tuple[list[bytes], Callable[[str], object]]
    ) -> None:
        """A signed message cut before its empty line verifies the same on both."""
        messages, lookup = corpus
        data = messages[0]
        compiled, twin = _both(data[: data.find(b"\r\n\r\n") + 2], lookup)
        assert twin == compiled
        assert isinstance(compiled, list) and "fail" == compiled[0][0]


def test_verify_step_takes_a_known_shape(
    corpus: tuple[list[bytes], Callable[[str], object]],
) -> None:
    """A message of a shape the verifier met is verify_step's on both cores: the body
    hash matches and the digest is that of the header hash input; a changed body
    reads False, an unknown shape None."""
    messages, lookup = corpus
    for data in messages[-3:-1]:
        verifier = DKIMVerifier(key_lookup=lookup, clock=lambda: NOW)  # type: ignore[arg-type]
        assert [True] == [r.ok for r in verifier.verify(data)]
        static, selected = dict(verifier._static), dict(verifier._selected)
        changed = data.replace(b"cell", b"sell")
        for core in (_hot.core, _core_py):
            step = core.verify_step(core.split_header(data), 0, static, selected, True)
            assert step is not None and step[0] in static.values()
            assert (NOW, True) == (step[1], step[3]) and isinstance(step[4], bytes)
            step = core.verify_step(core.split_header(changed), 0, static, selected)
            assert step is not None and (False, None) == step[3:]
            assert core.verify_step(core.split_header(data), 0, {}, selected) is None
            assert core.verify_step(core.split_header(data), 0, static, {}) is None
