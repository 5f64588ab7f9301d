"""Concurrent DNS lookups that keep "no record" apart from "could not ask".

Every lookup ends in one :class:`Lookup` whose ``status`` says what DNS said:
``ok`` (records, possibly after CNAMEs), ``nodata`` (the name exists, no
records of that type), ``nxdomain`` (the name does not exist), ``servfail``,
``timeout`` or ``error``; ``invalid_name`` when the name cannot be asked
at all (a label over 63 octets, a name over 255); or ``budget`` when the
check's :class:`DNSBudget` was used up before it was asked. ``servfail``,
``timeout``, ``error`` and ``budget`` are temporary: the record may well exist,
so callers must never report them as missing. ``invalid_name`` is permanent:
asking again never helps, and no such record can exist.

One :class:`DNSClient` serves one check: identical queries made at the same
time share one request, and answers are kept for the rest of the check. The
budget bounds the check as a whole: the queries it sends, the time in which it
may start one, and the bytes of the answers it keeps (so also its cache).
"""

from __future__ import annotations

import asyncio
import ipaddress
import time
from collections.abc import Iterable, Sequence
from typing import Any

import attrs
import dns.asyncresolver
import dns.exception
import dns.name
import dns.nameserver
import dns.rdatatype
import dns.resolver

from mailscale.auth._args import opt_number
from mailscale.auth._model import HostStatus
from mailscale.errors import AuthCheckError

__all__ = [
    "DNSBudget",
    "DNSClient",
    "Lookup",
    "ResolverLike",
    "make_resolver",
    "parse_nameserver",
]


#: What ``resolver=`` accepts: a configured dnspython resolver (sync or async),
#: ``"host"`` / ``"host:port"`` / ``"[v6]:port"``, or a list of those strings.
ResolverLike = dns.asyncresolver.Resolver | dns.resolver.Resolver | str | Sequence[str] | None

TEMPORARY: frozenset[HostStatus] = frozenset(
    {HostStatus.SERVFAIL, HostStatus.TIMEOUT, HostStatus.ERROR, HostStatus.BUDGET}
)
#: No records: NXDOMAIN or no data (a void lookup, RFC 7208 4.6.4).
VOID: frozenset[HostStatus] = frozenset({HostStatus.NODATA, HostStatus.NXDOMAIN})


def _digits(text: str) -> bool:
    """True for a non-empty run of ASCII digits (str.isdigit also takes "²")."""
    return text.isascii() and text.isdigit()


@attrs.frozen
class Lookup:
    """The outcome of one DNS query.

    Attributes:
        name: the name asked about (without the final dot).
        rdtype: the record type (``"TXT"``, ``"A"``...).
        status: a :class:`~mailscale.auth.HostStatus`, the one enum of DNS outcomes:
            ``ok``, ``nodata``, ``nxdomain``, ``servfail``, ``timeout``, ``error``,
            ``invalid_name`` (not a valid DNS name; nothing was sent) or ``budget`` (the
            budget was used up; nothing was sent); never ``none`` or ``not checked``,
            which only an MX host has.
        records: presentation-form values for A/AAAA/MX/PTR/CNAME; for TXT,
            each record's character-strings joined (RFC 7208 section 3.3).
        strings: for TXT, each record's character-strings as sent.
        detail: the resolver's message when status is a temporary error.
    """

    name: str
    rdtype: str
    status: HostStatus = attrs.field(converter=HostStatus)
    records: tuple[str, ...] = ()
    strings: tuple[tuple[bytes, ...], ...] = ()
    mx: tuple[tuple[int, str], ...] = ()
    detail: str = ""

    @property
    def temporary(self) -> bool:
        """True when DNS could not be asked (SERVFAIL, time-out, other failure)."""
        return self.status in TEMPORARY

    @property
    def void(self) -> bool:
        """True for an answer with no records: NXDOMAIN or no data (RFC 7208 4.6.4)."""
        return self.status in VOID

    def describe(self) -> str:
        """A short phrase for messages: ``SERVFAIL at x`` / ``no TXT record at x``."""
        if self.status is HostStatus.SERVFAIL:
            return f"SERVFAIL for {self.rdtype} at {self.name} (temporary DNS error)"
        if self.status is HostStatus.TIMEOUT:
            return f"time-out for {self.rdtype} at {self.name} (temporary DNS error)"
        if self.status is HostStatus.ERROR:
            return f"DNS failure for {self.rdtype} at {self.name}: {self.detail}"
        if self.status is HostStatus.INVALID_NAME:
            return f"{self.name} is not a valid DNS name ({self.detail})"
        if self.status is HostStatus.BUDGET:
            return f"{self.rdtype} at {self.name} not looked up: {self.detail}"
        if self.status is HostStatus.NXDOMAIN:
            return f"{self.name} does not exist (NXDOMAIN)"
        if self.status is HostStatus.NODATA:
            return f"no {self.rdtype} record at {self.name}"
        return f"{len(self.records)} {self.rdtype} record(s) at {self.name}"


