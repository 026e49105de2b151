"""Webhook ingestion and processing.

Ingestion: verify the signature, store the event in one short transaction, answer 2xx, and
enqueue processing after the commit. A delivery that is not authentic is counted (never
stored) and refused with 401; an authentic one whose body cannot be stored as it is (not a
JSON object, NUL, lone surrogates, non-finite numbers) is counted and refused with 400.

Processing (exactly-once effect):
1. the unique (provider, idempotency_key) makes a second delivery a duplicate, never a row;
2. a worker *claims* an event with one conditional UPDATE (received -> processing, with a
   lease); a second task for the same event finds nothing to claim;
3. handlers are idempotent, and the final "processed" UPDATE is fenced on the attempt number,
   so a worker that lost its lease cannot overwrite the outcome of the one that took over.
A failing handler is retried with exponential backoff; after WEBHOOK_MAX_ATTEMPTS the event is
`failed` (the dead letter) until replayed. A worker that dies mid-event leaves it `processing`
with a lease: the broker redelivers the message (acks_late) and the sweeper re-enqueues
anything whose lease ran out or whose message was lost.
"""

from __future__ import annotations

import logging
import random
from dataclasses import dataclass
from datetime import timedelta as td
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import F, Q
from django.utils import timezone
from django.utils.module_loading import import_string

from askpro.models import Company
from mcp_core.registry import get_registry
from mcp_core.webhooks import InboundWebhook, SignatureError, WebhookDelivery

from .models import RejectedDelivery, WebhookEvent

logger = logging.getLogger(__name__)

# A tenant's own secret can only help when the platform secret simply did not match.
_TRY_TENANT_SECRET_ON = frozenset({"bad_signature", "no_secret"})


def webhook_provider(provider: str) -> InboundWebhook | None:
    """The provider's inbound webhook as its server declared it (None when no server does)."""
    return get_registry().get_webhook(provider)


@dataclass(frozen=True, slots=True)
class Verified:
    payload: dict[str, Any]
    tenant_id: int | None
    verified_by: str  # "platform" | "tenant"


@dataclass(frozen=True, slots=True)
class Receipt:
    """What the view answers: an HTTP status and a small JSON body (never the payload)."""

    status: int
    body: dict[str, Any]


# --- verification ---
def webhook_verify(
    provider: str, raw: bytes, headers: Any, *, tenant_hint: str | None = None, url: str = ""
) -> Verified:
    """Verify with the platform secret; if that does not match, with the secret of the tenant
    named by the URL (`?tenant=<slug>`, for a tenant's own account whose payloads name no
    tenant of ours) or else pointed at by the payload. Raises SignatureError. Neither hint is
    trusted until that tenant's secret has matched."""
    hook = _declared(provider)
    delivery = WebhookDelivery(raw, headers, url, headers.get(hook.signature_header))
    platform_secret = hook.secret.platform_secret()
    try:
        payload = hook.verify(delivery, platform_secret)
        return Verified(payload, None, "platform")
    except SignatureError as exc:
        if exc.reason not in _TRY_TENANT_SECRET_ON:
            raise
        first = exc
    tenant_id = _tenant_for_hint(tenant_hint) if tenant_hint else None
    if tenant_id is None:
        tenant_id = hook.claimed_tenant(delivery)
    secret = hook.secret.tenant_secret(tenant_id) if tenant_id else ""
    if not secret:
        raise first
    payload = hook.verify(delivery, secret)
    return Verified(payload, tenant_id, "tenant")


def _declared(provider: str) -> InboundWebhook:
    hook = webhook_provider(provider)
    if hook is None:  # the view answers 404 before; this is a caller's mistake
        raise LookupError(f"no server declares webhooks of provider {provider!r}")
    return hook


def _tenant_for_hint(hint: str) -> int | None:
    hint = hint.strip()[:100]
    return Company.objects.filter(slug=hint, is_active=True).values_list("pk", flat=True).first()


def webhook_refusal(provider: str, exc: SignatureError) -> Receipt:
    """Count a refused delivery and say why: 401 when it is not authentic, 400 when it is
    but its body cannot be taken (bad_payload). Nothing of it is stored."""
    rejection_record(provider, exc.reason)
    if exc.reason == "bad_payload":
        return Receipt(400, {"error": "invalid payload", "reason": exc.reason, "message": exc.message})
    return Receipt(401, {"error": "invalid signature", "reason": exc.reason, "message": exc.message})


