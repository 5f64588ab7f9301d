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

from mailscale._sync import run_sync
from mailscale.auth._args import normalize_domain, opt_str, str_arg, str_items
from mailscale.auth._dns import DNSClient, ResolverLike, make_resolver
from mailscale.auth._model import Severity
from mailscale.auth._spf_lint import count_lookups_async
from mailscale.auth._spf_record import ESP_INCLUDES, MAX_LOOKUPS, SPFRecord, parse_spf
from mailscale.auth.dmarc import parse_dmarc
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
        quoted = " ".join(
            '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"' for s in self.strings
        )
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
        ips: addresses or networks (``203.0.113.7``, ``198.51.100.0/24``, IPv6 too);
            a single string is one address.
        includes: domains to include (a single string is one domain).
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
    if not isinstance(all, str) or all not in _ALL:
        raise AuthCheckError(f"all must be one of {', '.join(_ALL)}, not {all!r}")
    for flag, value in (("a", a), ("mx", mx), ("count_includes", count_includes)):
        if not isinstance(value, bool):
            raise AuthCheckError(f"{flag} must be True or False, not {value!r}")
    ip_items = _ip_items(ips)
    esps = str_items(() if esp is None else esp, "esp")
    include_items = str_items(includes, "includes")
    terms = ["v=spf1"]
    if a:
        terms.append("a")
    if mx:
        terms.append("mx")
    for ip in ip_items:
        try:
            net = ipaddress.ip_network(str(ip).strip(), strict=True)
        except ValueError as exc:
            raise AuthCheckError(f"bad SPF address {ip!r}: {exc}") from None
        kind = "ip4" if net.version == 4 else "ip6"
        text = str(net.network_address) if net.prefixlen == net.max_prefixlen else str(net)
        terms.append(f"{kind}:{text}")
    names = []
    for name in esps:
        if name.lower() not in ESP_INCLUDES:
            raise AuthCheckError(f"unknown ESP {name!r}; known: {', '.join(sorted(ESP_INCLUDES))}")
        names.append(ESP_INCLUDES[name.lower()])
    names.extend(normalize_domain(d, "include") for d in include_items)
    for name in dict.fromkeys(names):
        terms.append(f"include:{name}")
    terms.append(all)
    record = parse_spf(" ".join(terms))
    lookups = record.lookup_terms
    if lookups > MAX_LOOKUPS:
        raise AuthCheckError(
            f"this SPF record needs {lookups} DNS-querying terms before counting its includes' "
            f"own; the limit is {MAX_LOOKUPS} (RFC 7208 4.6.4): list addresses instead"
        )
    if count_includes:
        total = run_sync(_count_lookups(record, resolver))
        if total > MAX_LOOKUPS:
            raise AuthCheckError(
                f"this SPF record needs {total} DNS-querying terms counting its includes' own; "
                f"the limit is {MAX_LOOKUPS} (RFC 7208 4.6.4): list addresses instead"
            )
    return TXTRecord(_owner("", domain), split_txt(record.text))


_IP_TYPES = (
    ipaddress.IPv4Address,
    ipaddress.IPv6Address,
    ipaddress.IPv4Network,
    ipaddress.IPv6Network,
)


def _ip_items(ips: object) -> list[object]:
    """The addresses of ``ips``: strings or ipaddress objects; one string is one address."""
    if isinstance(ips, str):
        return [ips]
    if isinstance(ips, (bytes, bytearray)) or not isinstance(ips, Iterable):
        raise AuthCheckError(f"ips must be a list of addresses, not {type(ips).__name__}")
    items = list(ips)
    for ip in items:
        if not isinstance(ip, (str, *_IP_TYPES)):
            raise AuthCheckError(f"ips must hold address strings, not {ip!r}")
    return items


async def _count_lookups(record: SPFRecord, resolver: ResolverLike) -> int:
    """The lookups of ``record`` with every include followed; raises on broken includes."""
    includes = [t.text for t in record.terms if t.name == "include"]
    # Only the includes need DNS; the record's own terms are counted as they are.
    only_includes = parse_spf(" ".join(["v=spf1", *includes]))
    below, findings = await count_lookups_async(
        DNSClient(make_resolver(resolver)), "(new record)", only_includes
    )
    total = below + record.lookup_terms - len(includes)
    problems = [f for f in findings if f.severity is Severity.ERROR]
    if problems:
        raise AuthCheckError(f"cannot count the includes' lookups: {problems[0].message}")
    return total


