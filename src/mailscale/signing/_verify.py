"""DKIM verification (RFC 6376 section 6, RFC 8463, RFC 8301)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from email.message import Message
from typing import Any, TypeAlias

import attrs
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed

from mailscale._hot import (
    body_hash,
    normalize_line_endings,
    parse_signature,
    split_header,
    verify_step,
)
from mailscale.errors import (
    CanonicalizationError,
    InvalidDomain,
    MailscaleError,
    UnsupportedAlgorithm,
)
from mailscale.message import ValueEnum
from mailscale.signing._signer import MessageInput, parse_canonicalization
from mailscale.signing._wire import check_dns_name, wire_bytes
from mailscale.signing.keys import MIN_RSA_BITS, KeyRecord, parse_key_record

__all__ = ["DKIMVerifier", "KeyLookup", "VerifyResult", "VerifyStatus", "verify"]

#: What a key lookup may return for ``selector._domainkey.domain``: the TXT value
#: (one string or the list of its strings), a parsed KeyRecord, or None (no key).
KeyLookup: TypeAlias = Callable[[str], "str | bytes | list[bytes] | KeyRecord | None"]


class VerifyStatus(ValueEnum):
    """The RFC 8601 result of one DKIM signature."""

    PASS = "pass"
    FAIL = "fail"
    PERMERROR = "permerror"
    TEMPERROR = "temperror"


PASS, FAIL, PERMERROR, TEMPERROR = (
    VerifyStatus.PASS,
    VerifyStatus.FAIL,
    VerifyStatus.PERMERROR,
    VerifyStatus.TEMPERROR,
)
_REQUIRED = ("v", "a", "b", "bh", "d", "h", "s")
_REQUIRED_SET = frozenset(_REQUIRED)
_parse_signature = parse_signature
_normalize = normalize_line_endings
_split_header = split_header
_body_hash = body_hash
_verify_step = verify_step
_KEY_TYPE = {"rsa-sha256": "rsa", "ed25519-sha256": "ed25519"}
_PKCS1 = padding.PKCS1v15()
_PREHASHED = Prehashed(hashes.SHA256())


@attrs.frozen
class VerifyResult:
    """The outcome of one DKIM-Signature field.

    Attributes:
        status: ``pass``, ``fail``, ``permerror`` or ``temperror`` (RFC 8601 terms).
        domain: the ``d=`` domain ("" when unreadable).
        selector: the ``s=`` selector.
        algorithm: the ``a=`` algorithm.
        identity: the ``i=`` identity (``@domain`` by default).
        reason: why it did not pass ("" on pass).
        testing: the key record says ``t=y`` (the domain is testing DKIM).
    """

    status: VerifyStatus = attrs.field(converter=VerifyStatus)
    domain: str = ""
    selector: str = ""
    algorithm: str = ""
    identity: str = ""
    reason: str = ""
    testing: bool = False

    @property
    def ok(self) -> bool:
        """True when the signature verified."""
        return self.status == PASS


class _Cache(dict[Any, Any]):
    """A dict bounded in entries and in bytes (RFC-independent: a hostile message must
    not grow it). An item whose accounted size exceeds ``max_item`` is not kept (it is
    recomputed when met again); when an item would pass either bound the cache is
    emptied first, which is O(1) and only costs misses.

    The accounted size of an item is the bytes its key and value hold (string and
    bytes contents, indices, objects) plus a fixed overhead per entry, an upper bound
    of what the entry keeps alive (checked with tracemalloc in the tests).
    """

    __slots__ = ("_lock", "accounted", "max_bytes", "max_entries", "max_item")

    def __init__(self, max_entries: int, max_bytes: int, max_item: int) -> None:
        super().__init__()
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self.max_item = max_item
        self.accounted = 0
        self._lock = threading.Lock()

    def put(self, key: Any, value: Any, size: int) -> None:
        """Keep ``value`` under ``key`` when its ``size`` (accounted bytes) allows."""
        size += _ENTRY_OVERHEAD
        if size > self.max_item:
            return
        with self._lock:
            if key in self:
                return
            if len(self) >= self.max_entries or self.accounted + size > self.max_bytes:
                self.clear()
                self.accounted = 0
            self[key] = value
            self.accounted += size


#: Bytes counted per cache entry beside its contents: the dict slot, the key and value
#: objects' headers, small tuples and the ints of index lists.
_ENTRY_OVERHEAD = 512
#: Bytes counted for a parsed public key (the ``cryptography`` object and what OpenSSL
#: keeps for it), on top of the record's text.
_KEY_OVERHEAD = 8192


def _indices_size(indices: tuple[int, ...]) -> int:
    return 40 * len(indices)  # a tuple slot and an int object each


def _record_size(record: KeyRecord) -> int:
    return 2 * (len(record.public_key_b64) + len(record.notes)) + _KEY_OVERHEAD


class _Caches:
    """What a verifier remembers between messages, none of it tied to how keys are
    found: parsed key records (by their text), checks of fixed signature tags and of
    key records, and header shapes. Shared by every call of the module-level
    ``verify()``; bounded in entries and bytes (docs/dkim.md gives the bounds)."""

    __slots__ = ("checked", "records", "selected", "shapes", "static")

    def __init__(self) -> None:
        # TXT text of a key record -> KeyRecord.
        self.records = _Cache(256, 4 << 20, 32 << 10)
        # Checked static tags -> (info, algorithm, header/body relaxed, h= names,
        # identity domain, pass results), or (status, reason, info) of the permerror.
        self.static = _Cache(256, 2 << 20, 32 << 10)
        # (id(record), algorithm, i= exactly d=) -> (record, public key or None,
        # is RSA or status, testing or reason).
        self.checked = _Cache(256, 4 << 20, 32 << 10)
        # Header field names (Header.names) -> where the DKIM-Signature fields are.
        self.shapes = _Cache(1024, 2 << 20, 16 << 10)
        # (h= value, Header.names) -> the indices of the fields h= signs.
        self.selected = _Cache(1024, 4 << 20, 32 << 10)

    def all(self) -> tuple[_Cache, ...]:
        return (self.records, self.static, self.checked, self.shapes, self.selected)


class _Outcome(Exception):
    def __init__(self, status: str, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


class _BareLineEnd(Exception):
    """The body has a bare CR or LF: verify the message as _received_bytes reads it."""


def _received_bytes(message: MessageInput) -> bytes:
    """The message as the signer saw it: a message stored with bare LF line ends
    (a Unix file) is read as CRLF; any other byte, a bare CR included, is
    verified as it is, since it was on the wire when the message was signed."""
    if type(message) is bytes and _normalize(message) is message:
        return message  # already CRLF throughout (the compiled core returns it as is)
    data = wire_bytes(message) if isinstance(message, Message) else message
    if not isinstance(data, (bytes, bytearray, memoryview)):
        return wire_bytes(data)  # raises the CanonicalizationError
    raw = memoryview(data).tobytes()
    if _normalize(raw) == raw:
        return raw
    return raw.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")


def _int_tag(tags: dict[str, str], name: str) -> int | None:
    value = tags.get(name)
    if value is None:
        return None
    if not (value.isdigit() and len(value) <= 76):
        raise _Outcome(PERMERROR, f"{name}= is not a number")
    return int(value)


def _info(tags: dict[str, str]) -> dict[str, str]:
    """What a VerifyResult reports of a signature's tags."""
    return {
        "domain": tags.get("d", "").lower(),
        "selector": tags.get("s", ""),
        "algorithm": tags.get("a", ""),
        "identity": tags.get("i", "@" + tags.get("d", "")),
    }


