"""SPF (RFC 7208): parsing, record-wide analysis and ``check_host``.

:func:`parse_spf` checks the syntax of every term. The record-wide analysis
walks include and redirect recursively, counting the DNS-querying terms
(limit 10) and void lookups (limit 2) and finding loops. :func:`check_host`
evaluates the record for one IP address, macros included, and returns one of
``pass``, ``fail``, ``softfail``, ``neutral``, ``none``, ``permerror`` or
``temperror``.
"""

from __future__ import annotations

import asyncio
import ipaddress
import re
import urllib.parse
from collections.abc import Coroutine, Iterable
from typing import Any

import attrs

from mailscale.auth._args import opt_str, str_arg
from mailscale.auth._dns import DNSClient, Lookup
from mailscale.auth._model import Finding, Severity, SPFReport
from mailscale.errors import AuthCheckError

__all__ = [
    "ESP_INCLUDES",
    "SPFRecord",
    "SPFTerm",
    "check_host",
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
_QUALIFIERS = {"+": "pass", "-": "fail", "~": "softfail", "?": "neutral"}
_MODIFIER_RE = re.compile(r"^([A-Za-z][A-Za-z0-9\-_.]*)=(.*)$")
_CIDR_RE = re.compile(r"^(.*?)(?:/([0-9]+))?(?://([0-9]+))?$", re.S)
# RFC 7208 7.1: the ABNF is case-insensitive, so letters and the "r" transformer take
# either case; an upper-case macro letter additionally means URL-escaping (7.3).
_MACRO_RE = re.compile(r"%(?:\{([a-zA-Z])([0-9]*)([rR]?)([.\-+,/_=]*)\}|%|_|-)")
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
        return self.qualifier == ""

    @property
    def has_macros(self) -> bool:
        return self.value is not None and "%" in self.value


@attrs.frozen
class SPFRecord:
    """A parsed ``v=spf1`` record."""

    text: str
    terms: tuple[SPFTerm, ...]

    @property
    def directives(self) -> tuple[SPFTerm, ...]:
        return tuple(t for t in self.terms if not t.is_modifier)

    @property
    def redirect(self) -> str | None:
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
    if body[0] in _QUALIFIERS:
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
        m = _MACRO_RE.match(value, i)
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


# --- macros (RFC 7208 section 7) ----------------------------------------


@attrs.frozen
class _MacroContext:
    ip: ipaddress.IPv4Address | ipaddress.IPv6Address
    sender: str
    domain: str
    helo: str


def expand_macros(value: str, ctx: _MacroContext, *, domain: str | None = None) -> str:
    """Expand the macros of a domain-spec; trims to 253 characters (section 7.3)."""
    current = domain or ctx.domain
    local, _, sender_domain = ctx.sender.rpartition("@")
    local = local or "postmaster"

    def letter_value(letter: str) -> str:
        if letter == "s":
            return f"{local}@{sender_domain}"
        if letter == "l":
            return local
        if letter == "o":
            return sender_domain
        if letter == "d":
            return current
        if letter == "i":
            if ctx.ip.version == 4:
                return str(ctx.ip)
            return ".".join(ctx.ip.exploded.replace(":", ""))
        if letter == "p":
            # The validated name is optional and discouraged; RFC 7208 7.3 allows "unknown".
            return "unknown"
        if letter == "v":
            return "in-addr" if ctx.ip.version == 4 else "ip6"
        if letter == "h":
            return ctx.helo
        raise AuthCheckError(f"macro %{{{letter}}} is not allowed here")

    def replace(m: re.Match[str]) -> str:
        text = m.group(0)
        if text == "%%":
            return "%"
        if text == "%_":
            return " "
        if text == "%-":
            return "%20"
        letter, digits, reverse, delims = m.groups()
        parts = re.split("[" + re.escape(delims or ".") + "]", letter_value(letter.lower()))
        if reverse:
            parts.reverse()
        if digits:
            parts = parts[-int(digits) :]
        out = ".".join(parts)
        if letter.isupper():
            out = urllib.parse.quote(out, safe="-._~")
        return out

    expanded = _MACRO_RE.sub(replace, value)
    while len(expanded) > 253 and "." in expanded:
        expanded = expanded.split(".", 1)[1]
    return expanded


# --- check_host (RFC 7208 section 4) --------------------------------------


class _PermError(Exception):
    pass


class _TempError(Exception):
    pass


@attrs.define
class _Evaluation:
    dns: DNSClient
    ctx: _MacroContext
    lookups: int = 0
    void: int = 0
    reason: str = ""

    def count(self) -> None:
        self.lookups += 1
        if self.lookups > MAX_LOOKUPS:
            raise _PermError(f"more than {MAX_LOOKUPS} DNS-querying terms")

    def note_void(self, lookup: Lookup) -> None:
        if lookup.void:
            self.void += 1
            if self.void > MAX_VOID_LOOKUPS:
                raise _PermError(f"more than {MAX_VOID_LOOKUPS} void lookups")


async def fetch_spf(dns: DNSClient, domain: str) -> tuple[Lookup, list[str]]:
    """The TXT lookup at ``domain`` and the SPF records among its answers."""
    lookup = await dns.query(domain, "TXT")
    return lookup, [r for r in lookup.records if is_spf(r)]


async def check_host(
    dns: DNSClient,
    ip: str,
    domain: str,
    *,
    sender: str | None = None,
    helo: str | None = None,
) -> tuple[str, str]:
    """Evaluate SPF for ``ip`` sending as ``sender`` (default ``postmaster@domain``).

    Returns:
        (result, reason): the RFC 7208 result and a short explanation.
    """
    try:
        addr = ipaddress.ip_address(str_arg(ip, "ip"))
    except ValueError:
        raise AuthCheckError(f"not an IP address: {ip!r}") from None
    str_arg(domain, "domain")
    opt_str(sender, "sender")
    opt_str(helo, "helo")
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        addr = addr.ipv4_mapped
    ctx = _MacroContext(addr, sender or f"postmaster@{domain}", domain, helo or domain)
    ev = _Evaluation(dns, ctx)
    try:
        result = await _check(ev, domain)
    except _PermError as exc:
        return "permerror", str(exc)
    except _TempError as exc:
        return "temperror", str(exc)
    return result, ev.reason


async def _check(ev: _Evaluation, domain: str) -> str:
    labels = domain.rstrip(".").split(".")
    if len(labels) < 2 or any(not x or len(x) > 63 for x in labels):
        ev.reason = f"{domain!r} is not a valid domain"
        return "none"
    lookup, records = await fetch_spf(ev.dns, domain)
    if lookup.temporary:
        raise _TempError(lookup.describe())
    if not records:
        ev.reason = f"no SPF record at {domain}"
        return "none"
    if len(records) > 1:
        raise _PermError(f"{len(records)} SPF records at {domain}")
    try:
        record = parse_spf(records[0])
    except AuthCheckError as exc:
        raise _PermError(str(exc)) from None
    for term in record.directives:
        if await _matches(ev, term, domain):
            ev.reason = f"matched {term.text} at {domain}"
            return _QUALIFIERS[term.qualifier]
    target = record.redirect
    if target is not None:
        ev.count()
        target = expand_macros(target, ev.ctx, domain=domain)
        result = await _check(ev, target)
        if result == "none":
            raise _PermError(f"redirect target {target} has no SPF record")
        return result
    ev.reason = f"no term matched at {domain}"
    return "neutral"


async def _addresses(ev: _Evaluation, name: str, *, count_void: bool) -> list[str]:
    rdtype = "A" if ev.ctx.ip.version == 4 else "AAAA"
    lookup = await ev.dns.query(name, rdtype)
    if lookup.temporary:
        raise _TempError(lookup.describe())
    if lookup.status == "invalid_name":
        return []  # no such name can exist: no match, never temperror (see exists below)
    if count_void:
        ev.note_void(lookup)
    return list(lookup.records)


async def _ptr_addresses(ev: _Evaluation, name: str) -> list[str]:
    # RFC 7208 5.5: a name whose address lookup fails is skipped, not an error.
    try:
        return await _addresses(ev, name, count_void=False)
    except _TempError:
        return []


def _in_network(
    ip: ipaddress.IPv4Address | ipaddress.IPv6Address, addr: str, term: SPFTerm
) -> bool:
    prefix = term.cidr4 if ip.version == 4 else term.cidr6
    if prefix is None:
        prefix = ip.max_prefixlen
    net = ipaddress.ip_network(f"{addr}/{prefix}", strict=False)
    return ip in net


async def _matches(ev: _Evaluation, term: SPFTerm, domain: str) -> bool:
    ip = ev.ctx.ip
    name = term.name
    if name == "all":
        return True
    if name in ("ip4", "ip6"):
        if (name == "ip4") != (ip.version == 4):
            return False
        assert term.value is not None
        return _in_network(ip, term.value, term)
    ev.count()
    target = expand_macros(term.value, ev.ctx, domain=domain) if term.value else domain
    if name == "include":
        result = await _check(ev, target)
        if result == "pass":
            return True
        if result == "none":
            raise _PermError(f"include:{target} has no SPF record")
        if result in ("permerror", "temperror"):  # pragma: no cover - raised, not returned
            raise _PermError(result)
        return False
    if name == "a":
        return any(_in_network(ip, a, term) for a in await _addresses(ev, target, count_void=True))
    if name == "mx":
        lookup = await ev.dns.query(target, "MX")
        if lookup.temporary:
            raise _TempError(lookup.describe())
        if lookup.status == "invalid_name":
            return False  # as for exists below
        ev.note_void(lookup)
        hosts = [h for h in lookup.records if h]
        if len(hosts) > MAX_MX_PTR_NAMES:
            raise _PermError(f"mx:{target} has more than {MAX_MX_PTR_NAMES} MX hosts")
        found = await asyncio.gather(*(_addresses(ev, h, count_void=False) for h in hosts))
        return any(_in_network(ip, a, term) for addrs in found for a in addrs)
    if name == "exists":
        lookup = await ev.dns.query(target, "A")
        if lookup.temporary:
            raise _TempError(lookup.describe())
        if lookup.status == "invalid_name":
            # A macro-expanded name DNS cannot carry (a label over 63 octets): no such
            # name can exist, so the mechanism does not match (RFC 7208 4.3 treats a
            # malformed domain as having no records); asking again would not help, so
            # it is never temperror. An include/redirect to such a name gives "none",
            # hence permerror.
            return False
        ev.note_void(lookup)
        return lookup.status == "ok"
    if name == "ptr":
        lookup = await ev.dns.query(ip.reverse_pointer, "PTR")
        if lookup.temporary:
            return False  # RFC 7208 5.5: a PTR lookup error means no match
        ev.note_void(lookup)
        names = list(lookup.records)[:MAX_MX_PTR_NAMES]
        found = await asyncio.gather(*(_ptr_addresses(ev, n) for n in names))
        target = target.lower().rstrip(".")
        for ptr_name, addrs in zip(names, found, strict=True):
            if str(ip) in addrs or any(ipaddress.ip_address(a) == ip for a in addrs):
                if ptr_name == target or ptr_name.endswith("." + target):
                    return True
        return False
    raise _PermError(f"unknown mechanism {name}")  # pragma: no cover - parse_spf rejects


# --- record-wide analysis -------------------------------------------------


@attrs.define
class _Walk:
    dns: DNSClient
    findings: list[Finding] = attrs.Factory(list)
    includes: set[str] = attrs.Factory(set)
    nodes: int = 0
    temporary: bool = False
    # Running totals over the whole walk: once they pass the RFC 7208 limits the record
    # is a permerror whatever else it holds, so no further name is looked up.
    lookups: int = 0
    void: int = 0
    stopped: bool = False

    def over_limit(self) -> bool:
        if self.lookups > MAX_LOOKUPS or self.void > MAX_VOID_LOOKUPS:
            self.stopped = True
            return True
        return False


_MAX_NODES = 100


async def _gated(walk: _Walk, coro: Coroutine[Any, Any, tuple[int, int, int]]
                 ) -> tuple[int, int, int]:
    """Run a term's lookups only while the walk is within the RFC 7208 limits.

    Every term is counted before any of its record's terms is looked up, so the
    records and names looked up are at most the limit (10), however many terms
    the records hold and however many run at once.
    """
    if walk.over_limit():
        coro.close()
        return 0, 0, 0
    return await coro


async def _walk(
    walk: _Walk, domain: str, record: SPFRecord, path: tuple[str, ...]
) -> tuple[int, int, int]:
    """Count lookups and void lookups below ``record``; report problems.

    Returns:
        (lookups, void4, void6): void lookups are counted per address family, as
        check_host asks A for IPv4 senders and AAAA for IPv6 ones.
    """
    walk.nodes += 1
    has_all = any(t.name == "all" for t in record.terms)
    lookups = record.lookup_terms
    if has_all and record.redirect is not None:
        lookups -= 1  # RFC 7208 6.1: redirect is ignored when 'all' is present
    walk.lookups += lookups
    void4 = void6 = 0
    children: list[tuple[str, str]] = []
    checks = []
    for term in record.terms:
        if term.name == "all" and term.qualifier == "+":
            walk.findings.append(
                Finding(Severity.ERROR, "spf.all_pass",
                        f"'+all' at {domain} lets every host on the internet pass SPF",
                        record.text))
        elif term.name == "all" and term.qualifier == "?":
            walk.findings.append(
                Finding(Severity.WARNING, "spf.all_neutral",
                        f"'?all' at {domain} gives no protection; use '~all' or '-all'",
                        record.text))
        elif term.name == "ptr":
            walk.findings.append(
                Finding(Severity.WARNING, "spf.ptr",
                        f"'{term.text}' at {domain}: the ptr mechanism is slow and "
                        "discouraged (RFC 7208 5.5); list the addresses instead",
                        record.text))
        if term.has_macros:
            if term.name in ("include", "redirect"):
                walk.findings.append(
                    Finding(Severity.INFO, "spf.macro",
                            f"'{term.text}' at {domain} depends on the sender; "
                            "its lookups are counted once, not followed",
                            record.text))
            continue
        if term.name == "include":
            assert term.value is not None
            children.append(("include", term.value.rstrip(".").lower()))
        elif term.name == "redirect" and not has_all:
            assert term.value is not None
            children.append(("redirect", term.value.rstrip(".").lower()))
        elif term.name == "redirect":
            walk.findings.append(
                Finding(Severity.WARNING, "spf.redirect_ignored",
                        f"redirect= at {domain} is ignored because the record has an 'all' term",
                        record.text))
        elif term.name in ("a", "mx", "exists"):
            checks.append(_void_check(walk, term, term.value or domain, record))
        # ptr queries the connecting IP's reverse name: its void lookups depend on the
        # sender, so only check_host (per sending IP) can count them.
    results = await asyncio.gather(
        *(_gated(walk, c) for c in checks),
        *(_gated(walk, _child(walk, kind, target, domain, record, path))
          for kind, target in children),
    )
    for lookups_below, void4_below, void6_below in results:
        lookups += lookups_below
        void4 += void4_below
        void6 += void6_below
    return lookups, void4, void6


async def _void_check(
    walk: _Walk, term: SPFTerm, name: str, record: SPFRecord
) -> tuple[int, int, int]:
    if term.name == "mx":
        lookup = await walk.dns.query(name, "MX")
        found = [lookup]
        hosts = [h for h in lookup.records if h]
        if len(hosts) > MAX_MX_PTR_NAMES:
            # RFC 7208 4.6.4: at most 10 address lookups per mx; check_host gives permerror.
            walk.findings.append(
                Finding(Severity.ERROR, "spf.mx_too_many",
                        f"'{term.text}': {name} has {len(hosts)} MX hosts; receivers return "
                        f"permerror above {MAX_MX_PTR_NAMES} (RFC 7208 4.6.4)", record.text))
    elif term.name == "exists":
        found = [await walk.dns.query(name, "A")]  # RFC 7208 5.7: always an A query
    else:
        found = list(await asyncio.gather(walk.dns.query(name, "A"), walk.dns.query(name, "AAAA")))
    if any(x.temporary for x in found):
        bad = next(x for x in found if x.temporary)
        walk.temporary = True
        walk.findings.append(
            Finding(Severity.ERROR, "spf.temperror",
                    f"'{term.text}': {bad.describe()}; SPF gives temperror until it answers",
                    record.text))
        return 0, 0, 0
    if term.name == "a":
        # A for IPv4 senders, AAAA for IPv6 ones: each family has its own void count.
        walk.void += max(int(found[0].void), int(found[1].void))
        return 0, int(found[0].void), int(found[1].void)
    void = int(found[0].void)
    walk.void += void
    return 0, void, void


async def _child(
    walk: _Walk, kind: str, target: str, parent: str, record: SPFRecord, path: tuple[str, ...]
) -> tuple[int, int, int]:
    if target in path:
        walk.findings.append(
            Finding(Severity.ERROR, f"spf.{kind}_loop",
                    f"{kind} loop: {' -> '.join((*path, target))}", record.text))
        return 0, 0, 0
    if walk.nodes >= _MAX_NODES:
        walk.findings.append(
            Finding(Severity.ERROR, "spf.too_deep",
                    f"stopped after following {_MAX_NODES} SPF records below {path[0]}",
                    record.text))
        return 0, 0, 0
    walk.includes.add(target)
    lookup, records = await fetch_spf(walk.dns, target)
    if lookup.temporary:
        walk.temporary = True
        walk.findings.append(
            Finding(Severity.ERROR, "spf.temperror",
                    f"{kind}:{target} from {parent}: {lookup.describe()}", record.text))
        return 0, 0, 0
    if not records:
        walk.findings.append(
            Finding(Severity.ERROR, f"spf.{kind}_missing",
                    f"{kind}:{target} from {parent} has no SPF record ({lookup.describe()}); "
                    "receivers return permerror", record.text))
        void = int(lookup.void)
        walk.void += void
        return 0, void, void
    if len(records) > 1:
        walk.findings.append(
            Finding(Severity.ERROR, "spf.multiple",
                    f"{kind}:{target} from {parent} has {len(records)} SPF records", records[0]))
        return 0, 0, 0
    try:
        child = parse_spf(records[0])
    except AuthCheckError as exc:
        walk.findings.append(
            Finding(Severity.ERROR, "spf.syntax", f"{kind}:{target} from {parent}: {exc}",
                    records[0]))
        return 0, 0, 0
    return await _walk(walk, target, child, (*path, target))


async def analyze_spf(
    dns: DNSClient,
    domain: str,
    *,
    sending_ips: Iterable[str] = (),
    esp: str | None = None,
    sender: str | None = None,
) -> SPFReport:
    """Fetch and analyze ``domain``'s SPF record; evaluate it for each sending IP."""
    ips = list(sending_ips)
    esp_key = esp.lower() if esp else None
    if esp_key is not None and esp_key not in ESP_INCLUDES:
        raise AuthCheckError(
            f"unknown ESP {esp!r}; known: {', '.join(sorted(ESP_INCLUDES))}")
    host_checks = asyncio.gather(*(check_host(dns, ip, domain, sender=sender) for ip in ips))
    lookup, records = await fetch_spf(dns, domain)
    findings: list[Finding] = []
    evaluated = await host_checks
    results = {ip: result for ip, (result, _) in zip(ips, evaluated, strict=True)}
    reasons = {ip: why for ip, (_, why) in zip(ips, evaluated, strict=True)}
    _ip_findings(findings, results, reasons, domain, records[0] if len(records) == 1 else None)
    if lookup.temporary:
        findings.insert(0, Finding(Severity.ERROR, "spf.temperror",
                                   f"could not fetch the SPF record: {lookup.describe()}; "
                                   "this is not 'no record'", domain))
        return SPFReport(None, "temperror", results=results, findings=findings)
    if not records:
        findings.insert(0, Finding(Severity.ERROR, "spf.missing",
                                   f"no SPF record: {lookup.describe()}", domain))
        return SPFReport(None, "missing", results=results,
                         esp_include=False if esp_key else None, findings=findings)
    if len(records) > 1:
        findings.insert(0, Finding(Severity.ERROR, "spf.multiple",
                                   f"{len(records)} SPF records at {domain}; receivers return "
                                   "permerror (RFC 7208 4.5) — merge them into one",
                                   " | ".join(records)))
        return SPFReport(records[0], "invalid", results=results, findings=findings)
    text = records[0]
    try:
        record = parse_spf(text)
    except AuthCheckError as exc:
        findings.insert(0, Finding(Severity.ERROR, "spf.syntax", str(exc), text))
        return SPFReport(text, "invalid", results=results, findings=findings)
    walk = _Walk(dns)
    lookups, void4, void6 = await _walk(walk, domain, record, (domain,))
    # The report gives the worse family's count; receivers count only the sender's.
    void = max(void4, void6)
    findings[:0] = walk.findings
    if void4 != void6:
        findings.append(Finding(Severity.INFO, "spf.void_lookups_family",
                                f"void lookups differ by address family: IPv4 senders {void4}, "
                                f"IPv6 senders {void6} (a: asks A or AAAA by the sender's "
                                "family); the larger is reported", text))
    at_least = "at least " if walk.stopped else ""
    if lookups > MAX_LOOKUPS:
        findings.append(Finding(Severity.ERROR, "spf.too_many_lookups",
                                f"{at_least}{lookups} DNS-querying terms through include/redirect;"
                                f" the limit is {MAX_LOOKUPS} (RFC 7208 4.6.4)", text))
    if void > MAX_VOID_LOOKUPS:
        findings.append(Finding(Severity.ERROR, "spf.void_lookups",
                                f"{at_least}{void} void lookups (names with no records); the "
                                f"limit is {MAX_VOID_LOOKUPS} (RFC 7208 4.6.4)", text))
    if walk.stopped:
        findings.append(Finding(Severity.INFO, "spf.walk_stopped",
                                "stopped following include/redirect once the RFC 7208 limits "
                                "were passed (receivers stop there too): the counts are a "
                                "lower bound", text))
    if not any(t.name == "all" for t in record.terms) and record.redirect is None:
        findings.append(Finding(Severity.WARNING, "spf.no_all",
                                "the record ends without 'all': unlisted senders get 'neutral'; "
                                "end it with '~all' or '-all'", text))
    esp_include = None
    if esp_key is not None:
        esp_include = ESP_INCLUDES[esp_key] in walk.includes
        if not esp_include:
            findings.append(Finding(Severity.ERROR, "spf.esp_include_missing",
                                    f"include:{ESP_INCLUDES[esp_key]} for {esp_key} is missing",
                                    text))
    status = "ok"
    if walk.temporary:
        status = "temperror"
    elif lookups > MAX_LOOKUPS or void > MAX_VOID_LOOKUPS or any(
        f.severity is Severity.ERROR for f in walk.findings
    ) or "permerror" in results.values():
        # A permerror for a sending IP (limits hit through macros, say) breaks SPF as
        # surely as one the walk finds.
        status = "invalid"
    return SPFReport(text, status, lookups=lookups, void_lookups=void, results=results,
                     esp_include=esp_include, findings=findings)


def _ip_findings(
    findings: list[Finding], results: dict[str, str], reasons: dict[str, str], domain: str,
    record: str | None,
) -> None:
    for ip, result in results.items():
        if result == "pass":
            continue
        if result == "temperror":
            findings.append(Finding(Severity.ERROR, "spf.temperror",
                                    f"SPF for {ip}: temperror ({reasons[ip]})", record))
        else:
            findings.append(Finding(Severity.ERROR, "spf.ip_not_permitted",
                                    f"SPF for {ip} sending as {domain}: {result} "
                                    f"({reasons[ip]})", record))
