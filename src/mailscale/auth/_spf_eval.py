"""SPF ``check_host`` (RFC 7208 section 4) and macro expansion (section 7)."""

from __future__ import annotations

import asyncio
import ipaddress
import re
import urllib.parse

import attrs

from mailscale.auth._args import opt_str, str_arg
from mailscale.auth._dns import DNSClient, Lookup
from mailscale.auth._model import HostStatus, SPFResult
from mailscale.auth._spf_record import (
    MACRO_RE,
    MAX_LOOKUPS,
    MAX_MX_PTR_NAMES,
    MAX_VOID_LOOKUPS,
    QUALIFIERS,
    SPFTerm,
    is_spf,
    parse_spf,
)
from mailscale.errors import AuthCheckError

__all__ = ["MacroContext", "check_host_async", "expand_macros", "fetch_spf_async"]


@attrs.frozen
class MacroContext:
    ip: ipaddress.IPv4Address | ipaddress.IPv6Address
    sender: str
    domain: str
    helo: str


def expand_macros(value: str, ctx: MacroContext, *, domain: str | None = None) -> str:
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

    expanded = MACRO_RE.sub(replace, value)
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
    ctx: MacroContext
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


async def fetch_spf_async(dns: DNSClient, domain: str) -> tuple[Lookup, list[str]]:
    """The TXT lookup at ``domain`` and the SPF records among its answers."""
    lookup = await dns.query(domain, "TXT")
    return lookup, [r for r in lookup.records if is_spf(r)]


async def check_host_async(
    dns: DNSClient,
    ip: str,
    domain: str,
    *,
    sender: str | None = None,
    helo: str | None = None,
) -> tuple[SPFResult, str]:
    """Evaluate SPF for ``ip`` sending as ``sender`` (default ``postmaster@domain``).

    Returns:
        (result, reason): the RFC 7208 result, an :class:`SPFResult` (equal to its
        old string: ``"pass"``, ``"fail"``...), and a short explanation.
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
    ctx = MacroContext(addr, sender or f"postmaster@{domain}", domain, helo or domain)
    ev = _Evaluation(dns, ctx)
    try:
        result = await _check(ev, domain)
    except _PermError as exc:
        return SPFResult.PERMERROR, str(exc)
    except _TempError as exc:
        return SPFResult.TEMPERROR, str(exc)
    return result, ev.reason


async def _check(ev: _Evaluation, domain: str) -> SPFResult:
    labels = domain.rstrip(".").split(".")
    if len(labels) < 2 or any(not x or len(x) > 63 for x in labels):
        ev.reason = f"{domain!r} is not a valid domain"
        return SPFResult.NONE
    lookup, records = await fetch_spf_async(ev.dns, domain)
    if lookup.temporary:
        raise _TempError(lookup.describe())
    if not records:
        ev.reason = f"no SPF record at {domain}"
        return SPFResult.NONE
    if len(records) > 1:
        raise _PermError(f"{len(records)} SPF records at {domain}")
    try:
        record = parse_spf(records[0])
    except AuthCheckError as exc:
        raise _PermError(str(exc)) from None
    for term in record.directives:
        if await _matches(ev, term, domain):
            ev.reason = f"matched {term.text} at {domain}"
            return QUALIFIERS[term.qualifier]
    target = record.redirect
    if target is not None:
        ev.count()
        target = expand_macros(target, ev.ctx, domain=domain)
        result = await _check(ev, target)
        if result is SPFResult.NONE:
            raise _PermError(f"redirect target {target} has no SPF record")
        return result
    ev.reason = f"no term matched at {domain}"
    return SPFResult.NEUTRAL


async def _addresses(ev: _Evaluation, name: str, *, count_void: bool) -> list[str]:
    rdtype = "A" if ev.ctx.ip.version == 4 else "AAAA"
    lookup = await ev.dns.query(name, rdtype)
    if lookup.temporary:
        raise _TempError(lookup.describe())
    if lookup.status is HostStatus.INVALID_NAME:
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
        if result is SPFResult.PASS:
            return True
        if result is SPFResult.NONE:
            raise _PermError(f"include:{target} has no SPF record")
        if result in (SPFResult.PERMERROR, SPFResult.TEMPERROR):  # pragma: no cover - raised
            raise _PermError(result.value)
        return False
    if name == "a":
        return any(_in_network(ip, a, term) for a in await _addresses(ev, target, count_void=True))
    if name == "mx":
        lookup = await ev.dns.query(target, "MX")
        if lookup.temporary:
            raise _TempError(lookup.describe())
        if lookup.status is HostStatus.INVALID_NAME:
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
        if lookup.status is HostStatus.INVALID_NAME:
            # A macro-expanded name DNS cannot carry (a label over 63 octets): no such
            # name can exist, so the mechanism does not match (RFC 7208 4.3 treats a
            # malformed domain as having no records); asking again would not help, so
            # it is never temperror. An include/redirect to such a name gives "none",
            # hence permerror.
            return False
        ev.note_void(lookup)
        return lookup.status is HostStatus.OK
    if name == "ptr":
        lookup = await ev.dns.query(ip.reverse_pointer, "PTR")
        if lookup.temporary:
            return False  # RFC 7208 5.5: a PTR lookup error means no match
        ev.note_void(lookup)
        names = list(lookup.records)[:MAX_MX_PTR_NAMES]
        found = await asyncio.gather(*(_ptr_addresses(ev, n) for n in names))
        target = target.lower().rstrip(".")
        return any(
            (ptr_name == target or ptr_name.endswith("." + target))
            and (str(ip) in addrs or any(ipaddress.ip_address(a) == ip for a in addrs))
            for ptr_name, addrs in zip(names, found, strict=True)
        )
    raise _PermError(f"unknown mechanism {name}")  # pragma: no cover - parse_spf rejects
