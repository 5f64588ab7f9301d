"""Arguments of the wrong type: an AuthCheckError naming the argument, never a bare TypeError."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mailscale.auth import (
    aligned,
    check_domain,
    dkim_record,
    dmarc_record,
    organizational_domain,
    parse_dmarc,
    parse_spf,
    readiness,
    report_authorization_record,
    spf_record,
)
from mailscale.errors import AuthCheckError

from .auth_zones import GOOD, Keys

# Nothing listens on port 1: a check that got past its argument checks would fail there.
OFFLINE = {"resolver": "127.0.0.1:1", "timeout": 0.2, "lifetime": 0.2}


def _check(**kw: Any) -> object:
    return check_domain(GOOD, **{**OFFLINE, **kw})


def _ready(**kw: Any) -> object:
    return readiness(GOOD, **{**OFFLINE, **kw})


class TestWrongTypes:
    @pytest.mark.parametrize(
        ("call", "name"),
        [
            (lambda: _ready(complaint_rate="abc"), "complaint_rate"),
            (lambda: _ready(complaints="1", delivered=100), "complaints"),
            (lambda: _ready(complaints=1, delivered=100.0), "delivered"),
            (lambda: _ready(tls="yes"), "tls"),
            (lambda: _ready(transport=5), "transport"),
            (lambda: _ready(report={}), "report"),
            (lambda: check_domain(GOOD, resolver=5), "resolver"),
            (lambda: check_domain(GOOD, resolver=b"127.0.0.1"), "resolver"),
            (lambda: _check(sender=5), "sender"),
            (lambda: _check(esp=5), "esp"),
            (lambda: _check(dkim_selectors=[1]), "dkim_selectors"),
            (lambda: _check(sending_ips=5), "sending_ips"),
            (lambda: _check(dkim_keys=["s1"]), "dkim_keys"),
            (lambda: _check(from_domain=5), "from_domain"),
            (lambda: _check(envelope_domain=""), "envelope_domain"),
            (lambda: check_domain(GOOD, resolver="127.0.0.1:1", timeout="1"), "timeout"),
            (lambda: check_domain(GOOD, resolver="127.0.0.1:1", lifetime=-1), "lifetime"),
            (lambda: parse_spf(None), "SPF record"),  # type: ignore[arg-type]
            (lambda: parse_dmarc(b"v=DMARC1; p=none"), "DMARC record"),  # type: ignore[arg-type]
            (lambda: organizational_domain(None), "domain"),  # type: ignore[arg-type]
            (lambda: spf_record(esp=[1]), "esp"),  # type: ignore[list-item]
            (lambda: spf_record(ips=[1]), "ips"),  # type: ignore[list-item]
            (lambda: spf_record(includes=[None]), "includes"),  # type: ignore[list-item]
            (lambda: spf_record(a="yes"), r"\ba\b"),  # type: ignore[arg-type]
            (lambda: spf_record(all=None), "all"),  # type: ignore[arg-type]
            (lambda: dmarc_record(rua=[1]), "rua"),  # type: ignore[list-item]
            (lambda: dkim_record(5), "public_key"),  # type: ignore[arg-type]
            (lambda: report_authorization_record(5, "example.net"), "domain"),  # type: ignore[arg-type]
            (lambda: aligned(None, "example.com", "r"), "identifier"),  # type: ignore[arg-type]
            (lambda: aligned("example.com", b"example.com", "r"), "from_domain"),  # type: ignore[arg-type]
            (lambda: aligned("example.com", "example.com", "x"), "mode"),
            (lambda: aligned("example.com", "example.com", None), "mode"),  # type: ignore[arg-type]
        ],
    )
    def test_named(self, call: Callable[[], object], name: str) -> None:
        """Each boundary refuses a wrong type with an AuthCheckError naming the argument."""
        with pytest.raises(AuthCheckError, match=name):
            call()

    def test_dkim_selector_type(self, keys: Keys) -> None:
        """dkim_record refuses a selector that is not a string."""
        with pytest.raises(AuthCheckError, match="selector"):
            dkim_record(keys.ed, selector=5)  # type: ignore[arg-type]

    def test_alignment_modes(self) -> None:
        """aligned takes 'r' and 's' in either case and tells them apart."""
        assert (True, False, False) == (
            aligned("mail.example.com", "example.com", "R"),
            aligned("mail.example.com", "example.com", "s"),
            aligned("mail.example.com", "example.com", "S"),
        )


# Values no argument below accepts: never a string, never None, never a bool.
WRONG = st.one_of(
    st.integers(min_value=101) | st.integers(max_value=-1),
    st.binary(),
    st.lists(st.integers(), min_size=1, max_size=3),
    st.builds(object),
    st.dictionaries(st.integers(), st.integers(), min_size=1, max_size=2),
)

CALLS: list[tuple[str, Callable[[Any], object]]] = [
    ("SPF record", lambda v: parse_spf(v)),
    ("DMARC record", lambda v: parse_dmarc(v)),
    ("domain", lambda v: organizational_domain(v)),
    ("identifier", lambda v: aligned(v, "example.com", "r")),
    ("from_domain", lambda v: aligned("example.com", v, "r")),
    ("mode", lambda v: aligned("example.com", "example.com", v)),
    ("ips", lambda v: spf_record(ips=v)),
    ("includes", lambda v: spf_record(includes=v)),
    ("esp", lambda v: spf_record(esp=v)),
    ("mx", lambda v: spf_record(mx=v)),
    ("all", lambda v: spf_record(all=v)),
    ("p", lambda v: dmarc_record(v)),
    ("sp", lambda v: dmarc_record(sp=v)),
    ("adkim", lambda v: dmarc_record(adkim=v)),
    ("fo", lambda v: dmarc_record(fo=v)),
    ("rua", lambda v: dmarc_record(rua=v)),
    ("dkim_selectors", lambda v: _check(dkim_selectors=v)),
    ("sending_ips", lambda v: _check(sending_ips=v)),
    ("esp", lambda v: _check(esp=v)),
    ("sender", lambda v: _check(sender=v)),
    ("resolver", lambda v: check_domain(GOOD, resolver=v)),
    ("from_domain", lambda v: _check(from_domain=v)),
    ("dkim_keys", lambda v: _check(dkim_keys=v)),
    ("complaint_rate", lambda v: _ready(complaint_rate=v)),
]


class TestWrongTypesFuzz:
    @settings(max_examples=150, deadline=None)
    @given(st.sampled_from(CALLS), WRONG)
    def test_any_wrong_type(self, call: tuple[str, Callable[[Any], object]], value: object) -> None:
        """Any wrong-typed value for any public argument raises AuthCheckError naming it."""
        name, fn = call
        with pytest.raises(AuthCheckError) as info:
            fn(value)
        assert name in str(info.value)


class TestSingleString:
    def test_check_domain(self, opts: dict[str, object]) -> None:
        """A single selector or IP given as a string is one item, not its characters."""
        report = check_domain(GOOD, dkim_selectors="s1", sending_ips="203.0.113.7", **opts)  # type: ignore[arg-type]
        assert ["s1"] == [d.selector for d in report.dkim]
        assert ["203.0.113.7"] == [p.ip for p in report.ptr]
        assert {"203.0.113.7": "pass"} == report.spf.results

    def test_readiness(self, opts: dict[str, object]) -> None:
        """readiness takes single strings the same way."""
        report = readiness(GOOD, dkim_selectors="s2", sending_ips="203.0.113.8", **opts)  # type: ignore[arg-type]
        assert ["s2"] == [d.selector for d in report.auth.dkim]
        assert ["203.0.113.8"] == [p.ip for p in report.auth.ptr]

    def test_spf_record(self) -> None:
        """spf_record takes one address and one include as strings."""
        rec = spf_record(ips="203.0.113.7", includes="_spf.example.net")
        assert "v=spf1 ip4:203.0.113.7 include:_spf.example.net ~all" == rec.value
