"""A small authoritative DNS server on loopback (UDP, dnslib), for MX delivery tests.

Records are written in zone-file syntax; names not in the zone answer
NXDOMAIN, names listed in ``servfail`` answer SERVFAIL.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import dns.resolver
from dnslib import QTYPE, RCODE, RR, DNSRecord
from dnslib.server import BaseResolver, DNSServer

__all__ = ["ZoneServer"]


class _Quiet:
    """A dnslib logger that logs nothing (dnslib prints to stdout by default)."""

    def __getattr__(self, name: str) -> Any:
        return lambda *args, **kwargs: None


class _ZoneResolver(BaseResolver):  # type: ignore[misc]
    def __init__(self, records: list[RR], servfail: set[str]) -> None:
        self.records = records
        self.servfail = servfail
        self.queries: list[tuple[str, str]] = []

    def resolve(self, request: DNSRecord, handler: Any) -> DNSRecord:
        reply = request.reply()
        qname = str(request.q.qname).rstrip(".").lower()
        self.queries.append((qname, QTYPE[request.q.qtype]))
        if qname in self.servfail:
            reply.header.rcode = RCODE.SERVFAIL
            return reply
        owned = [rr for rr in self.records if str(rr.rname).rstrip(".").lower() == qname]
        if not owned:
            reply.header.rcode = RCODE.NXDOMAIN
            return reply
        for rr in owned:
            if rr.rtype == request.q.qtype:
                reply.add_answer(rr)
        return reply


class ZoneServer:
    """Serves the given zone lines on 127.0.0.1 (a free UDP port) while running."""

    def __init__(self, zone: str, *, servfail: Iterable[str] = ()) -> None:
        records = RR.fromZone(zone)
        self.resolver = _ZoneResolver(records, {s.lower() for s in servfail})
        self._server = DNSServer(self.resolver, address="127.0.0.1", port=0, logger=_Quiet())
        self.port = int(self._server.server.server_address[1])

    @property
    def queries(self) -> list[tuple[str, str]]:
        """Every (name, type) asked, in order."""
        return self.resolver.queries

    def start(self) -> ZoneServer:
        self._server.start_thread()
        return self

    def stop(self) -> None:
        self._server.stop()
        self._server.server.server_close()

    def client(self, lifetime: float = 2.0) -> dns.resolver.Resolver:
        """A dnspython resolver that asks only this server."""
        resolver = dns.resolver.Resolver(configure=False)
        resolver.nameservers = ["127.0.0.1"]
        resolver.port = self.port
        resolver.lifetime = lifetime
        resolver.timeout = lifetime
        return resolver
