"""The zones the authentication tests are served from.

Names live under example.com, example.net and .test; addresses are in the
documentation ranges (192.0.2.0/24, 198.51.100.0/24, 203.0.113.0/24). They are
DNS data only: nothing ever connects to them.
"""

from __future__ import annotations

import attrs
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

from mailscale.signing.keys import dns_record_strings, generate_key
from peers.dns_server import Zone

GOOD = "good.example.com"
GOOD_IPS = ("203.0.113.7", "203.0.113.8")
GOOD_SELECTORS = ("s1", "s2")
FCRDNS_FAIL_IP = "203.0.113.9"
NO_PTR_IP = "203.0.113.10"
REPORTS = "dmarc.example.net"
LONG_DEST = ".".join(c * 60 for c in "abc") + "." + "d" * 40 + ".example.net"


@attrs.frozen
class Keys:
    rsa2048: rsa.RSAPrivateKey
    rsa1024: rsa.RSAPrivateKey
    ed: ed25519.Ed25519PrivateKey
    rsa512_public: rsa.RSAPublicKey
    other: rsa.RSAPrivateKey


def make_keys() -> Keys:
    k2048 = generate_key("rsa", 2048)
    k1024 = generate_key("rsa", 1024)
    ed = generate_key("ed25519")
    other = generate_key("rsa", 1024)
    assert isinstance(k2048, rsa.RSAPrivateKey) and isinstance(k1024, rsa.RSAPrivateKey)
    assert isinstance(ed, ed25519.Ed25519PrivateKey) and isinstance(other, rsa.RSAPrivateKey)
    # cryptography will not generate a 512-bit key; a public one only needs a 512-bit modulus.
    small = rsa.RSAPublicNumbers(65537, (1 << 511) | 0xB3D5).public_key()
    return Keys(k2048, k1024, ed, small, other)


def _healthy(zone: Zone, keys: Keys) -> None:
    zone.txt(GOOD, "v=spf1 ip4:203.0.113.7 ip4:203.0.113.8 include:sendgrid.net -all")
    zone.txt(GOOD, "google-site-verification=not-an-spf-record")
    zone.txt("sendgrid.net", "v=spf1 ip4:198.51.100.0/24 -all")
    zone.txt("mailgun.org", "v=spf1 ip4:198.51.100.128/25 ~all")
    zone.txt(f"s1._domainkey.{GOOD}", *dns_record_strings(keys.rsa2048))
    zone.txt(f"s2._domainkey.{GOOD}", *dns_record_strings(keys.ed))
    zone.txt(f"_dmarc.{GOOD}", "v=DMARC1; p=reject; rua=mailto:dmarc@good.example.com; adkim=r")
    zone.mx(GOOD, 10, f"mx1.{GOOD}").mx(GOOD, 20, f"mx2.{GOOD}")
    zone.a(f"mx1.{GOOD}", "192.0.2.25").a(f"mx2.{GOOD}", "192.0.2.26", "2001:db8::26")
    zone.a(f"mail1.{GOOD}", "203.0.113.7").a(f"mail2.{GOOD}", "203.0.113.8")
    zone.ptr("203.0.113.7", f"mail1.{GOOD}").ptr("203.0.113.8", f"mail2.{GOOD}")
    # FCrDNS failure: the PTR name resolves to another address.
    zone.a(f"mail6.{GOOD}", "2001:db8::7").ptr("2001:db8::7", f"mail6.{GOOD}")
    zone.ptr(FCRDNS_FAIL_IP, f"mail9.{GOOD}").a(f"mail9.{GOOD}", "203.0.113.99")
    # A subdomain with no DMARC record of its own (organizational-domain fallback).
    zone.txt(f"news.{GOOD}", "v=spf1 ip4:203.0.113.7 -all")


