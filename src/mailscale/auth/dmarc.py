"""DMARC (RFC 7489): record discovery, tag validation, report authorization."""

from __future__ import annotations

import asyncio
import functools
import re

from mailscale._deprecation import deprecated_aliases
from mailscale.auth._args import str_arg
from mailscale.auth._dns import DNSClient, Lookup
from mailscale.auth._model import CheckStatus, DMARCReport, Finding, HostStatus, Policy, Severity
from mailscale.errors import AuthCheckError

__all__ = [
    "MAX_REPORT_DESTINATIONS",
    "analyze_dmarc_async",
    "organizational_domain",
    "parse_dmarc",
    "parse_dmarc_lenient",
]

__getattr__ = deprecated_aliases(__name__, {"analyze_dmarc": "analyze_dmarc_async"})

#: External report destinations whose authorization is looked up, per record.
MAX_REPORT_DESTINATIONS = 10

_POLICIES = ("none", "quarantine", "reject")
_KNOWN_TAGS = frozenset(
    {"v", "p", "sp", "np", "pct", "rua", "ruf", "adkim", "aspf", "fo", "rf", "ri", "psd", "t"}
)
_TAG_RE = re.compile(r"^\s*([A-Za-z][A-Za-z0-9_]*)\s*=\s*(.*?)\s*$", re.S)
_URI_RE = re.compile(r"^(mailto:[^!\s]+|https?://[^!\s]+)(?:!([0-9]+)([kmgtKMGT]?))?$")
_MAILTO_RE = re.compile(r"^mailto:([^@\s]+)@([A-Za-z0-9.-]+\.[A-Za-z0-9-]+)$", re.I)


def _digits(text: str) -> bool:
    """True for a non-empty run of ASCII digits (str.isdigit also takes "²")."""
    return text.isascii() and text.isdigit()


@functools.lru_cache(maxsize=1)
def _psl() -> object:
    from publicsuffixlist import PublicSuffixList

    return PublicSuffixList()


def organizational_domain(domain: str) -> str:
    """The organizational domain of ``domain`` (public-suffix aware, offline).

    A name that is itself a public suffix is its own organizational domain.
    """
    name = str_arg(domain, "domain").rstrip(".").lower()
    return _psl().privatesuffix(name) or name  # type: ignore[attr-defined]


# RFC 7489 6.4: dmarc-version = "v" *WSP "=" *WSP %x44.4d.41.52.43.31 at the very start
# (the quoted "v" is case-insensitive, DMARC1 is not); 6.6.3 discards anything else.
_VERSION_RE = re.compile(r"[vV][ \t]*=[ \t]*DMARC1[ \t]*(?:;|$)")
_NEAR_VERSION_RE = re.compile(r"\s*v\s*=\s*dmarc1", re.I)


def is_dmarc(text: str) -> bool:
    """True for a TXT value that is a DMARC record: it begins with ``v=DMARC1``.

    RFC 7489 6.6.3: records that do not start with the version tag are discarded,
    so a leading space or ``v=dmarc1`` makes a TXT value that is not a DMARC record.
    """
    return _VERSION_RE.match(text) is not None


def _near_dmarc(text: str) -> bool:
    """A TXT value that looks meant as DMARC but that receivers discard."""
    return not is_dmarc(text) and _NEAR_VERSION_RE.match(text) is not None


def _tag_list(text: str) -> dict[str, str]:
    """The tags of a DMARC record; raises on what makes the whole record unusable."""
    str_arg(text, "DMARC record")
    if not is_dmarc(text):
        raise AuthCheckError(f"not a DMARC record (must start with 'v=DMARC1'): {text[:60]!r}")
    tags: dict[str, str] = {}
    for part in text.split(";"):
        if not part.strip():
            continue
        m = _TAG_RE.match(part)
        if not m:
            raise AuthCheckError(f"malformed DMARC tag {part.strip()!r}")
        name, value = m.group(1).lower(), m.group(2)
        if name in tags:
            raise AuthCheckError(f"DMARC tag {name}= appears more than once")
        tags[name] = value
    return tags


def _policy_problem(tags: dict[str, str]) -> str | None:
    if "p" not in tags:
        return "DMARC record has no p= (policy) tag"
    if tags["p"].lower() not in _POLICIES:
        return f"DMARC p={tags['p']!r} is not one of none, quarantine, reject"
    return None