def parse_nameserver(text: str, what: str = "nameserver") -> tuple[str, int]:
    """``(address, port)`` from ``host``, ``host:port`` or ``[v6]:port``.

    Raises:
        AuthCheckError: not of that form; the message starts with ``what`` (a flag name).
    """
    text = text.strip()
    host, port = text, 53
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        if rest:
            if not rest.startswith(":"):
                raise AuthCheckError(f"{what} {text!r}: expected [address]:port")
            port = _port(text, rest[1:], what)
    elif text.count(":") == 1:
        host, _, p = text.partition(":")
        port = _port(text, p, what)
    try:
        ipaddress.ip_address(host)
    except ValueError:
        raise AuthCheckError(f"{what} {text!r}: not an IP address") from None
    return host, port


def _port(text: str, value: str, what: str) -> int:
    if not _digits(value) or not 0 < int(value) < 65536:
        raise AuthCheckError(f"{what} {text!r}: port must be 1-65535")
    return int(value)


def make_resolver(
    resolver: ResolverLike = None, *, timeout: float | None = None, lifetime: float | None = None
) -> dns.asyncresolver.Resolver:
    """An asyncio resolver from whatever ``resolver=`` was given.

    A sync ``dns.resolver.Resolver`` lends its nameservers, port and time-outs;
    an async one is used as it is (unless ``timeout``/``lifetime`` are given).
    Strings name nameservers as ``host`` or ``host:port``.
    """
    if isinstance(resolver, dns.asyncresolver.Resolver):
        out = resolver
    elif isinstance(resolver, dns.resolver.BaseResolver):
        out = dns.asyncresolver.Resolver(configure=False)
        out.nameservers = list(resolver.nameservers)
        out.port = resolver.port
        out.timeout = resolver.timeout
        out.lifetime = resolver.lifetime
        out.search = []
        out.use_search_by_default = False
        out.edns = resolver.edns
        out.ednsflags = resolver.ednsflags
        out.payload = resolver.payload
    elif resolver is None:
        try:
            out = dns.asyncresolver.Resolver()
        except dns.resolver.NoResolverConfiguration as exc:
            raise AuthCheckError(f"no system DNS configuration: {exc}") from None
    else:
        if isinstance(resolver, str):
            entries: list[object] = [resolver]
        elif isinstance(resolver, (bytes, bytearray)) or not isinstance(resolver, Iterable):
            raise AuthCheckError(
                "resolver must be a dnspython resolver or 'host[:port]' strings, "
                f"not {type(resolver).__name__}"
            )
        else:
            entries = list(resolver)
        if not entries or not all(isinstance(e, str) for e in entries):
            raise AuthCheckError("resolver must be a dnspython resolver or 'host[:port]' strings")
        out = dns.asyncresolver.Resolver(configure=False)
        out.nameservers = [
            dns.nameserver.Do53Nameserver(host, port)
            for host, port in (parse_nameserver(str(e)) for e in entries)
        ]
    timeout = opt_number(timeout, "timeout", positive=True)
    lifetime = opt_number(lifetime, "lifetime", positive=True)
    if timeout is not None or lifetime is not None:
        if out is resolver:
            # Never change a resolver the caller owns.
            copy = dns.asyncresolver.Resolver(configure=False)
            copy.nameservers = list(out.nameservers)
            copy.port = out.port
            copy.edns, copy.ednsflags, copy.payload = out.edns, out.ednsflags, out.payload
            out = copy
        if timeout is not None:
            out.timeout = timeout
        if lifetime is not None:
            out.lifetime = lifetime
    return out


