"""Access tokens: issued as signed JWTs bound to /mcp, accepted as principals.

django-oauth-toolkit issues, stores (as SHA-256 checksums only), rotates and revokes the tokens;
this module only decides what an access token *is* (a JWT whose `aud` is the resource named at
authorization) and what it *may do* when presented at /mcp: exactly what an API key of the same
scopes, bound to the chosen tenant, may do - and never more than the consenting user may do now.
"""

from __future__ import annotations

import hashlib
import secrets
import time

import jwt
from django.conf import settings
from oauth2_provider.models import get_access_token_model

from ..api_keys import ScopeError
from ..contracts import Principal
from ..operators import OperatorRights
from . import scopes as oauth_scopes

ALGORITHM = "HS256"
REQUIRED_CLAIMS = ["exp", "iat", "aud", "sub", "jti"]


def generate_access_token(request) -> str:
    """ACCESS_TOKEN_GENERATOR: oauthlib calls it with its request once the grant is validated
    (AskproValidator puts the grant's resource on it as `askpro_audience`)."""
    now = int(time.time())
    claims = {
        "aud": list(getattr(request, "askpro_audience", None) or []),
        "sub": str(request.user.pk),
        "client_id": request.client_id or request.client.client_id,
        "scope": " ".join(request.scopes or []),
        "iat": now,
        "exp": now + int(request.expires_in),
        # 256 random bits: the token is unique and unguessable even with a known key.
        "jti": secrets.token_urlsafe(32),
    }
    return jwt.encode(claims, settings.OAUTH_TOKEN_SIGNING_KEY, algorithm=ALGORITHM)


def looks_like_jwt(raw: str) -> bool:
    return raw.count(".") == 2 and raw.startswith("eyJ")


def _checksum(raw: str) -> str:
    return hashlib.sha256(raw.encode()).hexdigest()


def verify_signature(raw: str, resource: str) -> dict | None:
    """The token's claims if it is ours, unaltered, unexpired and for `resource`; else None."""
    try:
        return jwt.decode(
            raw,
            settings.OAUTH_TOKEN_SIGNING_KEY,
            algorithms=[ALGORITHM],
            audience=resource,
            options={"require": REQUIRED_CLAIMS},
        )
    except (jwt.PyJWTError, ValueError, TypeError):
        return None


def access_token_authenticate(raw: str | None, resource: str) -> Principal | None:
    """The principal for an OAuth access token presented to `resource`, or None if it is not
    valid there (forged, altered, expired, revoked, for another audience, user gone)."""
    if not raw or not looks_like_jwt(raw) or verify_signature(raw, resource) is None:
        return None
    token = (
        get_access_token_model()
        .objects.select_related("application", "user")
        .filter(token_checksum=_checksum(raw))
        .first()
    )
    # The database is the truth for revocation (a revoked token's row is gone) and for the
    # audience it was granted (RFC 8707), whatever the signed claims say.
    if token is None or token.is_expired() or resource not in (token.resource or []):
        return None
    user = token.user
    if user is None or not user.is_active:
        return None
    return principal_for_token(token)


def principal_for_token(token) -> Principal:
    """What the token may do: its scopes, cut down to what its user holds for its tenant now."""
    try:
        grant = oauth_scopes.parse(token.scope)
    except ScopeError:
        grant = oauth_scopes.Grant(scopes=(), tenant_id=None)
    # The user's rights for that tenant (none if they may no longer act for it).
    rights = OperatorRights(token.user).principal(grant.tenant_id)
    held = frozenset(s for s in grant.scopes if oauth_scopes.covers(rights, s))
    app = token.application
    client = (app.name or f"client {app.pk}") if app is not None else "client"
    return Principal(
        kind="oauth",
        name=f"oauth:{token.user.get_username()} via {client}"[:120],
        scopes=held,
        tenant_id=grant.tenant_id,
        user_id=token.user_id,
        # A platform grant of a user who may act only for some tenants stays limited to them.
        tenant_ids=rights.tenant_ids if grant.tenant_id is None else None,
    )


# sha256(token) -> (principal, expires at), per process, like the API keys' cache and for the
# same reason and bound (MCP_AUTH_CACHE_SECONDS): a revoked token works at most that much longer.
_cache: dict[str, tuple[Principal, float]] = {}
_CACHE_MAX = 1024


def access_token_authenticate_cached(raw: str | None, resource: str) -> Principal | None:
    if not raw:
        return None
    ttl = settings.MCP_AUTH_CACHE_SECONDS
    if ttl <= 0:
        return access_token_authenticate(raw, resource)
    key = _checksum(f"{resource} {raw}")
    now = time.monotonic()
    cached = _cache.get(key)
    if cached is not None and cached[1] > now:
        return cached[0]
    principal = access_token_authenticate(raw, resource)
    if principal is not None:
        if len(_cache) >= _CACHE_MAX:
            _cache.clear()
        _cache[key] = (principal, now + ttl)
    return principal


def forget_cached_tokens() -> None:
    _cache.clear()
