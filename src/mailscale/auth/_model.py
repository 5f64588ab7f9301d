"""Findings and the reports the checks return."""

from __future__ import annotations

import enum
from typing import Any

import attrs

from mailscale.message import ValueEnum

__all__ = [
    "AlignmentReport",
    "AuthReport",
    "CheckStatus",
    "DKIMReport",
    "DMARCReport",
    "DNSUsage",
    "Finding",
    "HostStatus",
    "MXHost",
    "MXReport",
    "PTRReport",
    "Policy",
    "ReadinessStatus",
    "SPFReport",
    "SPFResult",
    "Severity",
]


class Severity(ValueEnum):
    """How much a finding matters: errors break delivery, warnings risk it."""

    ERROR = "error"
    WARNING = "warning"
    INFO = "info"


class CheckStatus(ValueEnum):
    """The status of a check (a record, a host, an IP, alignment, a readiness item)."""

    OK = "ok"
    PASS = "pass"
    FAIL = "fail"
    WARN = "warn"
    MISSING = "missing"
    INVALID = "invalid"
    REVOKED = "revoked"
    NULL = "null"
    TEMPERROR = "temperror"
    UNKNOWN = "unknown"
    NOT_CHECKED = "not checked"


class HostStatus(ValueEnum):
    """What DNS said about a name, and so whether an MX host resolved.

    An MX host is ``ok``, ``none`` (no address), the temporary DNS failure
    (``servfail``, ``timeout``, ``error``, ``budget``) or ``not checked`` (past the
    first ten hosts). The same enum is the status of every DNS lookup of a check
    (``ok``, ``nodata``, ``nxdomain``, a failure, or ``invalid_name``): one home for
    DNS outcomes.
    """

    OK = "ok"
    NONE = "none"
    NODATA = "nodata"
    NXDOMAIN = "nxdomain"
    SERVFAIL = "servfail"
    TIMEOUT = "timeout"
    ERROR = "error"
    INVALID_NAME = "invalid_name"
    BUDGET = "budget"
    NOT_CHECKED = "not checked"


class SPFResult(ValueEnum):
    """The result of SPF ``check_host`` for one IP (RFC 7208 section 2.6)."""

    NONE = "none"
    """No SPF record, or no valid domain to ask about."""
    NEUTRAL = "neutral"
    """The record says nothing about the IP (``?all``, or no term matched)."""
    PASS = "pass"
    """The IP is authorized."""
    FAIL = "fail"
    """The IP is explicitly not authorized (``-all``)."""
    SOFTFAIL = "softfail"
    """The IP is probably not authorized (``~all``)."""
    TEMPERROR = "temperror"
    """A temporary DNS error: checking again later may succeed."""
    PERMERROR = "permerror"
    """The records cannot be interpreted (syntax, lookup limits): fix the record."""


class ReadinessStatus(ValueEnum):
    """The verdict of a readiness checklist."""

    READY = "ready"
    NOT_READY = "not ready"
    INCOMPLETE = "incomplete"


