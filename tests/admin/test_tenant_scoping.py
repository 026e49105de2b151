"""A tenant-bound operator sees and edits only their tenants' rows in the admin, on every page of
every model that belongs to a tenant (mcp_core.admin_scoping); superusers and people with a grant
on every tenant see every tenant, as before."""

from __future__ import annotations

import pytest
from django.contrib import admin
from django.contrib.auth.models import Permission
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from askpro.models import Branch, Company, Customer, Invoice
from conftest import make_tenant
from mcp_core.admin_scoping import TenantScopedAdmin
from mcp_core.models import ApiKey, OperatorAccess

from .conftest import make_tenant_rows
from .people import make_staff

# Registered models that belong to no tenant: every operator who may view them sees all of
# them. A model added to the admin must either be tenant-scoped (TenantScopedAdmin) or be
# listed here, with the reason.
PLATFORM_WIDE = {
    "auth.Group",
    "auth.User",
    "askpro.Plan",  # the price plans every tenant chooses from
    "mcp_core.BreakerTransition",  # per service, not per tenant
    "mcp_webhooks.RejectedDelivery",  # counters of deliveries no tenant was found for
    "mcp_queue.TaskFailure",
    "mcp_federation.RemoteServer",  # a platform registration: its tenants say who may call it
    "mcp_federation.RemoteTool",
    "dashboard.ImprovementRun",  # hidden from tenant-bound operators (PlatformOnlyAdmin)
    "dashboard.HealthCheckResult",  # the same
    "django_celery_beat.PeriodicTask",
    "django_celery_beat.ClockedSchedule",
    "django_celery_beat.CrontabSchedule",
    "django_celery_beat.SolarSchedule",
    "django_celery_beat.IntervalSchedule",
    "oauth2_provider.Application",
    "oauth2_provider.AccessToken",  # a token's tenant is a word in its scope, checked at use
    "oauth2_provider.Grant",
    "oauth2_provider.RefreshToken",
}


def tenant_rows(model, company: Company) -> set:
    """The pks of `company`'s rows of `model`, found without asking the admin how."""
    if model is Company:
        return {company.pk}
    for field in model._meta.get_fields():
        if field.concrete and field.is_relation and field.related_model is Company:
            return set(model._default_manager.filter(**{field.name: company}).values_list("pk", flat=True))
    if any(f.name == "tenant_id" for f in model._meta.concrete_fields):
        return set(model._default_manager.filter(tenant_id=company.pk).values_list("pk", flat=True))
    raise AssertionError(f"{model._meta.label}: no way to a tenant; list it in PLATFORM_WIDE")


def belongs_to_a_tenant(model, seen=()) -> bool:
    """Company itself, a relation to Company or to a model that belongs to one, or a tenant_id."""
    if model is Company:
        return True
    if any(f.name == "tenant_id" for f in model._meta.concrete_fields):
        return True
    for field in model._meta.get_fields():
        if not (field.concrete and field.is_relation) or field.related_model in seen:
            continue
        if field.related_model is Company or belongs_to_a_tenant(field.related_model, (*seen, model)):
            return True
    return False


@pytest.fixture
def alice_operator(alice):
    """Every permission there is (not superuser), with a grant limited to alice."""
    user = make_staff("alice-operator", perms=Permission.objects.all())
    grant = OperatorAccess.objects.create(name="alice ops", user=user, scopes=["*:read"])
    grant.tenants.add(alice)
    return user


@pytest.fixture
def both_tenants(every_model_row, alice, bob):
    make_tenant_rows(bob)
    return admin.site._registry


def test_it_scopes_every_tenant_model_or_lists_it_as_platform_wide(db):
    scoped = {m._meta.label for m, a in admin.site._registry.items() if isinstance(a, TenantScopedAdmin)}
    unscoped = {m._meta.label for m in admin.site._registry} - scoped
    assert unscoped == PLATFORM_WIDE, "scope these admins (TenantScopedAdmin) or list them here"
    # What is listed as platform-wide holds no tenant's rows directly.
    for model in admin.site._registry:
        if model._meta.label in PLATFORM_WIDE and model._meta.label != "mcp_federation.RemoteServer":
            direct = [f.name for f in model._meta.get_fields() if f.concrete and f.related_model is Company]
            assert not direct, f"{model._meta.label} has a relation to Company: {direct}"
    for model, model_admin in admin.site._registry.items():
        if isinstance(model_admin, TenantScopedAdmin):
            assert belongs_to_a_tenant(model), model._meta.label
    assert len(scoped) >= 28


