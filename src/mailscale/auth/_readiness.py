"""The bulk-sender checklist of Gmail and Yahoo (2024) and Microsoft (2025).

Each item is ``pass``, ``fail``, ``warn`` or ``not checked``. An item that
cannot be decided from what was given (no sending IP, no sample message, no
statistics, a DNS lookup that failed temporarily) is ``not checked``: it is
never reported as passing.
"""

from __future__ import annotations

import asyncio
import email.message
import email.parser
import email.policy
import email.utils
import re
import urllib.parse
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import attrs

from mailscale._sync import blocking
from mailscale.auth._args import normalize_domain, opt_str, str_items
from mailscale.auth._check import check_domain_async
from mailscale.auth._dns import DNSBudget, DNSClient, ResolverLike, make_resolver
from mailscale.auth._model import AuthReport, CheckStatus, ReadinessStatus, SPFResult
from mailscale.errors import AuthCheckError, ConfigurationError
from mailscale.signing import VerifyResult, VerifyStatus, verify
from mailscale.signing.keys import PrivateKey, PublicKey

__all__ = [
    "COMPLAINT_RATE_LIMIT",
    "COMPLAINT_RATE_TARGET",
    "ReadinessItem",
    "ReadinessReport",
    "readiness",
    "readiness_async",
]

#: Gmail and Yahoo: keep spam complaints below 0.3% ...
COMPLAINT_RATE_LIMIT = 0.003
#: ... and aim below 0.1%.
COMPLAINT_RATE_TARGET = 0.001

PASS, FAIL, WARN, NOT_CHECKED = (
    CheckStatus.PASS,
    CheckStatus.FAIL,
    CheckStatus.WARN,
    CheckStatus.NOT_CHECKED,
)
_ALL3 = ("gmail", "yahoo", "microsoft")


@attrs.frozen
class ReadinessItem:
    """One requirement of the checklist.

    Attributes:
        code: a stable name (``spf``, ``dkim``, ``one_click_unsubscribe``...).
        status: ``pass``, ``fail``, ``warn`` or ``not checked``.
        detail: why, and what to do.
        required_by: the mailbox providers that require it.
    """

    code: str
    title: str
    status: CheckStatus = attrs.field(converter=CheckStatus)
    detail: str
    required_by: tuple[str, ...]


