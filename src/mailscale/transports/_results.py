"""Helpers shared by composites and retries: trimming envelopes and merging results."""

from __future__ import annotations

from collections.abc import Sequence

import attrs

from mailscale.errors import TransportAuthError, TransportCertificateError, TransportError
from mailscale.message import Envelope, RecipientResult, SendResult, SendStatus, overall_status


def trim(envelope: Envelope, result: SendResult | None) -> Envelope:
    """The envelope to send again: only the recipients *result* left pending."""
    if result is None:
        return envelope
    pending = result.pending_recipients
    if not pending or pending == envelope.recipients:
        return envelope
    return attrs.evolve(envelope, recipients=pending)


def per_recipient(result: SendResult) -> tuple[RecipientResult, ...]:
    """*result*'s per-recipient outcomes, synthesized from its status when absent."""
    if result.recipient_results:
        return result.recipient_results
    return tuple(
        RecipientResult(
            recipient=r,
            status=result.status,
            status_code=result.status_code,
            status_text=result.status_text,
        )
        for r in result.recipients
    )


def merge(previous: SendResult | None, retry: SendResult) -> SendResult:
    """Combine a retry of the pending recipients with the earlier result of the same message."""
    if previous is None:
        return retry
    pending = set(previous.pending_recipients)
    # An earlier attempt that may have delivered keeps saying so: a copy may exist.
    possibly = previous.possibly_delivered or retry.possibly_delivered
    if not pending or set(retry.recipients) >= set(previous.recipients):
        return attrs.evolve(
            retry,
            latency=previous.latency + retry.latency,
            possibly_delivered=possibly,
            exchange=None,  # the summed latency is no longer one request's
        )
    kept = [r for r in per_recipient(previous) if r.recipient not in pending]
    fresh = list(per_recipient(retry))
    combined = tuple(kept + fresh)
    return attrs.evolve(
        retry,
        status=overall_status(r.status for r in combined),
        recipients=previous.recipients,
        recipient_results=combined,
        message_id=retry.message_id or previous.message_id,
        latency=previous.latency + retry.latency,
        possibly_delivered=possibly,
        exchange=None,
    )


def member_fault(error: TransportError) -> bool:
    """True when *error* says nothing about the messages, only about the transport
    that raised it: transient errors, refused credentials and an untrusted
    certificate. Composites move such messages on to another member."""
    return error.transient or isinstance(error, (TransportAuthError, TransportCertificateError))


def from_error(envelope: Envelope, error: TransportError, transport: str) -> SendResult:
    """A result standing for a whole-call error (deferred when it was not the
    message's fault, see :func:`member_fault`, else rejected)."""
    return SendResult(
        status=SendStatus.DEFERRED if member_fault(error) else SendStatus.REJECTED,
        recipients=envelope.recipients,
        transport=transport,
        status_code=error.status,
        status_text=str(error),
        idempotency_key=envelope.idempotency_key,
    )


def merge_into(
    results: list[SendResult | None], indices: Sequence[int], outs: Sequence[SendResult]
) -> list[int]:
    """Merge each new result into ``results[i]`` (*indices* in step); return those still pending."""
    still: list[int] = []
    for i, res in zip(indices, outs, strict=True):
        merged = merge(results[i], res)
        results[i] = merged
        if merged.pending_recipients:
            still.append(i)
    return still


def unsure(result: SendResult | None) -> bool:
    """True when *result* is pending but the message may have been delivered already
    (``possibly_delivered``): it must not go to another transport, and is sent
    again at most once, later."""
    return result is not None and result.possibly_delivered and bool(result.pending_recipients)


def fill_from_error(
    results: list[SendResult | None],
    indices: Sequence[int],
    envelopes: Sequence[Envelope],
    error: TransportError,
    transport: str,
) -> None:
    """Let a whole-call error stand for every message of *indices* that has no result yet."""
    for i, env in zip(indices, envelopes, strict=True):
        if results[i] is None:
            results[i] = from_error(env, error, transport)
