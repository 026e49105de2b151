"""API key services: create keys (the secret is returned once) and authenticate bearer tokens."""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from datetime import timedelta as td

from django.conf import settings
from django.utils import timezone

from askpro.models import Company

from .contracts import Principal
from .models import ApiKey

KEY_PREFIX = "askp"
SCOPE_LEVELS = ("read", "write", "admin", "*")


class ScopeError(ValueError):
    pass


def hash_secret(raw_key: str) -> str:
    # Keys carry 256 random bits, so a fast hash is enough; a slow KDF would only add latency.
    return hashlib.sha256(raw_key.encode()).hexdigest()


def validate_scopes(scopes: list[str], *, known_services: set[str] | None = None) -> list[str]:
    """Normalise and check scopes like `database:read`, `stripe:*`, `*`; raise ScopeError."""
    cleaned = []
    for scope in scopes:
        scope = scope.strip()
        if not scope:
            continue
        if scope == "*":
            cleaned.append(scope)
            continue
        service, sep, level = scope.partition(":")
        if not sep or not service or level not in SCOPE_LEVELS:
            raise ScopeError(f"scope {scope!r} must look like 'service:read|write|admin|*' or '*'")
        # `*:read` is a real scope (every service at that level; see Principal.has_scope).
        if known_services is not None and service != "*" and service not in known_services:
            raise ScopeError(f"scope {scope!r} names an unknown service {service!r}")
        cleaned.append(f"{service}:{level}")
    if not cleaned:
        raise ScopeError("at least one scope is required")
    return sorted(set(cleaned))


def api_key_create(
    *,
    name: str,
    scopes: list[str],
    tenant: Company | None,
    expires_at=None,
) -> tuple[ApiKey, str]:
    """Create a key and return it with its full secret, which is never stored or shown again."""
    from .registry import get_registry

    scopes = validate_scopes(scopes, known_services=set(get_registry().servers))
    while True:
        prefix = secrets.token_hex(5)
        if not ApiKey.objects.filter(prefix=prefix).exists():
            break
    raw_key = f"{KEY_PREFIX}_{prefix}_{secrets.token_urlsafe(32)}"
    key = ApiKey.objects.create(
        name=name,
        tenant=tenant,
        prefix=prefix,
        secret_hash=hash_secret(raw_key),
        scopes=scopes,
        expires_at=expires_at,
    )
    return key, raw_key


def _parse(raw_key: str) -> str | None:
    parts = raw_key.split("_")
    if len(parts) < 3 or parts[0] != KEY_PREFIX or len(parts[1]) != 10:
        return None
    return parts[1]


LAST_USED_GRANULARITY = td(seconds=60)


def api_key_authenticate(raw_key: str | None) -> Principal | None:
    """Return the principal for a bearer key, or None if it is unknown, revoked or expired."""
    if not raw_key:
        return None
    prefix = _parse(raw_key.strip())
    if prefix is None:
        return None
    key = ApiKey.objects.select_related("tenant").filter(prefix=prefix).first()
    if key is None or not hmac.compare_digest(key.secret_hash, hash_secret(raw_key.strip())):
        return None
    now = timezone.now()
    if not key.is_usable(now):
        return None
    if key.tenant is not None and not key.tenant.is_active:
        return None
    # One write per key per minute at most: last_used_at is for humans, not for accounting.
    if key.last_used_at is None or now - key.last_used_at > LAST_USED_GRANULARITY:
        ApiKey.objects.filter(pk=key.pk).update(last_used_at=now)
    return principal_for_key(key)


# sha256(key) -> (principal, expires at), per process. Only successes are kept, and only for
# settings.MCP_AUTH_CACHE_SECONDS: an agent calls many operations in a row, and the lookup is
# a database round trip plus an ORM query build on each. Revocation takes effect within the TTL.
_auth_cache: dict[str, tuple[Principal, float]] = {}
_AUTH_CACHE_MAX = 1024


def api_key_authenticate_cached(raw_key: str | None) -> Principal | None:
    """api_key_authenticate, remembered briefly (see MCP_AUTH_CACHE_SECONDS)."""
    if not raw_key:
        return None
    ttl = settings.MCP_AUTH_CACHE_SECONDS
    if ttl <= 0:
        return api_key_authenticate(raw_key)
    digest = hash_secret(raw_key)
    now = time.monotonic()
    cached = _auth_cache.get(digest)
    if cached is not None and cached[1] > now:
        return cached[0]
    principal = api_key_authenticate(raw_key)
    if principal is not None:
        if len(_auth_cache) >= _AUTH_CACHE_MAX:
            _auth_cache.clear()
        _auth_cache[digest] = (principal, now + ttl)
    return principal


def forget_cached_keys() -> None:
    _auth_cache.clear()


def principal_for_key(key: ApiKey) -> Principal:
    return Principal(
        kind="api_key",
        name=f"key:{key.prefix}",
        scopes=frozenset(key.scopes),
        tenant_id=key.tenant_id,
        api_key_id=key.pk,
    )


def bearer_token(authorization_header: str | None) -> str | None:
    if not authorization_header:
        return None
    scheme, _, token = authorization_header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()
