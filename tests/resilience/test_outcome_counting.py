"""Refusals by the guards are counted as what they are: a tenant over its rate limit is a caller
error, a call refused by an open breaker is a service failure (the failures that opened it were
the service's own), and neither is lost from the figures."""

from __future__ import annotations

import pytest
from django.db.models import Sum

from mcp_core.models import MetricRollup

from .conftest import set_plan
from .test_breaker import call, open_the_breaker

pytestmark = pytest.mark.django_db

COUNTS = ("calls", "caller_errors", "not_configured", "service_failures")


def counted(operation: str, **filters) -> tuple[int, ...]:
    totals = MetricRollup.objects.filter(service="dummy", operation=operation, **filters).aggregate(
        **{name: Sum(name) for name in COUNTS}
    )
    return tuple(totals[name] or 0 for name in COUNTS)


def test_it_counts_open_breaker_refusals_as_service_failures(dummy, tenant, principal):
    open_the_breaker(dummy, principal)  # 4 upstream errors
    assert [call(principal).error["code"] for _ in range(3)] == ["circuit_open"] * 3
    assert counted("fetch") == (7, 0, 0, 7)
    assert counted("fetch", tenant_id=tenant.pk) == (7, 0, 0, 7)


def test_it_counts_rate_limit_refusals_as_caller_errors_of_the_tenant(dummy, tenant, principal):
    set_plan(tenant, per_minute=3)
    codes = [(call(principal).error or {}).get("code") for _ in range(5)]
    assert codes == [None, None, None, "rate_limited", "rate_limited"]
    assert counted("fetch") == (5, 2, 0, 0)
    assert counted("fetch", tenant_id=tenant.pk) == (5, 2, 0, 0)
