"""The scopes an OAuth client may ask for, and what a user's rights cover.

OAuth scopes are the API keys' vocabulary (`service:read|write|admin`, `*:level`, `*`). The
tenant a user chose on the consent page travels inside the granted scope as `tenant:<id>`, so
that it survives refresh-token rotation with the rest of the grant; it is never a right of its
own and is never advertised.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..api_keys import ScopeError, validate_scopes
from ..contracts import Principal

TENANT_PREFIX = "tenant:"
LEVELS = ("read", "write", "admin")


def vocabulary() -> list[str]:
    """Every scope a client may request, most general first."""
    from ..registry import get_registry

    services = sorted(get_registry().servers)
    return ["*", *(f"*:{level}" for level in LEVELS), *(f"{s}:{level}" for s in services for level in LEVELS)]


@dataclass(frozen=True, slots=True)
class Grant:
    """A granted scope string taken apart: the operation scopes and the chosen tenant."""

    scopes: tuple[str, ...]
    tenant_id: int | None


def parse(scope_list: list[str] | tuple[str, ...] | str) -> Grant:
    """Split scopes into operation scopes and a tenant; raise ScopeError for anything else."""
    items = scope_list.split() if isinstance(scope_list, str) else list(scope_list)
    tenants = [s for s in items if s.startswith(TENANT_PREFIX)]
    if len(tenants) > 1:
        raise ScopeError("at most one tenant may be granted")
    tenant_id = None
    if tenants:
        text = tenants[0][len(TENANT_PREFIX) :]
        if not text.isdecimal() or len(text) > 18:
            raise ScopeError(f"scope {tenants[0]!r} must be tenant:<id>")
        tenant_id = int(text)
    others = [s for s in items if not s.startswith(TENANT_PREFIX)]
    from ..registry import get_registry

    scopes = validate_scopes(others, known_services=set(get_registry().servers)) if others else []
    return Grant(scopes=tuple(scopes), tenant_id=tenant_id)


def join(scopes: list[str] | tuple[str, ...], tenant_id: int | None) -> str:
    parts = sorted(set(scopes))
    if tenant_id is not None:
        parts.append(f"{TENANT_PREFIX}{tenant_id}")
    return " ".join(parts)


def covers(principal: Principal, scope: str) -> bool:
    """True if the principal's rights include everything `scope` would grant."""
    if scope == "*":
        return "*" in principal.scopes
    service, _, level = scope.partition(":")
    # `x:*` grants every level, which is what admin already includes (levels nest).
    return principal.has_scope(f"{service}:{'admin' if level == '*' else level}")


class _Described(dict):
    """Scope descriptions that also describe the tenant a grant carries."""

    def __missing__(self, key: str) -> str:
        if key.startswith(TENANT_PREFIX):
            return f"Acts for tenant {key[len(TENANT_PREFIX) :]} only"
        raise KeyError(key)


class RegistryScopes:
    """django-oauth-toolkit's scopes backend: the vocabulary above, from the registry."""

    def get_all_scopes(self) -> dict[str, str]:
        described = _Described({"*": "Every operation of every service"})
        for scope in vocabulary()[1:]:
            service, _, level = scope.partition(":")
            where = "every service" if service == "*" else f"the {service} service"
            described[scope] = f"{level.capitalize()} access to {where}"
        return described

    def get_available_scopes(self, application=None, request=None, *args, **kwargs) -> list[str]:
        return vocabulary()

    def get_default_scopes(self, application=None, request=None, *args, **kwargs) -> list[str]:
        # Nothing by default: the user picks on the consent page.
        return []