def test_it_shows_a_tenant_bound_operator_only_their_tenants_rows_on_every_admin(
    client, alice, bob, alice_operator, both_tenants
):
    client.force_login(alice_operator)
    checked = []
    for model, model_admin in both_tenants.items():
        if not isinstance(model_admin, TenantScopedAdmin):
            continue
        label, info = model._meta.label, (model._meta.app_label, model._meta.model_name)
        mine, theirs = tenant_rows(model, alice), tenant_rows(model, bob)
        assert mine and theirs, f"{label}: give each tenant a row (make_tenant_rows)"
        response = client.get(reverse("admin:{}_{}_changelist".format(*info)))
        assert response.status_code == 200, label
        shown = set(response.context["cl"].queryset.values_list("pk", flat=True))
        assert mine <= shown, label
        assert not shown & theirs, f"{label}: bob's rows on alice's operator's change list"
        page = client.get(reverse("admin:{}_{}_change".format(*info), args=[min(mine)]))
        assert page.status_code == 200, label
        for name in ("change", "history", "delete"):
            response = client.get(reverse(f"admin:{info[0]}_{info[1]}_{name}", args=[min(theirs)]))
            assert response.status_code in (302, 403, 404), f"{label} {name}: {response.status_code}"
        assert model_admin.get_object(response.wsgi_request, str(min(theirs))) is None, label
        assert not model_admin.has_view_permission(response.wsgi_request, model.objects.get(pk=min(theirs)))
        checked.append(label)
    assert len(checked) >= 28


def test_it_shows_a_superuser_and_an_everywhere_grant_every_tenant(
    client, alice, bob, superuser, both_tenants
):
    everywhere = make_staff("reads-all", perms=Permission.objects.filter(codename__startswith="view_"))
    OperatorAccess.objects.create(name="everywhere", user=everywhere, scopes=["*:read"])
    for person in (superuser, everywhere):
        client.force_login(person)
        for model, model_admin in both_tenants.items():
            if not isinstance(model_admin, TenantScopedAdmin):
                continue
            info = (model._meta.app_label, model._meta.model_name)
            response = client.get(reverse("admin:{}_{}_changelist".format(*info)))
            shown = set(response.context["cl"].queryset.values_list("pk", flat=True))
            assert tenant_rows(model, alice) | tenant_rows(model, bob) <= shown, model._meta.label
            bobs = min(tenant_rows(model, bob))
            assert client.get(reverse("admin:{}_{}_change".format(*info), args=[bobs])).status_code == 200


def test_it_shows_staff_without_any_grant_no_tenant_at_all(client, alice, bob):
    client.force_login(make_staff("no-grant", perms=["askpro.view_branch", "askpro.add_branch"]))
    response = client.get(reverse("admin:askpro_branch_changelist"))
    assert response.status_code == 200 and response.context["cl"].result_count == 0
    assert client.get(reverse("admin:askpro_branch_add")).status_code == 403


def test_it_refuses_to_save_a_row_into_another_tenant(client, alice, bob, alice_operator):
    client.force_login(alice_operator)
    add = reverse("admin:askpro_branch_add")
    form = {"name": "Second", "slug": "second", "business_hours": "{}", "is_active": "on"}
    page = client.get(add).content.decode()
    assert f'<option value="{alice.pk}">' in page and f'<option value="{bob.pk}">' not in page

    response = client.post(add, {**form, "company": bob.pk})
    assert response.status_code == 200
    assert "company" in response.context["adminform"].form.errors
    assert not Branch.objects.filter(slug="second").exists()

    # Nor may an own row be moved to another tenant.
    branch = Branch.objects.get(company=alice)
    change = reverse("admin:askpro_branch_change", args=[branch.pk])
    response = client.post(change, {**form, "name": branch.name, "slug": branch.slug, "company": bob.pk})
    assert "company" in response.context["adminform"].form.errors
    assert Branch.objects.get(pk=branch.pk).company_id == alice.pk

    # Nor point a row at another tenant's record (a raw-id field).
    add = reverse("admin:askpro_invoice_add")
    invoice = {"company": alice.pk, "status": "draft", "currency": "EUR", "subtotal": "0", "tax": "0",
               "total": "0", "metadata": "{}", "number": "INV-9"}  # fmt: skip
    response = client.post(add, {**invoice, "customer": Customer.objects.get(company=bob).pk})
    assert "customer" in response.context["adminform"].form.errors
    response = client.post(add, {**invoice, "customer": Customer.objects.get(company=alice).pk})
    assert response.status_code == 302
    assert Invoice.objects.get(number="INV-9").customer.company_id == alice.pk

    # A key without a tenant (a platform key) is not theirs to make either.
    response = client.post(
        reverse("admin:mcp_core_apikey_add"), {"name": "k", "tenant": "", "scopes_text": "database:read"}
    )
    assert "tenant" in response.context["adminform"].form.errors
    assert not ApiKey.objects.exists()
    response = client.post(
        reverse("admin:mcp_core_apikey_add"),
        {"name": "k", "tenant": alice.pk, "scopes_text": "database:read"},
    )
    assert response.status_code == 302 and ApiKey.objects.get().tenant_id == alice.pk
    # Nor a new tenant.
    assert client.get(reverse("admin:askpro_company_add")).status_code == 403


