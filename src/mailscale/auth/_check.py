"""``check_domain``: every check of one domain, with independent lookups concurrent."""

from __future__ import annotations

import asyncio
import ipaddress
from collections.abc import Iterable, Mapping

from mailscale._log import get_logger
from mailscale._sync import blocking
from mailscale.auth._args import normalize_domain, opt_str, str_items
from mailscale.auth._dns import DNSBudget, DNSClient, ResolverLike, make_resolver
from mailscale.auth._hosts import analyze_alignment, analyze_mx_async, analyze_ptr_async
from mailscale.auth._model import AuthReport, DNSUsage, Finding, Severity
from mailscale.auth._spf_lint import analyze_spf_async
from mailscale.auth._spf_record import ESP_INCLUDES
from mailscale.auth.dkim import analyze_dkim_async, selector_name
from mailscale.auth.dmarc import analyze_dmarc_async
from mailscale.errors import AuthCheckError
from mailscale.signing.keys import PrivateKey, PublicKey

__all__ = ["check_domain", "check_domain_async"]

_log = get_logger("mailscale.auth")


async def check_domain_async(
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
    sender: str | None = None,
    timeout: float | None = None,
    lifetime: float | None = None,
    budget: DNSBudget | None = None,
) -> AuthReport:
    """The asyncio form of :func:`check_domain`."""
    domain = normalize_domain(domain)
    selectors = list(dict.fromkeys(s.lower() for s in str_items(dkim_selectors, "dkim_selectors")))
    for s in selectors:
        selector_name(s, domain)
    ips = []
    for ip in str_items(sending_ips, "sending_ips"):
        try:
            ips.append(str(ipaddress.ip_address(ip.strip())))
        except (ValueError, AttributeError):
            raise AuthCheckError(f"sending IP {ip!r} is not an IP address") from None
    ips = list(dict.fromkeys(ips))
    esp = opt_str(esp, "esp")
    sender = opt_str(sender, "sender")
    if esp is not None and esp.lower() not in ESP_INCLUDES:
        raise AuthCheckError(f"unknown ESP {esp!r}; known: {', '.join(sorted(ESP_INCLUDES))}")
    if dkim_keys is not None and (
        not isinstance(dkim_keys, Mapping) or not all(isinstance(k, str) for k in dkim_keys)
    ):
        raise AuthCheckError("dkim_keys must be a mapping of selector names to keys")
    keys = {k.lower(): v for k, v in (dkim_keys or {}).items()}
    unknown = set(keys) - set(selectors)
    if unknown:
        raise AuthCheckError(f"dkim_keys names selectors not checked: {', '.join(sorted(unknown))}")
    from_d = normalize_domain(from_domain, "from_domain") if from_domain is not None else domain
    env_d = (
        normalize_domain(envelope_domain, "envelope_domain")
        if envelope_domain is not None
        else None
    )
    dkim_d = (
        normalize_domain(dkim_domain, "dkim_domain")
        if dkim_domain is not None
        else (domain if selectors else None)
    )
    dns = DNSClient(make_resolver(resolver, timeout=timeout, lifetime=lifetime), budget)
    spf, dmarc, mx, dkim, ptr = await asyncio.gather(
        analyze_spf_async(dns, domain, sending_ips=ips, esp=esp, sender=sender),
        analyze_dmarc_async(dns, domain),
        analyze_mx_async(dns, domain),
        asyncio.gather(
            *(analyze_dkim_async(dns, domain, s, local_key=keys.get(s)) for s in selectors)
        ),
        asyncio.gather(*(analyze_ptr_async(dns, ip) for ip in ips)),
    )
    alignment = analyze_alignment(from_d, env_d, dkim_d, dmarc, spf=spf, dkim=dkim)
    report = AuthReport(domain, spf, tuple(dkim), dmarc, mx, tuple(ptr), alignment, usage(dns))
    _log.debug(
        "auth.check_done",
        domain=domain,
        queries=dns.queries,
        errors=len(report.errors),
        warnings=len(report.warnings),
    )
    return report


def usage(dns: DNSClient) -> DNSUsage:
    """What ``dns`` spent, with an error finding when its budget stopped the check."""
    findings = []
    if dns.exhausted is not None:
        findings.append(
            Finding(
                Severity.ERROR,
                "dns.budget_exhausted",
                f"stopped asking DNS after {dns.queries} queries: {dns.exhausted}; "
                f"{dns.refused} lookup(s) were not sent and their checks are temperror "
                "(give a larger budget=DNSBudget(...) to check further)",
                None,
            )
        )
    return DNSUsage(dns.queries, dns.refused, dns.answer_bytes, dns.exhausted, findings=findings)


check_domain = blocking(
    check_domain_async,
    """Check SPF, DKIM, DMARC, MX, reverse DNS and alignment of ``domain``.

    Args:
        domain: the sending domain.
        dkim_selectors: DKIM selectors to check (DNS cannot list them); a single
            string is one selector.
        sending_ips: IPs that send for the domain: SPF check_host and FCrDNS for each;
            a single string is one IP.
        esp: ``sendgrid``, ``mailgun``, ``postmark`` or ``ses``: its SPF include must be present.
        resolver: a dnspython resolver (sync or asyncio), ``"host:port"`` or a list of them;
            the system's resolver when None.
        from_domain: the RFC5322.From domain (default ``domain``).
        envelope_domain: the return-path domain; SPF alignment is unknown without it.
        dkim_domain: the DKIM ``d=`` (default ``domain`` when selectors are given).
        dkim_keys: local keys by selector; the published key must match.
        sender: the envelope sender for SPF macros (default ``postmaster@domain``).
        timeout: per-query time-out in seconds; lifetime: per-lookup total.
        budget: what the whole check may spend on DNS (:class:`DNSBudget`: 200
            queries, 30 s, 1 MiB of answers by default); lookups beyond it are not
            sent, their checks are temperror, and ``dns.budget_exhausted`` says so.

    Raises:
        AuthCheckError: malformed inputs. DNS failures never raise: they are findings.
    """,
)
