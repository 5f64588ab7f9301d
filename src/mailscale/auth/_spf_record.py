"""SPF records (RFC 7208 sections 4.6 to 7.1): the syntax of every term, macros included."""

from __future__ import annotations

import ipaddress
import re

import attrs

from mailscale.auth._args import str_arg
from mailscale.auth._model import SPFResult
from mailscale.errors import AuthCheckError

__all__ = [
    "ESP_INCLUDES",
    "MACRO_RE",
    "MAX_LOOKUPS",
    "MAX_MX_PTR_NAMES",
    "MAX_VOID_LOOKUPS",
    "QUALIFIERS",
    "SPFRecord",
    "SPFTerm",
    "is_spf",
    "parse_spf",
]

#: The include each ESP documents for its customers' SPF records.
ESP_INCLUDES: dict[str, str] = {
    "sendgrid": "sendgrid.net",
    "mailgun": "mailgun.org",
    "postmark": "spf.mtasv.net",
    "ses": "amazonses.com",
}

MAX_LOOKUPS = 10  # RFC 7208 section 4.6.4
MAX_VOID_LOOKUPS = 2
MAX_MX_PTR_NAMES = 10
_LOOKUP_TERMS = frozenset({"include", "a", "mx", "ptr", "exists"})
_MECHANISMS = frozenset({"all", "include", "a", "mx", "ptr", "ip4", "ip6", "exists"})
#: The result a matching mechanism gives, by its qualifier (RFC 7208 section 4.6.2).
QUALIFIERS = {
    "+": SPFResult.PASS,
    "-": SPFResult.FAIL,
    "~": SPFResult.SOFTFAIL,
    "?": SPFResult.NEUTRAL,
}
_MODIFIER_RE = re.compile(r"^([A-Za-z][A-Za-z0-9\-_.]*)=(.*)$")
_CIDR_RE = re.compile(r"^(.*?)(?:/([0-9]+))?(?://([0-9]+))?$", re.S)
# RFC 7208 7.1: the ABNF is case-insensitive, so letters and the "r" transformer take
# either case; an upper-case macro letter additionally means URL-escaping (7.3).
MACRO_RE = re.compile(r"%(?:\{([a-zA-Z])([0-9]*)([rR]?)([.\-+,/_=]*)\}|%|_|-)")
_MACRO_LETTERS = frozenset("slodipvh")
_EXP_ONLY_LETTERS = frozenset("crt")
_TOPLABEL_RE = re.compile(r"^(?=.*[A-Za-z])[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?$")


def _digits(text: str) -> bool:
    """True for a non-empty run of ASCII digits (str.isdigit also takes "²")."""
    return text.isascii() and text.isdigit()


@attrs.frozen
class SPFTerm:
    """One directive or modifier of an SPF record.

    Attributes:
        name: the mechanism or modifier name, lower-case.
        qualifier: ``+ - ~ ?`` for mechanisms (``+`` when omitted), ``""`` for modifiers.
        value: the domain-spec, network or modifier value, if any.
        cidr4: the IPv4 prefix length given (``ip4``, ``a``, ``mx``).
        cidr6: the IPv6 prefix length given (``ip6``, ``a``, ``mx``).
        text: the term as written.
    """

    name: str
    qualifier: str
    value: str | None
    cidr4: int | None
    cidr6: int | None
    text: str

    @property
    def is_modifier(self) -> bool:
        """True for a modifier (``redirect=``, ``exp=``), False for a mechanism."""
        return self.qualifier == ""

    @property
    def has_macros(self) -> bool:
        """True when the term's value uses SPF macros (RFC 7208 section 7)."""
        return self.value is not None and "%" in self.value


@attrs.frozen
class SPFRecord:
    """A parsed ``v=spf1`` record."""

    text: str
    terms: tuple[SPFTerm, ...]

    @property
    def directives(self) -> tuple[SPFTerm, ...]:
        """The mechanisms, in order (the modifiers left out)."""
        return tuple(t for t in self.terms if not t.is_modifier)

    @property
    def redirect(self) -> str | None:
        """The ``redirect=`` domain, or None."""
        return next((t.value for t in self.terms if t.name == "redirect"), None)

    @property
    def lookup_terms(self) -> int:
        """DNS-querying terms in this record alone (not counting nested ones)."""
        return sum(1 for t in self.terms if t.name in _LOOKUP_TERMS or t.name == "redirect")


def is_spf(text: str) -> bool:
    """True for a TXT value that is an SPF record (``v=spf1`` then space or end)."""
    low = text.lower()
    return low == "v=spf1" or low.startswith("v=spf1 ")