def _spf(zone: Zone) -> None:
    # An include chain 11 deep: 11 DNS-querying terms.
    zone.txt("chain.example.net", "v=spf1 include:l1.chain.example.net -all")
    for i in range(1, 11):
        zone.txt(f"l{i}.chain.example.net", f"v=spf1 include:l{i + 1}.chain.example.net -all")
    zone.txt("l11.chain.example.net", "v=spf1 ip4:203.0.113.7 -all")
    # An include chain of exactly 10: at the limit, valid.
    zone.txt("ten.example.net", "v=spf1 include:l2.chain.example.net -all")
    # include loop
    zone.txt("loop.example.net", "v=spf1 include:loop2.example.net -all")
    zone.txt("loop2.example.net", "v=spf1 include:loop.example.net -all")
    # three void lookups
    zone.txt(
        "void.example.net",
        "v=spf1 a:nx1.void.example.net a:nx2.void.example.net a:nx3.void.example.net "
        "ip4:203.0.113.7 -all",
    )
    zone.txt(
        "twovoid.example.net",
        "v=spf1 a:nx1.void.example.net a:nx2.void.example.net ip4:203.0.113.7 -all",
    )
    # three void lookups through exists: (the walk must count them as check_host does)
    zone.txt(
        "voidexists.example.net",
        "v=spf1 exists:nx1.void.example.net exists:nx2.void.example.net "
        "exists:nx3.void.example.net ip4:203.0.113.7 -all",
    )
    # names with an A record only: void for IPv6 senders (AAAA), not for IPv4 ones
    zone.txt(
        "v6void.example.net",
        "v=spf1 a:v4only1.example.net a:v4only2.example.net a:v4only3.example.net "
        "ip4:203.0.113.7 ip6:2001:db8::7 -all",
    )
    for i in (1, 2, 3):
        zone.a(f"v4only{i}.example.net", f"192.0.2.5{i}")
    # void lookups only check_host sees: the names depend on the sender's IP
    zone.txt(
        "macrovoid.example.net",
        "v=spf1 exists:%{i}._v1.macrovoid.example.net exists:%{i}._v2.macrovoid.example.net "
        "exists:%{i}._v3.macrovoid.example.net ip4:203.0.113.7 -all",
    )
    # exists: built from the local part: a 64-character one makes a label DNS cannot carry
    zone.txt("longlocal.example.net", "v=spf1 exists:%{l}._spf.longlocal.example.net -all")
    zone.a("ok._spf.longlocal.example.net", "127.0.0.2")
    # mx with 11 MX hosts: over the limit of 10 address lookups per mx (RFC 7208 4.6.4)
    zone.txt("manymx.example.net", "v=spf1 mx ip4:203.0.113.7 -all")
    for i in range(11):
        zone.mx("manymx.example.net", 10 + i, f"mx{i}.manymx.example.net")
        zone.a(f"mx{i}.manymx.example.net", f"192.0.2.{100 + i}")
    # redirect
    zone.txt("redirect.example.net", "v=spf1 redirect=_spf.redirect.example.net")
    zone.txt("_spf.redirect.example.net", "v=spf1 ip4:203.0.113.7 -all")
    # redirect loop
    zone.txt("rloop.example.net", "v=spf1 redirect=rloop2.example.net")
    zone.txt("rloop2.example.net", "v=spf1 redirect=rloop.example.net")
    # a record too large for UDP: the answer is truncated and fetched again over TCP
    big = "v=spf1 " + " ".join(f"ip4:198.51.100.{i}" for i in range(1, 101)) + " -all"
    zone.txt("big.example.net", *_chunks(big))
    # two SPF records
    zone.txt("two.example.net", "v=spf1 ip4:203.0.113.7 -all")
    zone.txt("two.example.net", "v=spf1 ip4:203.0.113.8 -all")
    # one SPF record split into several strings
    zone.txt("split.example.net", "v=spf1 ip4:203.0.113.7", " ip4:203.0.113.8", " -all")
    # weak or discouraged terms
    zone.txt("plusall.example.net", "v=spf1 ip4:203.0.113.7 +all")
    zone.txt("neutral.example.net", "v=spf1 ip4:203.0.113.7 ?all")
    zone.txt("softfail.example.net", "v=spf1 ip4:203.0.113.7 ~all")
    zone.txt("ptr.example.net", "v=spf1 ptr:good.example.com -all")
    zone.txt("ptr2.example.net", "v=spf1 ptr:good.example.com -all")
    zone.ptr("203.0.113.12", "servfail.example.com", f"mail12.{GOOD}")
    zone.a(f"mail12.{GOOD}", "203.0.113.12")
    zone.txt(
        "redirall.example.net", "v=spf1 ip4:203.0.113.7 redirect=_spf.redirect.example.net -all"
    )
    zone.txt("syntax.example.net", "v=spf1 ip4:203.0.113.300 -all")
    zone.txt("noall.example.net", "v=spf1 ip4:203.0.113.7")
    # a, mx and exists with macros
    zone.txt("mech.example.net", "v=spf1 a:host.mech.example.net mx/24 ip6:2001:db8::/32 -all")
    zone.a("host.mech.example.net", "198.51.100.5")
    zone.mx("mech.example.net", 10, "mx.mech.example.net").a("mx.mech.example.net", "192.0.2.1")
    zone.txt("macro.example.net", "v=spf1 exists:%{ir}.%{l1r-}._spf.macro.example.net -all")
    zone.a("7.113.0.203.bounce._spf.macro.example.net", "127.0.0.2")
    # include of a name that has no SPF record
    zone.txt("badinclude.example.net", "v=spf1 include:nospf.example.net -all")
    zone.a("nospf.example.net", "192.0.2.80")
    # include of a name whose server fails
    zone.txt("tempinclude.example.net", "v=spf1 include:servfail.example.com -all")


