"""The authorization server's pages and documents, on django-oauth-toolkit's views."""

from __future__ import annotations

import json
import re

from django.contrib.auth.decorators import login_required
from django.db.models import Max
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.views.decorators.http import require_POST
from oauth2_provider.exceptions import OAuthToolkitError
from oauth2_provider.models import get_access_token_model, get_application_model, get_refresh_token_model
from oauth2_provider.views import (
    AuthorizationView,
    DynamicClientRegistrationView,
    OAuthProtectedResourceMetadataView,
    RevokeTokenView,
    TokenView,
)
from oauthlib.oauth2.rfc6749.errors import CustomOAuth2Error

from askpro.models import Company

from ..api_keys import ScopeError
from ..limits import string_problem
from ..operators import OperatorRights
from . import params, resource, tokens
from . import scopes as oauth_scopes
from .forms import ConsentForm

# RFC 7636 section 4.2: an S256 challenge is 43 base64url characters; the grammar allows 128.
PKCE_CHALLENGE = re.compile(r"[A-Za-z0-9\-._~]{43,128}")


def _string_problems(value, where: str = "") -> tuple[str, str] | None:
    """The first string (or key) in a JSON document PostgreSQL could not store, with its place."""
    if isinstance(value, str):
        found = string_problem(value)
        return (where or "body", found) if found else None
    if isinstance(value, dict):
        items = value.items()
    elif isinstance(value, list):
        items = ((str(i), v) for i, v in enumerate(value))
    else:
        return None
    for key, item in items:
        place = f"{where}.{key}" if where else str(key)
        found = string_problem(str(key)) or None
        if found:
            return place, found
        nested = _string_problems(item, place)
        if nested:
            return nested
    return None


class ConsentView(AuthorizationView):
    """The authorization endpoint: a signed-in user chooses the tenant and the scopes.

    The grant is always bound to this server's MCP endpoint (RFC 8707): a `resource` naming
    anything else is refused with invalid_target, and a request without one gets /mcp.
    """

    template_name = "oauth/consent.html"
    form_class = ConsentForm

    def dispatch(self, request, *args, **kwargs):
        if request.user.is_authenticated:
            refused = params.refusal(request, page=True)
            if refused is not None:
                return refused
        return super().dispatch(request, *args, **kwargs)

    def get_form_kwargs(self):
        kwargs = super().get_form_kwargs()
        if self.request.method == "POST":
            requested = self.request.POST.get("scope", "").split()
        else:
            requested = list(self.oauth2_data.get("scopes", []))
        kwargs.update(rights=OperatorRights(self.request.user), requested=requested)
        return kwargs

    def get(self, request, *args, **kwargs):
        canonical = resource.mcp_resource(request)
        if any(value != canonical for value in request.GET.getlist("resource")):
            return self._refuse(request, "invalid_target", f"This server issues tokens for {canonical} only.")
        challenge = request.GET.get("code_challenge")
        if challenge is not None and not PKCE_CHALLENGE.fullmatch(challenge):
            return self._refuse(
                request, "invalid_request", "code_challenge: 43 to 128 characters of A-Z a-z 0-9 - . _ ~"
            )
        if challenge and request.GET.get("code_challenge_method") != "S256":
            # Refused before the user is asked (DOT would refuse `plain` only after consent).
            return self._refuse(request, "invalid_request", 'code_challenge_method must be "S256".')
        return super().get(request, *args, **kwargs)

    def _refuse(self, request, error: str, description: str):
        """Send an error back to the client, once its client_id and redirect_uri are known good."""
        try:
            _, credentials = self.validate_authorization_request(request)
        except OAuthToolkitError as exc:
            return self.error_response(exc, application=None)
        application = get_application_model().objects.get(client_id=credentials["client_id"])
        failure = OAuthToolkitError(
            error=CustomOAuth2Error(error=error, description=description, state=credentials.get("state")),
            redirect_uri=credentials["redirect_uri"],
        )
        return self.error_response(failure, application)

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        application = context.get("application")
        context.update(
            title="Authorise an MCP client",
            site_header="AskPro control plane",
            rights_summary=OperatorRights(self.request.user).summary(),
            client_source=getattr(application, "registration_source", ""),
            resource=resource.mcp_resource(self.request),
        )
        return context

    def form_valid(self, form):
        # DOT turns these into the grant: the consented scope string (with the tenant) and
        # this server's MCP endpoint as the only audience.
        form.cleaned_data["resource"] = resource.mcp_resource(self.request)
        if not form.cleaned_data.get("allow"):
            form.cleaned_data["scope"] = form.cleaned_data.get("scope") or "*"
        return super().form_valid(form)


