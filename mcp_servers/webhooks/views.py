"""The webhook endpoint, one for every provider a server declares (mcp_core.webhooks). Views
only translate HTTP to the services and back.

CSRF does not apply (providers cannot hold a CSRF token); the provider's signature is the
authentication, checked before anything else happens.
"""

import re

from django.http import Http404, HttpRequest, HttpResponse, HttpResponseNotAllowed, JsonResponse
from django.views.decorators.csrf import csrf_exempt

from .services import webhook_provider, webhook_receive

_SLUG = re.compile(r"[-a-zA-Z0-9_]{1,100}")


def _bad_hint() -> JsonResponse:
    return JsonResponse(
        {
            "error": "tenant: must be a tenant slug (letters, digits, '-' or '_', at most 100)",
            "field": "tenant",
            "problem": "invalid",
        },
        status=400,
    )


@csrf_exempt
def receive_webhook(request: HttpRequest, provider: str) -> HttpResponse:
    """POST /webhooks/<provider>: verify, persist, acknowledge (or answer at once)."""
    if webhook_provider(provider) is None:
        raise Http404("no such webhook provider")
    if request.method != "POST":
        return HttpResponseNotAllowed(["POST"])
    # `?tenant=<slug>`: a tenant's own account, refused when it cannot be a slug.
    hint = request.GET.get("tenant")
    if hint is not None and not _SLUG.fullmatch(hint):
        return _bad_hint()
    receipt = webhook_receive(
        provider, request.body, request.headers, tenant_hint=hint, url=request.build_absolute_uri()
    )
    return JsonResponse(receipt.body, status=receipt.status)