def test_it_offers_only_their_tenants_in_filters_and_autocomplete(
    client, alice, bob, alice_operator, both_tenants
):
    # A second tenant for alice's operator: a filter with one choice is not shown at all.
    carol = make_tenant("carol-clinic")
    OperatorAccess.objects.get(user=alice_operator).tenants.add(carol)
    client.force_login(alice_operator)
    response = client.get(reverse("admin:askpro_branch_changelist"))
    company_filter = next(f for f in response.context["cl"].filter_specs if f.field_path == "company")
    assert {pk for pk, _ in company_filter.lookup_choices} == {alice.pk, carol.pk}
    response = client.get(
        reverse("admin:autocomplete"),
        {"app_label": "mcp_gcal", "model_name": "calendarlink", "field_name": "company", "term": ""},
    )
    assert {r["id"] for r in response.json()["results"]} == {str(alice.pk), str(carol.pk)}
    # A hand-made filter for bob's rows finds none.
    response = client.get(reverse("admin:askpro_customer_changelist"), {"company__id__exact": bob.pk})
    assert response.context["cl"].result_count == 0


def test_it_shows_grants_that_list_only_their_tenants(client, alice, bob, alice_operator):
    both = OperatorAccess.objects.create(name="both", user=make_staff("x"), scopes=["*:read"])
    both.tenants.set([alice, bob])
    everywhere = OperatorAccess.objects.create(name="everywhere", user=make_staff("y"), scopes=["*:read"])
    client.force_login(alice_operator)
    response = client.get(reverse("admin:mcp_core_operatoraccess_changelist"))
    assert {g.name for g in response.context["cl"].queryset} == {"alice ops"}
    for grant in (both, everywhere):
        url = reverse("admin:mcp_core_operatoraccess_change", args=[grant.pk])
        assert client.get(url).status_code == 302


def test_it_reads_the_users_rights_once_per_request_not_per_row(client, alice, alice_operator):
    for n in range(30):
        Customer.objects.create(company=alice, name=f"c{n}", phone=f"+49151000{n:04d}")
    client.force_login(alice_operator)
    with CaptureQueriesContext(connection) as queries:
        response = client.get(reverse("admin:askpro_customer_changelist"))
    assert response.context["cl"].result_count == 31
    grants = [q["sql"] for q in queries.captured_queries if 'FROM "mcp_core_operatoraccess"' in q["sql"]]
    assert len(grants) == 1, grants


def test_it_keeps_extra_admin_pages_within_their_tenants(client, alice, bob, alice_operator, both_tenants):
    from mcp_servers.gcal.models import GoogleAccount

    client.force_login(alice_operator)
    theirs = GoogleAccount.objects.get(company=bob)
    assert client.get(reverse("admin:mcp_gcal_googleaccount_connect", args=[theirs.pk])).status_code == 404
    page = client.get(reverse("admin:mcp_email_preview"), {"company": bob.pk, "template": "reminder"})
    assert "company" in page.context["form"].errors


def test_it_refuses_at_start_up_a_scoped_admin_without_a_way_to_the_tenant():
    from django.contrib.admin.sites import AdminSite

    from askpro.models import Plan

    class PlanAdmin(TenantScopedAdmin, admin.ModelAdmin):
        pass

    site = AdminSite(name="probe")
    site.register(Plan, PlanAdmin)
    assert [e.id for e in site._registry[Plan].check()] == ["mcp.E010"]
    assert all(not a.check() for a in admin.site._registry.values() if isinstance(a, TenantScopedAdmin))


def test_it_hides_platform_rows_that_may_quote_any_tenant_from_a_tenant_bound_operator(
    client, alice_operator, every_model_row
):
    """An engine run's stored error or a health check's detail may name any tenant: a bound
    operator with every model permission gets neither the pages nor the rows; a superuser does."""
    from dashboard.models import HealthCheckResult, ImprovementRun

    client.force_login(alice_operator)
    index = client.get(reverse("admin:index")).content.decode()
    for model in (ImprovementRun, HealthCheckResult):
        info = (model._meta.app_label, model._meta.model_name)
        assert reverse("admin:{}_{}_changelist".format(*info)) not in index
        assert client.get(reverse("admin:{}_{}_changelist".format(*info))).status_code == 403
        row = model.objects.first()
        assert client.get(reverse("admin:{}_{}_change".format(*info), args=[row.pk])).status_code in (
            302,
            403,
        )
    client.force_login(make_staff("root", superuser=True))
    for model in (ImprovementRun, HealthCheckResult):
        info = (model._meta.app_label, model._meta.model_name)
        assert client.get(reverse("admin:{}_{}_changelist".format(*info))).status_code == 200