def _chunks(value: str) -> list[str]:
    return [value[i : i + 200] for i in range(0, len(value), 200)]


def _dkim(zone: Zone, keys: Keys) -> None:
    base = "_domainkey.dkim.example.com"
    zone.txt(f"k2048.{base}", *dns_record_strings(keys.rsa2048))
    zone.txt(f"k1024.{base}", *dns_record_strings(keys.rsa1024))
    zone.txt(f"ed.{base}", *dns_record_strings(keys.ed))
    from cryptography.hazmat.primitives import serialization

    der = keys.rsa512_public.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    import base64

    zone.txt(f"k512.{base}", "v=DKIM1; k=rsa; p=" + base64.b64encode(der).decode())
    zone.txt(f"revoked.{base}", "v=DKIM1; k=rsa; p=")
    zone.txt(f"bad.{base}", "v=DKIM1; k=rsa; p=!!not-base64!!")
    zone.txt(f"badtype.{base}", "v=DKIM1; k=dsa; p=AAAA")
    value = "".join(dns_record_strings(keys.rsa2048))
    zone.txt(f"testing.{base}", *_chunks(value.replace("v=DKIM1;", "v=DKIM1; t=y;")))
    zone.txt(f"sha1.{base}", *_chunks(value.replace("v=DKIM1;", "v=DKIM1; h=sha1;")))
    zone.cname(f"esp.{base}", "s1._domainkey.good.example.com")


def _dmarc(zone: Zone) -> None:
    zone.txt("_dmarc.extok.example.com", f"v=DMARC1; p=none; rua=mailto:agg@{REPORTS}")
    zone.txt(f"extok.example.com._report._dmarc.{REPORTS}", "v=DMARC1")
    zone.txt(
        "_dmarc.extbad.example.com",
        f"v=DMARC1; p=quarantine; rua=mailto:agg@{REPORTS}; ruf=mailto:f@{REPORTS}",
    )
    zone.txt("_dmarc.badpolicy.example.com", "v=DMARC1; p=maybe")
    zone.txt("_dmarc.badpct.example.com", "v=DMARC1; p=reject; pct=150")
    zone.txt("_dmarc.badalign.example.com", "v=DMARC1; p=none; adkim=x")
    zone.txt("_dmarc.twodmarc.example.com", "v=DMARC1; p=none")
    zone.txt("_dmarc.twodmarc.example.com", "v=DMARC1; p=reject")
    zone.txt(
        "_dmarc.strict.example.com",
        "v=DMARC1; p=reject; adkim=s; aspf=s; rua=mailto:d@strict.example.com",
    )
    zone.txt(
        "_dmarc.unknowntag.example.com",
        "v=DMARC1; p=none; foo=bar; rua=mailto:d@unknowntag.example.com",
    )

    # an external rua whose authorization name would pass 255 octets
    zone.txt("_dmarc.longrua.example.com", "v=DMARC1; p=none; rua=mailto:d@", *_chunks(LONG_DEST))
    zone.txt("_dmarc.shop.test", "v=DMARC1; p=quarantine; sp=reject; rua=mailto:d@shop.test")
    # RFC 7489 6.6.3: no valid p= (or an invalid sp=) with a valid rua= reads as p=none;
    # without a valid rua= no policy applies.
    zone.txt("_dmarc.nop.example.com", "v=DMARC1; rua=mailto:d@nop.example.com")
    zone.txt("_dmarc.badp.example.com", "v=DMARC1; p=rejected; rua=mailto:d@badp.example.com")
    zone.txt(
        "_dmarc.badsp.example.com", "v=DMARC1; p=reject; sp=bogus; rua=mailto:d@badsp.example.com"
    )
    zone.txt("_dmarc.badspnorua.example.com", "v=DMARC1; p=reject; sp=bogus")
    zone.txt(
        "_dmarc.upper.example.com",
        "v=DMARC1; p=REJECT; sp=Quarantine; rua=mailto:d@upper.example.com",
    )
    # not DMARC records: receivers discard them (RFC 7489 6.6.3)
    zone.txt("_dmarc.space.example.com", " v=DMARC1; p=reject; rua=mailto:d@space.example.com")
    zone.txt("_dmarc.lower.example.com", "v=dmarc1; p=reject")
    zone.a("mail.shop.test", "192.0.2.40")