def dkim_record(
    public_key: PublicKey | PrivateKey, *, selector: str | None = None, domain: str | None = None
) -> TXTRecord:
    """Build the DKIM key record of ``public_key`` (a private key's public half is used).

    The owner is ``selector._domainkey.domain`` (relative when domain is None; ``@``
    when neither is given, for a zone of the selector's own).

    Raises:
        AuthCheckError: a domain without a selector, a bad selector, not a key.
    """
    from mailscale.auth.dkim import selector_name

    selector = opt_str(selector, "selector")
    domain = opt_str(domain, "domain")
    try:
        strings = tuple(dns_record_strings(public_key))
    except (TypeError, ValueError, AttributeError):
        raise AuthCheckError(
            f"public_key must be an RSA or Ed25519 key, not {type(public_key).__name__}"
        ) from None
    if selector is None:
        if domain is not None:
            raise AuthCheckError(
                "dkim_record needs a selector when a domain is given: the key lives at "
                "<selector>._domainkey.<domain>"
            )
        name = "@"
    elif domain is None:
        name = selector_name(selector, "x.invalid").removesuffix(".x.invalid")
    else:
        name = selector_name(selector, normalize_domain(domain, "domain"))
    return TXTRecord(name, strings)


_DMARC_CHOICES = {
    "p": ("none", "quarantine", "reject"),
    "sp": ("none", "quarantine", "reject"),
    "adkim": ("r", "s"),
    "aspf": ("r", "s"),
}
_FO_OPTIONS = ("0", "1", "d", "s")


def _dmarc_choice(tag: str, value: object) -> str:
    if not isinstance(value, str) or value.lower() not in _DMARC_CHOICES[tag]:
        raise AuthCheckError(
            f"DMARC {tag} must be one of {', '.join(_DMARC_CHOICES[tag])}, not {value!r}"
        )
    return value.lower()


def _dmarc_int(tag: str, value: object, high: int | None) -> str:
    if (
        isinstance(value, bool)
        or not isinstance(value, int)
        or value < 0
        or (high is not None and value > high)
    ):
        span = f"0-{high}" if high is not None else ">= 0"
        raise AuthCheckError(f"DMARC {tag} must be an integer {span}, not {value!r}")
    return str(value)


def _dmarc_fo(value: object) -> str:
    options = value.split(":") if isinstance(value, str) else None
    if not options or any(o not in _FO_OPTIONS for o in options):
        raise AuthCheckError(
            f"DMARC fo must be options 0, 1, d, s joined by ':' (e.g. '1:d'), not {value!r}"
        )
    return value  # type: ignore[return-value]


def _dmarc_uris(tag: str, value: object) -> list[str]:
    items = str_items(value, tag)
    out = []
    for item in items:
        uri = item.strip()
        if not uri or any(c in uri for c in ";,") or any(c.isspace() for c in uri):
            raise AuthCheckError(
                f"DMARC {tag}: {item!r} is not one address or URI (no ';', ',' or spaces)"
            )
        out.append(uri if ":" in uri else f"mailto:{uri}")
    return out


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
    ri: int | None = None,
    domain: str | None = None,
) -> TXTRecord:
    """Build a DMARC record for ``_dmarc.<domain>``.

    Every value is validated on its own, so none can carry another tag. Addresses in
    ``rua``/``ruf`` (one string or a list) may be given with or without ``mailto:``.

    Raises:
        AuthCheckError: a value of the wrong type or outside its tag's grammar; the
            message names the tag.
    """
    tags = [("v", "DMARC1"), ("p", _dmarc_choice("p", policy))]
    if sp is not None:
        tags.append(("sp", _dmarc_choice("sp", sp)))
    if pct is not None:
        tags.append(("pct", _dmarc_int("pct", pct, 100)))
    for tag, value in (("rua", rua), ("ruf", ruf)):
        uris = _dmarc_uris(tag, value)
        if uris:
            tags.append((tag, ",".join(uris)))
    for tag, mode in (("adkim", adkim), ("aspf", aspf)):
        if mode is not None:
            tags.append((tag, _dmarc_choice(tag, mode)))
    if fo is not None:
        tags.append(("fo", _dmarc_fo(fo)))
    if ri is not None:
        tags.append(("ri", _dmarc_int("ri", ri, None)))
    text = "; ".join(f"{k}={v}" for k, v in tags)
    parse_dmarc(text)
    return TXTRecord(_owner("_dmarc", domain) if domain else "_dmarc", split_txt(text))


def report_authorization_record(domain: str, destination: str) -> TXTRecord:
    """The record ``destination`` publishes to accept DMARC reports about ``domain``.

    RFC 7489 section 7.1: ``<domain>._report._dmarc.<destination> TXT "v=DMARC1"``.
    """
    str_arg(domain, "domain")
    str_arg(destination, "destination")
    d = normalize_domain(domain, "domain")
    dest = normalize_domain(destination, "destination")
    return TXTRecord(f"{d}._report._dmarc.{dest}", ("v=DMARC1",))
