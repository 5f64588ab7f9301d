"""A small authoritative DNS server on loopback, for the auth and mx tests.

It serves zones written in Python (:class:`Zone`) or in zone-file syntax
(:meth:`Zone.from_text`) over UDP and TCP on the same free port of 127.0.0.1.
Answers larger than the client's UDP payload size are sent truncated (TC set)
so that resolvers retry over TCP, as on the internet.
A name can be made to answer SERVFAIL, or never to answer at all (a time-out).
Parsing and packing is dnslib's; the sockets are plain ``socketserver``.
"""

from __future__ import annotations

import socket
import socketserver
import struct
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import dns.resolver
from dnslib import (
    AAAA,
    CNAME,
    MX,
    PTR,
    QTYPE,
    RCODE,
    RR,
    SOA,
    TXT,
    A,
    DNSRecord,
)

__all__ = ["DNSServer", "Zone", "reverse_name"]


def _norm(name: str) -> str:
    return name.rstrip(".").lower()


def reverse_name(ip: str) -> str:
    """The in-addr.arpa / ip6.arpa name of an address."""
    import ipaddress

    return ipaddress.ip_address(ip).reverse_pointer


@dataclass
class Zone:
    """Records to serve, by owner name; plus names that fail on purpose."""

    records: dict[str, list[tuple[int, object]]] = field(default_factory=dict)
    servfail: set[str] = field(default_factory=set)
    silent: set[str] = field(default_factory=set)
    ttl: int = 300
    #: Records made on demand for every name under a suffix (zones too large to list).
    generated: dict[str, Callable[[str], list[tuple[int, object]]]] = field(default_factory=dict)

    @classmethod
    def from_text(cls, text: str) -> Zone:
        """A zone from lines in zone-file syntax (``pref.test. 300 IN MX 5 primary.pref.test.``)."""
        zone = cls()
        for rr in RR.fromZone(text):
            zone.records.setdefault(_norm(str(rr.rname)), []).append((rr.rtype, rr.rdata))
        return zone

    def add(self, name: str, qtype: str, rdata: object) -> Zone:
        self.records.setdefault(_norm(name), []).append((getattr(QTYPE, qtype), rdata))
        return self

    def txt(self, name: str, *strings: str | bytes) -> Zone:
        """One TXT record made of the given character-strings."""
        data = [s.encode() if isinstance(s, str) else s for s in strings]
        return self.add(name, "TXT", TXT(data))

    def a(self, name: str, *ips: str) -> Zone:
        for ip in ips:
            self.add(name, "AAAA" if ":" in ip else "A", AAAA(ip) if ":" in ip else A(ip))
        return self

    def mx(self, name: str, preference: int, host: str) -> Zone:
        return self.add(name, "MX", MX(host, preference))

    def cname(self, name: str, target: str) -> Zone:
        return self.add(name, "CNAME", CNAME(target))

    def ptr(self, ip: str, *hosts: str) -> Zone:
        for host in hosts:
            self.add(reverse_name(ip), "PTR", PTR(host))
        return self

    def fail(self, name: str) -> Zone:
        """Answer SERVFAIL for every query at ``name``."""
        self.servfail.add(_norm(name))
        return self

    def hang(self, name: str) -> Zone:
        """Never answer queries at ``name`` (the client times out)."""
        self.silent.add(_norm(name))
        return self

    def generate(self, suffix: str, records: Callable[[str], list[tuple[int, object]]]) -> Zone:
        """Answer every name at or under ``suffix`` with ``records(name)``: (QTYPE, rdata)."""
        self.generated[_norm(suffix)] = records
        return self

    def _records(self, name: str) -> list[tuple[int, object]]:
        for suffix, make in self.generated.items():
            if name == suffix or name.endswith("." + suffix):
                return make(name)
        return self.records.get(name, [])

    def merge(self, other: Zone) -> Zone:
        for name, rrs in other.records.items():
            self.records.setdefault(name, []).extend(rrs)
        self.servfail |= other.servfail
        self.silent |= other.silent
        self.generated.update(other.generated)
        return self

    def _exists(self, name: str) -> bool:
        # A name exists when it owns records or is an empty non-terminal.
        suffix = "." + name
        return (
            name in self.records
            or any(n.endswith(suffix) for n in self.records)
            or any(name == g or name.endswith("." + g) for g in self.generated)
        )

    def answer(self, query: DNSRecord) -> DNSRecord | None:
        """The reply to ``query``, or None to stay silent."""
        reply = query.reply(aa=1, ra=0)
        qname = _norm(str(query.q.qname))
        qtype = query.q.qtype
        if qname in self.silent:
            return None
        if qname in self.servfail:
            reply.header.rcode = RCODE.SERVFAIL
            return reply
        name = qname
        for _ in range(8):  # chase CNAMEs inside the zone
            rrs = self._records(name)
            cnames = [rd for t, rd in rrs if t == QTYPE.CNAME]
            if cnames and qtype != QTYPE.CNAME:
                reply.add_answer(RR(name, QTYPE.CNAME, rdata=cnames[0], ttl=self.ttl))
                name = _norm(str(cnames[0].label))
                if name in self.silent:
                    return None
                if name in self.servfail:
                    reply.header.rcode = RCODE.SERVFAIL
                    return reply
                continue
            matches = [rd for t, rd in rrs if t == qtype or qtype == QTYPE.ANY]
            for rd in matches:
                rtype = next(t for t, r in rrs if r is rd)
                reply.add_answer(RR(name, rtype, rdata=rd, ttl=self.ttl))
            if not matches:
                if not self._exists(name):
                    reply.header.rcode = RCODE.NXDOMAIN
                reply.add_auth(
                    RR(
                        name,
                        QTYPE.SOA,
                        rdata=SOA("ns.test", "hostmaster.test", (1, 3600, 600, 86400, 60)),
                        ttl=self.ttl,
                    )
                )
            return reply
        return reply