def rejection_record(provider: str, reason: str) -> None:
    """Count a refused delivery per provider, reason and hour (no payload is kept)."""
    now = timezone.now()
    hour = now.replace(minute=0, second=0, microsecond=0)
    updated = RejectedDelivery.objects.filter(provider=provider, reason=reason, hour=hour).update(
        count=F("count") + 1, last_seen_at=now
    )
    if updated:
        return
    try:
        with transaction.atomic():
            RejectedDelivery.objects.create(
                provider=provider, reason=reason, hour=hour, count=1, last_seen_at=now
            )
    except IntegrityError:  # a concurrent refusal created the bucket first
        RejectedDelivery.objects.filter(provider=provider, reason=reason, hour=hour).update(
            count=F("count") + 1, last_seen_at=now
        )


# --- ingestion ---
def webhook_receive(
    provider: str, raw: bytes, headers: Any, *, tenant_hint: str | None = None, url: str = ""
) -> Receipt:
    """Verify, persist, acknowledge. Processing is enqueued after the commit. A delivery the
    provider's declaration answers at once (`answer`, e.g. Retell's call_inbound, which the
    caller waits on) is answered with 200 and that body, and not stored."""
    try:
        verified = webhook_verify(provider, raw, headers, tenant_hint=tenant_hint, url=url)
    except SignatureError as exc:
        return webhook_refusal(provider, exc)
    answer = _declared(provider).answer
    if answer is not None:
        body = answer(verified.payload)
        if body is not None:
            return Receipt(200, body)
    return webhook_store(provider, verified, raw)


def webhook_store(provider: str, verified: Verified, raw: bytes) -> Receipt:
    event_id, event_type, key = _declared(provider).identify(verified.payload, raw)
    # A tenant's own secret binds the event now; otherwise the handler resolves the tenant
    # (one query less on the acknowledgement path, which only has to make the event durable).
    tenant_id = verified.tenant_id
    try:
        with transaction.atomic():
            event = WebhookEvent.objects.create(
                provider=provider,
                event_id=event_id[:200],
                idempotency_key=key,
                type=event_type[:100],
                tenant_id=tenant_id,
                verified_by=verified.verified_by,
                payload=verified.payload,
            )
            transaction.on_commit(lambda: webhook_enqueue(event.pk))
    except IntegrityError:
        # Same event again (or at the same moment: the unique index made us wait for the
        # other insert to commit). Count it; do not process it again.
        WebhookEvent.objects.filter(provider=provider, idempotency_key=key).update(
            duplicate_count=F("duplicate_count") + 1
        )
        return Receipt(200, {"status": "duplicate"})
    return Receipt(202, {"status": "received", "id": event.pk})


def webhook_enqueue(event_id: int, *, countdown: float | None = None) -> None:
    """Hand the event to Celery. If the broker is unreachable the event stays stored as
    `received` and the sweeper enqueues it later: the acknowledgement never depends on it."""
    from .tasks import process_webhook_event

    try:
        process_webhook_event.apply_async(args=[event_id], countdown=countdown)
    except Exception:
        if process_webhook_event.app.conf.task_always_eager:
            # Eager mode runs the task right here; its failure is already recorded on the event.
            logger.exception("webhook event %s: eager processing raised", event_id)
        else:
            logger.warning("webhook event %s: could not enqueue; the sweeper will retry", event_id)


# --- processing ---
@dataclass(frozen=True, slots=True)
class Outcome:
    state: str  # processed | retry | dead | busy | done | missing | lost
    retry_in: float | None = None


def retry_delay(attempt: int) -> float:
    """Exponential backoff with jitter: base * 2^(attempt-1), capped, ±10%."""
    base = settings.WEBHOOK_RETRY_BASE_SECONDS * (2 ** max(0, attempt - 1))
    delay = min(base, settings.WEBHOOK_RETRY_MAX_SECONDS)
    return round(delay * random.uniform(0.9, 1.1), 3)


def _handler_for(provider: str):
    """The declared handler, unless settings.WEBHOOK_HANDLERS plugs another in (tests)."""
    override = settings.WEBHOOK_HANDLERS.get(provider)
    return import_string(override) if override else _declared(provider).handle


