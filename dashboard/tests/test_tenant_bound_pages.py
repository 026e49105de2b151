"""An operator bound to some tenants sees only their tenants' figures on every dashboard page:
calls, failures and their messages, refusals, webhook backlog, message delivery and
recommendations; platform runs and other tenants' recommendations are not theirs to act on. A
superuser still sees every tenant."""

from __future__ import annotations

import html
import json

import pytest
from django.contrib.auth.models import Permission
from django.urls import reverse
from django.utils import timezone

from dashboard.models import ImprovementRun, Recommendation
from mcp_core.models import OperatorAccess
from mcp_servers.webhooks.models import WebhookEvent
from notifications.models import Notification
from tests.admin.people import make_staff

from .factories import audit, record_calls

pytestmark = pytest.mark.django_db

BOB_FAILURE = "bob-only upstream message 7f3e"


@pytest.fixture
def alice_operator(alice):
    """Every dashboard permission, a grant limited to alice."""
    user = make_staff(
        "alice-dash",
        perms=Permission.objects.filter(content_type__app_label="dashboard"),
    )
    grant = OperatorAccess.objects.create(name="alice ops", user=user, scopes=["*:read"])
    grant.tenants.add(alice)
    return user


@pytest.fixture
def superuser(db):
    return make_staff("dash-root", superuser=True)


def _notify(company, status: str, n: int) -> None:
    appointment = company.appointments.order_by("pk").first()
    for i in range(n):
        Notification.objects.create(
            company=company,
            appointment=appointment,
            kind="confirmation",
            channel="sms",
            recipient="+4915112345678",
            status=status,
            idempotency_key=f"{company.slug}:{status}:{i}",
        )


def _recommendation(title: str, *tenants) -> Recommendation:
    rec = Recommendation.objects.create(
        analyzer="test", fingerprint=title, severity="high", title=title, suggested_action="-"
    )
    rec.tenants.set(tenants)
    return rec


@pytest.fixture
def two_tenants(alice, bob):
    """Different figures for alice and bob, so that every number tells whose it is."""
    now = timezone.now()
    record_calls(
        service="database", operation="search", minute=now, durations_ms=[5.0] * 3, tenant_id=alice.pk
    )
    record_calls(
        service="database",
        operation="search",
        minute=now,
        durations_ms=[5.0] * 7,
        service_failures=2,
        tenant_id=bob.pk,
    )
    audit(
        service="database",
        operation="search",
        error_code="upstream_error",
        message=BOB_FAILURE,
        tenant_id=bob.pk,
    )
    audit(service="database", operation="search", error_code="rate_limited", tenant_id=bob.pk)
    audit(service="database", operation="search", error_code="rate_limited", tenant_id=alice.pk)
    _notify(alice, "delivered", 1)
    _notify(bob, "undelivered", 4)
    for company, n in ((alice, 1), (bob, 2)):
        for i in range(n):
            WebhookEvent.objects.create(
                provider="stripe",
                event_id=f"evt_{company.slug}_{i}",
                idempotency_key=f"evt_{company.slug}_{i}",
                type="invoice.paid",
                tenant=company,
                payload={},
            )
    ImprovementRun.objects.create(trigger="test", finished_at=now, duration_ms=5, findings=4)
    return {
        "alice": _recommendation("Alice's Salon: 40% of Monday calls are missed", alice),
        "bob": _recommendation("Bob's Practice is at its database rate limit", bob),
        "both": _recommendation("calcom has no credentials for alice-salon, bob-practice", alice, bob),
        "platform": _recommendation("Slow query on askpro_call: bob-practice keys"),
    }


def _database_card(context) -> dict:
    return next(card for card in context["cards"] if card["name"] == "database")


def test_it_shows_a_tenant_bound_operator_only_their_tenants_on_the_mcp_dashboard(
    client, alice_operator, superuser, two_tenants
):
    client.force_login(alice_operator)
    for name in ("admin:dashboard", "admin:dashboard_live"):
        response = client.get(reverse(name))
        assert response.status_code == 200, name
        page = response.content.decode()
        card = _database_card(response.context)
        assert card["hour"]["calls"] == 3 and card["hour"]["service_failures"] == 0, name
        assert card["last_failure"] is None and BOB_FAILURE not in page, name
        sms = next(row for row in response.context["delivery"] if row["channel"] == "sms")
        assert (sms["accepted"], sms["delivered"], sms["undelivered"]) == (1, 1, 0), name
        assert response.context["open_recommendations"] == 1, name

    client.force_login(superuser)
    response = client.get(reverse("admin:dashboard"))
    card = _database_card(response.context)
    assert card["hour"]["calls"] == 10 and card["last_failure"]["error_message"] == BOB_FAILURE
    assert BOB_FAILURE in response.content.decode()
    sms = next(row for row in response.context["delivery"] if row["channel"] == "sms")
    assert sms["accepted"] == 5 and sms["undelivered"] == 4
    assert response.context["open_recommendations"] == 4


