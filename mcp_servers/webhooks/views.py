"""Webhook endpoints. Views only translate HTTP to the services and back.

CSRF does not apply (providers cannot hold a CSRF token); the provider's signature is the
authentication, checked before anything else happens.
"""

import re

from django.http import HttpRequest, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from .inbound import inbound_answer
from .services import webhook_receive, webhook_refusal, webhook_store, webhook_verify
from .verification import SignatureError

_SLUG = re.compile(r"[-a-zA-Z0-9_]{1,100}")


class _BadHint(Exception):
    pass


def _tenant_hint(request: HttpRequest) -> str | None:
    """`?tenant=<slug>` (a tenant's own account), refused when it cannot be a slug."""
    hint = request.GET.get("tenant")
    if hint is None:
        return None
    if not _SLUG.fullmatch(hint):
        raise _BadHint
    return hint


def _bad_hint() -> JsonResponse:
    return JsonResponse(
        {
            "error": "tenant: must be a tenant slug (letters, digits, '-' or '_', at most 100)",
            "field": "tenant",
            "problem": "invalid",
        },
        status=400,
    )


def _answer(provider: str, request: HttpRequest) -> JsonResponse:
    try:
        hint = _tenant_hint(request)
    except _BadHint:
        return _bad_hint()
    receipt = webhook_receive(provider, request.body, request.headers, tenant_hint=hint)
    return JsonResponse(receipt.body, status=receipt.status)


@csrf_exempt
@require_POST
def stripe_webhook(request: HttpRequest) -> JsonResponse:
    return _answer("stripe", request)


@csrf_exempt
@require_POST
def calcom_webhook(request: HttpRequest) -> JsonResponse:
    return _answer("calcom", request)


@csrf_exempt
@require_POST
def retell_webhook(request: HttpRequest) -> JsonResponse:
    raw = request.body
    try:
        verified = webhook_verify("retell", raw, request.headers, tenant_hint=_tenant_hint(request))
    except _BadHint:
        return _bad_hint()
    except SignatureError as exc:
        receipt = webhook_refusal("retell", exc)
        return JsonResponse(receipt.body, status=receipt.status)
    if verified.payload.get("event") == "call_inbound":
        # Retell waits for this answer before connecting the caller: answer synchronously.
        return JsonResponse(inbound_answer(verified.payload))
    receipt = webhook_store("retell", verified, raw)
    return JsonResponse(receipt.body, status=receipt.status)