def _positive_int(inst: object, attribute: attrs.Attribute[int], value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise AuthCheckError(
            f"DNSBudget.{attribute.name} must be a whole number >= 1, not {value!r}"
        )


def _positive_seconds(inst: object, attribute: attrs.Attribute[float], value: object) -> None:
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or not 0 < float(value) < float("inf")
    ):
        raise AuthCheckError(
            f"DNSBudget.{attribute.name} must be a positive number of seconds, not {value!r}"
        )


@attrs.frozen(kw_only=True)
class DNSBudget:
    """What one check may spend on DNS; a lookup beyond it is not sent (status ``budget``).

    The RFC 7208 limits bound SPF by themselves (10 DNS-querying terms, 2 void
    lookups, 10 names per ``mx``/``ptr``), and the other checks ask at most 10 names
    each for MX hosts, PTR names and DMARC report destinations; this budget is the
    bound on the whole check, whatever the zones hold.

    Attributes:
        max_queries: lookups sent (a lookup that falls back from UDP to TCP, or that
            the resolver retries after a time-out, is one).
        max_seconds: time after the first lookup in which a new one may start; a
            lookup already started ends within the resolver's ``lifetime``, so a
            check takes at most ``max_seconds`` + ``lifetime``.
        max_answer_bytes: bytes of record data kept from answers (the check's cache);
            the answer that passes it is kept, later lookups are not sent, so the
            cache holds at most this plus one answer (64 KiB).
    """

    max_queries: int = attrs.field(default=200, validator=_positive_int)
    max_seconds: float = attrs.field(default=30.0, validator=_positive_seconds)
    max_answer_bytes: int = attrs.field(default=1 << 20, validator=_positive_int)


def _size(lookup: Lookup) -> int:
    """Bytes of record data a lookup holds (its strings are counted once)."""
    strings = sum(len(b) for record in lookup.strings for b in record)
    return len(lookup.name) + sum(len(r) for r in lookup.records) + strings + 8 * len(lookup.mx)