def _check_static(tags: dict[str, str]) -> tuple[Any, ...]:
    """Check the tags that do not depend on the message (RFC 6376 section 6.1.1).

    Returns (info, algorithm, header relaxed, body relaxed, h= names as bytes,
    i= in exactly the d= domain, pass results by testing flag, the key record's
    name), or (status, reason, info) for a permerror.
    """
    info = _info(tags)
    try:
        if tags["v"] != "1":
            raise _Outcome(PERMERROR, f"unsupported signature version v={tags['v'][:10]!r}")
        algorithm = tags["a"].lower()
        if algorithm == "rsa-sha1":
            raise _Outcome(PERMERROR, "rsa-sha1 is not accepted (RFC 8301)")
        if algorithm not in _KEY_TYPE:
            raise _Outcome(PERMERROR, f"unsupported algorithm a={algorithm[:30]!r}")
        try:
            header_relaxed, body_relaxed = parse_canonicalization(tags.get("c", "simple/simple"))
        except UnsupportedAlgorithm as exc:
            raise _Outcome(PERMERROR, str(exc)) from None
        domain = info["domain"]
        if not domain or not info["selector"]:
            raise _Outcome(PERMERROR, "empty d= or s=")
        # A name that cannot be looked up is the signature's fault, found before any query.
        for tag, what in (("d", "domain"), ("s", "selector")):
            try:
                check_dns_name(tags[tag].strip(" \t\r\n"), what)
            except InvalidDomain as exc:
                raise _Outcome(PERMERROR, f"bad {tag}=: {exc}") from None
        names = [n.strip(" \t\r\n").lower() for n in tags["h"].split(":")]
        if "from" not in names or any(not n for n in names):
            raise _Outcome(PERMERROR, "h= must list From and no empty names")
        identity_domain = info["identity"].rpartition("@")[2].lower()
        if "@" not in info["identity"] or not (
            identity_domain == domain or identity_domain.endswith("." + domain)
        ):
            raise _Outcome(PERMERROR, "i= is not in the d= domain")
        if "q" in tags and "dns/txt" not in [q.strip() for q in tags["q"].split(":")]:
            raise _Outcome(PERMERROR, f"unsupported query method q={tags['q'][:30]!r}")
    except _Outcome as out:
        return (out.status, out.reason, info)
    return (
        info,
        algorithm,
        header_relaxed,
        body_relaxed,
        tuple([n.encode() for n in names]),
        identity_domain == domain,
        {},
        f"{info['selector']}._domainkey.{domain}",
    )