def _tag_problem(name: str, value: str) -> str | None:
    """Why a tag's value is invalid, or None when it is fine (or unknown)."""
    if name in ("sp", "np") and value.lower() not in _POLICIES:
        return f"DMARC {name}={value!r} is not one of none, quarantine, reject"
    if name == "pct" and (not _digits(value) or int(value) > 100):
        return f"DMARC pct={value!r} must be an integer 0-100"
    if name in ("adkim", "aspf") and value.lower() not in ("r", "s"):
        return f"DMARC {name}={value!r} must be 'r' or 's'"
    if name == "fo" and any(o.strip() not in ("0", "1", "d", "s") for o in value.split(":")):
        return f"DMARC fo={value!r}: options are 0, 1, d, s"
    if name == "ri" and not _digits(value):
        return f"DMARC ri={value!r} must be a number of seconds"
    if name == "rf" and any(x.strip().lower() != "afrf" for x in value.split(":")):
        return f"DMARC rf={value!r}: the only format is afrf"
    if name in ("rua", "ruf"):
        try:
            report_uris(value, name)
        except AuthCheckError as exc:
            return str(exc)
    return None


def parse_dmarc(text: str) -> dict[str, str]:
    """Parse and validate a DMARC record strictly; return its tags as published.

    Raises:
        AuthCheckError: the record or any tag value is malformed; the message names it.
    """
    tags = _tag_list(text)
    problem = _policy_problem(tags)
    if problem:
        raise AuthCheckError(problem)
    for name, value in tags.items():
        problem = _tag_problem(name, value)
        if problem:
            raise AuthCheckError(problem)
    return tags


def parse_dmarc_lenient(text: str) -> tuple[dict[str, str], list[str]]:
    """Parse a DMARC record as receivers do: invalid tag values are dropped.

    RFC 7489 6.3: an invalid value is discarded in favor of the default. A missing
    or invalid ``p=`` (and an invalid ``sp=``) is dropped too; whether a policy
    applies then is :func:`applied_policy`'s question (RFC 7489 6.6.3). Returns the
    usable tags and one message per dropped tag.

    Raises:
        AuthCheckError: the record is unusable (not ``v=DMARC1``, malformed tag list).
    """
    tags = _tag_list(text)
    problems = []
    if "p" in tags and tags["p"].lower() not in _POLICIES:
        problems.append(f"DMARC p={tags['p']!r} is not one of none, quarantine, reject")
        del tags["p"]
    for name in list(tags):
        problem = _tag_problem(name, tags[name])
        if problem:
            problems.append(
                problem + ("" if name == "sp" else "; receivers ignore it and use the default")
            )
            del tags[name]
    return tags, problems


def applied_policy(text: str) -> Policy | None:
    """The policy receivers apply for a DMARC record (RFC 7489 6.6.3 step 6).

    A record whose ``p=`` is missing or invalid, or whose ``sp=`` is invalid, is
    read as ``p=none`` when its ``rua=`` holds a valid URI, and as no policy at all
    (no DMARC processing) otherwise. None also for a text that is not a usable record.
    """
    try:
        tags = _tag_list(text)
    except AuthCheckError:
        return None
    valid_p = _policy_problem(tags) is None
    valid_sp = "sp" not in tags or tags["sp"].lower() in _POLICIES
    if valid_p and valid_sp:
        return Policy(tags["p"].lower())
    return Policy.NONE if _valid_rua(tags) else None


def _valid_rua(tags: dict[str, str]) -> bool:
    """True when rua= holds at least one syntactically valid URI."""
    for raw in tags.get("rua", "").split(","):
        try:
            report_uris(raw, "rua")
        except AuthCheckError:
            continue
        return True
    return False


def report_uris(value: str, tag: str = "rua") -> list[str]:
    """The URIs of a rua/ruf value, each validated (``!size`` suffixes dropped)."""
    uris = []
    for raw in value.split(","):
        raw = raw.strip()
        m = _URI_RE.match(raw)
        if not m:
            raise AuthCheckError(f"DMARC {tag}: {raw!r} is not a mailto: or https: URI")
        uri = m.group(1)
        if uri.lower().startswith("mailto:") and not _MAILTO_RE.match(uri):
            raise AuthCheckError(f"DMARC {tag}: {raw!r} is not a valid mailto: address")
        uris.append(uri)
    return uris


def mailto_domain(uri: str) -> str | None:
    m = _MAILTO_RE.match(uri)
    return m.group(2).lower().rstrip(".") if m else None