def webhook_process(event_id: int) -> Outcome:
    """Claim the event, run its provider's handler, record the outcome (see module doc)."""
    now = timezone.now()
    lease = td(seconds=settings.WEBHOOK_LEASE_SECONDS)
    claimable = Q(status=WebhookEvent.Status.RECEIVED) | Q(
        status=WebhookEvent.Status.PROCESSING, lease_until__lt=now
    )
    claimed = (
        WebhookEvent.objects.filter(pk=event_id)
        .filter(claimable)
        .update(
            status=WebhookEvent.Status.PROCESSING,
            attempts=F("attempts") + 1,
            lease_until=now + lease,
            updated_at=now,
        )
    )
    if not claimed:
        current = WebhookEvent.objects.filter(pk=event_id).values("status", "lease_until").first()
        if current is None:
            return Outcome("missing")
        if current["status"] == WebhookEvent.Status.PROCESSING and current["lease_until"]:
            # Another worker holds it; come back when its lease ends in case that worker died.
            remaining = (current["lease_until"] - now).total_seconds()
            return Outcome("busy", retry_in=max(remaining, 0.0) + 1.0)
        return Outcome("done")
    event = WebhookEvent.objects.select_related("tenant").get(pk=event_id)
    attempt = event.attempts
    try:
        result = _handler_for(event.provider)(event)
    except Exception as exc:
        return _record_failure(event, attempt, exc)
    fenced = WebhookEvent.objects.filter(
        pk=event_id, status=WebhookEvent.Status.PROCESSING, attempts=attempt
    ).update(
        status=WebhookEvent.Status.PROCESSED,
        processed_at=timezone.now(),
        lease_until=None,
        next_attempt_at=None,
        last_error="",
        result=str(result or "")[:300],
        tenant_id=event.tenant_id,
    )
    return Outcome("processed" if fenced else "lost")


def _record_failure(event: WebhookEvent, attempt: int, exc: Exception) -> Outcome:
    error = f"{type(exc).__name__}: {exc}"[:2000]
    dead = attempt >= settings.WEBHOOK_MAX_ATTEMPTS
    delay = None if dead else retry_delay(attempt)
    logger.warning(
        "webhook event %s (%s %s) attempt %s failed: %s",
        event.pk,
        event.provider,
        event.type,
        attempt,
        type(exc).__name__,
    )
    WebhookEvent.objects.filter(pk=event.pk, status=WebhookEvent.Status.PROCESSING, attempts=attempt).update(
        status=WebhookEvent.Status.FAILED if dead else WebhookEvent.Status.RECEIVED,
        last_error=error,
        lease_until=None,
        next_attempt_at=None if dead else timezone.now() + td(seconds=delay),
        tenant_id=event.tenant_id,
    )
    return Outcome("dead") if dead else Outcome("retry", retry_in=delay)


# --- operator actions ---
def webhook_replay(event: WebhookEvent, *, force: bool = False) -> str:
    """Queue an event for processing again. A dead letter (or a waiting event) is reset to
    `received` with a fresh attempt budget. A processed event is left alone unless `force`
    (handlers are idempotent, so forcing re-applies the same state). Returns what happened."""
    now = timezone.now()
    if event.status == WebhookEvent.Status.PROCESSING and event.lease_until and event.lease_until > now:
        return "in_progress"
    if event.status == WebhookEvent.Status.PROCESSED and not force:
        return "already_processed"
    WebhookEvent.objects.filter(pk=event.pk).update(
        status=WebhookEvent.Status.RECEIVED,
        attempts=0,
        lease_until=None,
        next_attempt_at=None,
        updated_at=now,
    )
    transaction.on_commit(lambda: webhook_enqueue(event.pk))
    return "queued"


def webhook_sweep(*, grace_seconds: float = 60.0, limit: int = 500) -> int:
    """Enqueue events whose message may have been lost: `received` and due for longer than
    the grace period, or `processing` with an expired lease. Safe to run at any time: a
    second task for an event finds nothing to claim. Returns how many were enqueued."""
    now = timezone.now()
    cutoff = now - td(seconds=grace_seconds)
    waiting = Q(status=WebhookEvent.Status.RECEIVED) & (
        Q(next_attempt_at__isnull=True, received_at__lte=cutoff) | Q(next_attempt_at__lte=cutoff)
    )
    stalled = Q(status=WebhookEvent.Status.PROCESSING, lease_until__lt=now)
    ids = list(
        WebhookEvent.objects.filter(waiting | stalled)
        .order_by("received_at")
        .values_list("pk", flat=True)[:limit]
    )
    for pk in ids:
        webhook_enqueue(pk)
    return len(ids)
