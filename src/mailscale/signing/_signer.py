"""DKIM signing (RFC 6376 with rsa-sha256, RFC 8463 with ed25519-sha256)."""

from __future__ import annotations

import itertools
import sys
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from email.message import Message
from typing import NoReturn, TypeAlias

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed

from mailscale._hot import SignPlan
from mailscale.errors import (
    MailscaleError,
    SigningError,
    UnsupportedAlgorithm,
)
from mailscale.signing._wire import check_dns_name, check_identity, wire_bytes
from mailscale.signing.keys import PrivateKey, load_private_key

__all__ = [
    "DEFAULT_HEADERS",
    "DEFAULT_OVERSIGN",
    "DKIMSigner",
    "MessageInput",
    "MultiSigner",
    "parse_canonicalization",
    "sign",
    "sign_batch",
    "signature_header",
]


MessageInput: TypeAlias = bytes | bytearray | memoryview | Message

#: Header fields signed when present, in this order (RFC 6376 section 5.4.1, RFC 8058).
DEFAULT_HEADERS: tuple[str, ...] = (
    "from",
    "to",
    "cc",
    "subject",
    "date",
    "message-id",
    "reply-to",
    "mime-version",
    "content-type",
    "content-transfer-encoding",
    "in-reply-to",
    "references",
    "list-unsubscribe",
    "list-unsubscribe-post",
    "feedback-id",
)

#: Fields listed in h= once more than they occur (absent ones too), so that an added
#: copy breaks the signature.
DEFAULT_OVERSIGN: tuple[str, ...] = (
    "from",
    "subject",
    "date",
    "list-unsubscribe",
    "list-unsubscribe-post",
)

_ALGORITHMS = {"rsa": "rsa-sha256", "ed25519": "ed25519-sha256"}


def parse_canonicalization(value: str) -> tuple[bool, bool]:
    """Parse a ``c=`` value into (relaxed header, relaxed body).

    ``"relaxed"`` alone means relaxed/simple (RFC 6376 section 3.5).

    Raises:
        UnsupportedAlgorithm: a mode other than simple or relaxed.
    """
    header, _, body = value.strip().lower().partition("/")
    body = body or "simple"
    modes = {"simple": False, "relaxed": True}
    if header not in modes or body not in modes:
        raise UnsupportedAlgorithm(f"unsupported DKIM canonicalization {value[:40]!r}")
    return modes[header], modes[body]


class _Prepared:
    """A message in wire form, shared by every signer of a message (one body hash each way)."""

    __slots__ = ("data", "known")

    def __init__(self, message: MessageInput) -> None:
        self.data: bytes = wire_bytes(message)
        self.known: dict[bool, tuple[bytes, int]] = {}


