"""No admin page, history entry or log line ever shows a stored secret, to anyone.

Every secret field of every model holds a canary; every admin URL of every registered model
(change list, add, change, delete, history and any extra URL of its ModelAdmin), every custom
dashboard page and the console page of every operation is fetched as a view-only user, a
user with every permission and a superuser. No canary may appear in any response body, in
the admin's history (LogEntry) or in the captured log output.
"""

from __future__ import annotations

import logging
import secrets

import pytest
from django.apps import apps
from django.contrib import admin
from django.contrib.admin.models import LogEntry
from django.urls import URLPattern, reverse

from askpro.crypto import secret_field_names, secret_fingerprint
from askpro.models import Company
from mcp_core.registry import get_registry

STANDARD_NAMES = ("changelist", "add", "change", "delete", "history")
# Values for URL parameters of extra admin URLs, by parameter name.
URL_ARGUMENTS = {"service": "database", "action": "accept"}


class Canaries:
    """One random value per (row, secret field); `found_in` names any that a text reveals."""

    def __init__(self) -> None:
        self.values: dict[str, str] = {}

    def plant(self) -> None:
        for model in apps.get_models():
            names = secret_field_names(model)
            for obj in model._default_manager.all():
                for name in names:
                    value = self.new(f"{model._meta.model_name}.{obj.pk}.{name}")
                    setattr(obj, name, value)
                obj.save()
        assert self.values, "no secret field to plant a canary in"

    def new(self, label: str) -> str:
        value = f"canary_{secrets.token_hex(16)}"
        self.values[label] = value
        return value

    def found_in(self, text: str) -> list[str]:
        # The whole value, or a long piece of it (a page that truncates a secret leaks it too).
        return [
            label
            for label, value in self.values.items()
            if value in text or value[7:23] in text or value[-16:] in text
        ]


@pytest.fixture
def canaries(every_model_row) -> Canaries:
    planted = Canaries()
    planted.plant()
    return planted


def _extra_urls(model_admin, obj) -> list[str]:
    """A ModelAdmin's own URLs beyond the standard five, with their parameters filled in."""
    info = (model_admin.model._meta.app_label, model_admin.model._meta.model_name)
    standard = {f"{info[0]}_{info[1]}_{name}" for name in STANDARD_NAMES}
    urls = []
    for pattern in model_admin.get_urls():
        if not isinstance(pattern, URLPattern) or not pattern.name or pattern.name in standard:
            continue
        params = {
            name: (str(obj.pk) if name in ("object_id", "pk", "id") else URL_ARGUMENTS[name])
            for name in pattern.pattern.converters
        }
        urls.append(reverse(f"admin:{pattern.name}", kwargs=params))
    return urls


def every_admin_url() -> list[str]:
    urls = [reverse("admin:index")]
    for model, model_admin in admin.site._registry.items():
        app_label, model_name = model._meta.app_label, model._meta.model_name
        urls.append(reverse("admin:app_list", args=[app_label]))
        urls.append(reverse(f"admin:{app_label}_{model_name}_changelist"))
        urls.append(reverse(f"admin:{app_label}_{model_name}_add"))
        for obj in model._default_manager.all()[:3]:
            for name in ("change", "delete", "history"):
                urls.append(reverse(f"admin:{app_label}_{model_name}_{name}", args=[obj.pk]))
        urls += _extra_urls(model_admin, model._default_manager.first())
    urls += [
        reverse("admin:dashboard"),
        reverse("admin:monitoring"),
        reverse("admin:monitoring") + "?window=7d",
        reverse("admin:monitoring_data"),
        reverse("admin:improvements"),
        reverse("admin:improvements") + "?status=all",
        reverse("admin:console"),
    ]
    urls += [f"{reverse('admin:console')}?op={op.service}.{op.name}" for op in get_registry().operations()]
    return list(dict.fromkeys(urls))


@pytest.fixture(params=["view_only_user", "change_user", "superuser"])
def person(request):
    return request.getfixturevalue(request.param)