class DNSClient:
    """Asynchronous lookups for one check, with in-flight sharing, a cache and a budget.

    The cache holds at most ``budget.max_queries`` entries and
    ``budget.max_answer_bytes`` (plus one answer) of record data; lookups refused by
    the budget are not cached.
    """

    def __init__(
        self,
        resolver: dns.asyncresolver.Resolver,
        budget: DNSBudget | None = None,
        *,
        clock: Any = time.monotonic,
    ) -> None:
        if budget is not None and not isinstance(budget, DNSBudget):
            raise AuthCheckError(f"budget must be a DNSBudget, not {type(budget).__name__}")
        self.resolver = resolver
        self.budget = budget or DNSBudget()
        self._clock = clock
        self._cache: dict[tuple[str, str], asyncio.Task[Lookup]] = {}
        self._started: float | None = None
        self.queries = 0
        self.answer_bytes = 0
        #: Why the budget stopped the check (None while it has not).
        self.exhausted: str | None = None
        #: Lookups refused by the budget.
        self.refused = 0

    def _refusal(self) -> str | None:
        budget = self.budget
        if self.exhausted is not None:
            return self.exhausted
        now = self._clock()
        if self._started is None:
            self._started = now
        if self.queries >= budget.max_queries:
            self.exhausted = f"the check's budget of {budget.max_queries} DNS queries is used up"
        elif now - self._started >= budget.max_seconds:
            self.exhausted = f"the check's DNS time budget of {budget.max_seconds:g} s is used up"
        return self.exhausted

    async def query(self, name: str, rdtype: str) -> Lookup:
        """Look ``name`` up; concurrent identical queries share one request."""
        key = (name.rstrip(".").lower(), rdtype.upper())
        task = self._cache.get(key)
        if task is None:
            reason = self._refusal()
            if reason is not None:
                self.refused += 1
                return Lookup(key[0], key[1], HostStatus.BUDGET, detail=reason)
            self.queries += 1  # counted here: the task starts later
            task = asyncio.ensure_future(self._query(*key))
            self._cache[key] = task
        return await asyncio.shield(task)

    async def _query(self, name: str, rdtype: str) -> Lookup:
        lookup = await self._ask(name, rdtype)
        self.answer_bytes += _size(lookup)
        if self.answer_bytes > self.budget.max_answer_bytes and self.exhausted is None:
            self.exhausted = (
                f"the check's budget of {self.budget.max_answer_bytes} bytes "
                "of DNS answers is used up"
            )
        return lookup

    async def _ask(self, name: str, rdtype: str) -> Lookup:
        try:
            qname = dns.name.from_text(name)
        except dns.exception.DNSException as exc:
            # RFC 1035 2.3.4: labels of at most 63 octets, names of at most 255.
            return Lookup(name, rdtype, HostStatus.INVALID_NAME, detail=str(exc).rstrip("."))
        try:
            answer = await self.resolver.resolve(
                qname, rdtype, raise_on_no_answer=False, search=False
            )
        except dns.resolver.NXDOMAIN:
            return Lookup(name, rdtype, HostStatus.NXDOMAIN)
        except dns.resolver.NoNameservers as exc:
            return Lookup(name, rdtype, _failure_status(exc), detail=_first_error(exc))
        except dns.exception.Timeout:
            return Lookup(name, rdtype, HostStatus.TIMEOUT, detail="no answer in time")
        except dns.exception.DNSException as exc:
            return Lookup(name, rdtype, HostStatus.ERROR, detail=str(exc))
        except OSError as exc:
            return Lookup(name, rdtype, HostStatus.ERROR, detail=str(exc))
        rrset = answer.rrset
        if rrset is None or len(rrset) == 0:
            return Lookup(name, rdtype, HostStatus.NODATA)
        return _to_lookup(name, rdtype, rrset)


def _failure_status(exc: dns.resolver.NoNameservers) -> HostStatus:
    errors: list[Any] = exc.kwargs.get("errors", []) if exc.kwargs else []
    texts = [str(e[3]) for e in errors if len(e) > 3]
    if texts and all("SERVFAIL" in t for t in texts):
        return HostStatus.SERVFAIL
    if texts and all("timed out" in t for t in texts):
        return HostStatus.TIMEOUT
    if any("SERVFAIL" in t for t in texts):
        return HostStatus.SERVFAIL
    return HostStatus.ERROR


def _first_error(exc: dns.resolver.NoNameservers) -> str:
    errors: list[Any] = exc.kwargs.get("errors", []) if exc.kwargs else []
    return str(errors[0][3]) if errors and len(errors[0]) > 3 else str(exc)


def _to_lookup(name: str, rdtype: str, rrset: Any) -> Lookup:
    kind = dns.rdatatype.to_text(rrset.rdtype)
    if kind == "TXT":
        strings = tuple(tuple(rd.strings) for rd in rrset)
        records = tuple(b"".join(s).decode("utf-8", "replace") for s in strings)
        return Lookup(name, rdtype, HostStatus.OK, records=records, strings=strings)
    if kind == "MX":
        mx = tuple(
            sorted((rd.preference, rd.exchange.to_text().rstrip(".").lower()) for rd in rrset)
        )
        return Lookup(name, rdtype, HostStatus.OK, records=tuple(h for _, h in mx), mx=mx)
    if kind in ("PTR", "CNAME"):
        targets = tuple(rd.target.to_text().rstrip(".").lower() for rd in rrset)
        return Lookup(name, rdtype, HostStatus.OK, records=targets)
    return Lookup(name, rdtype, HostStatus.OK, records=tuple(rd.to_text() for rd in rrset))
