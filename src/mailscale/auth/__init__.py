"""Email authentication checks (SPF, DKIM, DMARC, MX, reverse DNS) and record builders.

``check_domain`` looks everything up concurrently (dnspython's asyncio
resolver) and returns an :class:`AuthReport` of findings, each with a
severity, a stable code, a message and the record it came from. A DNS
time-out or SERVFAIL is a temporary error, never "no record". ``readiness``
turns a report into the bulk-sender checklist of Gmail, Yahoo and Microsoft.
"""

from __future__ import annotations

from mailscale.auth._check import check_domain, check_domain_async
from mailscale.auth._dns import DNSBudget
from mailscale.auth._hosts import aligned
from mailscale.auth._model import (
    AlignmentReport,
    AuthReport,
    CheckStatus,
    DKIMReport,
    DMARCReport,
    DNSUsage,
    Finding,
    HostStatus,
    MXHost,
    MXReport,
    Policy,
    PTRReport,
    ReadinessStatus,
    Severity,
    SPFReport,
    SPFResult,
)
from mailscale.auth._readiness import ReadinessItem, ReadinessReport, readiness, readiness_async
from mailscale.auth.dmarc import organizational_domain, parse_dmarc
from mailscale.auth.records import (
    TXTRecord,
    dkim_record,
    dmarc_record,
    report_authorization_record,
    spf_record,
)
from mailscale.auth.spf import ESP_INCLUDES, SPFRecord, SPFTerm, parse_spf

__all__ = [
    "ESP_INCLUDES",
    "AlignmentReport",
    "AuthReport",
    "CheckStatus",
    "DKIMReport",
    "DMARCReport",
    "DNSBudget",
    "DNSUsage",
    "Finding",
    "HostStatus",
    "MXHost",
    "MXReport",
    "PTRReport",
    "Policy",
    "ReadinessItem",
    "ReadinessReport",
    "ReadinessStatus",
    "SPFRecord",
    "SPFReport",
    "SPFResult",
    "SPFTerm",
    "Severity",
    "TXTRecord",
    "aligned",
    "check_domain",
    "check_domain_async",
    "dkim_record",
    "dmarc_record",
    "organizational_domain",
    "parse_dmarc",
    "parse_spf",
    "readiness",
    "readiness_async",
    "report_authorization_record",
    "spf_record",
]