def test_it_never_shows_a_stored_secret_on_any_admin_page(client, person, canaries, caplog):
    caplog.set_level(logging.DEBUG)
    client.force_login(person)
    urls = every_admin_url()
    statuses = {}
    for url in urls:
        response = client.get(url)
        statuses[url] = response.status_code
        assert response.status_code < 500, url
        assert not canaries.found_in(response.content.decode(errors="replace")), url
    # A change list is neither searched nor filtered by a secret (no oracle for guessing one).
    changelist = reverse("admin:askpro_company_changelist")
    some_canary = canaries.values[f"company.{Company.objects.first().pk}.calcom_api_key"]
    assert client.get(changelist, {"q": some_canary}).context["cl"].result_count == 0
    for lookup in ("calcom_api_key", "calcom_api_key__startswith", "retell_api_key__contains"):
        assert client.get(changelist, {lookup: "canary_"}).status_code == 400, lookup
    assert not canaries.found_in(caplog.text)
    # The enumeration really reached the pages (not a wall of redirects or refusals): every
    # change list, change page and history page opens for each of the three.
    readable = [u for u in urls if u.endswith(("/change/", "/history/")) or u.count("/") == 4]
    assert len(readable) > 3 * len(admin.site._registry)
    assert {u: statuses[u] for u in readable if statuses[u] != 200} == {}


def test_it_says_whether_each_secret_is_set_when_it_changed_and_its_fingerprint(
    client, view_only_user, alice
):
    alice.calcom_api_key = "cal_live_0123456789abcdef"
    alice.save()
    alice.refresh_from_db()
    client.force_login(view_only_user)
    page = client.get(reverse("admin:askpro_company_change", args=[alice.pk])).content.decode()
    fingerprint = secret_fingerprint("cal_live_0123456789abcdef")
    assert len(fingerprint) == 8 and fingerprint in page
    assert "0123456789abcdef" not in page and "cal_live" not in page
    changed = alice.secret_changed_at("calcom_api_key")
    assert changed is not None and f"Set · last changed {changed.astimezone():%Y-%m-%d}" in page
    assert "Not set" in page  # retell_api_key and the others were never set
    assert 'type="password"' not in page  # a viewer gets no input at all


@pytest.fixture(params=["change_user", "superuser"])
def writer(request):
    return request.getfixturevalue(request.param)


def _company_form(company: Company, **changes) -> dict:
    data = {
        "name": company.name,
        "slug": company.slug,
        "timezone": company.timezone,
        "currency": company.currency,
        "plan": company.plan_id or "",
        "billing_status": company.billing_status,
        "is_active": "on",
        "retell_agent_id": "",
        "stripe_customer_id": "",
        "stripe_subscription_id": "",
        # A browser sends the empty password inputs too.
        **dict.fromkeys(secret_field_names(Company), ""),
    }
    data.update(changes)
    return {k: v for k, v in data.items() if v is not None}