def _check_record(record: KeyRecord, algorithm: str, exact: bool) -> tuple[Any, ...]:
    """(public key, is RSA, testing) when ``record`` may verify the signature,
    else (None, status, reason)."""
    if record.revoked:
        return (None, PERMERROR, "the key has been revoked (empty p=)")
    if record.key_type != _KEY_TYPE[algorithm]:
        return (None, PERMERROR, f"the key is k={record.key_type}, the signature a={algorithm}")
    if not record.allows_hash("sha256"):
        return (None, PERMERROR, "the key record's h= does not allow sha256")
    if not record.allows_email():
        return (None, PERMERROR, "the key record's s= does not allow email")
    if record.strict_identity and not exact:
        return (None, PERMERROR, "the key record's t=s needs i= in exactly the d= domain")
    is_rsa = record.key_type == "rsa"
    bits = record.bits if is_rsa else 0
    if is_rsa and bits < MIN_RSA_BITS:
        return (None, FAIL, f"RSA key of {bits} bits is below {MIN_RSA_BITS}")
    return (record.public_key, is_rsa, bool(record.testing))


class DKIMVerifier:
    """Verifies DKIM signatures, fetching keys through DNS or a lookup function.

    Parsed key records are cached by their TXT text, so repeated signatures of
    one selector parse the key once.

    Args:
        resolver: a dnspython ``Resolver`` (or anything with its ``resolve``
            method), used as it is; a default one, which caches answers for
            their TTL, is made on first use.
        key_lookup: a function from ``selector._domainkey.domain`` to the TXT
            value, a KeyRecord, or None; used instead of DNS when given.
        clock: the time source for the x= and t= checks.
        max_skew: how far in the future t= may be, in seconds.
        max_signatures: signatures beyond this many are reported as permerror.
    """

    def __init__(
        self,
        resolver: Any = None,
        key_lookup: KeyLookup | None = None,
        *,
        clock: Callable[[], float] = time.time,
        max_skew: int = 300,
        max_signatures: int = 10,
    ) -> None:
        self.resolver = resolver
        self.key_lookup = key_lookup
        self.clock = clock
        self.max_skew = max_skew
        self.max_signatures = max_signatures
        self._caches = caches = _Caches()
        self._records = caches.records
        self._static = caches.static
        self._checked = caches.checked
        self._shapes = caches.shapes
        self._selected = caches.selected
        # TXT answers of the verifier's own resolver (made when resolver is None):
        # name -> (TXT value or None, monotonic expiry), kept for the answer's TTL.
        self._txt = _Cache(256, 1 << 20, 16 << 10)
        self._own_resolver: Any = None

    def _sharing(self, resolver: Any, key_lookup: KeyLookup | None) -> DKIMVerifier:
        """A verifier with other key sources that shares this one's caches (none of
        which depends on where keys come from; the TXT answers of this verifier's own
        resolver are not shared)."""
        other: DKIMVerifier = object.__new__(DKIMVerifier)
        other.__dict__.update(self.__dict__)
        other.resolver = resolver
        other.key_lookup = key_lookup
        other._own_resolver = None  # a resolver passed in is used as it is, uncached
        return other

    def cache_bytes(self) -> int:
        """The bytes this verifier's caches account for (at most their documented bound)."""
        return sum(c.accounted for c in (*self._caches.all(), self._txt))

    def __repr__(self) -> str:
        source = "key_lookup" if self.key_lookup is not None else "dns"
        return f"DKIMVerifier(keys={source})"

    def verify(self, message: MessageInput, now: float | None = None) -> list[VerifyResult]:
        """Verify every DKIM-Signature field of ``message``, top to bottom.

        Raises:
            CanonicalizationError: the message cannot be split into header and body.
        """
        when = self.clock() if now is None else now
        if type(message) is bytes:
            # The common case, bytes with CRLF line ends throughout, needs no pass
            # over the message for its line ends: the header is checked here and
            # the body by its first hash (None on a bare CR or LF), and anything
            # else is verified again from the bytes as _received_bytes reads them.
            data = message if message.endswith(b"\r\n") or not message else message + b"\r\n"
            try:
                header = _split_header(data)
            except CanonicalizationError:
                header = None
            if header is not None and header.crlf():
                try:
                    return self._verify_header(header, when, True)
                except _BareLineEnd:
                    pass
        data = _received_bytes(message)
        if data and data[-2:] != b"\r\n":
            # An unterminated last line reads as ended, as the signer's wire form
            # has it: the canonical body is the same, and a header with no body
            # keeps its last field whole.
            data += b"\r\n"
        return self._verify_header(_split_header(data), when, False)

    def _verify_header(self, header: Any, when: float, check: bool) -> list[VerifyResult]:
        """The results for a split message; with ``check``, _BareLineEnd when its body
        turns out to have a bare CR or LF (found by the first body hash)."""
        names = header.names
        found: tuple[int, ...] | None = self._shapes.get(names)
        if found is None:
            found = self._signature_fields(names)
        if len(found) == 1 and self.max_signatures >= 1:
            # The common case, one signature of a shape met before: the message's own
            # work (parse, checks of the cached shape, body hash, header hash) is one
            # call, the rest is the key and the signature. Anything else: no loop.
            step = _verify_step(header, found[0], self._static, self._selected, check)
            if step is not None:
                return [self._verify_step(step, when)]
            return [self._verify_one(header, header.field(found[0]), when, {}, check)]
        body_hashes: dict[tuple[bool, int], tuple[bytes, int]] = {}
        results = []
        for count, index in enumerate(found):
            if count >= self.max_signatures:
                results.append(VerifyResult(PERMERROR, reason="too many signatures"))
                continue
            results.append(self._verify_one(header, header.field(index), when, body_hashes, check))
        return results

    def _signature_fields(self, names: bytes) -> tuple[int, ...]:
        """Where the DKIM-Signature fields are, by the header's sequence of field names."""
        found: tuple[int, ...] | None = self._shapes.get(names)
        if found is None:
            found = tuple(
                [i for i, name in enumerate(names.split(b":")) if name == b"dkim-signature"]
            )
            self._shapes.put(names, found, len(names) + _indices_size(found))
        return found

    def _verify_one(
        self,
        header: Any,
        raw: bytes,
        now: float,
        body_hashes: dict[tuple[bool, int], tuple[bytes, int]],
        check: bool = False,
    ) -> VerifyResult:
        # The per-signature path, in one frame: every message passes here, so the
        # checks that do not depend on the message are cached (static tags, key
        # records, the fields h= signs) and the common case makes no other call
        # in Python than the key lookup.
        info: dict[str, str] = {}
        try:
            if not raw.isascii():
                raise _Outcome(PERMERROR, "the signature contains non-ASCII bytes")
            try:
                tags, unsigned, signature, expected_bh = _parse_signature(raw)
            except ValueError as exc:
                raise _Outcome(PERMERROR, f"malformed signature: {exc}") from None
            get = tags.get
            key = (get("v"), get("a"), get("c"), get("d"), get("s"), get("h"), get("i"), get("q"))
            static = self._static.get(key)
            # A cached shape has v=, a=, d=, h= and s= (only complete tag sets are
            # cached): b= and bh= are all that is left to find.
            if static is None or "b" not in tags or "bh" not in tags:
                if not _REQUIRED_SET.issubset(tags):
                    info = _info(tags)
                    missing = next(tag for tag in _REQUIRED if tag not in tags)
                    raise _Outcome(PERMERROR, f"the signature has no {missing}= tag")
                if static is None:
                    static = _check_static(tags)
                    size = 3 * sum(len(v) for v in key if v is not None)
                    if len(static) != 3:
                        size += 48 * len(static[4]) + 2 * len(static[7])
                    self._static.put(key, static, size)
            if len(static) == 3:
                info = static[2]
                raise _Outcome(static[0], static[1])
            info, algorithm, header_relaxed, body_relaxed, names, exact, passes, name = static
            # l= and x= are rare: no call for an absent tag; t= is read inline.
            length = _int_tag(tags, "l") if "l" in tags else None
            signed_at = None
            value = get("t")
            if value is not None:
                if not (value.isdigit() and len(value) <= 76):
                    raise _Outcome(PERMERROR, "t= is not a number")
                signed_at = int(value)
            if "x" in tags:
                expires = _int_tag(tags, "x")
                if expires is not None:
                    if signed_at is not None and expires < signed_at:
                        raise _Outcome(PERMERROR, "x= is earlier than t=")
                    if now > expires:
                        raise _Outcome(FAIL, "the signature has expired (x=)")
            if signed_at is not None and signed_at > now + self.max_skew:
                raise _Outcome(FAIL, "the signature timestamp t= is in the future")
            # FWS may fold b= and bh= anywhere (RFC 6376 section 3.5); both were
            # decoded with the tag list, None when not exactly base64.
            if expected_bh is None:
                raise _Outcome(PERMERROR, "bh= is not valid base64")
            if signature is None:
                raise _Outcome(PERMERROR, "b= is not valid base64")

            public_key, is_rsa, testing = self._public_key(name, algorithm, exact)

            body_key = (body_relaxed, -1 if length is None else length)
            found = body_hashes.get(body_key)
            if found is None:
                if check and not body_hashes:
                    # The first hash of the body also proves its line ends.
                    found = _body_hash(header.data, header.body_start, *body_key, check=True)
                    if found is None:
                        raise _BareLineEnd
                else:
                    found = _body_hash(header.data, header.body_start, *body_key)
                body_hashes[body_key] = found
            if length is not None and length > found[1]:
                raise _Outcome(FAIL, "l= is longer than the body")
            if found[0] != expected_bh:
                raise _Outcome(FAIL, "the body hash does not match (body changed)")

            # The signed fields depend only on h= and the header's field names:
            # chosen once per shape. b= is present (a required tag), so it has a
            # value to empty.
            shape = (tags["h"], header.names)
            indices = self._selected.get(shape)
            if indices is None:
                indices = header.select(names)
                size = len(shape[0]) + len(shape[1]) + _indices_size(indices)
                self._selected.put(shape, indices, size)
            digest = header.digest(indices, unsigned, header_relaxed)
            _check_signature(public_key, is_rsa, signature, digest)
        except _Outcome as out:
            return VerifyResult(out.status, reason=out.reason, **info)  # type: ignore[arg-type]
        return _passed(passes, testing, info)

    def _verify_step(self, step: tuple[Any, ...], now: float) -> VerifyResult:
        """The rest of _verify_one for what ``verify_step`` found, in the same order:
        t=, the key, the body hash, the signature."""
        static, signed_at, signature, body_ok, digest = step
        info, algorithm, _, _, _, exact, passes, name = static
        try:
            if signed_at is not None and signed_at > now + self.max_skew:
                raise _Outcome(FAIL, "the signature timestamp t= is in the future")
            public_key, is_rsa, testing = self._public_key(name, algorithm, exact)
            if body_ok is None:
                raise _BareLineEnd  # only in the check mode
            if not body_ok:
                raise _Outcome(FAIL, "the body hash does not match (body changed)")
            _check_signature(public_key, is_rsa, signature, digest)
        except _Outcome as out:
            return VerifyResult(out.status, reason=out.reason, **info)
        return _passed(passes, testing, info)

    def _public_key(self, name: str, algorithm: str, exact: bool) -> tuple[Any, bool, bool]:
        """(public key, is RSA, testing) of the key record at ``name`` for a signature
        of ``algorithm``; ``exact``: i= is in exactly the d= domain."""
        record = self._key_record(name)
        # The record's checks depend only on it, the algorithm and whether i= is
        # in exactly the d= domain: done once per record and signature shape.
        shape_key = (id(record), algorithm, exact)
        checked = self._checked.get(shape_key)
        if checked is None or checked[0] is not record:
            checked = (record, *_check_record(record, algorithm, exact))
            self._checked.pop(shape_key, None)
            self._checked.put(shape_key, checked, _record_size(record))
        if checked[1] is None:
            raise _Outcome(checked[2], checked[3])
        return checked[1], checked[2], checked[3]

    def _key_record(self, name: str) -> KeyRecord:
        """The key record at ``name`` (``selector._domainkey.domain``)."""
        try:
            if self.key_lookup is not None:
                found = self.key_lookup(name)
            else:
                found = self._dns_txt(name)
        except _Outcome:
            raise
        except (OSError, LookupError) as exc:
            reason = f"key lookup for {name} failed: {type(exc).__name__}"
            raise _Outcome(TEMPERROR, reason) from None
        if found is None:
            raise _Outcome(PERMERROR, f"no key record at {name}")
        if isinstance(found, KeyRecord):
            return found
        if isinstance(found, str):
            found = found.encode("latin-1", "replace")
        elif isinstance(found, (list, tuple)) and all(
            isinstance(s, (str, bytes, bytearray)) for s in found
        ):
            found = b"".join(
                s.encode("latin-1", "replace") if isinstance(s, str) else s for s in found
            )
        elif isinstance(found, bytearray):
            found = bytes(found)
        elif not isinstance(found, bytes):
            reason = (
                f"key lookup for {name} returned {type(found).__name__}, not a TXT value,"
                " a list of TXT strings or a KeyRecord"
            )
            raise _Outcome(PERMERROR, reason)
        record = self._records.get(found)
        if record is None:
            try:
                record = parse_key_record(found)
            except MailscaleError as exc:
                raise _Outcome(PERMERROR, f"bad key record at {name}: {exc}") from None
            self._records.put(found, record, len(found) + _record_size(record))
        return record

    def _dns_txt(self, name: str) -> list[bytes] | None:
        import dns.exception
        import dns.resolver

        own = self.resolver is None or self.resolver is self._own_resolver
        if own:
            # Key records change rarely and carry a TTL: the verifier's own resolver
            # keeps the chosen TXT value that long (in a cache bounded in bytes), so
            # one sender's stream of messages asks once. A resolver passed in is used
            # as it is.
            cached = self._txt.get(name)
            if cached is not None and cached[1] > time.monotonic():
                value: list[bytes] | None = cached[0]
                return value
            if self.resolver is None:
                self._own_resolver = self.resolver = dns.resolver.Resolver()
        try:
            answer = self.resolver.resolve(name, "TXT")
        except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
            return None
        except dns.exception.DNSException as exc:
            reason = f"DNS lookup of {name} failed: {type(exc).__name__}"
            raise _Outcome(TEMPERROR, reason) from None
        records = [b"".join(rdata.strings) for rdata in answer]
        # Several TXT records at the name: prefer one that looks like a DKIM key.
        chosen = [records[0]] if records else None
        for txt in records:
            if txt.lstrip().startswith(b"v=DKIM1") or b"p=" in txt:
                chosen = [txt]
                break
        if own and chosen is not None:
            ttl = min(max(int(getattr(answer.rrset, "ttl", 0)), 0), 86_400)
            self._txt.pop(name, None)
            self._txt.put(name, (chosen, time.monotonic() + ttl), 2 * len(name) + len(chosen[0]))
        return chosen


