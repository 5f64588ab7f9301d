"""Parsers never crash: any text is a record or an AuthCheckError."""

from __future__ import annotations

import ipaddress

from hypothesis import given, settings
from hypothesis import strategies as st

from mailscale.auth import parse_dmarc, parse_spf
from mailscale.auth._spf_eval import MacroContext, expand_macros
from mailscale.auth.dmarc import parse_dmarc_lenient
from mailscale.errors import AuthCheckError

SPF_WORDS = st.sampled_from(
    [
        "v=spf1",
        "ip4:",
        "ip6:",
        "a",
        "mx",
        "ptr",
        "exists:",
        "include:",
        "all",
        "redirect=",
        "exp=",
        "-",
        "~",
        "?",
        "+",
        "/",
        "//",
        ":",
        "%{",
        "}",
        "%%",
        "%_",
        "%-",
        "ir",
        "l1r-",
        "d2",
        "192.0.2.1",
        "2001:db8::",
        "24",
        "64",
        "example.com",
        ".",
        " ",
        "²",
        "\u00e9",
        "=",
    ]
)
DMARC_WORDS = st.sampled_from(
    [
        "v=DMARC1",
        ";",
        " ",
        "p=",
        "sp=",
        "pct=",
        "rua=",
        "ruf=",
        "adkim=",
        "aspf=",
        "fo=",
        "ri=",
        "rf=",
        "none",
        "reject",
        "quarantine",
        "r",
        "s",
        "mailto:",
        "a@example.com",
        "!10m",
        ",",
        "100",
        "²",
        "0:1:d",
        "afrf",
        "=",
        "x",
    ]
)


def _text(words: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    return st.one_of(st.lists(words, max_size=25).map("".join), st.text(max_size=80))


DMARC_TAGS = st.lists(
    st.tuples(
        st.sampled_from(
            [
                "p",
                "sp",
                "np",
                "pct",
                "rua",
                "ruf",
                "adkim",
                "aspf",
                "fo",
                "ri",
                "rf",
                "psd",
                "t",
                "zz",
            ]
        ),
        st.one_of(
            st.sampled_from(
                [
                    "",
                    "0",
                    "50",
                    "101",
                    "-1",
                    "²",
                    "1²",
                    "r",
                    "s",
                    "x",
                    "0:1:d:s",
                    "mailto:a@example.com!1²",
                ]
            ),
            _text(DMARC_WORDS),
            st.text(max_size=6),
        ),
    ),
    max_size=8,
).map(lambda tags: "v=DMARC1; p=none; " + "; ".join(f"{k}={v}" for k, v in tags))


class TestParsersNeverCrash:
    @settings(max_examples=400, deadline=None)
    @given(_text(SPF_WORDS))
    def test_spf(self, text: str) -> None:
        """parse_spf returns a record or raises AuthCheckError."""
        try:
            record = parse_spf(text)
        except AuthCheckError:
            return
        assert record.text == text
        assert all(t.name for t in record.terms)

    @settings(max_examples=400, deadline=None)
    @given(st.one_of(_text(DMARC_WORDS), DMARC_TAGS))
    def test_dmarc(self, text: str) -> None:
        """parse_dmarc and the lenient parser return tags or raise AuthCheckError."""
        for parse in (parse_dmarc, lambda t: parse_dmarc_lenient(t)[0]):
            try:
                tags = parse(text)
            except AuthCheckError:
                continue
            assert "DMARC1" == tags["v"]

    @settings(max_examples=300, deadline=None)
    @given(_text(SPF_WORDS), st.text(max_size=20), st.ip_addresses())
    def test_macros(
        self, spec: str, local: str, ip: ipaddress.IPv4Address | ipaddress.IPv6Address
    ) -> None:
        """Expanding any domain-spec that parses never crashes and fits in 253 characters."""
        try:
            record = parse_spf("v=spf1 exists:" + spec.replace(" ", ""))
        except AuthCheckError:
            return
        ctx = MacroContext(ip, f"{local}@example.com", "example.com", "helo.example.com")
        for term in record.terms:
            if term.value is not None and term.name == "exists":
                out = expand_macros(term.value, ctx)
                assert len(out) <= 253 or "." not in out