def test_it_writes_keeps_and_clears_secrets_without_ever_echoing_them(
    client, writer, canaries, alice, caplog
):
    caplog.set_level(logging.DEBUG)
    client.force_login(writer)
    url = reverse("admin:askpro_company_change", args=[alice.pk])
    page = client.get(url).content.decode()
    assert 'name="calcom_api_key"' in page and 'name="calcom_api_key_clear"' in page
    kept_retell = Company.objects.get(pk=alice.pk).retell_api_key

    # A new value is stored; empty inputs keep the others; the clear box empties one.
    new_calcom = canaries.new("posted.calcom_api_key")
    response = client.post(
        url, _company_form(alice, calcom_api_key=new_calcom, stripe_webhook_secret_clear="on")
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    stored = Company.objects.get(pk=alice.pk)
    assert stored.calcom_api_key == new_calcom
    assert stored.retell_api_key == kept_retell
    assert stored.stripe_webhook_secret == ""
    assert stored.secret_changed_at("calcom_api_key") is not None
    assert stored.secret_changed_at("stripe_webhook_secret") is not None

    # A form sent back with an error never echoes the new secret it carried.
    rejected = canaries.new("rejected.retell_api_key")
    response = client.post(url, _company_form(alice, slug="", retell_api_key=rejected))
    assert response.status_code == 200 and "This field is required" in response.content.decode()
    assert not canaries.found_in(response.content.decode())
    assert Company.objects.get(pk=alice.pk).retell_api_key == kept_retell

    # Both a new value and "clear" is a contradiction, refused by name.
    response = client.post(
        url, _company_form(alice, retell_api_key=canaries.new("both"), retell_api_key_clear="on")
    )
    assert "not both" in response.content.decode()
    assert not canaries.found_in(response.content.decode())

    # Adding a tenant with secrets, then every page and history entry about it.
    added = canaries.new("added.stripe_secret_key")
    response = client.post(
        reverse("admin:askpro_company_add"),
        _company_form(alice, name="Carol", slug="carol", stripe_secret_key=added),
    )
    assert response.status_code == 302
    carol = Company.objects.get(slug="carol")
    assert carol.stripe_secret_key == added
    for target in (alice, carol):
        for name in ("change", "history", "delete"):
            body = client.get(reverse(f"admin:askpro_company_{name}", args=[target.pk])).content.decode()
            assert not canaries.found_in(body), name
    assert not canaries.found_in(client.get(reverse("admin:index")).content.decode())  # recent actions

    entries = list(LogEntry.objects.values_list("object_repr", "change_message"))
    assert len(entries) >= 2
    # The history names what changed (the cleared secret by its own name), never a value.
    first_change = LogEntry.objects.filter(object_id=str(alice.pk)).earliest("action_time")
    assert first_change.get_change_message() == "Changed Cal.com API key and Stripe webhook secret."
    assert not canaries.found_in(repr(entries))
    assert not canaries.found_in(caplog.text)


def test_it_stamps_the_change_time_only_for_secrets_that_changed(alice):
    alice.calcom_api_key = "one"
    alice.save()
    first = Company.objects.get(pk=alice.pk)
    stamped = first.secret_changed_at("calcom_api_key")
    assert stamped is not None and first.secret_changed_at("retell_api_key") is None
    first.name = "Alice renamed"
    first.save()
    assert Company.objects.get(pk=alice.pk).secret_changed_at("calcom_api_key") == stamped
    first.retell_api_key = "two"
    first.save(update_fields=["retell_api_key"])
    again = Company.objects.get(pk=alice.pk)
    assert again.secret_changed_at("retell_api_key") is not None
    assert again.secret_changed_at("calcom_api_key") == stamped
    # Loading only some fields and saving them never stamps the ones not loaded.
    partial = Company.objects.only("name").get(pk=alice.pk)
    partial.name = "Alice"
    partial.save(update_fields=["name"])
    assert Company.objects.get(pk=alice.pk).secrets_changed_at == again.secrets_changed_at


def test_it_fingerprints_with_a_keyed_hash_not_a_piece_of_the_secret(settings):
    value = "sk_live_abcdefabcdefabcdef"
    first = secret_fingerprint(value)
    assert len(first) == 8 and first not in value
    assert secret_fingerprint(value) == first and secret_fingerprint(value + "x") != first
    settings.SECRET_KEY = "another-secret-key-" * 3
    assert secret_fingerprint(value) != first


def test_it_refuses_at_start_up_an_admin_that_would_show_secrets():
    from django.contrib.admin.sites import AdminSite

    from askpro import admin_secrets

    site = AdminSite(name="probe")
    site.register(Company, admin.ModelAdmin)
    errors = admin_secrets.check_secret_admins(site=site)
    assert [e.id for e in errors] == ["askpro.E001"]
    assert "askpro.Company" in errors[0].msg
    assert admin_secrets.check_secret_admins() == []


def test_it_masks_in_error_reports_the_secrets_a_form_carried(rf, superuser, alice):
    from django.views.debug import SafeExceptionReporterFilter

    request = rf.post(
        reverse("admin:askpro_company_change", args=[alice.pk]),
        _company_form(alice, slug="", calcom_api_key="cal_live_posted_secret"),
    )
    request.user = superuser
    request._dont_enforce_csrf_checks = True
    request.session = {}
    admin.site._registry[Company].changeform_view(request, str(alice.pk))
    shown = SafeExceptionReporterFilter().get_post_parameters(request)
    assert shown["calcom_api_key"] != "cal_live_posted_secret" and shown["slug"] == ""
