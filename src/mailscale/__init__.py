"""mailscale: plan, sign, shape and send high-volume email.

Importing mailscale has no side effects: it configures no logging, prints
nothing and changes no process state.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from mailscale.errors import (
    AuthCheckError,
    CanonicalizationError,
    ConfigurationError,
    HeaderInjection,
    InvalidAddress,
    InvalidDomain,
    InvalidKey,
    InvalidKeyRecord,
    InvalidMessage,
    MailscaleError,
    MessageTooLarge,
    PlanningError,
    ShaperUnavailable,
    ShapingError,
    SigningError,
    TransportAuthError,
    TransportCertificateError,
    TransportConnectionError,
    TransportError,
    TransportTimeout,
    UnsupportedAlgorithm,
)

__version__ = "0.1.0"

# Public names of the areas, imported on first use (PEP 562) so that
# ``import mailscale`` stays cheap and pulls in no HTTP, DNS or crypto stack.
_LAZY: dict[str, str] = {
    # planning
    "Workload": "mailscale.planning",
    "Plan": "mailscale.planning",
    "plan": "mailscale.planning",
    "HealthReport": "mailscale.planning",
    "evaluate_kpis": "mailscale.planning",
    # messages
    "Envelope": "mailscale.message",
    "RecipientResult": "mailscale.message",
    "SendResult": "mailscale.message",
    "SendStatus": "mailscale.message",
    # signing
    "DKIMSigner": "mailscale.signing",
    "DKIMVerifier": "mailscale.signing",
    "MultiSigner": "mailscale.signing",
    "VerifyResult": "mailscale.signing",
    "generate_key": "mailscale.signing",
    "dns_record": "mailscale.signing",
    "parse_key_record": "mailscale.signing",
    "sign": "mailscale.signing",
    "sign_batch": "mailscale.signing",
    "verify": "mailscale.signing",
    # shaping
    "Decision": "mailscale.shaping",
    "IPPool": "mailscale.shaping",
    "Limit": "mailscale.shaping",
    "RedisShaper": "mailscale.shaping",
    "Shaper": "mailscale.shaping",
    "WarmupSchedule": "mailscale.shaping",
    # transports
    "Transport": "mailscale.transports",
    "TransportURL": "mailscale.transports",
    "FailoverTransport": "mailscale.transports",
    "RoundRobinTransport": "mailscale.transports",
    "RetryPolicy": "mailscale.transports",
    "RetryingTransport": "mailscale.transports",
    "available_transports": "mailscale.transports",
    "transport_from_url": "mailscale.transports",
    "Sender": "mailscale.pipeline",
    # auth
    "AuthReport": "mailscale.auth",
    "ReadinessReport": "mailscale.auth",
    "Finding": "mailscale.auth",
    "Severity": "mailscale.auth",
    "check_domain": "mailscale.auth",
    "readiness": "mailscale.auth",
    "spf_record": "mailscale.auth",
    "dkim_record": "mailscale.auth",
    "dmarc_record": "mailscale.auth",
}

if TYPE_CHECKING:
    from mailscale.auth import (
        AuthReport,
        Finding,
        ReadinessReport,
        Severity,
        check_domain,
        dkim_record,
        dmarc_record,
        readiness,
        spf_record,
    )
    from mailscale.message import Envelope, RecipientResult, SendResult, SendStatus
    from mailscale.planning import HealthReport, Plan, Workload, evaluate_kpis, plan
    from mailscale.shaping import (
        Decision,
        IPPool,
        Limit,
        RedisShaper,
        Shaper,
        WarmupSchedule,
    )
    from mailscale.signing import (
        DKIMSigner,
        DKIMVerifier,
        MultiSigner,
        VerifyResult,
        dns_record,
        generate_key,
        parse_key_record,
        sign,
        sign_batch,
        verify,
    )
    from mailscale.transports import (
        FailoverTransport,
        RetryingTransport,
        RetryPolicy,
        RoundRobinTransport,
        Transport,
        TransportURL,
        available_transports,
        transport_from_url,
    )


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'mailscale' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))


__all__ = [
    "AuthCheckError",
    "AuthReport",
    "CanonicalizationError",
    "ConfigurationError",
    "DKIMSigner",
    "DKIMVerifier",
    "Decision",
    "Envelope",
    "FailoverTransport",
    "Finding",
    "HeaderInjection",
    "HealthReport",
    "IPPool",
    "InvalidAddress",
    "InvalidDomain",
    "InvalidKey",
    "InvalidKeyRecord",
    "InvalidMessage",
    "Limit",
    "MailscaleError",
    "MessageTooLarge",
    "MultiSigner",
    "Plan",
    "PlanningError",
    "ReadinessReport",
    "RecipientResult",
    "RedisShaper",
    "RetryPolicy",
    "RetryingTransport",
    "RoundRobinTransport",
    "SendResult",
    "SendStatus",
    "Sender",
    "Severity",
    "Shaper",
    "ShaperUnavailable",
    "ShapingError",
    "SigningError",
    "Transport",
    "TransportAuthError",
    "TransportCertificateError",
    "TransportConnectionError",
    "TransportError",
    "TransportTimeout",
    "TransportURL",
    "UnsupportedAlgorithm",
    "VerifyResult",
    "WarmupSchedule",
    "Workload",
    "available_transports",
    "check_domain",
    "dkim_record",
    "dmarc_record",
    "dns_record",
    "evaluate_kpis",
    "generate_key",
    "parse_key_record",
    "plan",
    "readiness",
    "sign",
    "sign_batch",
    "spf_record",
    "transport_from_url",
    "verify",
    "__version__",
]
