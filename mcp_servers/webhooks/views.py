"""Webhook endpoints. Views only translate HTTP to the services and back.

CSRF does not apply (providers cannot hold a CSRF token); the provider's signature is the
authentication, checked before anything else happens.
"""

from django.http import HttpRequest, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from .inbound import inbound_answer
from .services import rejection_record, webhook_receive, webhook_store, webhook_verify
from .verification import SignatureError


def _answer(provider: str, request: HttpRequest) -> JsonResponse:
    receipt = webhook_receive(provider, request.body, request.headers, tenant_hint=request.GET.get("tenant"))
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
        verified = webhook_verify("retell", raw, request.headers, tenant_hint=request.GET.get("tenant"))
    except SignatureError as exc:
        rejection_record("retell", exc.reason)
        return JsonResponse({"error": "invalid signature"}, status=401)
    if verified.payload.get("event") == "call_inbound":
        # Retell waits for this answer before connecting the caller: answer synchronously.
        return JsonResponse(inbound_answer(verified.payload))
    receipt = webhook_store("retell", verified, raw)
    return JsonResponse(receipt.body, status=receipt.status)
