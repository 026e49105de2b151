"""The tenant's records as the read operations show them: the tables an agent may query,
text search over customers, appointments and calls, failed appointments, tenant counts and
which branch each phone number rings."""

from __future__ import annotations

import datetime as dt

from django.apps import apps
from django.db import connection
from django.db.models import Q
from django.utils import timezone

from askpro.models import Appointment, Branch, Call, Company, Customer, PhoneNumber, Service, Staff
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
    # Every table's tenant row count in one statement (a scalar subquery per table), as plain
    # SQL: building a subquery per table through the ORM cost more than the counting.
    counted = {
        name: models_by_table[name]._meta.get_field("company").column
        for name in wanted
        if name in models_by_table
        and name != "askpro_company"
        and "company" in {f.name for f in models_by_table[name]._meta.concrete_fields}
    }
    tenant_counts: dict[str, int] = {}
    if counted:
        quote = connection.ops.quote_name
        # count(*), not count(id): the (company, ...) indexes answer it by an index-only scan.
        subqueries = [
            f"(SELECT count(*) FROM {quote(name)} WHERE {quote(column)} = %s)"
            for name, column in counted.items()
        ]
        with connection.cursor() as cursor:
            cursor.execute("SELECT " + ", ".join(subqueries), [tenant.pk] * len(counted))
            tenant_counts = dict(zip(counted, cursor.fetchone(), strict=True))
    counts_by_table = {name: tenant_counts[name] or 0 for name in counted}
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
        tenant_rows = 1 if name == "askpro_company" else counts_by_table.get(name)
        tables.append(TableInfo(name=name, columns=columns, indexes=indexes, tenant_rows=tenant_rows))
    return GetSchemaResult(tables=tables, generated_at=timezone.now())


def search(tenant: Company, params: SearchParams) -> SearchResult:
    term = params.query.strip()
    hits: list[SearchHit] = []
    # The tenant's matching customers as a subquery (not a join to every customer): the
    # appointment and call searches then walk their own (company, time) index newest first
    # and stop at the limit.
    tenant_customers = Customer.objects.filter(company=tenant)
    named = tenant_customers.filter(Q(name__icontains=term) | Q(phone__icontains=term)).values("pk")
    named_only = tenant_customers.filter(name__icontains=term).values("pk")
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
            .filter(Q(customer__in=named) | Q(notes__icontains=term))
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
            .filter(Q(from_number__icontains=term) | Q(summary__icontains=term) | Q(customer__in=named_only))
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
    # Plain rows (values), not model instances: a hundred answers cost no object building.
    rows = (
        Appointment.objects.filter(company=tenant, updated_at__gte=since)
        .filter(Q(status=Appointment.Status.FAILED) | ~Q(error_message=""))
        .order_by("-updated_at")
        .values_list(
            "pk", "starts_at", "status", "error_message", "customer__name", "customer__phone", "branch__name",
            "service__name",
        )[: params.limit]
    )  # fmt: skip
    items = [
        FailedAppointment(
            id=pk,
            starts_at=starts_at,
            status=status,
            error_message=error_message,
            customer_name=customer_name,
            customer_phone=customer_phone,
            branch=branch,
            service=service,
        )
        for pk, starts_at, status, error_message, customer_name, customer_phone, branch, service in rows
    ]
    return FailedAppointmentsResult(appointments=items, count=len(items))


def tenant_stats(tenant: Company) -> TenantStatsResult:
    """One statement: a scalar count per table, each on its (company, ...) index. Plain SQL,
    not a queryset: building nine subqueries through the ORM cost about as much as counting."""
    now = timezone.now()
    per_table = {
        "branches": Branch,
        "staff": Staff,
        "services": Service,
        "customers": Customer,
        "appointments": Appointment,
        "calls": Call,
        "phone_numbers": PhoneNumber,
    }
    # count(*), not count(id): the (company, ...) indexes answer it by an index-only scan.
    counts = [
        f"(SELECT count(*) FROM {model._meta.db_table} WHERE company_id = %s)" for model in per_table.values()
    ]
    values: list = [tenant.pk] * len(per_table)
    counts.append(f"(SELECT count(*) FROM {Call._meta.db_table} WHERE company_id = %s AND started_at >= %s)")
    values += [tenant.pk, connection.ops.adapt_datetimefield_value(now - dt.timedelta(days=30))]
    counts.append(
        f"(SELECT count(*) FROM {Appointment._meta.db_table} WHERE company_id = %s AND starts_at >= %s"
        " AND status IN (%s, %s))"
    )
    values += [
        tenant.pk,
        connection.ops.adapt_datetimefield_value(now),
        Appointment.Status.SCHEDULED.value,
        Appointment.Status.CONFIRMED.value,
    ]
    with connection.cursor() as cursor:
        cursor.execute("SELECT " + ", ".join(counts), values)
        row = cursor.fetchone()
    names = [*per_table, "calls_last_30_days", "appointments_upcoming"]
    return TenantStatsResult(tenant=tenant.slug, **dict(zip(names, row, strict=True)))


PHONE_MAPPING_SQL = """
SELECT n.number, n.type, n.is_active, b.id, b.name, b.is_active, b.calcom_event_type_id, b.retell_agent_id
FROM {numbers} n LEFT JOIN {branches} b ON b.id = n.branch_id
WHERE n.company_id = %s{filters}
ORDER BY n.number
"""


def phone_mapping(tenant: Company, params: PhoneMappingParams) -> PhoneMappingResult:
    """One statement (two with a branch_id, which is checked first). Plain SQL on the
    (company, is_active) index, not a queryset: the statement takes a fraction of a
    millisecond, and building it and model instances through the ORM took several times that."""
    if (
        params.branch_id is not None
        and not Branch.objects.filter(company=tenant, pk=params.branch_id).exists()
    ):
        raise MCPError(
            ErrorCode.NOT_FOUND,
            f"branch_id: no branch {params.branch_id} for this tenant",
            details={"field": "branch_id"},
        )
    filters, values = [], [tenant.pk]
    if not params.include_inactive:
        filters.append("n.is_active = %s")
        values.append(True)
    if params.phone_number:
        filters.append("n.number = %s")
        values.append(params.phone_number.strip())
    if params.branch_id is not None:
        filters.append("n.branch_id = %s")
        values.append(params.branch_id)
    sql = PHONE_MAPPING_SQL.format(
        numbers=PhoneNumber._meta.db_table,
        branches=Branch._meta.db_table,
        filters="".join(f" AND {condition}" for condition in filters),
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, values)
        rows = cursor.fetchall()
    # bool(): SQLite answers booleans as 0 and 1.
    mappings = [
        PhoneMapping(
            phone_number=number,
            type=kind,
            is_active=bool(active),
            branch=None
            if branch_id is None
            else MappedBranch(
                id=branch_id,
                name=name,
                is_active=bool(branch_active),
                calcom_event_type_id=event_type,
                retell_agent_id=agent,
            ),
        )
        for number, kind, active, branch_id, name, branch_active, event_type, agent in rows
    ]
    return PhoneMappingResult(mappings=mappings, total=len(mappings))