class DKIMSigner:
    """Signs messages for one domain and selector with one key, loaded and validated once.

    The signature covers the wire form of the message: line ends normalized to
    CRLF and a final CRLF added. ``sign`` returns exactly those bytes with the
    DKIM-Signature field prepended; send them unchanged.

    Args:
        domain: the signing domain (``d=``).
        selector: the selector (``s=``); the key is published at
            ``selector._domainkey.domain``.
        key: PEM or DER bytes, or a ``cryptography`` RSA (1024-4096 bits) or
            Ed25519 private key; the algorithm follows from the key.
        headers: the fields to sign when present (default: DEFAULT_HEADERS).
        oversign: the fields signed once more than they occur (default:
            DEFAULT_OVERSIGN); must be a subset of ``headers``.
        canonicalization: ``"header/body"``, each simple or relaxed.
        identity: the optional ``i=`` (``[local]@domain-or-subdomain``).
        timestamp: add ``t=`` (on by default).
        expire_after: seconds after which the signature expires (``x=``).
        body_length: add ``l=`` with the canonical body length (off by default:
            it lets anyone append content).
        clock: the time source for ``t=`` and ``x=``.

    Raises:
        InvalidKey: the key cannot be loaded, or is RSA outside 1024-4096 bits.
        InvalidDomain: ``domain`` or ``selector`` is not a valid DNS name.
        UnsupportedAlgorithm: an unknown canonicalization.
        SigningError: other bad settings (``headers`` without From, ``oversign``
            not within ``headers``). ``sign`` raises ``CanonicalizationError``
            (a ``SigningError``) for a message that is not a header section and body.

    Example:
        >>> from mailscale.signing import DKIMSigner, generate_key
        >>> signer = DKIMSigner("example.com", "s1", generate_key("ed25519"))
        >>> signer.sign(b"From: a@example.com\\r\\nSubject: hi\\r\\n\\r\\nHello\\r\\n")[:15]
        b'DKIM-Signature:'
    """

    __slots__ = (
        "_algorithm",
        "_headers",
        "_key",
        "_mid",
        "_oversign",
        "_plan",
        "_sign_digest",
        "_stamp",
        "_stamped",
        "body_length",
        "body_relaxed",
        "clock",
        "domain",
        "expire_after",
        "header_relaxed",
        "identity",
        "selector",
        "timestamp",
    )

    def __init__(
        self,
        domain: str,
        selector: str,
        key: bytes | str | PrivateKey,
        *,
        headers: Iterable[str] | None = None,
        oversign: Iterable[str] | None = None,
        canonicalization: str = "relaxed/relaxed",
        identity: str | None = None,
        timestamp: bool = True,
        expire_after: int | None = None,
        body_length: bool = False,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.domain = check_dns_name(domain, "domain")
        self.selector = check_dns_name(selector, "selector")
        self._key = load_private_key(key)
        kind = "ed25519" if isinstance(self._key, ed25519.Ed25519PrivateKey) else "rsa"
        self._algorithm = _ALGORITHMS[kind]
        self.header_relaxed, self.body_relaxed = parse_canonicalization(canonicalization)
        self._headers = _names(DEFAULT_HEADERS if headers is None else headers, "headers")
        if "from" not in self._headers:
            raise SigningError("the signed headers must include From (RFC 6376 section 5.4)")
        if oversign is None:
            # The defaults apply to the signed headers that are chosen.
            self._oversign = tuple(h for h in DEFAULT_OVERSIGN if h in self._headers)
        else:
            self._oversign = _names(oversign, "oversign")
            missing = [h for h in self._oversign if h not in self._headers]
            if missing:
                raise SigningError(
                    f"oversign names fields that are not in headers: {', '.join(missing)[:80]}"
                )
        self.identity = None if identity is None else check_identity(identity, self.domain)
        if expire_after is not None and (
            isinstance(expire_after, bool) or not isinstance(expire_after, int) or expire_after <= 0
        ):
            raise SigningError(
                f"expire_after must be a positive number of seconds, not {expire_after!r}"
            )
        self.timestamp = timestamp
        self.expire_after = expire_after
        self.body_length = body_length
        self.clock = clock
        self._stamped = timestamp or expire_after is not None
        self._stamp: tuple[int, bool, int | None, bytes] = (-1, False, None, b"")
        self._mid = b"" if self.identity is None else b" i=%s;" % self.identity.encode()
        if isinstance(self._key, rsa.RSAPrivateKey):
            rsa_key = self._key
            pad, prehashed = padding.PKCS1v15(), Prehashed(hashes.SHA256())
            self._sign_digest: Callable[[bytes], bytes] = lambda d: rsa_key.sign(d, pad, prehashed)
        else:
            self._sign_digest = self._key.sign
        c = b"%s/%s" % (
            b"relaxed" if self.header_relaxed else b"simple",
            b"relaxed" if self.body_relaxed else b"simple",
        )
        head = b"DKIM-Signature: v=1; a=%s; c=%s;\r\n d=%s; s=%s;" % (
            self._algorithm.encode(),
            c,
            self.domain.encode(),
            self.selector.encode(),
        )
        # The per-message work (split, h=, body hash, template, header hash) is
        # one call into the core: the plan.
        self._plan = SignPlan(
            head,
            [name.encode() for name in self._headers],
            [name.encode() for name in self._oversign],
            self.header_relaxed,
            self.body_relaxed,
            body_length,
        )

    def __repr__(self) -> str:
        return (
            f"DKIMSigner(domain={self.domain!r}, selector={self.selector!r}, "
            f"algorithm={self._algorithm!r})"
        )

    @property
    def algorithm(self) -> str:
        """The ``a=`` value: ``rsa-sha256`` or ``ed25519-sha256``."""
        return self._algorithm

    def _tags(self) -> bytes:
        """The tags between s= and h=: i=, then t= and x= from the clock."""
        if not self._stamped:
            return self._mid
        now = self._now()
        # The clock moves once a second: the tags are made once per second (and
        # again when timestamp or expire_after change). One tuple holds the key
        # and the tags, so a thread never pairs one second with another's tags.
        stamp = self._stamp
        if stamp[0] == now and stamp[1] == self.timestamp and stamp[2] == self.expire_after:
            return stamp[3]
        tags = self._mid
        if self.timestamp:
            tags += b" t=%d;" % now
        if self.expire_after is not None:
            tags += b" x=%d;" % (now + self.expire_after)
        self._stamp = (now, self.timestamp, self.expire_after, tags)
        return tags

    def _now(self) -> int:
        when = self.clock()
        if type(when) is float and 0.0 <= when < 1e11:
            return int(when)  # time.time(): the common case, checked in one step
        if isinstance(when, bool) or not isinstance(when, (int, float)) or when != when:
            raise SigningError(f"the clock must return POSIX seconds, not {type(when).__name__}")
        if not 0 <= when < 10**11:
            raise SigningError("the clock returned a time out of range")
        return int(when)

    def _signature_field(self, msg: _Prepared) -> bytes:
        template, digest, _ = self._plan.prepare(msg.data, self._tags(), msg.known)
        return self._plan.finish(template, self._sign_digest(digest))

    def signature_header(self, message: MessageInput) -> bytes:
        """Return the DKIM-Signature field (ending in CRLF) for the wire form of ``message``."""
        return self._signature_field(_Prepared(message))

    def sign(self, message: MessageInput) -> bytes:
        """Return the wire form of ``message`` with its DKIM-Signature field prepended."""
        # Bytes that end in CRLF are the wire form once bare CR and LF are made
        # CRLF, which the plan does on the way; anything else is converted first.
        if type(message) is bytes and message[-2:] == b"\r\n":
            data = message
        else:
            data = wire_bytes(message)
        plan = self._plan
        template, digest, wire = plan.prepare(data, self._tags())
        return plan.finish(template, self._sign_digest(digest), wire)

    def sign_batch(
        self, messages: Iterable[MessageInput], workers: int | None = None
    ) -> list[bytes]:
        """Sign many messages; ``workers`` > 1 signs in that many threads.

        Canonicalization, hashing and the signature itself release the GIL, so
        threads use several cores. Results keep the input order.
        """
        return _batch(self.sign, messages, workers)


class MultiSigner:
    """Several signatures per message, e.g. RSA and Ed25519 (RFC 8463 section 6).

    Every signature covers the same wire form; the fields are prepended in the
    order of the signers (the first signer's field on top).
    """

    __slots__ = ("signers",)

    def __init__(self, signers: Iterable[DKIMSigner]) -> None:
        self.signers = tuple(signers)
        if not self.signers or not all(isinstance(s, DKIMSigner) for s in self.signers):
            raise SigningError("MultiSigner needs one or more DKIMSigner instances")

    def __repr__(self) -> str:
        return f"MultiSigner({list(self.signers)!r})"

    def signature_header(self, message: MessageInput) -> bytes:
        """Return every signer's DKIM-Signature field, concatenated."""
        msg = _Prepared(message)
        return b"".join(s._signature_field(msg) for s in self.signers)

    def sign(self, message: MessageInput) -> bytes:
        """Return the wire form of ``message`` with every signature prepended."""
        msg = _Prepared(message)
        return b"".join(s._signature_field(msg) for s in self.signers) + msg.data

    def sign_batch(
        self, messages: Iterable[MessageInput], workers: int | None = None
    ) -> list[bytes]:
        """Sign many messages with every signer; see DKIMSigner.sign_batch."""
        return _batch(self.sign, messages, workers)


def _batch(
    sign_one: Callable[[MessageInput], bytes], messages: Iterable[MessageInput], workers: int | None
) -> list[bytes]:
    items = list(messages)
    if workers is not None and (
        isinstance(workers, bool) or not isinstance(workers, int) or workers < 1
    ):
        raise SigningError(f"workers must be a positive integer, not {workers!r}")
    if workers is None or workers == 1 or len(items) < 2:
        return _sign_chunk(sign_one, items, 0)
    return _sign_threads(sign_one, items, min(workers, len(items)))


def _sign_threads(
    sign_one: Callable[[MessageInput], bytes], items: list[MessageInput], workers: int
) -> list[bytes]:
    """Sign ``items`` on ``workers`` threads, the calling thread one of them.

    Each thread takes the next unsigned message until none is left, so a thread
    that the machine slows down (a shared core) takes fewer messages instead of
    holding up the batch with a fixed share.
    """
    count = len(items)
    out: list[bytes] = [b""] * count
    claim = itertools.count().__next__  # one call is atomic: no message is taken twice
    failed: list[tuple[int, BaseException]] = []

    def work() -> None:
        while not failed:
            index = claim()
            if index >= count:
                return
            try:
                out[index] = sign_one(items[index])
            except BaseException as exc:  # handed to the calling thread, raised there
                failed.append((index, exc))
                return

    threads = [
        threading.Thread(target=work, name=f"mailscale-dkim-{k}", daemon=True)
        for k in range(1, workers)
    ]
    for thread in threads:
        thread.start()
    try:
        work()
    finally:
        if not failed and sys.exc_info()[0] is not None:
            failed.append((count, KeyboardInterrupt()))  # stop the others early
        for thread in threads:
            thread.join()
    if failed:
        index, exc = min(failed, key=lambda item: item[0])
        if isinstance(exc, MailscaleError):
            _raise_indexed(exc, index)
        raise exc
    return out


def _sign_chunk(
    sign_one: Callable[[MessageInput], bytes], items: list[MessageInput], first: int
) -> list[bytes]:
    """Sign ``items``; an error says which message of the batch (0-based) it came from."""
    try:
        return [sign_one(m) for m in items]
    except MailscaleError as exc:
        index = first
        for m in items:  # find the failing one again: errors are rare, signing is not
            try:
                sign_one(m)
            except MailscaleError:
                break
            index += 1
        _raise_indexed(exc, index)


def _raise_indexed(exc: MailscaleError, index: int) -> NoReturn:
    """Raise ``exc`` with the batch position of its message in the text."""
    try:
        indexed = type(exc)(f"message {index} of the batch: {exc}")
    except Exception:  # an error class with another constructor: keep it, add a note
        note = f"message {index} of the batch"
        if sys.version_info >= (3, 11):
            exc.add_note(note)
        else:  # PEP 678's attribute, which add_note fills on 3.11+
            exc.__dict__.setdefault("__notes__", []).append(note)
        raise exc from None
    raise indexed from exc


#: What the module-level functions accept. The protocol any signer satisfies (``sign(bytes) ->
#: bytes``) has one home: ``mailscale.transports.Signer``; DKIMSigner and MultiSigner satisfy it.
DKIMSigners: TypeAlias = DKIMSigner | MultiSigner


def _names(value: Iterable[str], what: str) -> tuple[str, ...]:
    """Lower-cased header field names, each checked (``value`` is a list, not a string)."""
    if isinstance(value, (str, bytes)) or not isinstance(value, Iterable):
        raise SigningError(f"{what} must be a list of header field names")
    names = []
    for name in value:
        if not isinstance(name, str):
            raise SigningError(f"{what} must be a list of header field names (str)")
        name = name.strip().lower()
        if not name or any(not 33 <= ord(c) <= 126 or c in ":;" for c in name):
            raise SigningError(f"invalid header field name {name[:40]!r} in {what}")
        names.append(name)
    return tuple(names)


def _as_signer(signer: DKIMSigners | Sequence[DKIMSigner]) -> DKIMSigners:
    if isinstance(signer, (DKIMSigner, MultiSigner)):
        return signer
    return MultiSigner(signer)


def sign(message: MessageInput, signer: DKIMSigners | Sequence[DKIMSigner]) -> bytes:
    """Sign ``message`` with one signer, or with several (dual signing)."""
    return _as_signer(signer).sign(message)


def signature_header(message: MessageInput, signer: DKIMSigners | Sequence[DKIMSigner]) -> bytes:
    """Return the DKIM-Signature field(s) ``signer`` makes for ``message``."""
    return _as_signer(signer).signature_header(message)


def sign_batch(
    messages: Iterable[MessageInput],
    signer: DKIMSigners | Sequence[DKIMSigner],
    workers: int | None = None,
) -> list[bytes]:
    """Sign many messages; ``workers`` > 1 uses that many threads."""
    return _as_signer(signer).sign_batch(messages, workers)