def test_it_shows_a_tenant_bound_operator_only_their_tenants_on_the_monitoring_page(
    client, alice, bob, alice_operator, superuser, two_tenants
):
    client.force_login(alice_operator)
    data = client.get(reverse("admin:monitoring_data") + "?window=1h").json()
    assert data["totals"]["calls"] == 3 and data["totals"]["service_failures"] == 0
    assert [s["calls"] for s in data["services"] if s["service"] == "database"] == [3]
    assert [(r["tenant"], r["rate_limited"]) for r in data["refusals"]] == [("Alice's Salon", 1)]
    assert data["webhooks"]["waiting"] == 1
    assert "Bob" not in json.dumps(data) and bob.slug not in json.dumps(data)
    for window in ("1h", "24h"):
        page = html.unescape(client.get(reverse("admin:monitoring") + f"?window={window}").content.decode())
        assert "Alice's Salon" in page and "Bob's Practice" not in page, window

    client.force_login(superuser)
    data = client.get(reverse("admin:monitoring_data") + "?window=1h").json()
    assert data["totals"]["calls"] == 10 and data["totals"]["service_failures"] == 2
    assert {r["tenant"] for r in data["refusals"]} == {"Alice's Salon", "Bob's Practice"}
    assert data["webhooks"]["waiting"] == 3


def test_it_shows_a_tenant_bound_operator_only_recommendations_about_their_tenants(
    client, alice_operator, superuser, two_tenants
):
    recs = two_tenants
    client.force_login(alice_operator)
    response = client.get(reverse("admin:improvements") + "?status=all")
    page = html.unescape(response.content.decode())
    assert [r.pk for r in response.context["recommendations"]] == [recs["alice"].pk]
    assert recs["alice"].title in page
    for other in ("bob", "both", "platform"):
        assert f'data-rec="{recs[other].pk}"' not in page, other
    assert "Bob" not in page and "bob-practice" not in page
    assert response.context["counts"]["open"] == 1
    assert "Run history" not in page and "Run analysis now" not in page
    # The admin's list of recommendations follows the same rule.
    listed = client.get(reverse("admin:dashboard_recommendation_changelist"))
    assert set(listed.context["cl"].queryset.values_list("pk", flat=True)) == {recs["alice"].pk}

    client.force_login(superuser)
    response = client.get(reverse("admin:improvements") + "?status=all")
    assert {r.pk for r in response.context["recommendations"]} == {r.pk for r in recs.values()}
    page = html.unescape(response.content.decode())
    assert "Bob's Practice" in page and "Run history" in page


def test_it_refuses_a_tenant_bound_operator_platform_runs_and_other_tenants_recommendations(
    client, alice_operator, superuser, two_tenants
):
    recs = two_tenants
    client.force_login(alice_operator)
    runs = ImprovementRun.objects.count()
    assert client.post(reverse("admin:improvements")).status_code == 403
    assert ImprovementRun.objects.count() == runs
    for other in ("bob", "both", "platform"):
        url = reverse("admin:improvement_action", args=[recs[other].pk, "dismiss"])
        assert client.post(url).status_code == 404, other
        recs[other].refresh_from_db()
        assert recs[other].status == "open", other
    # Their own tenant's recommendation they may act on.
    response = client.post(reverse("admin:improvement_action", args=[recs["alice"].pk, "accept"]))
    assert response.status_code == 302
    recs["alice"].refresh_from_db()
    assert recs["alice"].status == "accepted"

    client.force_login(superuser)
    response = client.post(reverse("admin:improvement_action", args=[recs["bob"].pk, "dismiss"]))
    assert response.status_code == 302
    recs["bob"].refresh_from_db()
    assert recs["bob"].status == "dismissed"


def test_it_shows_a_staff_user_without_a_grant_no_tenant_figures(client, two_tenants):
    user = make_staff("no-grant-dash")
    client.force_login(user)
    data = client.get(reverse("admin:monitoring_data") + "?window=1h").json()
    assert data["totals"]["calls"] == 0 and data["refusals"] == [] and data["webhooks"]["waiting"] == 0
    response = client.get(reverse("admin:improvements") + "?status=all")
    assert response.context["recommendations"] == []


def test_it_stores_the_tenants_a_finding_names(alice, bob):
    from dashboard.engine import ImprovementEngine
    from dashboard.engine.base import Analyzer, Finding

    class Two(Analyzer):
        name = "two"
        defaults = {}

        def analyze(self, ctx):
            return [
                Finding("alice", "low", "About alice", {}, "-", tenant_ids=(alice.pk,)),
                Finding("both", "low", "About both", {}, "-", tenant_ids=(alice.pk, bob.pk, 0)),
                Finding("platform", "low", "Platform", {}, "-"),
            ]

    ImprovementEngine([Two()]).run(trigger="test")
    tenants = {r.fingerprint: {c.pk for c in r.tenants.all()} for r in Recommendation.objects.all()}
    assert tenants == {"alice": {alice.pk}, "both": {alice.pk, bob.pk}, "platform": set()}
    from dashboard.selectors import visible_recommendations

    assert [r.fingerprint for r in visible_recommendations(frozenset({alice.pk}))] == ["alice"]
    assert {r.fingerprint for r in visible_recommendations(frozenset({alice.pk, bob.pk}))} == {
        "alice",
        "both",
    }
    assert visible_recommendations(None).count() == 3