def parse_spf(text: str) -> SPFRecord:
    """Parse and validate an SPF record.

    Raises:
        AuthCheckError: the record is not ``v=spf1`` or a term is malformed;
            the message names the term.
    """
    str_arg(text, "SPF record")
    if not is_spf(text):
        raise AuthCheckError(f"not an SPF record (must start with 'v=spf1'): {text[:60]!r}")
    if any(ord(c) > 0x7E or (ord(c) < 0x20) for c in text):
        raise AuthCheckError("SPF record contains non-ASCII or control characters")
    terms: list[SPFTerm] = []
    seen: set[str] = set()
    for raw in text[6:].split(" "):
        if not raw:
            continue
        term = _parse_term(raw)
        if term.is_modifier and term.name in ("redirect", "exp"):
            if term.name in seen:
                raise AuthCheckError(f"SPF modifier {term.name}= appears more than once")
            seen.add(term.name)
        terms.append(term)
    return SPFRecord(text=text, terms=tuple(terms))


def _parse_term(raw: str) -> SPFTerm:
    mod = _MODIFIER_RE.match(raw)
    if mod:
        name, text = mod.group(1).lower(), mod.group(2)
        if name in ("redirect", "exp"):
            _check_domain_spec(text, raw)
        else:
            _check_macro_string(text, raw)
        return SPFTerm(name, "", text, None, None, raw)
    qualifier = "+"
    body = raw
    if body[0] in QUALIFIERS:
        qualifier, body = body[0], body[1:]
    match = re.match(r"^([A-Za-z0-9]+)(.*)$", body)
    if not match:
        raise AuthCheckError(f"SPF term {raw!r} is not a mechanism or modifier")
    name, rest = match.group(1).lower(), match.group(2)
    if name not in _MECHANISMS:
        raise AuthCheckError(f"unknown SPF mechanism {name!r} in {raw!r}")
    value: str | None = None
    cidr4 = cidr6 = None
    if name == "all":
        if rest:
            raise AuthCheckError(f"SPF 'all' takes no argument: {raw!r}")
    elif name in ("include", "exists"):
        if not rest.startswith(":") or len(rest) < 2:
            raise AuthCheckError(f"SPF {name} needs ':domain': {raw!r}")
        value = rest[1:]
        _check_domain_spec(value, raw)
    elif name == "ptr":
        if rest:
            if not rest.startswith(":"):
                raise AuthCheckError(f"malformed SPF term {raw!r}")
            value = rest[1:]
            _check_domain_spec(value, raw)
    elif name in ("a", "mx"):
        cm = _CIDR_RE.match(rest)
        assert cm is not None  # the pattern matches any string
        spec, c4, c6 = cm.groups()
        cidr4 = _prefix(c4, 32, raw)
        cidr6 = _prefix(c6, 128, raw)
        if spec:
            if not spec.startswith(":") or len(spec) < 2:
                raise AuthCheckError(f"malformed SPF term {raw!r}")
            value = spec[1:]
            _check_domain_spec(value, raw)
    else:  # ip4 / ip6
        if not rest.startswith(":"):
            raise AuthCheckError(f"SPF {name} needs ':network': {raw!r}")
        net, _, plen = rest[1:].partition("/")
        width = 32 if name == "ip4" else 128
        try:
            addr = ipaddress.ip_address(net)
        except ValueError:
            raise AuthCheckError(f"bad address in SPF term {raw!r}") from None
        if addr.version != (4 if name == "ip4" else 6):
            raise AuthCheckError(f"SPF {name} holds an IPv{addr.version} address: {raw!r}")
        prefix = _prefix(plen if "/" in rest else None, width, raw)
        if name == "ip4":
            cidr4 = prefix
        else:
            cidr6 = prefix
        value = net
    return SPFTerm(name, qualifier, value, cidr4, cidr6, raw)


def _prefix(text: str | None, width: int, raw: str) -> int | None:
    if text is None:
        return None
    if not _digits(text) or int(text) > width or (len(text) > 1 and text[0] == "0"):
        raise AuthCheckError(f"bad prefix length /{text} in SPF term {raw!r}")
    return int(text)


def _check_macro_string(value: str, raw: str, *, exp: bool = False) -> None:
    pos = 0
    while True:
        i = value.find("%", pos)
        if i < 0:
            return
        m = MACRO_RE.match(value, i)
        if not m:
            raise AuthCheckError(f"bad macro in SPF term {raw!r}")
        letter = m.group(1)
        if letter:
            low = letter.lower()
            if low not in _MACRO_LETTERS and not (exp and low in _EXP_ONLY_LETTERS):
                raise AuthCheckError(f"unknown macro letter %{{{letter}}} in SPF term {raw!r}")
            if m.group(2) and int(m.group(2)) == 0:
                raise AuthCheckError(f"macro keeps zero labels in SPF term {raw!r}")
        pos = m.end()


def _check_domain_spec(value: str, raw: str) -> None:
    _check_macro_string(value, raw)
    if "%" in value:
        return
    labels = value.rstrip(".").split(".")
    if len(labels) < 2 or not _TOPLABEL_RE.match(labels[-1]) or any(not x for x in labels):
        raise AuthCheckError(f"SPF term {raw!r}: {value!r} is not a fully qualified domain")
    if any(len(x) > 63 for x in labels) or len(value) > 253:
        raise AuthCheckError(f"SPF term {raw!r}: domain name too long")
