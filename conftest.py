"""Shared fixtures: two tenants (Alice's salon and Bob's practice), keys for each, a platform key.

Tests run against the real PostgreSQL and Redis (askpro.settings_test).
"""

from __future__ import annotations

from datetime import timedelta as td
from decimal import Decimal

import pytest
from django.core.cache import cache
from django.db import connections, transaction
from django.test import TransactionTestCase
from django.utils import timezone

from askpro.models import Appointment, Branch, Call, Company, Customer, PhoneNumber, Plan, Service
from mcp_core import shared_state
from mcp_core.api_keys import api_key_create

# Rows Django's own post_migrate handlers create (content types, permissions) and the migration
# record: kept by the transactional tests' flush below, so nothing needs recreating.
_KEPT_BY_FLUSH = frozenset({"django_content_type", "auth_permission", "django_migrations"})


def _delete_all_rows(self) -> None:
    """TransactionTestCase's flush on PostgreSQL: DELETE FROM every model table but the ones
    above, in one transaction (Django's foreign keys there are DEFERRABLE INITIALLY DEFERRED, so
    the order does not matter). Django's flush TRUNCATEs every table and then re-creates the
    content types and permissions through post_migrate: 0.44 - 0.54 s after every transactional
    test here, against 0.04 s. SQLite, available_apps and serialized rollback keep Django's."""
    for alias in self._databases_names(include_mirrors=False):
        connection = connections[alias]
        if connection.vendor != "postgresql" or self.available_apps is not None or self.serialized_rollback:
            _django_fixture_teardown(self)
            return
        tables = connection.introspection.django_table_names(only_existing=True, include_views=False)
        with transaction.atomic(using=alias), connection.cursor() as cursor:
            for table in sorted(set(tables) - _KEPT_BY_FLUSH):
                cursor.execute(f"DELETE FROM {connection.ops.quote_name(table)}")


_django_fixture_teardown = TransactionTestCase._fixture_teardown
TransactionTestCase._fixture_teardown = _delete_all_rows


@pytest.fixture(autouse=True)
def _clean_cache():
    """Each test starts with an empty cache namespace (only this run's keys, never FLUSHDB) and
    with this process's view of Redis as healthy: a test that points the cache at a dead Redis
    (health checks, live events) pauses the shared state for MCP_RESILIENCE_REDIS_RETRY_SECONDS,
    which would otherwise let the next test's limits and breakers fail open."""
    yield
    if hasattr(cache, "delete_pattern"):
        cache.delete_pattern("*")
    else:
        cache.clear()
    shared_state.health.reset()


def make_tenant(slug: str, *, name: str | None = None, phone: str = "+4930000001") -> Company:
    plan, _ = Plan.objects.get_or_create(
        code="test", defaults={"name": "Test", "requests_per_minute": 10_000}
    )
    company = Company.objects.create(name=name or slug.title(), slug=slug, plan=plan)
    branch = Branch.objects.create(
        company=company, name="Main", slug="main", phone_number=phone, calcom_event_type_id=42
    )
    PhoneNumber.objects.create(company=company, branch=branch, number=phone)
    service = Service.objects.create(
        company=company, name="Consultation", duration_minutes=30, price=Decimal("50")
    )
    customer = Customer.objects.create(
        company=company,
        name=f"{slug} Customer",
        phone=phone.replace("+49", "+4917"),
        email=f"c@{slug}.example",
    )
    now = timezone.now()
    call = Call.objects.create(
        company=company,
        branch=branch,
        customer=customer,
        retell_call_id=f"call-{slug}",
        from_number=customer.phone,
        to_number=phone,
        started_at=now - td(hours=2),
        duration_sec=120,
        cost=Decimal("0.5"),
        call_successful=True,
        summary=f"{slug} caller booked",
    )
    Appointment.objects.create(
        company=company,
        branch=branch,
        customer=customer,
        service=service,
        call=call,
        starts_at=now + td(days=1),
        ends_at=now + td(days=1, minutes=30),
    )
    Appointment.objects.create(
        company=company,
        branch=branch,
        customer=customer,
        service=service,
        starts_at=now - td(hours=3),
        ends_at=now - td(hours=2),
        status=Appointment.Status.FAILED,
        error_message="slot taken",
    )
    return company


@pytest.fixture
def alice(db) -> Company:
    return make_tenant("alice-salon", name="Alice's Salon", phone="+4930111111")


@pytest.fixture
def bob(db) -> Company:
    return make_tenant("bob-practice", name="Bob's Practice", phone="+4940222222")


@pytest.fixture
def key_factory(db):
    def make(*, tenant: Company | None, scopes: list[str], name: str = "test key") -> str:
        return api_key_create(name=name, scopes=scopes, tenant=tenant)[1]

    return make


@pytest.fixture
def alice_key(alice, key_factory) -> str:
    return key_factory(tenant=alice, scopes=["*"])


@pytest.fixture
def bob_key(bob, key_factory) -> str:
    return key_factory(tenant=bob, scopes=["*"])


@pytest.fixture
def platform_key(key_factory) -> str:
    return key_factory(tenant=None, scopes=["*"])
