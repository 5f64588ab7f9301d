"""MX hosts, forward-confirmed reverse DNS, and identifier alignment."""

from __future__ import annotations

import asyncio
import ipaddress
from collections.abc import Sequence

from mailscale.auth._args import str_arg
from mailscale.auth._dns import DNSClient
from mailscale.auth._model import (
    AlignmentReport,
    CheckStatus,
    DKIMReport,
    DMARCReport,
    Finding,
    HostStatus,
    MXHost,
    MXReport,
    PTRReport,
    Severity,
    SPFReport,
)
from mailscale.auth.dmarc import organizational_domain
from mailscale.errors import AuthCheckError

__all__ = ["MAX_NAMES", "aligned", "analyze_alignment", "analyze_mx_async", "analyze_ptr_async"]

#: MX hosts resolved per domain and PTR names confirmed per IP: the bound RFC 7208
#: 4.6.4 sets for the mx and ptr mechanisms, so a zone cannot make a check ask more.
MAX_NAMES = 10


async def _addresses(dns: DNSClient, host: str) -> tuple[HostStatus, tuple[str, ...]]:
    """(status, addresses): ``ok``, ``none`` or the temporary status of a lookup."""
    a, aaaa = await asyncio.gather(dns.query(host, "A"), dns.query(host, "AAAA"))
    addrs = a.records + aaaa.records
    if addrs:
        return HostStatus.OK, addrs
    temp = next((x for x in (a, aaaa) if x.temporary), None)
    if temp is not None:
        return temp.status, ()
    return HostStatus.NONE, ()


async def analyze_mx_async(dns: DNSClient, domain: str) -> MXReport:
    """The MX hosts of ``domain``, each resolved to its addresses."""
    lookup = await dns.query(domain, "MX")
    if lookup.temporary:
        return MXReport(
            CheckStatus.TEMPERROR,
            findings=[
                Finding(
                    Severity.ERROR,
                    "mx.temperror",
                    f"could not fetch MX records: {lookup.describe()}; this is not 'no record'",
                    domain,
                )
            ],
        )
    if lookup.void:
        return MXReport(
            CheckStatus.MISSING,
            findings=[
                Finding(
                    Severity.WARNING,
                    "mx.missing",
                    f"no MX record ({lookup.describe()}): bounces and replies rely on the A record",
                    domain,
                )
            ],
        )
    if lookup.mx == ((0, ""),) or lookup.mx == ((0, "."),):
        return MXReport(
            CheckStatus.NULL,
            findings=[
                Finding(
                    Severity.WARNING,
                    "mx.null",
                    f"{domain} publishes a null MX (RFC 7505): it receives no mail, so bounces "
                    "to it are lost",
                    "0 .",
                )
            ],
        )
    checked, skipped = lookup.mx[:MAX_NAMES], lookup.mx[MAX_NAMES:]
    resolved = await asyncio.gather(*(_addresses(dns, host) for _, host in checked))
    hosts = []
    findings = []
    if skipped:
        findings.append(
            Finding(
                Severity.WARNING,
                "mx.too_many",
                f"{len(lookup.mx)} MX hosts: only the {MAX_NAMES} most preferred were resolved; "
                "senders rarely try more than a few",
                domain,
            )
        )
    for (pref, host), (status, addrs) in zip(checked, resolved, strict=True):
        hosts.append(MXHost(pref, host, addrs, status))
        record = f"{pref} {host}"
        if status is HostStatus.NONE:
            findings.append(
                Finding(
                    Severity.ERROR,
                    "mx.host_unresolved",
                    f"MX host {host} has no A or AAAA record",
                    record,
                )
            )
        elif status is not HostStatus.OK:
            findings.append(
                Finding(
                    Severity.ERROR,
                    "mx.temperror",
                    f"MX host {host} could not be resolved ({status}); temporary DNS error",
                    record,
                )
            )
    verdict = CheckStatus.OK
    if any(h.status is HostStatus.NONE for h in hosts):
        verdict = CheckStatus.INVALID
    elif any(h.status is not HostStatus.OK for h in hosts):
        verdict = CheckStatus.TEMPERROR
    hosts.extend(MXHost(pref, host, (), HostStatus.NOT_CHECKED) for pref, host in skipped)
    return MXReport(verdict, tuple(hosts), findings=findings)


