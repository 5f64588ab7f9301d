"""The record-wide SPF analysis: include/redirect walk, RFC 7208 limits, loops, lint findings."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine, Iterable
from typing import Any

import attrs

from mailscale.auth._dns import DNSClient
from mailscale.auth._model import CheckStatus, Finding, Severity, SPFReport, SPFResult
from mailscale.auth._spf_eval import check_host_async, fetch_spf_async
from mailscale.auth._spf_record import (
    ESP_INCLUDES,
    MAX_LOOKUPS,
    MAX_MX_PTR_NAMES,
    MAX_VOID_LOOKUPS,
    SPFRecord,
    SPFTerm,
    parse_spf,
)
from mailscale.errors import AuthCheckError

__all__ = ["analyze_spf_async", "count_lookups_async"]


@attrs.define
class _Walk:
    dns: DNSClient
    findings: list[Finding] = attrs.Factory(list)
    includes: set[str] = attrs.Factory(set)
    nodes: int = 0
    temporary: bool = False
    # Running totals over the whole walk: once they pass the RFC 7208 limits the record
    # is a permerror whatever else it holds, so no further name is looked up.
    lookups: int = 0
    void: int = 0
    stopped: bool = False

    def over_limit(self) -> bool:
        if self.lookups > MAX_LOOKUPS or self.void > MAX_VOID_LOOKUPS:
            self.stopped = True
            return True
        return False


_MAX_NODES = 100


async def _gated(
    walk: _Walk, coro: Coroutine[Any, Any, tuple[int, int, int]]
) -> tuple[int, int, int]:
    """Run a term's lookups only while the walk is within the RFC 7208 limits.

    Every term is counted before any of its record's terms is looked up, so the
    records and names looked up are at most the limit (10), however many terms
    the records hold and however many run at once.
    """
    if walk.over_limit():
        coro.close()
        return 0, 0, 0
    return await coro


def _term_findings(term: SPFTerm, domain: str, record: SPFRecord) -> list[Finding]:
    """What one term says about the record by itself (``+all``, ``?all``, ``ptr``, macros)."""
    text = record.text
    if term.name == "all" and term.qualifier == "+":
        return [
            Finding(
                Severity.ERROR,
                "spf.all_pass",
                f"'+all' at {domain} lets every host on the internet pass SPF",
                text,
            )
        ]
    if term.name == "all" and term.qualifier == "?":
        return [
            Finding(
                Severity.WARNING,
                "spf.all_neutral",
                f"'?all' at {domain} gives no protection; use '~all' or '-all'",
                text,
            )
        ]
    if term.name == "ptr":
        found = [
            Finding(
                Severity.WARNING,
                "spf.ptr",
                f"'{term.text}' at {domain}: the ptr mechanism is slow and "
                "discouraged (RFC 7208 5.5); list the addresses instead",
                text,
            )
        ]
    else:
        found = []
    if term.has_macros and term.name in ("include", "redirect"):
        found.append(
            Finding(
                Severity.INFO,
                "spf.macro",
                f"'{term.text}' at {domain} depends on the sender; "
                "its lookups are counted once, not followed",
                text,
            )
        )
    return found


async def _walk(
    walk: _Walk, domain: str, record: SPFRecord, path: tuple[str, ...]
) -> tuple[int, int, int]:
    """Count lookups and void lookups below ``record``; report problems.

    Returns:
        (lookups, void4, void6): void lookups are counted per address family, as
        check_host asks A for IPv4 senders and AAAA for IPv6 ones.
    """
    walk.nodes += 1
    has_all = any(t.name == "all" for t in record.terms)
    lookups = record.lookup_terms
    if has_all and record.redirect is not None:
        lookups -= 1  # RFC 7208 6.1: redirect is ignored when 'all' is present
    walk.lookups += lookups
    void4 = void6 = 0
    children: list[tuple[str, str]] = []
    checks = []
    for term in record.terms:
        walk.findings.extend(_term_findings(term, domain, record))
        if term.has_macros:
            continue
        if term.name == "include":
            assert term.value is not None
            children.append(("include", term.value.rstrip(".").lower()))
        elif term.name == "redirect" and not has_all:
            assert term.value is not None
            children.append(("redirect", term.value.rstrip(".").lower()))
        elif term.name == "redirect":
            walk.findings.append(
                Finding(
                    Severity.WARNING,
                    "spf.redirect_ignored",
                    f"redirect= at {domain} is ignored because the record has an 'all' term",
                    record.text,
                )
            )
        elif term.name in ("a", "mx", "exists"):
            checks.append(_void_check(walk, term, term.value or domain, record))
        # ptr queries the connecting IP's reverse name: its void lookups depend on the
        # sender, so only check_host (per sending IP) can count them.
    results = await asyncio.gather(
        *(_gated(walk, c) for c in checks),
        *(
            _gated(walk, _child(walk, kind, target, domain, record, path))
            for kind, target in children
        ),
    )
    for lookups_below, void4_below, void6_below in results:
        lookups += lookups_below
        void4 += void4_below
        void6 += void6_below
    return lookups, void4, void6


async def _void_check(
    walk: _Walk, term: SPFTerm, name: str, record: SPFRecord
) -> tuple[int, int, int]:
    if term.name == "mx":
        lookup = await walk.dns.query(name, "MX")
        found = [lookup]
        hosts = [h for h in lookup.records if h]
        if len(hosts) > MAX_MX_PTR_NAMES:
            # RFC 7208 4.6.4: at most 10 address lookups per mx; check_host gives permerror.
            walk.findings.append(
                Finding(
                    Severity.ERROR,
                    "spf.mx_too_many",
                    f"'{term.text}': {name} has {len(hosts)} MX hosts; receivers return "
                    f"permerror above {MAX_MX_PTR_NAMES} (RFC 7208 4.6.4)",
                    record.text,
                )
            )
    elif term.name == "exists":
        found = [await walk.dns.query(name, "A")]  # RFC 7208 5.7: always an A query
    else:
        found = list(await asyncio.gather(walk.dns.query(name, "A"), walk.dns.query(name, "AAAA")))
    if any(x.temporary for x in found):
        bad = next(x for x in found if x.temporary)
        walk.temporary = True
        walk.findings.append(
            Finding(
                Severity.ERROR,
                "spf.temperror",
                f"'{term.text}': {bad.describe()}; SPF gives temperror until it answers",
                record.text,
            )
        )
        return 0, 0, 0
    if term.name == "a":
        # A for IPv4 senders, AAAA for IPv6 ones: each family has its own void count.
        walk.void += max(int(found[0].void), int(found[1].void))
        return 0, int(found[0].void), int(found[1].void)
    void = int(found[0].void)
    walk.void += void
    return 0, void, void


async def _child(
    walk: _Walk, kind: str, target: str, parent: str, record: SPFRecord, path: tuple[str, ...]
) -> tuple[int, int, int]:
    if target in path:
        walk.findings.append(
            Finding(
                Severity.ERROR,
                f"spf.{kind}_loop",
                f"{kind} loop: {' -> '.join((*path, target))}",
                record.text,
            )
        )
        return 0, 0, 0
    if walk.nodes >= _MAX_NODES:
        walk.findings.append(
            Finding(
                Severity.ERROR,
                "spf.too_deep",
                f"stopped after following {_MAX_NODES} SPF records below {path[0]}",
                record.text,
            )
        )
        return 0, 0, 0
    walk.includes.add(target)
    lookup, records = await fetch_spf_async(walk.dns, target)
    if lookup.temporary:
        walk.temporary = True
        walk.findings.append(
            Finding(
                Severity.ERROR,
                "spf.temperror",
                f"{kind}:{target} from {parent}: {lookup.describe()}",
                record.text,
            )
        )
        return 0, 0, 0
    if not records:
        walk.findings.append(
            Finding(
                Severity.ERROR,
                f"spf.{kind}_missing",
                f"{kind}:{target} from {parent} has no SPF record ({lookup.describe()}); "
                "receivers return permerror",
                record.text,
            )
        )
        void = int(lookup.void)
        walk.void += void
        return 0, void, void
    if len(records) > 1:
        walk.findings.append(
            Finding(
                Severity.ERROR,
                "spf.multiple",
                f"{kind}:{target} from {parent} has {len(records)} SPF records",
                records[0],
            )
        )
        return 0, 0, 0
    try:
        child = parse_spf(records[0])
    except AuthCheckError as exc:
        walk.findings.append(
            Finding(
                Severity.ERROR, "spf.syntax", f"{kind}:{target} from {parent}: {exc}", records[0]
            )
        )
        return 0, 0, 0
    return await _walk(walk, target, child, (*path, target))


async def analyze_spf_async(
    dns: DNSClient,
    domain: str,
    *,
    sending_ips: Iterable[str] = (),
    esp: str | None = None,
    sender: str | None = None,
) -> SPFReport:
    """Fetch and analyze ``domain``'s SPF record; evaluate it for each sending IP."""
    ips = list(sending_ips)
    esp_key = esp.lower() if esp else None
    if esp_key is not None and esp_key not in ESP_INCLUDES:
        raise AuthCheckError(f"unknown ESP {esp!r}; known: {', '.join(sorted(ESP_INCLUDES))}")
    host_checks = asyncio.gather(*(check_host_async(dns, ip, domain, sender=sender) for ip in ips))
    lookup, records = await fetch_spf_async(dns, domain)
    findings: list[Finding] = []
    evaluated = await host_checks
    results = {ip: result for ip, (result, _) in zip(ips, evaluated, strict=True)}
    reasons = {ip: why for ip, (_, why) in zip(ips, evaluated, strict=True)}
    _ip_findings(findings, results, reasons, domain, records[0] if len(records) == 1 else None)
    if lookup.temporary:
        findings.insert(
            0,
            Finding(
                Severity.ERROR,
                "spf.temperror",
                f"could not fetch the SPF record: {lookup.describe()}; this is not 'no record'",
                domain,
            ),
        )
        return SPFReport(None, CheckStatus.TEMPERROR, results=results, findings=findings)
    if not records:
        findings.insert(
            0, Finding(Severity.ERROR, "spf.missing", f"no SPF record: {lookup.describe()}", domain)
        )
        return SPFReport(
            None,
            CheckStatus.MISSING,
            results=results,
            esp_include=False if esp_key else None,
            findings=findings,
        )
    if len(records) > 1:
        findings.insert(
            0,
            Finding(
                Severity.ERROR,
                "spf.multiple",
                f"{len(records)} SPF records at {domain}; receivers return "
                "permerror (RFC 7208 4.5) — merge them into one",
                " | ".join(records),
            ),
        )
        return SPFReport(records[0], CheckStatus.INVALID, results=results, findings=findings)
    text = records[0]
    try:
        record = parse_spf(text)
    except AuthCheckError as exc:
        findings.insert(0, Finding(Severity.ERROR, "spf.syntax", str(exc), text))
        return SPFReport(text, CheckStatus.INVALID, results=results, findings=findings)
    walk = _Walk(dns)
    lookups, void4, void6 = await _walk(walk, domain, record, (domain,))
    # The report gives the worse family's count; receivers count only the sender's.
    void = max(void4, void6)
    findings[:0] = walk.findings
    if void4 != void6:
        findings.append(
            Finding(
                Severity.INFO,
                "spf.void_lookups_family",
                f"void lookups differ by address family: IPv4 senders {void4}, "
                f"IPv6 senders {void6} (a: asks A or AAAA by the sender's "
                "family); the larger is reported",
                text,
            )
        )
    at_least = "at least " if walk.stopped else ""
    if lookups > MAX_LOOKUPS:
        findings.append(
            Finding(
                Severity.ERROR,
                "spf.too_many_lookups",
                f"{at_least}{lookups} DNS-querying terms through include/redirect;"
                f" the limit is {MAX_LOOKUPS} (RFC 7208 4.6.4)",
                text,
            )
        )
    if void > MAX_VOID_LOOKUPS:
        findings.append(
            Finding(
                Severity.ERROR,
                "spf.void_lookups",
                f"{at_least}{void} void lookups (names with no records); the "
                f"limit is {MAX_VOID_LOOKUPS} (RFC 7208 4.6.4)",
                text,
            )
        )
    if walk.stopped:
        findings.append(
            Finding(
                Severity.INFO,
                "spf.walk_stopped",
                "stopped following include/redirect once the RFC 7208 limits "
                "were passed (receivers stop there too): the counts are a "
                "lower bound",
                text,
            )
        )
    if not any(t.name == "all" for t in record.terms) and record.redirect is None:
        findings.append(
            Finding(
                Severity.WARNING,
                "spf.no_all",
                "the record ends without 'all': unlisted senders get 'neutral'; "
                "end it with '~all' or '-all'",
                text,
            )
        )
    esp_include = None
    if esp_key is not None:
        esp_include = ESP_INCLUDES[esp_key] in walk.includes
        if not esp_include:
            findings.append(
                Finding(
                    Severity.ERROR,
                    "spf.esp_include_missing",
                    f"include:{ESP_INCLUDES[esp_key]} for {esp_key} is missing",
                    text,
                )
            )
    status = CheckStatus.OK
    if walk.temporary:
        status = CheckStatus.TEMPERROR
    elif (
        lookups > MAX_LOOKUPS
        or void > MAX_VOID_LOOKUPS
        or any(f.severity is Severity.ERROR for f in walk.findings)
        or SPFResult.PERMERROR in results.values()
    ):
        # A permerror for a sending IP (limits hit through macros, say) breaks SPF as
        # surely as one the walk finds.
        status = CheckStatus.INVALID
    return SPFReport(
        text,
        status,
        lookups=lookups,
        void_lookups=void,
        results=results,
        esp_include=esp_include,
        findings=findings,
    )


def _ip_findings(
    findings: list[Finding],
    results: dict[str, SPFResult],
    reasons: dict[str, str],
    domain: str,
    record: str | None,
) -> None:
    for ip, result in results.items():
        if result is SPFResult.PASS:
            continue
        if result is SPFResult.TEMPERROR:
            findings.append(
                Finding(
                    Severity.ERROR,
                    "spf.temperror",
                    f"SPF for {ip}: temperror ({reasons[ip]})",
                    record,
                )
            )
        else:
            findings.append(
                Finding(
                    Severity.ERROR,
                    "spf.ip_not_permitted",
                    f"SPF for {ip} sending as {domain}: {result} ({reasons[ip]})",
                    record,
                )
            )


async def count_lookups_async(
    dns: DNSClient, name: str, record: SPFRecord
) -> tuple[int, list[Finding]]:
    """The DNS-querying terms of ``record`` and every record below it, and the walk's findings.

    ``name`` stands for the record's owner in findings and loop detection.
    """
    walk = _Walk(dns)
    lookups, _, _ = await _walk(walk, name, record, (name,))
    return lookups, walk.findings