@attrs.frozen
class Finding:
    """One observation about the domain's setup.

    Attributes:
        severity: error, warning or info.
        code: a stable dotted code (``spf.too_many_lookups``) to match on.
        message: what is wrong and, where it helps, what to do.
        record: the DNS record the finding came from; the name looked up when there is
            no record; None for findings derived from several records (alignment).
    """

    severity: Severity
    code: str
    message: str
    record: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serializable dict: severity (its value), code, message and record."""
        return {
            "severity": self.severity.value,
            "code": self.code,
            "message": self.message,
            "record": self.record,
        }


class Policy(ValueEnum):
    """A DMARC policy (``p=``, ``sp=``): compares equal to its lower-case value."""

    NONE = "none"
    QUARANTINE = "quarantine"
    REJECT = "reject"

    @classmethod
    def parse(cls, value: object) -> Policy | None:
        """The policy a tag value names, in any case (``"REJECT"`` is reject); None if none."""
        if isinstance(value, cls):
            return value
        if isinstance(value, str):
            try:
                return cls(value.strip().lower())
            except ValueError:
                return None
        return None


def _policy(value: object) -> Policy | None:
    return Policy.parse(value)


def _findings(value: Any) -> tuple[Finding, ...]:
    return tuple(value)


def _spf_results(value: Any) -> dict[str, SPFResult]:
    return {ip: SPFResult(result) for ip, result in dict(value).items()}


@attrs.frozen
class SPFReport:
    """The SPF record of a domain and what evaluating it gave.

    Attributes:
        record: the one ``v=spf1`` record, or None.
        status: ``ok``, ``missing``, ``invalid`` or ``temperror``.
        lookups: DNS-querying terms counted through include/redirect.
        void_lookups: lookups that returned no records.
        results: the :class:`SPFResult` of check_host per sending IP
            (pass/fail/softfail/neutral/none/permerror/temperror).
        esp_include: whether the ESP's include is present (None when no ESP given).
    """

    record: str | None
    status: CheckStatus = attrs.field(converter=CheckStatus)
    lookups: int = 0
    void_lookups: int = 0
    results: dict[str, SPFResult] = attrs.field(factory=dict, converter=_spf_results)
    esp_include: bool | None = None
    findings: tuple[Finding, ...] = attrs.field(default=(), converter=_findings)


@attrs.frozen
class DKIMReport:
    """The key record at one selector.

    Attributes:
        status: ``ok``, ``missing``, ``invalid``, ``revoked`` or ``temperror``.
        key_type: ``rsa`` or ``ed25519`` when the key parsed.
        key_bits: the RSA modulus size (256 for Ed25519).
        testing: the ``t=y`` flag.
        matches_local_key: whether it equals the given local key (None when none given).
    """

    selector: str
    name: str
    record: str | None
    status: CheckStatus = attrs.field(converter=CheckStatus)
    key_type: str | None = None
    key_bits: int | None = None
    testing: bool = False
    matches_local_key: bool | None = None
    findings: tuple[Finding, ...] = attrs.field(default=(), converter=_findings)


@attrs.frozen
class DMARCReport:
    """The DMARC policy that applies to a domain.

    Attributes:
        record: the ``v=DMARC1`` record, or None.
        status: ``ok``, ``missing``, ``invalid`` or ``temperror``.
        found_at: the domain the record was found at (the organizational
            domain when the domain itself has none).
        tags: the record's valid tags as published (defaults not filled in;
            invalid values dropped, as receivers drop them).
        policy: the policy receivers apply (``p=``), a :class:`Policy`; ``none``
            when ``p=`` or ``sp=`` is missing or invalid and ``rua=`` is valid
            (RFC 7489 6.6.3); None when no policy applies.
    """

    record: str | None
    status: CheckStatus = attrs.field(converter=CheckStatus)
    found_at: str | None = None
    tags: dict[str, str] = attrs.field(factory=dict)
    findings: tuple[Finding, ...] = attrs.field(default=(), converter=_findings)
    policy: Policy | None = attrs.field(
        default=attrs.Factory(lambda self: self.tags.get("p"), takes_self=True), converter=_policy
    )

    @property
    def subdomain_policy(self) -> Policy | None:
        """The policy for subdomains: ``sp=`` when valid, else :attr:`policy`."""
        if self.policy is Policy.NONE and Policy.parse(self.tags.get("p")) is not Policy.NONE:
            return Policy.NONE  # the RFC 7489 6.6.3 fallback covers the whole record
        return Policy.parse(self.tags.get("sp")) or self.policy

    @property
    def adkim(self) -> str:
        """DKIM alignment mode: ``r`` (relaxed, the default) or ``s`` (strict)."""
        return self.tags.get("adkim", "r")

    @property
    def aspf(self) -> str:
        """SPF alignment mode: ``r`` (relaxed, the default) or ``s`` (strict)."""
        return self.tags.get("aspf", "r")


@attrs.frozen
class MXHost:
    """One MX host of a domain.

    Attributes:
        preference: its MX preference (lower is tried first).
        host: the exchanger's name.
        addresses: the IPv4 and IPv6 addresses it resolves to.
        status: ``ok`` when it resolves, ``not checked`` past the first ten hosts,
            else why it does not resolve.
    """

    preference: int
    host: str
    addresses: tuple[str, ...]
    status: HostStatus = attrs.field(converter=HostStatus)


@attrs.frozen
class MXReport:
    """The MX hosts of the domain and whether each resolves.

    Attributes:
        status: ``ok``, ``missing``, ``null`` (RFC 7505), ``invalid`` or ``temperror``.
        hosts: every MX host, by preference; only the first ten are resolved
            (the others have the status ``not checked``).
    """

    status: CheckStatus = attrs.field(converter=CheckStatus)
    hosts: tuple[MXHost, ...] = ()
    findings: tuple[Finding, ...] = attrs.field(default=(), converter=_findings)


@attrs.frozen
class PTRReport:
    """Forward-confirmed reverse DNS of one sending IP.

    Attributes:
        names: the PTR names of the IP.
        confirmed: the names that resolve back to the IP.
        status: ``pass``, ``fail``, ``missing`` or ``temperror``.
    """

    ip: str
    status: CheckStatus = attrs.field(converter=CheckStatus)
    names: tuple[str, ...] = ()
    confirmed: tuple[str, ...] = ()
    findings: tuple[Finding, ...] = attrs.field(default=(), converter=_findings)


@attrs.frozen
class AlignmentReport:
    """Identifier alignment of the From domain (RFC 7489 section 3.1).

    ``spf_*`` compare the envelope (return-path) domain, ``dkim_*`` the DKIM
    ``d=``; ``None`` when that identifier was not known. ``spf_aligned`` and
    ``dkim_aligned`` judge in the mode the DMARC record asks for (None when the
    record could not be fetched and the modes disagree). ``status`` is ``ok`` when
    an identifier aligns and the record it is checked with (SPF, or a DKIM key) was
    fetched, ``fail`` when none aligns, ``unknown`` otherwise: a DNS failure never
    makes alignment ok.
    """

    from_domain: str
    envelope_domain: str | None
    dkim_domain: str | None
    spf_relaxed: bool | None
    spf_strict: bool | None
    dkim_relaxed: bool | None
    dkim_strict: bool | None
    spf_aligned: bool | None
    dkim_aligned: bool | None
    findings: tuple[Finding, ...] = attrs.field(default=(), converter=_findings)
    status: CheckStatus = attrs.field(default=CheckStatus.UNKNOWN, converter=CheckStatus)


@attrs.frozen
class DNSUsage:
    """What a check spent on DNS, against its budget (:class:`mailscale.auth.DNSBudget`).

    Attributes:
        queries: lookups sent.
        refused: lookups not sent because the budget was used up.
        answer_bytes: bytes of record data received.
        exhausted: why the budget stopped the check, or None.
    """

    queries: int
    refused: int = 0
    answer_bytes: int = 0
    exhausted: str | None = None
    findings: tuple[Finding, ...] = attrs.field(default=(), converter=_findings)


@attrs.frozen
class AuthReport:
    """Everything :func:`check_domain` found about one domain."""

    domain: str
    spf: SPFReport
    dkim: tuple[DKIMReport, ...]
    dmarc: DMARCReport
    mx: MXReport
    ptr: tuple[PTRReport, ...]
    alignment: AlignmentReport
    dns: DNSUsage | None = None

    @property
    def findings(self) -> tuple[Finding, ...]:
        """Every finding: DNS budget, SPF, DKIM, DMARC, MX, PTR, then alignment."""
        out = [*(self.dns.findings if self.dns is not None else ()), *self.spf.findings]
        for d in self.dkim:
            out.extend(d.findings)
        out.extend(self.dmarc.findings)
        out.extend(self.mx.findings)
        for p in self.ptr:
            out.extend(p.findings)
        out.extend(self.alignment.findings)
        return tuple(out)

    @property
    def errors(self) -> tuple[Finding, ...]:
        """The findings of severity ERROR (any makes :attr:`ok` False)."""
        return tuple(f for f in self.findings if f.severity is Severity.ERROR)

    @property
    def warnings(self) -> tuple[Finding, ...]:
        """The findings of severity WARNING."""
        return tuple(f for f in self.findings if f.severity is Severity.WARNING)

    @property
    def ok(self) -> bool:
        """True when no finding is an error."""
        return not self.errors

    def codes(self) -> set[str]:
        """The set of finding codes, handy for tests and policies."""
        return {f.code for f in self.findings}

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready view of the report."""
        data = attrs.asdict(self, recurse=True, value_serializer=_serialize)
        data["findings"] = [f.to_dict() for f in self.findings]
        data["ok"] = self.ok
        return data


def _serialize(inst: Any, field: Any, value: Any) -> Any:
    if isinstance(value, enum.Enum):
        return value.value
    return value