def _mx(zone: Zone) -> None:
    zone.mx("badmx.example.com", 10, "gone.badmx.example.com")
    zone.mx("badmx.example.com", 20, "mx.badmx.example.com").a("mx.badmx.example.com", "192.0.2.30")
    zone.mx("nullmx.example.com", 0, ".")
    zone.mx("tempmx.example.com", 10, "servfail.example.com")


def _failures(zone: Zone) -> None:
    zone.fail("servfail.example.com").fail("_dmarc.servfail.example.com")
    zone.hang("timeout.example.com").hang("_dmarc.timeout.example.com")
    zone.fail("s1._domainkey.dkimfail.example.com")
    zone.hang("s1._domainkey.dkimhang.example.com")
    zone.fail("_dmarc.dmarcfail.example.com")
    zone.fail("11.113.0.203.in-addr.arpa")  # PTR of 203.0.113.11


def _broken(zone: Zone, keys: Keys) -> None:
    """A domain with one of almost everything wrong, for the guide's example."""
    d = "broken.example.com"
    zone.txt(d, "v=spf1 ip4:203.0.113.7 include:loop.example.net ?all")
    zone.txt(f"s1._domainkey.{d}", *dns_record_strings(keys.rsa1024))
    zone.txt(f"s2._domainkey.{d}", "v=DKIM1; k=rsa; p=")
    zone.txt(f"_dmarc.{d}", f"v=DMARC1; p=none; pct=150; rua=mailto:agg@{REPORTS}")
    zone.mx(d, 10, f"mx.{d}")


def build_zone(keys: Keys) -> Zone:
    """Every zone the tests use, in one."""
    zone = Zone()
    _healthy(zone, keys)
    _spf(zone)
    _dkim(zone, keys)
    _dmarc(zone)
    _mx(zone)
    _failures(zone)
    _broken(zone, keys)
    return zone


# --- hostile zones: DNS fan-out (each is served by its own server, to count queries) -----

FAN = "fan.test"
FAN_WIDTH = 300
MX_FAN = "mxfan.test"
MX_FAN_HOSTS = 2000
RUA_FAN = "ruafan.test"
RUA_FAN_DESTINATIONS = 2000
PTR_FAN_IP = "192.0.2.77"
PTR_FAN_NAMES = 1000


def _fan_records(name: str) -> list[tuple[int, object]]:
    """Every name under fan.test: an SPF record including 300 distinct names below it."""
    from dnslib import QTYPE, TXT

    value = "v=spf1 " + " ".join(f"include:n{i}.{name}" for i in range(FAN_WIDTH)) + " -all"
    return [(QTYPE.TXT, TXT([c.encode() for c in _chunks(value)]))]


def fanout_zone() -> Zone:
    """SPF includes 300 wide at every level, 2,000 MX hosts, 2,000 DMARC report
    destinations and 1,000 PTR names: each made a check send thousands of queries."""
    zone = Zone()
    zone.generate(FAN, _fan_records)
    for i in range(MX_FAN_HOSTS):
        zone.mx(MX_FAN, 10, f"h{i}.{MX_FAN}").a(f"h{i}.{MX_FAN}", "192.0.2.25")
    rua = ",".join(f"mailto:r@d{i}.example.org" for i in range(RUA_FAN_DESTINATIONS))
    zone.txt(f"_dmarc.{RUA_FAN}", *_chunks(f"v=DMARC1; p=none; rua={rua}"))
    for i in range(PTR_FAN_NAMES):
        zone.ptr(PTR_FAN_IP, f"p{i}.ptrfan.test").a(f"p{i}.ptrfan.test", "192.0.2.78")
    return zone
