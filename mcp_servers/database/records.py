"""The tenant's records as the read operations show them: the tables an agent may query,
text search over customers, appointments and calls, failed appointments, tenant counts and
which branch each phone number rings."""

from __future__ import annotations

import datetime as dt

from django.apps import apps
from django.db.models import Q
from django.utils import timezone

from askpro.models import Appointment, Branch, Call, Company, Customer, PhoneNumber
from mcp_core.contracts import ErrorCode, MCPError

from .schemas import (
    ColumnInfo,
    FailedAppointment,
    FailedAppointmentsParams,
    FailedAppointmentsResult,
    GetSchemaParams,
    GetSchemaResult,
    MappedBranch,
    PhoneMapping,
    PhoneMappingParams,
    PhoneMappingResult,
    SearchHit,
    SearchParams,
    SearchResult,
    TableInfo,
    TenantStatsResult,
)
from .sql_guard import allowed_tables, secret_columns


def describe_tables(tenant: Company, params: GetSchemaParams) -> GetSchemaResult:
    """Columns (never secret ones), indexes and the tenant's row count of each allowed table."""
    allowed = sorted(allowed_tables())
    wanted = params.tables or allowed
    unknown = [name for name in wanted if name not in allowed]
    if unknown:
        raise MCPError(
            ErrorCode.VALIDATION_ERROR,
            f"tables: {', '.join(unknown)} not allowed; choose from {', '.join(allowed)}",
            details={"field": "tables", "problem": "invalid_value"},
        )
    models_by_table = {model._meta.db_table: model for model in apps.get_models()}
    secrets = secret_columns()
    tables = []
    for name in wanted:
        model = models_by_table.get(name)
        if model is None:
            continue
        columns = [
            ColumnInfo(name=f.column, type=f.get_internal_type(), nullable=f.null)
            for f in model._meta.concrete_fields
            if f.column not in secrets.get(name, frozenset())
        ]
        indexes = [index.name for index in model._meta.indexes]
        indexes += [
            f"{f.column} (unique)" for f in model._meta.concrete_fields if f.unique and not f.primary_key
        ]
        field_names = {f.name for f in model._meta.concrete_fields}
        if name == "askpro_company":
            tenant_rows = 1
        elif "company" in field_names:
            tenant_rows = model.objects.filter(company=tenant).count()
        else:
            tenant_rows = None
        tables.append(TableInfo(name=name, columns=columns, indexes=indexes, tenant_rows=tenant_rows))
    return GetSchemaResult(tables=tables, generated_at=timezone.now())


def search(tenant: Company, params: SearchParams) -> SearchResult:
    term = params.query.strip()
    hits: list[SearchHit] = []
    if "customers" in params.tables:
        rows = Customer.objects.filter(company=tenant).filter(
            Q(name__icontains=term)
            | Q(phone__icontains=term)
            | Q(email__icontains=term)
            | Q(notes__icontains=term)
        )[: params.limit]
        hits += [
            SearchHit(table="customers", id=c.pk, label=c.name, matched=c.phone or c.email) for c in rows
        ]
    if "appointments" in params.tables:
        rows = (
            Appointment.objects.filter(company=tenant)
            .filter(
                Q(customer__name__icontains=term)
                | Q(customer__phone__icontains=term)
                | Q(notes__icontains=term)
            )
            .select_related("customer")[: params.limit]
        )
        hits += [
            SearchHit(
                table="appointments",
                id=a.pk,
                label=f"{a.starts_at:%Y-%m-%d %H:%M} {a.customer.name if a.customer else ''}".strip(),
                matched=a.status,
            )
            for a in rows
        ]
    if "calls" in params.tables:
        rows = (
            Call.objects.filter(company=tenant)
            .filter(
                Q(from_number__icontains=term)
                | Q(summary__icontains=term)
                | Q(customer__name__icontains=term)
            )
            .select_related("customer")[: params.limit]
        )
        hits += [
            SearchHit(
                table="calls",
                id=c.pk,
                label=f"{c.from_number} {c.started_at:%Y-%m-%d %H:%M}",
                matched=c.summary[:120],
            )
            for c in rows
        ]
    return SearchResult(query=term, hits=hits)


def failed_appointments(tenant: Company, params: FailedAppointmentsParams) -> FailedAppointmentsResult:
    since = timezone.now() - dt.timedelta(hours=params.hours)
    rows = (
        Appointment.objects.filter(company=tenant, updated_at__gte=since)
        .filter(Q(status=Appointment.Status.FAILED) | ~Q(error_message=""))
        .select_related("customer", "branch", "service")
        .order_by("-updated_at")[: params.limit]
    )
    items = [
        FailedAppointment(
            id=a.pk,
            starts_at=a.starts_at,
            status=a.status,
            error_message=a.error_message,
            customer_name=a.customer.name if a.customer else None,
            customer_phone=a.customer.phone if a.customer else None,
            branch=a.branch.name if a.branch else None,
            service=a.service.name if a.service else None,
        )
        for a in rows
    ]
    return FailedAppointmentsResult(appointments=items, count=len(items))


def tenant_stats(tenant: Company) -> TenantStatsResult:
    now = timezone.now()
    return TenantStatsResult(
        tenant=tenant.slug,
        branches=tenant.branches.count(),
        staff=tenant.staff.count(),
        services=tenant.services.count(),
        customers=tenant.customers.count(),
        appointments=tenant.appointments.count(),
        calls=tenant.calls.count(),
        phone_numbers=tenant.phone_numbers.count(),
        calls_last_30_days=tenant.calls.filter(started_at__gte=now - dt.timedelta(days=30)).count(),
        appointments_upcoming=tenant.appointments.filter(
            starts_at__gte=now,
            status__in=[Appointment.Status.SCHEDULED, Appointment.Status.CONFIRMED],
        ).count(),
    )


def phone_mapping(tenant: Company, params: PhoneMappingParams) -> PhoneMappingResult:
    numbers = PhoneNumber.objects.filter(company=tenant).select_related("branch")
    if not params.include_inactive:
        numbers = numbers.filter(is_active=True)
    if params.phone_number:
        numbers = numbers.filter(number=params.phone_number.strip())
    if params.branch_id is not None:
        if not Branch.objects.filter(company=tenant, pk=params.branch_id).exists():
            raise MCPError(
                ErrorCode.NOT_FOUND,
                f"branch_id: no branch {params.branch_id} for this tenant",
                details={"field": "branch_id"},
            )
        numbers = numbers.filter(branch_id=params.branch_id)
    mappings = [
        PhoneMapping(
            phone_number=n.number,
            type=n.type,
            is_active=n.is_active,
            branch=None
            if n.branch is None
            else MappedBranch(
                id=n.branch.pk,
                name=n.branch.name,
                is_active=n.branch.is_active,
                calcom_event_type_id=n.branch.calcom_event_type_id,
                retell_agent_id=n.branch.retell_agent_id,
            ),
        )
        for n in numbers
    ]
    return PhoneMappingResult(mappings=mappings, total=len(mappings))
