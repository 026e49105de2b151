"""One tenant's way into Cal.com: its credential (the shared rule in mcp_core.tenancy), its
client, and what it may reach on the shared platform account."""

from __future__ import annotations

from typing import Any

from django.conf import settings

from askpro.models import Appointment, Branch, Company, Service
from mcp_core.contracts import ErrorCode, MCPError, OperationContext
from mcp_core.tenancy import TENANT, TenantCredentials

from .client import CalcomClient

METADATA_TENANT = "askpro_company"
CALCOM_KEY = TenantCredentials(
    service="calcom", tenant_field="calcom_api_key", platform_setting="CALCOM_API_KEY", what="Cal.com API key"
)


class Access:
    """One tenant's way into Cal.com: the client and what the tenant may reach with it."""

    def __init__(self, company: Company) -> None:
        found = CALCOM_KEY.resolve(company)
        self.company = company
        self.own_account = found.source == TENANT
        self.client = CalcomClient(base_url=settings.CALCOM_BASE_URL, api_key=found.secret)

    def mapped_event_type_ids(self) -> set[int]:
        ids = set(
            Branch.objects.filter(company=self.company, calcom_event_type_id__isnull=False).values_list(
                "calcom_event_type_id", flat=True
            )
        )
        ids |= set(
            Service.objects.filter(company=self.company, calcom_event_type_id__isnull=False).values_list(
                "calcom_event_type_id", flat=True
            )
        )
        return ids

    def event_types(self, ctx: OperationContext) -> list[dict[str, Any]]:
        """The Cal.com event types the tenant sees: all of its own account's, else its mapped ones."""
        raw = self.client.event_types(ctx)
        if not isinstance(raw, list):
            raise MCPError(ErrorCode.UPSTREAM_ERROR, "calcom: event types answer is not a list")
        if self.own_account:
            return raw
        mapped = self.mapped_event_type_ids()
        return [item for item in raw if item.get("id") in mapped]

    def check_event_type(self, event_type_id: int) -> None:
        """On the shared account, only the tenant's mapped event types are its own."""
        if not self.own_account and event_type_id not in self.mapped_event_type_ids():
            raise MCPError(
                ErrorCode.NOT_FOUND,
                f"event_type_id: {event_type_id} is not one of this tenant's Cal.com event types",
                details={"field": "event_type_id"},
            )

    def owns(self, raw: dict[str, Any], local_uids: set[str] | None = None) -> bool:
        if self.own_account:
            return True
        if (raw.get("metadata") or {}).get(METADATA_TENANT) == str(self.company.pk):
            return True
        if local_uids is not None:
            return raw.get("uid") in local_uids
        return Appointment.objects.filter(company=self.company, calcom_booking_uid=raw.get("uid")).exists()

    def owned_booking(self, ctx: OperationContext, uid: str) -> dict[str, Any]:
        """The booking, if it belongs to this tenant; otherwise not_found (no existence leak)."""
        try:
            raw = self.client.booking(uid, ctx)
        except MCPError as exc:
            if exc.code == ErrorCode.NOT_FOUND:
                raise MCPError(
                    ErrorCode.NOT_FOUND, f"booking_uid: no booking {uid!r}", details={"field": "booking_uid"}
                ) from None
            raise
        if not self.owns(raw):
            raise MCPError(
                ErrorCode.NOT_FOUND, f"booking_uid: no booking {uid!r}", details={"field": "booking_uid"}
            )
        return raw