async def analyze_ptr_async(dns: DNSClient, ip: str) -> PTRReport:
    """Forward-confirmed reverse DNS of ``ip``: PTR, then A/AAAA back to it."""
    try:
        addr = ipaddress.ip_address(ip)
    except ValueError:
        raise AuthCheckError(f"not an IP address: {ip!r}") from None
    ip = str(addr)
    lookup = await dns.query(addr.reverse_pointer, "PTR")
    if lookup.temporary:
        return PTRReport(
            ip,
            CheckStatus.TEMPERROR,
            findings=[
                Finding(
                    Severity.ERROR,
                    "ptr.temperror",
                    f"could not fetch the PTR of {ip}: {lookup.describe()}; this "
                    "is not 'no record'",
                    addr.reverse_pointer,
                )
            ],
        )
    if not lookup.records:
        return PTRReport(
            ip,
            CheckStatus.MISSING,
            findings=[
                Finding(
                    Severity.ERROR,
                    "ptr.missing",
                    f"{ip} has no PTR record: ask the IP's owner to set one to "
                    "your sending host name",
                    addr.reverse_pointer,
                )
            ],
        )
    names = lookup.records[:MAX_NAMES]
    extra: list[Finding] = []
    if len(lookup.records) > MAX_NAMES:
        extra.append(
            Finding(
                Severity.WARNING,
                "ptr.too_many",
                f"{ip} has {len(lookup.records)} PTR names: only the first {MAX_NAMES} were "
                "checked; give it one, the name the host uses in HELO",
                addr.reverse_pointer,
            )
        )
    rdtype = "A" if addr.version == 4 else "AAAA"
    forward = await asyncio.gather(*(dns.query(n, rdtype) for n in names))
    confirmed = tuple(
        n
        for n, fw in zip(names, forward, strict=True)
        if any(ipaddress.ip_address(a) == addr for a in fw.records)
    )
    if confirmed:
        return PTRReport(ip, CheckStatus.PASS, names, confirmed, findings=extra)
    temp = [fw for fw in forward if fw.temporary]
    if temp:
        return PTRReport(
            ip,
            CheckStatus.TEMPERROR,
            names,
            findings=[
                *extra,
                Finding(
                    Severity.ERROR,
                    "ptr.temperror",
                    f"could not confirm the PTR name of {ip}: {temp[0].describe()}",
                    ", ".join(names),
                ),
            ],
        )
    got = "; ".join(
        f"{n} -> {', '.join(fw.records) or 'nothing'}" for n, fw in zip(names, forward, strict=True)
    )
    return PTRReport(
        ip,
        CheckStatus.FAIL,
        names,
        findings=[
            *extra,
            Finding(
                Severity.ERROR,
                "ptr.not_confirmed",
                f"{ip}'s PTR name does not resolve back to it ({got}): forward-confirmed "
                "reverse DNS fails",
                ", ".join(names),
            ),
        ],
    )


def aligned(identifier: str, from_domain: str, mode: str) -> bool:
    """DMARC identifier alignment (RFC 7489 3.1): ``s`` exact, ``r`` same org domain.

    Raises:
        AuthCheckError: a non-string domain, or a mode other than ``r`` / ``s``.
    """
    a = str_arg(identifier, "identifier").rstrip(".").lower()
    b = str_arg(from_domain, "from_domain").rstrip(".").lower()
    if not isinstance(mode, str) or mode.lower() not in ("r", "s"):
        raise AuthCheckError(f"mode must be 'r' (relaxed) or 's' (strict), not {mode!r}")
    if mode.lower() == "s":
        return a == b
    return organizational_domain(a) == organizational_domain(b)


def _in_mode(relaxed: bool | None, strict: bool | None, mode: str | None) -> bool | None:
    """Alignment in ``mode`` (``r``/``s``); with the mode unknown, known only if both agree."""
    if relaxed is None:
        return None
    if mode is None:
        return relaxed if relaxed == strict else None
    return strict if mode.lower() == "s" else relaxed


def analyze_alignment(
    from_domain: str,
    envelope_domain: str | None,
    dkim_domain: str | None,
    dmarc: DMARCReport,
    *,
    spf: SPFReport | None = None,
    dkim: Sequence[DKIMReport] = (),
) -> AlignmentReport:
    """Whether the envelope domain (SPF) and DKIM ``d=`` align with From.

    ``spf`` and ``dkim`` are the reports of the records the aligned identifiers are
    checked with: when they could not be fetched (temperror), alignment through
    them is not ``ok`` but ``unknown``.
    """
    findings: list[Finding] = []

    def both(ident: str | None) -> tuple[bool | None, bool | None]:
        if ident is None:
            return None, None
        return aligned(ident, from_domain, "r"), aligned(ident, from_domain, "s")

    spf_r, spf_s = both(envelope_domain)
    dkim_r, dkim_s = both(dkim_domain)
    # Without the DMARC record (a temporary error) the modes are unknown.
    known = dmarc.status is not CheckStatus.TEMPERROR
    spf_ok = _in_mode(spf_r, spf_s, dmarc.aspf if known else None)
    dkim_ok = _in_mode(dkim_r, dkim_s, dmarc.adkim if known else None)
    if spf_ok is False:
        findings.append(
            Finding(
                Severity.WARNING,
                "align.spf",
                f"envelope domain {envelope_domain} does not align with From {from_domain} "
                f"(aspf={dmarc.aspf}): SPF cannot pass DMARC; use a return-path under "
                f"{organizational_domain(from_domain)}",
                None,
            )
        )
    if dkim_ok is False:
        findings.append(
            Finding(
                Severity.WARNING,
                "align.dkim",
                f"DKIM d={dkim_domain} does not align with From {from_domain} "
                f"(adkim={dmarc.adkim}): DKIM cannot pass DMARC; sign with d={from_domain}",
                None,
            )
        )
    if spf_ok is False and dkim_ok is False:
        findings.append(
            Finding(
                Severity.ERROR,
                "align.none",
                f"neither SPF nor DKIM aligns with From {from_domain}: DMARC fails for this mail",
                None,
            )
        )
    # An aligned identifier only counts when its record was fetched: SPF's, or a DKIM key.
    spf_usable = spf is None or spf.status is not CheckStatus.TEMPERROR
    dkim_usable = not dkim or any(d.status is not CheckStatus.TEMPERROR for d in dkim)
    if (spf_ok and spf_usable) or (dkim_ok and dkim_usable):
        status = CheckStatus.OK
    elif spf_ok is False and dkim_ok is False:
        status = CheckStatus.FAIL
    elif (spf_ok is False and dkim_ok is None and dkim_domain is None) or (
        dkim_ok is False and spf_ok is None and envelope_domain is None
    ):
        status = CheckStatus.FAIL
    else:
        status = CheckStatus.UNKNOWN
    return AlignmentReport(
        from_domain,
        envelope_domain,
        dkim_domain,
        spf_r,
        spf_s,
        dkim_r,
        dkim_s,
        spf_ok,
        dkim_ok,
        findings=findings,
        status=status,
    )