async def _fetch(dns: DNSClient, domain: str) -> tuple[Lookup, list[str]]:
    lookup = await dns.query(f"_dmarc.{domain}", "TXT")
    return lookup, [r for r in lookup.records if is_dmarc(r)]


def _discarded(lookup: Lookup) -> list[Finding]:
    return [
        Finding(
            Severity.WARNING,
            "dmarc.not_dmarc",
            f"a TXT record at {lookup.name} looks like DMARC but does not begin with exactly "
            "'v=DMARC1' (RFC 7489 6.6.3): receivers discard it",
            r,
        )
        for r in lookup.records
        if _near_dmarc(r)
    ]


async def analyze_dmarc_async(dns: DNSClient, domain: str) -> DMARCReport:
    """Find the DMARC policy for ``domain`` and validate it."""
    domain = domain.rstrip(".").lower()
    org = organizational_domain(domain)
    lookup, records = await _fetch(dns, domain)
    found_at = domain
    findings: list[Finding] = []
    if lookup.temporary:
        return DMARCReport(
            None,
            CheckStatus.TEMPERROR,
            findings=[
                Finding(
                    Severity.ERROR,
                    "dmarc.temperror",
                    f"could not fetch the DMARC record: {lookup.describe()}; this "
                    "is not 'no record'",
                    f"_dmarc.{domain}",
                )
            ],
        )
    findings.extend(_discarded(lookup))
    if not records and org != domain:
        lookup, records = await _fetch(dns, org)
        findings.extend(_discarded(lookup))
        found_at = org
        if lookup.temporary:
            return DMARCReport(
                None,
                CheckStatus.TEMPERROR,
                findings=[
                    Finding(
                        Severity.ERROR,
                        "dmarc.temperror",
                        f"no DMARC record at _dmarc.{domain}; the organizational "
                        "domain's could not "
                        f"be fetched: {lookup.describe()}",
                        f"_dmarc.{org}",
                    )
                ],
            )
        if records:
            findings.append(
                Finding(
                    Severity.INFO,
                    "dmarc.org_fallback",
                    f"no record at _dmarc.{domain}: the policy of the organizational domain "
                    f"{org} applies (its sp= for subdomains)",
                    records[0],
                )
            )
    if not records:
        where = f"_dmarc.{domain}" + (f" or _dmarc.{org}" if org != domain else "")
        return DMARCReport(
            None,
            CheckStatus.MISSING,
            findings=[
                *findings,
                Finding(
                    Severity.ERROR,
                    "dmarc.missing",
                    f"no DMARC record at {where}; bulk senders need at least 'v=DMARC1; p=none'",
                    f"_dmarc.{domain}",
                ),
            ],
        )
    if len(records) > 1:
        return DMARCReport(
            records[0],
            CheckStatus.INVALID,
            found_at=found_at,
            findings=[
                *findings,
                Finding(
                    Severity.ERROR,
                    "dmarc.multiple",
                    f"{len(records)} DMARC records at _dmarc.{found_at}; "
                    "receivers apply none of them",
                    " | ".join(records),
                ),
            ],
        )
    text = records[0]
    try:
        tags, problems = parse_dmarc_lenient(text)
    except AuthCheckError as exc:
        return DMARCReport(
            text,
            CheckStatus.INVALID,
            found_at=found_at,
            findings=[*findings, Finding(Severity.ERROR, "dmarc.syntax", str(exc), text)],
        )
    for problem in problems:
        findings.append(Finding(Severity.WARNING, "dmarc.tag_invalid", problem, text))
    applied = applied_policy(text)
    if applied is None:
        # RFC 7489 6.6.3 step 6.2: no valid policy and no valid rua: no DMARC processing.
        return DMARCReport(
            text,
            CheckStatus.INVALID,
            found_at=found_at,
            tags=tags,
            policy=None,
            findings=[
                *findings,
                Finding(
                    Severity.ERROR,
                    "dmarc.no_policy",
                    "the record has no valid p= (or has an invalid sp=) and no "
                    "valid rua=: receivers apply no DMARC to your mail (RFC 7489 "
                    "6.6.3); publish p=none, quarantine or reject",
                    text,
                ),
            ],
        )
    if applied is Policy.NONE and Policy.parse(tags.get("p")) is not Policy.NONE:
        findings.append(
            Finding(
                Severity.WARNING,
                "dmarc.policy_fallback",
                "the record has no valid p= (or has an invalid sp=): with a valid rua= "
                "receivers act as if it said p=none (RFC 7489 6.6.3), for the domain and its "
                "subdomains; fix the policy tags",
                text,
            )
        )
    policy = applied
    if found_at != domain and "sp" in tags and applied is not Policy.NONE:
        policy = Policy(tags["sp"].lower())
    if policy is Policy.NONE:
        findings.append(
            Finding(
                Severity.INFO,
                "dmarc.policy_none",
                "p=none: the minimum bulk senders need; move to quarantine or reject once "
                "aggregate reports show all your mail aligned",
                text,
            )
        )
    if "pct" in tags and int(tags["pct"]) < 100 and policy is not Policy.NONE:
        findings.append(
            Finding(
                Severity.WARNING,
                "dmarc.pct",
                f"pct={tags['pct']}: the policy applies to part of the mail only",
                text,
            )
        )
    if "rua" not in tags:
        findings.append(
            Finding(
                Severity.WARNING,
                "dmarc.no_rua",
                "no rua=: you get no aggregate reports to see who sends as you",
                text,
            )
        )
    for name in sorted(set(tags) - _KNOWN_TAGS):
        findings.append(
            Finding(
                Severity.WARNING,
                "dmarc.unknown_tag",
                f"unknown DMARC tag {name}= is ignored by receivers",
                text,
            )
        )
    findings.extend(await _authorizations(dns, found_at, tags, text))
    status = (
        CheckStatus.INVALID
        if any(f.severity is Severity.ERROR for f in findings)
        else CheckStatus.OK
    )
    if any(f.code == "dmarc.temperror" for f in findings):
        status = CheckStatus.TEMPERROR
    return DMARCReport(
        text, status, found_at=found_at, tags=tags, findings=findings, policy=applied
    )


