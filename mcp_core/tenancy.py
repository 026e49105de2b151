"""One rule for an upstream credential of a tenant, written once for every server.

The tenant's own credential (an encrypted field on Company) wins; else the platform's (a
setting); neither means not_configured, never mock data. A server is configured when the
platform credential is set or at least one active tenant has its own; its health checks the
platform credential and a few distinct tenant credentials, so that one tenant's broken key
shows up even while the platform key works.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

from django.conf import settings
from django.db.models import QuerySet

from askpro.models import Company

from .contracts import ErrorCode, MCPError

TENANT = "tenant"
PLATFORM = "platform"
# Decrypted tenant secrets looked up by company id (webhook verification) live in this
# process's memory only (never in Redis), for a minute, so a hot path needs no query.
_SECRET_TTL_S = 60.0
_secret_cache: dict[tuple[int, str], tuple[float, str]] = {}
_secret_lock = threading.Lock()


def forget_tenant_secrets() -> None:
    """Drop the in-process cache of tenant secrets (tests that change a tenant's secret)."""
    with _secret_lock:
        _secret_cache.clear()


@dataclass(frozen=True)
class Credential:
    """A resolved secret and where it came from ("tenant" or "platform")."""

    secret: str
    source: str
    label: str = field(default="", compare=False)  # for health details: "platform key", "tenant acme"

    def __repr__(self) -> str:  # never show the secret
        return f"Credential(source={self.source!r}, label={self.label!r})"


@dataclass(frozen=True)
class TenantCredentials:
    """How one server finds its credential: which Company field and which platform setting.

    `what` names the credential in messages ("Cal.com API key"); messages name the field and
    the setting that are missing, never a secret.
    """

    service: str
    tenant_field: str
    platform_setting: str
    what: str

    def platform_secret(self) -> str:
        return getattr(settings, self.platform_setting) or ""

    def find(self, company: Company | None) -> Credential | None:
        """The tenant's own credential, else the platform's, else None."""
        own = getattr(company, self.tenant_field, "") if company is not None else ""
        if own:
            return Credential(own, TENANT, f"tenant {company.slug}")
        platform = self.platform_secret()
        if platform:
            return Credential(platform, PLATFORM, "platform key")
        return None

    def tenant_secret(self, company_id: int) -> str:
        """The active tenant's own secret ("" when it has none), cached in memory for a minute."""
        key = (company_id, self.tenant_field)
        now = time.monotonic()
        with _secret_lock:
            hit = _secret_cache.get(key)
        if hit is not None and hit[0] > now:
            return hit[1]
        company = Company.objects.filter(pk=company_id, is_active=True).only(self.tenant_field).first()
        secret = (getattr(company, self.tenant_field) if company else "") or ""
        with _secret_lock:
            _secret_cache[key] = (now + _SECRET_TTL_S, secret)
        return secret

    def resolve(self, company: Company | None) -> Credential:
        """Like find(), but neither credential raises not_configured."""
        found = self.find(company)
        if found is None:
            raise MCPError(ErrorCode.NOT_CONFIGURED, self.missing_message())
        return found

    def missing_message(self) -> str:
        return (
            f"{self.service}: no {self.what} for this tenant and no platform {self.platform_setting}; "
            f"set the company's {self.what} in the admin"
        )

    def tenants_with_own(self) -> QuerySet[Company]:
        """Active companies with their own credential (an inactive one counts for nothing)."""
        return Company.objects.filter(is_active=True).exclude(**{self.tenant_field: ""})

    def is_configured(self) -> bool:
        return bool(self.platform_secret()) or self.tenants_with_own().exists()

    def health_credentials(self, tenants: int = 3) -> list[Credential]:
        """The platform credential, if set, and up to `tenants` distinct tenant credentials
        (a tenant key equal to the platform key or to another tenant's is checked once)."""
        found: list[Credential] = []
        seen: set[str] = set()
        platform = self.platform_secret()
        if platform:
            found.append(Credential(platform, PLATFORM, "platform key"))
            seen.add(platform)
        taken = 0
        # A bounded scan: the first few dozen tenants are plenty to find `tenants` distinct keys.
        for company in self.tenants_with_own().order_by("pk")[: max(20, tenants * 5)]:
            if taken >= tenants:
                break
            secret = getattr(company, self.tenant_field)
            if secret in seen:
                continue
            seen.add(secret)
            found.append(Credential(secret, TENANT, f"tenant {company.slug}"))
            taken += 1
        return found
