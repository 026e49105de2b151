"""Which Google credential and which calendars a tenant has: resolved before any upstream call,
so another tenant's calendar is answered exactly like an unknown one (not_found)."""

from __future__ import annotations

import base64
import hashlib
import secrets

from askpro.models import Company
from mcp_core.contracts import ErrorCode, MCPError
from mcp_core.tenancy import TenantCredentials

from .client import GoogleAuth
from .models import CalendarLink, GoogleAccount

# Push channel tokens are HMACs under this per-tenant secret (no platform-wide one).
GCAL_PUSH_SECRET = TenantCredentials(
    service="gcal", tenant_field="gcal_account__push_secret", platform_setting="", what="push channel secret"
)
NOT_CONFIGURED = (
    "gcal: no Google credentials for this tenant; connect Google Calendar or upload a service account "
    "key in the admin (Google Calendar accounts)"
)


def auth_of(row: GoogleAccount) -> GoogleAuth | None:
    if row.mode == GoogleAccount.Mode.SERVICE_ACCOUNT and row.service_account_key:
        return GoogleAuth("service_account", row.service_account_key, row.delegated_user)
    if row.mode == GoogleAccount.Mode.OAUTH and row.refresh_token:
        return GoogleAuth("oauth", row.refresh_token)
    return None


def account_for(company: Company) -> tuple[GoogleAccount, GoogleAuth]:
    """The tenant's Google account row and credential; not_configured without one."""
    row = GoogleAccount.objects.filter(company=company).first()
    auth = auth_of(row) if row is not None else None
    if row is None or auth is None:
        raise MCPError(ErrorCode.NOT_CONFIGURED, NOT_CONFIGURED)
    return row, auth


def configured_accounts():
    """Active tenants' rows holding a credential of their mode."""
    rows = GoogleAccount.objects.filter(company__is_active=True).select_related("company")
    return [row for row in rows.order_by("pk") if auth_of(row) is not None]


def calendar_for(company: Company, calendar_id: str, *, field: str = "calendar_id") -> CalendarLink:
    """The tenant's calendar by Google id (as list_calendars found it or the admin linked it)."""
    link = CalendarLink.objects.filter(company=company, calendar_id=calendar_id).first()
    if link is None:
        raise MCPError(
            ErrorCode.NOT_FOUND,
            f"{field}: no calendar {calendar_id!r} of this tenant (list_calendars shows them)",
            details={"field": field},
        )
    return link


def push_secret(row: GoogleAccount) -> str:
    """The tenant's push secret, made on first use."""
    if not row.push_secret:
        row.push_secret = secrets.token_urlsafe(32)
        row.save(update_fields=["push_secret", "updated_at"])
    return row.push_secret


def idempotent_event_id(company_id: int, calendar_id: str, key: str) -> str:
    """A Google event id (base32hex, lower case) from the request's idempotency key: the same
    request twice asks Google for the same id, and Google keeps one event."""
    digest = hashlib.sha256(f"{company_id}\0{calendar_id}\0{key}".encode()).digest()
    return "ik" + base64.b32hexencode(digest).decode().rstrip("=").lower()


def appointment_event_id(appointment_id: int) -> str:
    """The event id of an appointment's event (stable, so a lost answer cannot duplicate it)."""
    return f"askpro{appointment_id:012d}"