async def _authorizations(
    dns: DNSClient, policy_domain: str, tags: dict[str, str], text: str
) -> list[Finding]:
    """Check that external report destinations agreed to receive (RFC 7489 7.1)."""
    org = organizational_domain(policy_domain)
    destinations: dict[str, list[str]] = {}
    for tag in ("rua", "ruf"):
        for uri in report_uris(tags[tag], tag) if tag in tags else ():
            dest = mailto_domain(uri)
            if dest and organizational_domain(dest) != org:
                destinations.setdefault(dest, []).append(tag)
    findings = []
    for tag in ("rua", "ruf"):
        count = len(report_uris(tags[tag], tag)) if tag in tags else 0
        if count > 2:
            findings.append(
                Finding(
                    Severity.WARNING,
                    "dmarc.many_destinations",
                    f"{tag}= lists {count} URIs: receivers need only send to the first two "
                    "(RFC 7489 6.2)",
                    text,
                )
            )
    if len(destinations) > MAX_REPORT_DESTINATIONS:
        findings.append(
            Finding(
                Severity.WARNING,
                "dmarc.destinations_not_checked",
                f"{len(destinations)} external report destinations: the authorization of only "
                f"the first {MAX_REPORT_DESTINATIONS} was looked up",
                text,
            )
        )
        destinations = dict(list(destinations.items())[:MAX_REPORT_DESTINATIONS])
    names = {dest: f"{policy_domain}._report._dmarc.{dest}" for dest in destinations}
    lookups = await asyncio.gather(*(dns.query(n, "TXT") for n in names.values()))
    for (dest, tag_list), lookup in zip(destinations.items(), lookups, strict=True):
        tag = "/".join(sorted(set(tag_list)))
        if lookup.status is HostStatus.INVALID_NAME:
            findings.append(
                Finding(
                    Severity.ERROR,
                    "dmarc.report_name_invalid",
                    f"{tag} destination {dest} can never authorize reports for {policy_domain}: "
                    f"{lookup.describe()}; use a destination with a shorter name",
                    text,
                )
            )
        elif lookup.temporary:
            findings.append(
                Finding(
                    Severity.ERROR,
                    "dmarc.temperror",
                    f"could not check that {dest} accepts {tag} reports: {lookup.describe()}",
                    text,
                )
            )
        elif any(is_dmarc(r) for r in lookup.records):
            continue
        else:
            findings.append(
                Finding(
                    Severity.WARNING,
                    "dmarc.report_unauthorized",
                    f"{tag} destination {dest} has not authorized reports for {policy_domain}, "
                    f"so it gets none: it must publish 'v=DMARC1' at {names[dest]}",
                    text,
                )
            )
    return findings