class _UDPHandler(socketserver.BaseRequestHandler):
    server: _UDPServer

    def handle(self) -> None:
        data, sock = self.request
        packet = self.server.dns.respond(data, udp=True)
        if packet is not None:
            sock.sendto(packet, self.client_address)


class _TCPHandler(socketserver.BaseRequestHandler):
    server: _TCPServer

    def handle(self) -> None:
        sock: socket.socket = self.request
        sock.settimeout(5)
        try:
            while True:
                head = _recv_exact(sock, 2)
                if head is None:
                    return
                data = _recv_exact(sock, struct.unpack("!H", head)[0])
                if data is None:
                    return
                packet = self.server.dns.respond(data, udp=False)
                if packet is None:
                    return
                sock.sendall(struct.pack("!H", len(packet)) + packet)
        except OSError:
            return


def _recv_exact(sock: socket.socket, n: int) -> bytes | None:
    buf = b""
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            return None
        buf += chunk
    return buf


class _UDPServer(socketserver.ThreadingUDPServer):
    daemon_threads = True
    allow_reuse_address = False
    dns: DNSServer


class _TCPServer(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True
    dns: DNSServer


class DNSServer:
    """Serve a :class:`Zone` on 127.0.0.1 (UDP and TCP, same port).

    Use as a context manager, or call :meth:`start` and :meth:`stop`.
    ``queries`` records every (name, type, transport) received, for tests
    that count lookups; :meth:`client` is a resolver that asks only this server.
    """

    def __init__(self, zone: Zone, *, port: int = 0) -> None:
        self.zone = zone
        self.host = "127.0.0.1"
        self.port = port
        self.queries: list[tuple[str, str, str]] = []
        self._lock = threading.Lock()
        self._servers: list[socketserver.BaseServer] = []
        self._threads: list[threading.Thread] = []

    @property
    def nameserver(self) -> str:
        """``host:port`` as the CLI's ``--nameserver`` takes it."""
        return f"{self.host}:{self.port}"

    def client(self, lifetime: float = 2.0) -> dns.resolver.Resolver:
        """A dnspython resolver that asks only this server."""
        resolver = dns.resolver.Resolver(configure=False)
        resolver.nameservers = [self.host]
        resolver.port = self.port
        resolver.lifetime = lifetime
        resolver.timeout = lifetime
        return resolver

    def respond(self, data: bytes, *, udp: bool) -> bytes | None:
        try:
            query = DNSRecord.parse(data)
        except Exception:  # a malformed packet gets no answer, as on a real server
            return None
        with self._lock:
            self.queries.append(
                (_norm(str(query.q.qname)), QTYPE.get(query.q.qtype), "udp" if udp else "tcp")
            )
        reply = self.zone.answer(query)
        if reply is None:
            return None
        packet = reply.pack()
        if udp:
            limit = 512
            for rr in query.ar:
                if rr.rtype == QTYPE.OPT:
                    limit = max(512, rr.rclass)
            if len(packet) > limit:
                truncated = query.reply(aa=1, ra=0)
                truncated.header.tc = 1
                packet = truncated.pack()
        return packet

    def start(self) -> DNSServer:
        for _ in range(20):
            udp = _UDPServer((self.host, self.port), _UDPHandler)
            port = udp.server_address[1]
            try:
                tcp = _TCPServer((self.host, port), _TCPHandler)
            except OSError:
                udp.server_close()
                continue
            break
        else:  # pragma: no cover - needs 20 port clashes in a row
            raise RuntimeError("no free loopback port for UDP and TCP")
        udp.dns = self
        tcp.dns = self
        self.port = port
        self._servers = [udp, tcp]
        for server in self._servers:
            thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
            thread.daemon = True
            thread.start()
            self._threads.append(thread)
        return self

    def stop(self) -> None:
        for server in self._servers:
            server.shutdown()
            server.server_close()
        for thread in self._threads:
            thread.join(timeout=2)
        self._servers = []
        self._threads = []

    def __enter__(self) -> DNSServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def zone_from(records: Iterable[tuple[str, str, str]]) -> Zone:
    """A zone from (name, type, value) triples, for short ad-hoc zones."""
    zone = Zone()
    for name, qtype, value in records:
        if qtype == "TXT":
            zone.txt(name, value)
        elif qtype in ("A", "AAAA"):
            zone.a(name, value)
        elif qtype == "CNAME":
            zone.cname(name, value)
        else:
            raise ValueError(f"unsupported type {qtype}")
    return zone
