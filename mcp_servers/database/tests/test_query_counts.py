"""Each read operation of the database server runs a small fixed number of statements, however
many records the tenant has (get_tenant_stats used to run nine counts, get_schema one per table,
get_call_stats two): exactly that number, counted with django_assert_num_queries."""

from __future__ import annotations

import time
from datetime import timedelta as td

import pytest
from django.utils import timezone

from askpro.models import Branch, Call, Customer, PhoneNumber
from mcp_core.contracts import MCPRequest, OperationContext
from mcp_core.registry import get_registry
from mcp_core.schemas import decode_params

from .conftest import op


def direct(tenant, name: str, params: dict | None = None):
    """The operation itself, without the pipeline's own statements (audit, rollups)."""
    registry = get_registry()
    operation = registry.get_operation("database", name)
    request = MCPRequest(service="database", operation=name, params=params or {}, principal=None)
    ctx = OperationContext(request=request, principal=None, tenant=tenant, deadline=time.monotonic() + 30)
    return registry.get_server("database").call(operation, ctx, decode_params(operation.params, params or {}))


def grow(company, n: int = 25) -> None:
    """More of everything, so that a per-row or per-table query would show in the count."""
    now = timezone.now()
    for i in range(n):
        branch = Branch.objects.create(company=company, name=f"Extra {i}", slug=f"extra-{i}")
        PhoneNumber.objects.create(company=company, branch=branch, number=f"+49301234{i:03d}")
        customer = Customer.objects.create(
            company=company, name=f"wanda extra {i}", phone=f"+49170999{i:03d}"
        )
        Call.objects.create(company=company, branch=branch, customer=customer, started_at=now - td(hours=i))


CASES = [
    ("get_tenant_stats", {}, 1),
    ("get_schema", {}, 1),
    ("get_call_stats", {"days": 30}, 1),
    ("search", {"query": "wanda"}, 3),
    ("get_failed_appointments", {"hours": 72}, 1),
    ("get_phone_branch_mapping", {}, 1),
]


@pytest.mark.parametrize(("name", "params", "count"), CASES)
def test_it_reads_with_a_fixed_number_of_queries(world, name, params, count, django_assert_num_queries):
    with django_assert_num_queries(count):
        small = direct(world["alice"], name, params)
    grow(world["alice"])
    with django_assert_num_queries(count):
        large = direct(world["alice"], name, params)
    assert small != large or name == "get_failed_appointments"  # the new records are seen


def test_it_checks_a_branch_with_one_more_query(world, django_assert_num_queries):
    with django_assert_num_queries(2):
        direct(world["alice"], "get_call_stats", {"days": 30, "branch_id": world["second"].pk})
    with django_assert_num_queries(2):
        direct(world["alice"], "get_phone_branch_mapping", {"branch_id": world["second"].pk})


def test_it_counts_the_same_in_one_statement_as_before(world, reader):
    grow(world["alice"], 3)
    stats = op(reader, "get_tenant_stats")
    assert (stats["branches"], stats["calls"], stats["customers"], stats["phone_numbers"]) == (5, 7, 5, 6)
    tables = {t["name"]: t["tenant_rows"] for t in op(reader, "get_schema")["tables"]}
    assert tables["askpro_branch"] == 5 and tables["askpro_call"] == 7 and tables["askpro_company"] == 1