class BoundedTokenView(TokenView):
    """The token endpoint, behind the parameter bounds."""

    def post(self, request, *args, **kwargs):
        return params.refusal(request) or super().post(request, *args, **kwargs)


class BoundedRevokeTokenView(RevokeTokenView):
    """The revocation endpoint (RFC 7009), behind the parameter bounds."""

    def post(self, request, *args, **kwargs):
        return params.refusal(request) or super().post(request, *args, **kwargs)


class ResourceMetadataView(OAuthProtectedResourceMetadataView):
    """RFC 9728 for /mcp, at both the root and the path-inserted well-known URL."""

    def get(self, request, *args, **kwargs):
        path = kwargs.get("resource_path")
        if path is not None and path.strip("/") != resource.MCP_PATH.strip("/"):
            raise Http404("No protected resource at that path")
        return super().get(request, *args, **kwargs)

    def get_resource(self, request):
        return resource.mcp_resource(request)

    def get_authorization_servers(self, request):
        return [resource.origin(request)]


class RegistrationView(DynamicClientRegistrationView):
    """RFC 7591 registration, for the authorization-code grant only (with refresh)."""

    def post(self, request, *args, **kwargs):
        try:
            data = json.loads(request.body)
        except (ValueError, UnicodeDecodeError):
            data = None
        problem = _string_problems(data) if isinstance(data, dict) else None
        if problem is not None:
            return JsonResponse(
                {"error": "invalid_client_metadata", "error_description": f"{problem[0]}: {problem[1]}"},
                status=400,
            )
        if isinstance(data, dict):
            grant_types = data.get("grant_types", ["authorization_code"])
            if isinstance(grant_types, list) and any(
                g not in ("authorization_code", "refresh_token") for g in grant_types
            ):
                return JsonResponse(
                    {
                        "error": "invalid_client_metadata",
                        "error_description": "grant_types: only authorization_code and refresh_token",
                    },
                    status=400,
                )
        return super().post(request, *args, **kwargs)


def _describe_scope(scope: str, tenant_names: dict[int, str]) -> tuple[list[str], str]:
    try:
        grant = oauth_scopes.parse(scope)
    except ScopeError:
        return scope.split(), "?"
    if grant.tenant_id is None:
        return list(grant.scopes), "every tenant"
    return list(grant.scopes), tenant_names.get(grant.tenant_id, f"tenant {grant.tenant_id}")


def authorised_clients(user) -> list[dict]:
    """The clients holding a live token of this user, one row per client."""
    now = timezone.now()
    access = get_access_token_model().objects.filter(user=user, expires__gt=now)
    refresh = get_refresh_token_model().objects.filter(user=user, revoked__isnull=True)
    app_ids = set(access.values_list("application_id", flat=True)) | set(
        refresh.values_list("application_id", flat=True)
    )
    tenant_names = dict(Company.objects.values_list("pk", "slug"))
    rows = []
    for app in get_application_model().objects.filter(pk__in=app_ids).order_by("name", "pk"):
        latest = access.filter(application=app).order_by("-created").first()
        scopes, tenant = _describe_scope(latest.scope if latest else "", tenant_names)
        rows.append(
            {
                "application": app,
                "scopes": scopes,
                "tenant": tenant,
                "last_authorised": access.filter(application=app).aggregate(at=Max("created"))["at"],
            }
        )
    return rows


def revoke_client(user, application) -> int:
    """End every token of `user` held by `application`; the number of tokens ended."""
    ended = 0
    for refresh_token in get_refresh_token_model().objects.filter(
        user=user, application=application, revoked__isnull=True
    ):
        refresh_token.revoke()
        ended += 1
    for access_token in get_access_token_model().objects.filter(user=user, application=application):
        access_token.revoke()
        ended += 1
    tokens.forget_cached_tokens()
    return ended


@login_required
def my_clients(request: HttpRequest) -> HttpResponse:
    """The signed-in user's authorised MCP clients, each with a revoke button."""
    return render(
        request,
        "oauth/clients.html",
        {
            "title": "My MCP clients",
            "site_header": "AskPro control plane",
            "rows": authorised_clients(request.user),
        },
    )


@login_required
@require_POST
def revoke_my_client(request: HttpRequest, pk: int) -> HttpResponse:
    application = get_object_or_404(get_application_model(), pk=pk)
    revoke_client(request.user, application)
    return redirect("oauth2_provider:my-clients")
