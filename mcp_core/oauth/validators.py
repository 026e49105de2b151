"""django-oauth-toolkit's validator, narrowed to what MCP clients need and this server allows."""

from __future__ import annotations

from oauth2_provider.models import get_grant_model
from oauth2_provider.oauth2_validators import OAuth2Validator

from ..api_keys import ScopeError
from ..operators import OperatorRights
from . import scopes as oauth_scopes

# Tokens always act for a signed-in user: no client_credentials (no user), no password grant.
ALLOWED_GRANT_TYPES = {"authorization_code", "refresh_token"}


class AskproValidator(OAuth2Validator):
    """Scopes within the consenting user's rights; only the code and refresh grants; the grant's
    RFC 8707 resource handed to the token generator as the JWT audience."""

    def validate_grant_type(self, client_id, grant_type, client, request, *args, **kwargs):
        if grant_type not in ALLOWED_GRANT_TYPES:
            return False
        return super().validate_grant_type(client_id, grant_type, client, request, *args, **kwargs)

    def validate_scopes(self, client_id, scopes, client, request, *args, **kwargs):
        try:
            grant = oauth_scopes.parse(scopes or [])
        except ScopeError:
            return False
        user = getattr(request, "user", None)
        if user is None or not getattr(request, "response_type", None):
            # The client's request before consent: the vocabulary is enough. (Refreshes never
            # widen a grant; oauthlib holds them to the original scopes.)
            return True
        # The consent being turned into a grant: never more than the user holds for that tenant.
        rights = OperatorRights(user)
        if rights.tenant_bound and grant.tenant_id is None:
            return False
        held = rights.principal(grant.tenant_id)
        if grant.tenant_id is not None and rights.tenant_bound and grant.tenant_id not in rights.tenant_ids:
            return False
        return bool(grant.scopes) and all(oauth_scopes.covers(held, s) for s in grant.scopes)

    def validate_redirect_uri(self, client_id, redirect_uri, request, *args, **kwargs):
        # Exactly as registered (or listed in the client's metadata document), character for
        # character: RFC 8252's any-port rule for loopback addresses is not applied, since MCP
        # clients register (or publish) the address they listen on.
        registered = (request.client.redirect_uris or "").split()
        return redirect_uri in registered and super().validate_redirect_uri(
            client_id, redirect_uri, request, *args, **kwargs
        )

    def validate_code(self, client_id, code, client, request, *args, **kwargs):
        valid = super().validate_code(client_id, code, client, request, *args, **kwargs)
        if valid:
            resource = (
                get_grant_model()
                .objects.filter(code=code, application=client)
                .values_list("resource", flat=True)
            )
            request.askpro_audience = list(resource.first() or [])
        return valid

    def validate_refresh_token(self, refresh_token, client, request, *args, **kwargs):
        valid = super().validate_refresh_token(refresh_token, client, request, *args, **kwargs)
        if valid:
            request.askpro_audience = list(request.refresh_token_instance.resource or [])
        return valid