#: The caches behind the module-level ``verify()``, shared by all its calls; its own
#: resolver (and that resolver's TXT answers) serves only calls that pass none.
_SHARED = DKIMVerifier()


def _check_signature(public_key: Any, is_rsa: bool, signature: bytes, digest: bytes) -> None:
    """Check b= over the header hash; a mismatch is a FAIL outcome."""
    try:
        if is_rsa:
            public_key.verify(signature, digest, _PKCS1, _PREHASHED)
        else:
            public_key.verify(signature, digest)
    except InvalidSignature:
        raise _Outcome(FAIL, "the signature does not verify (signed headers changed)") from None


def _passed(passes: dict[bool, VerifyResult], testing: bool, info: Any) -> VerifyResult:
    """The pass result of a signature shape: results are frozen, so one is shared per shape."""
    result = passes.get(testing)
    if result is None:
        result = passes[testing] = VerifyResult(PASS, testing=testing, **info)
    return result


def verify(
    message: MessageInput,
    resolver: Any = None,
    key_lookup: KeyLookup | None = None,
    now: float | None = None,
) -> list[VerifyResult]:
    """Verify every DKIM-Signature of ``message``; one VerifyResult per signature.

    Keys come from the TXT record at ``selector._domainkey.domain`` through
    ``resolver`` (dnspython), or from ``key_lookup``. ``now`` (POSIX seconds)
    replaces the clock for the x= and t= checks.

    Every call shares one set of bounded caches (parsed key records by their text,
    checks of fixed tags, header shapes), none of which depends on where keys come
    from: ``key_lookup`` and ``resolver`` are asked on every call, so one call never
    sees another's keys. Without either, calls share one resolver, which keeps key
    records for their TTL.
    """
    if resolver is None and key_lookup is None:
        return _SHARED.verify(message, now=now)
    return _SHARED._sharing(resolver, key_lookup).verify(message, now=now)
