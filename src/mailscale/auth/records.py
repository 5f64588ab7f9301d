"""Builders for the SPF, DKIM and DMARC records to publish.

Each builder validates its inputs, refuses records that receivers would
reject (an SPF record over 10 lookups, an unknown DMARC policy) and returns a
:class:`TXTRecord` whose strings are at most 255 bytes, ready for a zone file.
What they build parses back with the checks' own parsers.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

import attrs

from mailscale.auth._check import normalize_domain, run_sync
from mailscale.auth._dns import DNSClient, ResolverLike, make_resolver
from mailscale.auth._model import Severity
from mailscale.auth.dmarc import parse_dmarc
from mailscale.auth.spf import ESP_INCLUDES, MAX_LOOKUPS, SPFRecord, _Walk, _walk, parse_spf
from mailscale.errors import AuthCheckError
from mailscale.signing.keys import PrivateKey, PublicKey, dns_record_strings

__all__ = [
    "TXTRecord",
    "dkim_record",
    "dmarc_record",
    "report_authorization_record",
    "spf_record",
    "split_txt",
]

_ALL = ("-all", "~all", "?all")


@attrs.frozen
class TXTRecord:
    """A TXT record to publish.

    Attributes:
        name: the owner name (``@`` for the zone apex when no domain was given).
        strings: the character-strings, each at most 255 bytes; receivers join them.
    """

    name: str
    strings: tuple[str, ...]

    @property
    def value(self) -> str:
        """The record as receivers read it (the strings joined)."""
        return "".join(self.strings)

    def zone_line(self, ttl: int = 3600) -> str:
        """The record in zone-file syntax."""
        quoted = " ".join('"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'
                          for s in self.strings)
        name = self.name if self.name == "@" else self.name + "."
        return f"{name}\t{ttl}\tIN\tTXT\t{quoted}"

    def __str__(self) -> str:
        return self.value


def split_txt(value: str, limit: int = 255) -> tuple[str, ...]:
    """Split a TXT value into strings of at most ``limit`` bytes, at spaces when possible."""
    data = value.encode("ascii")
    out: list[str] = []
    while len(data) > limit:
        cut = data.rfind(b" ", 1, limit + 1)
        if cut <= 0:
            cut = limit
        out.append(data[:cut].decode("ascii"))
        data = data[cut:]
    out.append(data.decode("ascii"))
    return tuple(out)




def _owner(prefix: str, domain: str | None) -> str:
    if domain is None:
        return prefix or "@"
    d = normalize_domain(domain, "domain")
    return f"{prefix}.{d}" if prefix else d


def spf_record(
    *,
    ips: Iterable[str] = (),
    includes: Iterable[str] = (),
    esp: str | Iterable[str] | None = None,
    a: bool = False,
    mx: bool = False,
    all: str = "~all",
    domain: str | None = None,
    resolver: ResolverLike = None,
    count_includes: bool = False,
) -> TXTRecord:
    """Build an SPF record.

    Args:
        ips: addresses or networks (``203.0.113.7``, ``198.51.100.0/24``, IPv6 too).
        includes: domains to include.
        esp: ESP name(s) whose documented include to add (sendgrid, mailgun, postmark, ses).
        a: add ``a`` (the domain's own A/AAAA); mx: add ``mx``.
        all: ``~all`` (default), ``-all`` or ``?all``; ``+all`` is refused.
        domain: the owner name; ``@`` when None.
        count_includes: also count the lookups inside each include, through DNS
            (``resolver``, as for :func:`check_domain`), and refuse the record when the
            total passes 10 or an include has no usable SPF record.

    Raises:
        AuthCheckError: a malformed input, ``+all``, more than 10 DNS-querying terms,
            or (with ``count_includes``) an include that cannot be counted.
    """
    if all not in _ALL:
        raise AuthCheckError(f"all must be one of {', '.join(_ALL)}, not {all!r}")
    terms = ["v=spf1"]
    if a:
        terms.append("a")
    if mx:
        terms.append("mx")
    for ip in ips:
        try:
            net = ipaddress.ip_network(str(ip).strip(), strict=True)
        except ValueError as exc:
            raise AuthCheckError(f"bad SPF address {ip!r}: {exc}") from None
        kind = "ip4" if net.version == 4 else "ip6"
        text = str(net.network_address) if net.prefixlen == net.max_prefixlen else str(net)
        terms.append(f"{kind}:{text}")
    esps = [esp] if isinstance(esp, str) else list(esp or ())
    names = []
    for name in esps:
        if name.lower() not in ESP_INCLUDES:
            raise AuthCheckError(f"unknown ESP {name!r}; known: {', '.join(sorted(ESP_INCLUDES))}")
        names.append(ESP_INCLUDES[name.lower()])
    names.extend(normalize_domain(d, "include") for d in includes)
    for name in dict.fromkeys(names):
        terms.append(f"include:{name}")
    terms.append(all)
    record = parse_spf(" ".join(terms))
    lookups = record.lookup_terms
    if lookups > MAX_LOOKUPS:
        raise AuthCheckError(
            f"this SPF record needs {lookups} DNS-querying terms before counting its includes' "
            f"own; the limit is {MAX_LOOKUPS} (RFC 7208 4.6.4): list addresses instead")
    if count_includes:
        total = run_sync(_count_lookups(record, resolver))
        if total > MAX_LOOKUPS:
            raise AuthCheckError(
                f"this SPF record needs {total} DNS-querying terms counting its includes' own; "
                f"the limit is {MAX_LOOKUPS} (RFC 7208 4.6.4): list addresses instead")
    return TXTRecord(_owner("", domain), split_txt(record.text))


async def _count_lookups(record: SPFRecord, resolver: ResolverLike) -> int:
    """The lookups of ``record`` with every include followed; raises on broken includes."""
    includes = [t.text for t in record.terms if t.name == "include"]
    # Only the includes need DNS; the record's own terms are counted as they are.
    only_includes = parse_spf(" ".join(["v=spf1", *includes]))
    walk = _Walk(DNSClient(make_resolver(resolver)))
    below, _ = await _walk(walk, "(new record)", only_includes, ("(new record)",))
    total = below + record.lookup_terms - len(includes)
    problems = [f for f in walk.findings if f.severity is Severity.ERROR]
    if problems:
        raise AuthCheckError(f"cannot count the includes' lookups: {problems[0].message}")
    return total


def dkim_record(
    public_key: PublicKey | PrivateKey, *, selector: str | None = None, domain: str | None = None
) -> TXTRecord:
    """Build the DKIM key record of ``public_key`` (a private key's public half is used).

    The owner is ``selector._domainkey.domain`` (relative when domain is None).
    """
    from mailscale.auth.dkim import selector_name

    strings = tuple(dns_record_strings(public_key))
    if selector is None:
        name = "@" if domain is None else _owner("_domainkey", domain)
    elif domain is None:
        name = selector_name(selector, "x.invalid").removesuffix(".x.invalid")
    else:
        name = selector_name(selector, normalize_domain(domain, "domain"))
    return TXTRecord(name, strings)


def dmarc_record(
    policy: str = "none",
    *,
    rua: str | Iterable[str] = (),
    ruf: str | Iterable[str] = (),
    sp: str | None = None,
    pct: int | None = None,
    adkim: str | None = None,
    aspf: str | None = None,
    fo: str | None = None,
    domain: str | None = None,
) -> TXTRecord:
    """Build a DMARC record for ``_dmarc.<domain>``.

    Addresses in ``rua``/``ruf`` may be given with or without ``mailto:``.

    Raises:
        AuthCheckError: an unknown policy or alignment mode, a bad pct, a bad address.
    """
    tags = [("v", "DMARC1"), ("p", policy)]
    if sp is not None:
        tags.append(("sp", sp))
    if pct is not None:
        if isinstance(pct, bool) or not isinstance(pct, int):
            raise AuthCheckError(f"DMARC pct must be an integer 0-100, not {pct!r}")
        tags.append(("pct", str(pct)))
    for tag, value in (("rua", rua), ("ruf", ruf)):
        uris = [value] if isinstance(value, str) else list(value)
        if uris:
            fixed = [u if ":" in u else f"mailto:{u}" for u in (x.strip() for x in uris)]
            tags.append((tag, ",".join(fixed)))
    for tag, mode in (("adkim", adkim), ("aspf", aspf), ("fo", fo)):
        if mode is not None:
            tags.append((tag, mode))
    text = "; ".join(f"{k}={v}" for k, v in tags)
    if any(c in text for c in "\r\n"):
        raise AuthCheckError("DMARC values must not contain CR or LF")
    parse_dmarc(text)
    return TXTRecord(_owner("_dmarc", domain) if domain else "_dmarc", split_txt(text))


def report_authorization_record(domain: str, destination: str) -> TXTRecord:
    """The record ``destination`` publishes to accept DMARC reports about ``domain``.

    RFC 7489 section 7.1: ``<domain>._report._dmarc.<destination> TXT "v=DMARC1"``.
    """
    d = normalize_domain(domain, "domain")
    dest = normalize_domain(destination, "destination")
    return TXTRecord(f"{d}._report._dmarc.{dest}", ("v=DMARC1",))