@attrs.frozen
class ReadinessReport:
    """The checklist for one domain, with the DNS report it was built from."""

    domain: str
    items: tuple[ReadinessItem, ...]
    auth: AuthReport

    def item(self, code: str) -> ReadinessItem:
        """The item with this stable *code* (``spf``, ``dkim``, ``fcrdns``...).

        Raises:
            KeyError: naming *code*, when the checklist has no such item.
        """
        for item in self.items:
            if item.code == code:
                return item
        raise KeyError(code)

    @property
    def failed(self) -> tuple[ReadinessItem, ...]:
        """The items that failed."""
        return tuple(i for i in self.items if i.status is FAIL)

    @property
    def not_checked(self) -> tuple[ReadinessItem, ...]:
        """The items that could not be checked (no input for them, or DNS failed)."""
        return tuple(i for i in self.items if i.status is NOT_CHECKED)

    @property
    def status(self) -> ReadinessStatus:
        """``ready`` (everything passes or warns), ``not ready`` (a failure) or ``incomplete``."""
        if self.failed:
            return ReadinessStatus.NOT_READY
        if self.not_checked:
            return ReadinessStatus.INCOMPLETE
        return ReadinessStatus.READY

    @property
    def ready(self) -> bool:
        """True only when every item was checked and none failed."""
        return self.status is ReadinessStatus.READY

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serializable dict: domain, status and every item."""
        return {
            "domain": self.domain,
            "status": self.status,
            "items": [attrs.asdict(i) for i in self.items],
        }


def _item(
    code: str, title: str, status: CheckStatus, detail: str, required_by: tuple[str, ...] = _ALL3
) -> ReadinessItem:
    return ReadinessItem(code, title, status, detail, required_by)


def _parse_message(sample: bytes | str | email.message.Message) -> email.message.Message:
    if isinstance(sample, email.message.Message):
        return sample
    if isinstance(sample, str):
        sample = sample.encode("utf-8", "surrogateescape")
    if not isinstance(sample, (bytes, bytearray)):
        raise AuthCheckError("sample_message must be bytes, str or an email.message.Message")
    return email.parser.BytesParser(policy=email.policy.compat32).parsebytes(
        bytes(sample), headersonly=True
    )


def _raw_message(sample: bytes | str | email.message.Message) -> bytes:
    if isinstance(sample, email.message.Message):
        return sample.as_bytes()
    if isinstance(sample, str):
        return sample.encode("utf-8", "surrogateescape")
    return bytes(sample)


def _domain_of(value: str | None) -> str | None:
    if not value:
        return None
    m = re.search(r"@([A-Za-z0-9.-]+)>?\s*$", str(value).strip())
    return m.group(1).lower().rstrip(".") if m else None


def _dkim_tags(value: str) -> dict[str, str]:
    tags = {}
    for part in re.sub(r"\s+", "", value).split(";"):
        if "=" in part:
            k, _, v = part.partition("=")
            tags[k.lower()] = v
    return tags


def one_click_unsubscribe(message: email.message.Message) -> tuple[CheckStatus, str]:
    """RFC 8058 one-click unsubscribe: (status, detail) for a sample message."""
    unsub = message.get_all("List-Unsubscribe") or []
    post = message.get_all("List-Unsubscribe-Post") or []
    if not unsub:
        return FAIL, "no List-Unsubscribe header"
    uris = re.findall(r"<([^>]*)>", " ".join(str(u) for u in unsub))
    if not any(urllib.parse.urlsplit(u.strip()).scheme.lower() == "https" for u in uris):
        return FAIL, "List-Unsubscribe has no <https://...> URI (RFC 8058 needs one)"
    if len(post) != 1 or str(post[0]).strip() != "List-Unsubscribe=One-Click":
        return FAIL, "List-Unsubscribe-Post must be exactly 'List-Unsubscribe=One-Click'"
    signatures = message.get_all("DKIM-Signature") or []
    if not signatures:
        return FAIL, "the message has no DKIM-Signature covering the unsubscribe headers"
    for sig in signatures:
        signed = {h.strip().lower() for h in _dkim_tags(str(sig)).get("h", "").split(":")}
        if {"list-unsubscribe", "list-unsubscribe-post"} <= signed:
            return PASS, "List-Unsubscribe (https) and List-Unsubscribe-Post, both signed by DKIM"
    return FAIL, (
        "the DKIM signature's h= must include both List-Unsubscribe and "
        "List-Unsubscribe-Post (RFC 8058 section 4)"
    )


#: Mailbox providers whose From domains bulk senders must not use (Gmail's 2024 rule).
_PROVIDER_DOMAINS = frozenset(
    {"gmail.com", "googlemail.com", "yahoo.com", "outlook.com", "hotmail.com", "live.com"}
)


def message_format(message: email.message.Message) -> tuple[CheckStatus, str]:
    """The RFC 5322 basics bulk senders are held to: (status, detail)."""
    problems = []
    froms = message.get_all("From") or []
    if len(froms) != 1:
        problems.append(f"{len(froms)} From fields (exactly one needed)")
    else:
        addresses = email.utils.getaddresses([str(froms[0])])
        if len(addresses) != 1 or "@" not in addresses[0][1]:
            problems.append("From is not a single address")
        elif addresses[0][1].rpartition("@")[2].lower() in _PROVIDER_DOMAINS:
            problems.append("From uses a mailbox provider's domain (impersonation)")
    for name in ("Date", "Message-ID"):
        if len(message.get_all(name) or []) != 1:
            problems.append(f"no single {name} field")
    if problems:
        return FAIL, "; ".join(problems)
    return PASS, "one From with a single address, a Date and a Message-ID"


def _tls_item(tls: bool | None, transport: str | None) -> ReadinessItem:
    title = "TLS for transmission"
    by = ("gmail",)
    if tls is not None:
        return _item(
            "tls",
            title,
            PASS if tls else FAIL,
            "TLS enabled by configuration" if tls else "TLS disabled by configuration",
            by,
        )
    if transport is None:
        return _item("tls", title, NOT_CHECKED, "no transport configuration given", by)
    # The transports' own reading of their URLs (smtp:// requires STARTTLS unless
    # ?tls= says otherwise, mx:// is opportunistic, providers use HTTPS).
    from mailscale.transports.registry import transport_from_url, transport_tls

    try:
        mode = transport_tls(transport)
        # Reading the URL is not enough: build it as the application would (nothing is
        # sent), so that what the transports refuse ("smtp://" has no host) is said.
        # A file:// member is not created on disk by this.
        transport_from_url(transport, options_for={"file": {"create": False}}).close()
    except ConfigurationError as exc:  # its message shows the URL redacted
        return _item("tls", title, NOT_CHECKED, f"invalid transport URL: {exc}", by)
    if mode == "required":
        return _item("tls", title, PASS, "every connection uses TLS", by)
    if mode == "opportunistic":
        return _item(
            "tls",
            title,
            WARN,
            "STARTTLS only when the receiving server offers it (Gmail and Yahoo "
            "do); use ?tls=required to refuse plaintext",
            by,
        )
    if mode == "none":
        return _item("tls", title, FAIL, "TLS turned off in the transport URL", by)
    return _item("tls", title, NOT_CHECKED, "this transport does not send over the network", by)


def _complaint_item(rate: float | None) -> ReadinessItem:
    title = "Spam complaint rate"
    by = ("gmail", "yahoo")
    if rate is None:
        return _item("complaint_rate", title, NOT_CHECKED, "no sending statistics given", by)
    pct = f"{rate * 100:.2f}%"
    if rate >= COMPLAINT_RATE_LIMIT:
        return _item(
            "complaint_rate",
            title,
            FAIL,
            f"{pct}: at or above the 0.3% limit; mail will be rejected or filtered",
            by,
        )
    if rate >= COMPLAINT_RATE_TARGET:
        return _item("complaint_rate", title, WARN, f"{pct}: under 0.3% but above the 0.1% aim", by)
    return _item("complaint_rate", title, PASS, f"{pct}: below 0.1%", by)


def _rate(
    complaint_rate: float | None, complaints: int | None, delivered: int | None
) -> float | None:
    if complaint_rate is not None:
        if (
            isinstance(complaint_rate, bool)
            or not isinstance(complaint_rate, (int, float))
            or not 0 <= float(complaint_rate) <= 1
        ):
            raise AuthCheckError(
                f"complaint_rate is a fraction 0..1 (0.001 = 0.1%), not {complaint_rate!r}"
            )
        return float(complaint_rate)
    if complaints is None and delivered is None:
        return None
    for what, count in (("complaints", complaints), ("delivered", delivered)):
        if count is not None and (isinstance(count, bool) or not isinstance(count, int)):
            raise AuthCheckError(f"{what} must be a whole number, not {count!r}")
    if complaints is None or delivered is None or complaints < 0 or delivered <= 0:
        raise AuthCheckError("give both complaints >= 0 and delivered > 0")
    if complaints > delivered:
        raise AuthCheckError("complaints cannot exceed delivered messages")
    return complaints / delivered


def _dkim_item(
    auth: AuthReport, message: email.message.Message | None, results: Sequence[VerifyResult]
) -> ReadinessItem:
    title = "DKIM passes"
    broken = [d for d in auth.dkim if d.status not in (CheckStatus.OK, CheckStatus.TEMPERROR)]
    if broken:
        return _item(
            "dkim", title, FAIL, ", ".join(f"selector {d.selector}: {d.status}" for d in broken)
        )
    if message is not None:
        if not message.get_all("DKIM-Signature"):
            return _item("dkim", title, FAIL, "the sample message has no DKIM-Signature")
        passed = [r for r in results if r.ok]
        if passed:
            return _item(
                "dkim",
                title,
                PASS,
                "the sample message's signature verifies: "
                + ", ".join(f"d={r.domain} s={r.selector}" for r in passed),
            )
        if results and all(r.status is VerifyStatus.TEMPERROR for r in results):
            return _item(
                "dkim", title, NOT_CHECKED, "temporary error fetching the key: " + results[0].reason
            )
        return _item(
            "dkim",
            title,
            FAIL,
            "no signature of the sample message verifies: "
            + "; ".join(f"s={r.selector}: {r.status} ({r.reason})" for r in results),
        )
    if any(d.status is CheckStatus.TEMPERROR for d in auth.dkim):
        return _item("dkim", title, NOT_CHECKED, "temporary DNS error fetching a key")
    if auth.dkim:
        keys = ", ".join(f"{d.selector}: {d.key_type} {d.key_bits}" for d in auth.dkim)
        return _item(
            "dkim",
            title,
            NOT_CHECKED,
            f"keys published and valid ({keys}); give a signed sample message "
            "to verify a signature",
        )
    return _item("dkim", title, NOT_CHECKED, "no DKIM selector or sample message given")


#: Key records fetched to verify a sample message's signatures.
MAX_SAMPLE_SIGNATURES = 10


async def _verify_dkim(
    raw: bytes,
    message: email.message.Message,
    resolver: ResolverLike,
    timeout: float | None,
    lifetime: float | None,
    budget: DNSBudget | None,
) -> list[VerifyResult]:
    """Verify the sample's DKIM signatures, fetching their keys with the check's resolver.

    At most :data:`MAX_SAMPLE_SIGNATURES` key records are fetched; a signature whose
    key was not fetched gets a temporary error.
    """
    names = []
    for sig in message.get_all("DKIM-Signature") or []:
        tags = _dkim_tags(str(sig))
        if tags.get("s") and tags.get("d"):
            names.append(f"{tags['s']}._domainkey.{tags['d']}".lower())
    names = list(dict.fromkeys(names))
    skipped = set(names[MAX_SAMPLE_SIGNATURES:])
    names = names[:MAX_SAMPLE_SIGNATURES]
    dns = DNSClient(make_resolver(resolver, timeout=timeout, lifetime=lifetime), budget)
    found = dict(
        zip(names, await asyncio.gather(*(dns.query(n, "TXT") for n in names)), strict=True)
    )

    def lookup(name: str) -> list[bytes] | None:
        if name.lower() in skipped:
            raise LookupError(
                f"not looked up: the sample has more than {MAX_SAMPLE_SIGNATURES} signing keys"
            )
        got = found.get(name.lower())
        if got is not None and got.temporary:
            raise LookupError(got.describe())
        if got is None or not got.strings:  # no record, or a name DNS cannot carry
            return None
        return list(got.strings[0])

    return verify(raw, key_lookup=lookup)


def build_items(
    auth: AuthReport,
    *,
    message: email.message.Message | None,
    tls: bool | None,
    transport: str | None,
    rate: float | None,
    dkim_results: Sequence[VerifyResult] = (),
) -> tuple[ReadinessItem, ...]:
    """The checklist from a DNS report, DKIM verification results and the other inputs."""
    items = []
    spf = auth.spf
    title = "SPF passes for the sending IPs"
    if spf.status is CheckStatus.TEMPERROR:
        items.append(_item("spf", title, NOT_CHECKED, "temporary DNS error fetching SPF"))
    elif spf.status in (CheckStatus.MISSING, CheckStatus.INVALID):
        items.append(_item("spf", title, FAIL, f"SPF record {spf.status}"))
    elif not spf.results:
        items.append(
            _item(
                "spf",
                title,
                NOT_CHECKED,
                "the SPF record is valid; give sending IPs to check they pass",
            )
        )
    elif all(r is SPFResult.PASS for r in spf.results.values()):
        items.append(_item("spf", title, PASS, "every sending IP passes SPF"))
    elif any(r is SPFResult.TEMPERROR for r in spf.results.values()):
        items.append(_item("spf", title, NOT_CHECKED, "temporary DNS error during check_host"))
    else:
        bad = ", ".join(f"{ip}: {r}" for ip, r in spf.results.items() if r is not SPFResult.PASS)
        items.append(_item("spf", title, FAIL, bad))

    items.append(_dkim_item(auth, message, dkim_results))

    dmarc = auth.dmarc
    title = "DMARC published, at least p=none"
    if dmarc.status is CheckStatus.TEMPERROR:
        items.append(_item("dmarc", title, NOT_CHECKED, "temporary DNS error fetching DMARC"))
    elif dmarc.status is CheckStatus.MISSING:
        items.append(_item("dmarc", title, FAIL, "no DMARC record: publish v=DMARC1; p=none"))
    elif dmarc.policy is None:
        items.append(_item("dmarc", title, FAIL, f"DMARC record {dmarc.status}"))
    else:
        status = PASS if dmarc.status is CheckStatus.OK else WARN
        items.append(
            _item(
                "dmarc",
                title,
                status,
                f"p={dmarc.policy} at _dmarc.{dmarc.found_at}"
                + ("" if status is PASS else f" ({dmarc.status})"),
            )
        )

    al = auth.alignment
    title = "From domain aligned with SPF or DKIM"
    if dmarc.status in (CheckStatus.MISSING, CheckStatus.TEMPERROR) or dmarc.policy is None:
        items.append(_item("alignment", title, NOT_CHECKED, "no usable DMARC record"))
    elif al.status is CheckStatus.OK:
        which = " and ".join(
            n for n, ok in (("SPF", al.spf_aligned), ("DKIM", al.dkim_aligned)) if ok
        )
        items.append(_item("alignment", title, PASS, f"{which} aligned with {al.from_domain}"))
    elif al.spf_aligned is None and al.dkim_aligned is None:
        items.append(_item("alignment", title, NOT_CHECKED, "no envelope or DKIM domain known"))
    elif al.status is CheckStatus.UNKNOWN:
        items.append(
            _item(
                "alignment",
                title,
                NOT_CHECKED,
                "an aligned identifier's record could not be fetched (temporary DNS error)",
            )
        )
    else:
        items.append(
            _item(
                "alignment",
                title,
                FAIL,
                f"neither the envelope domain nor DKIM d= aligns with {al.from_domain}",
            )
        )

    title = "Forward-confirmed reverse DNS for sending IPs"
    by = ("gmail", "yahoo")
    if not auth.ptr:
        items.append(_item("fcrdns", title, NOT_CHECKED, "no sending IP given", by))
    elif all(p.status is CheckStatus.PASS for p in auth.ptr):
        items.append(
            _item(
                "fcrdns",
                title,
                PASS,
                ", ".join(f"{p.ip} <-> {p.confirmed[0]}" for p in auth.ptr),
                by,
            )
        )
    elif any(p.status in (CheckStatus.FAIL, CheckStatus.MISSING) for p in auth.ptr):
        items.append(
            _item(
                "fcrdns",
                title,
                FAIL,
                ", ".join(f"{p.ip}: {p.status}" for p in auth.ptr if p.status is not PASS),
                by,
            )
        )
    else:
        items.append(_item("fcrdns", title, NOT_CHECKED, "temporary DNS error", by))

    items.append(_tls_item(tls, transport))

    title = "One-click unsubscribe (RFC 8058)"
    by = ("gmail", "yahoo")
    if message is None:
        items.append(
            _item("one_click_unsubscribe", title, NOT_CHECKED, "no sample message given", by)
        )
    else:
        status, detail = one_click_unsubscribe(message)
        items.append(_item("one_click_unsubscribe", title, status, detail, by))

    title = "Message format (RFC 5322 From, Date, Message-ID)"
    if message is None:
        items.append(_item("message_format", title, NOT_CHECKED, "no sample message given"))
    else:
        status, detail = message_format(message)
        items.append(_item("message_format", title, status, detail))

    items.append(_complaint_item(rate))
    return tuple(items)


async def readiness_async(
    domain: str,
    *,
    dkim_selectors: Iterable[str] = (),
    sending_ips: Iterable[str] = (),
    esp: str | None = None,
    resolver: ResolverLike = None,
    from_domain: str | None = None,
    envelope_domain: str | None = None,
    dkim_domain: str | None = None,
    dkim_keys: Mapping[str, PublicKey | PrivateKey] | None = None,
    tls: bool | None = None,
    transport: str | None = None,
    sample_message: bytes | str | email.message.Message | None = None,
    complaint_rate: float | None = None,
    complaints: int | None = None,
    delivered: int | None = None,
    report: AuthReport | None = None,
    timeout: float | None = None,
    lifetime: float | None = None,
    budget: DNSBudget | None = None,
) -> ReadinessReport:
    """The asyncio form of :func:`readiness`."""
    domain = normalize_domain(domain)
    rate = _rate(complaint_rate, complaints, delivered)
    if tls is not None and not isinstance(tls, bool):
        raise AuthCheckError(f"tls must be True, False or None, not {tls!r}")
    opt_str(transport, "transport")
    if report is not None and not isinstance(report, AuthReport):
        raise AuthCheckError(f"report must be an AuthReport, not {type(report).__name__}")
    message = _parse_message(sample_message) if sample_message is not None else None
    raw = _raw_message(sample_message) if sample_message is not None else None
    selectors = str_items(dkim_selectors, "dkim_selectors")
    if message is not None:
        # The sample message tells the From, envelope and DKIM identities when not given.
        from_domain = from_domain or _domain_of(message.get("From"))
        envelope_domain = envelope_domain or _domain_of(message.get("Return-Path"))
        sig = message.get("DKIM-Signature")
        if sig is not None:
            tags = _dkim_tags(str(sig))
            dkim_domain = dkim_domain or tags.get("d")
            if tags.get("s") and not selectors:
                selectors = [tags["s"]]
    verifying = None
    if message is not None and raw is not None:
        verifying = asyncio.ensure_future(
            _verify_dkim(raw, message, resolver, timeout, lifetime, budget)
        )
    if report is None:
        report = await check_domain_async(
            domain,
            dkim_selectors=selectors,
            sending_ips=sending_ips,
            esp=esp,
            resolver=resolver,
            from_domain=from_domain,
            envelope_domain=envelope_domain,
            dkim_domain=dkim_domain,
            dkim_keys=dkim_keys,
            timeout=timeout,
            lifetime=lifetime,
            budget=budget,
        )
    results = await verifying if verifying is not None else []
    items = build_items(
        report, message=message, tls=tls, transport=transport, rate=rate, dkim_results=results
    )
    return ReadinessReport(domain, items, report)


readiness = blocking(
    readiness_async,
    """Check ``domain`` against the Gmail/Yahoo (2024) and Microsoft (2025) bulk-sender rules.

    Takes :func:`check_domain`'s arguments, plus:

    Args:
        tls: whether transmission uses TLS, when known.
        transport: a transport URL (``smtp://...``, ``sendgrid://...``) to read TLS from.
        sample_message: a message as sent: its DKIM signatures are verified (keys fetched
            with ``resolver``), its one-click unsubscribe headers checked, and its From,
            Return-Path and DKIM-Signature fill in the identities not given.
        complaint_rate: spam complaints per delivered message (0.001 = 0.1%); or give
            ``complaints`` and ``delivered``.
        report: an :class:`AuthReport` already made, to skip the DNS lookups.
        budget: the DNS budget of the check (:class:`DNSBudget`); verifying the sample
            message's signatures has a budget of its own, and fetches at most 10 keys.
    """,
)
