"""People with different rights in the admin, and one row of every model the admin shows."""

from __future__ import annotations

import uuid
from datetime import timedelta as td
from decimal import Decimal

import pytest
from django.contrib import admin
from django.contrib.auth.models import Group, Permission
from django.utils import timezone

from askpro.models import Invoice, Staff
from mcp_core.api_keys import api_key_create
from mcp_core.models import AuditEntry, BreakerTransition, MetricRollup, OperatorAccess

from .people import make_staff


@pytest.fixture
def view_only_user(db):
    """May view every model, of every tenant (a read grant on every tenant), and nothing else."""
    user = make_staff("viewer", perms=Permission.objects.filter(codename__startswith="view_"))
    OperatorAccess.objects.create(name="read everywhere", user=user, scopes=["*:read"])
    return user


@pytest.fixture
def change_user(db):
    """Every permission there is (view, add, change, delete, the console), without being superuser,
    and read access to every tenant through the console."""
    user = make_staff("changer", perms=Permission.objects.all())
    OperatorAccess.objects.create(name="read everywhere", user=user, scopes=["*:read"])
    return user


@pytest.fixture
def superuser(db):
    return make_staff("root", superuser=True)


def make_tenant_rows(company) -> None:
    """A row of every tenant model the admin shows that make_tenant does not create, for
    `company` (the tenant-scoping test gives one to each of two tenants)."""
    from dashboard.models import Recommendation
    from mcp_servers.gcal.models import CalendarLink, GoogleAccount, PushChannel, ServiceBuffer, SyncConflict
    from mcp_servers.mail.models import CalendarSequence, EmailAccount, OutboundEmail, Suppression
    from mcp_servers.messaging.models import Message, MessagingAccount, OptOut
    from mcp_servers.webhooks.models import WebhookEvent
    from notifications.models import Notification, NotificationSettings, Reminder

    now = timezone.now()
    slug = company.slug
    Staff.objects.create(company=company, name="Stylist", email=f"s@{slug}.example")
    Invoice.objects.create(company=company, number=f"INV-{slug}", total=Decimal("10"))
    api_key_create(name=f"{slug} tenant key", scopes=["database:read"], tenant=company)
    grant = OperatorAccess.objects.create(
        name=f"support on {slug}", group=Group.objects.create(name=f"{slug} support"), scopes=["*:read"]
    )
    grant.tenants.add(company)
    AuditEntry.objects.create(
        request_id=uuid.uuid4().hex,
        principal="user:root",
        tenant=company,
        service="database",
        operation="search",
        params={"query": "x"},
        outcome="success",
        duration_ms=1.5,
    )
    MetricRollup.objects.create(
        minute=now.replace(second=0, microsecond=0),
        service="database",
        operation="search",
        tenant_id=company.pk,
        calls=1,
    )
    WebhookEvent.objects.create(
        provider="stripe",
        event_id=f"evt_{slug}",
        idempotency_key=f"evt_{slug}",
        type="invoice.paid",
        tenant=company,
        payload={"id": f"evt_{slug}"},
    )
    MessagingAccount.objects.create(
        company=company, account_sid="AC" + "1" * 32, auth_token="twilio-token", sender="+4930111111"
    )
    Message.objects.create(
        company=company, channel="sms", direction="outbound", customer_number="+4915112345678", body="Hallo"
    )
    OptOut.objects.create(company=company, number="+4915112345678", keyword="STOP")
    EmailAccount.objects.create(
        company=company,
        smtp_host=f"smtp.{slug}.example",
        smtp_password="smtp-password",
        from_email=f"a@{slug}.example",
    )
    sent = OutboundEmail.objects.create(
        company=company, to_email=f"c@{slug}.example", subject="Hallo", status="sent"
    )
    Suppression.objects.create(
        company=company, address=f"gone@{slug}.example", reason="hard_bounce", email=sent
    )
    appointment = company.appointments.order_by("pk").first()
    CalendarSequence.objects.create(
        company=company, appointment=appointment, uid=f"appointment-1@{slug}.askpro"
    )
    GoogleAccount.objects.create(
        company=company, refresh_token="1//google-refresh", service_account_key='{"private_key": "k"}',
        push_secret="push-secret",
    )  # fmt: skip
    calendar = CalendarLink.objects.create(company=company, calendar_id=f"anna@{slug}.example")
    ServiceBuffer.objects.create(company=company, service=company.services.first(), before_minutes=5)
    PushChannel.objects.create(company=company, calendar=calendar, channel_id=uuid.uuid4().hex)
    SyncConflict.objects.create(
        company=company,
        calendar_id=calendar.calendar_id,
        event_id="e1",
        kind="edited_in_google",
        resolution="-",
    )
    finding = Recommendation.objects.create(
        analyzer="test",
        fingerprint=f"tenant:{company.pk}",
        severity="low",
        title=f"{company.name}: a finding about it",
        suggested_action="-",
    )
    finding.tenants.add(company)
    NotificationSettings.objects.get_or_create(company=company)
    planned = appointment.starts_at
    reminder = Reminder.objects.create(
        company=company, appointment=appointment, offset_minutes=120, starts_at=planned, due_at=planned
    )
    Notification.objects.create(
        company=company,
        appointment=appointment,
        reminder=reminder,
        kind="reminder",
        channel="sms",
        recipient="+4915112345678",
        status="sent",
        idempotency_key=f"reminder:{appointment.pk}:120:1:sms",
    )


@pytest.fixture
def every_model_row(alice, bob):
    """At least one row of every model registered in the admin (alice and bob bring the tenant
    records); the test that uses it fails if a newly registered model has none."""
    from django_celery_beat.models import (
        ClockedSchedule,
        CrontabSchedule,
        IntervalSchedule,
        PeriodicTask,
        SolarSchedule,
    )

    from dashboard.models import HealthCheckResult, ImprovementRun, Recommendation
    from mcp_servers.federation.models import RemoteServer, RemoteTool
    from mcp_servers.queue.models import TaskFailure
    from mcp_servers.webhooks.models import RejectedDelivery

    now = timezone.now()
    make_staff("someone-else")
    make_tenant_rows(alice)
    MetricRollup.objects.create(
        minute=now.replace(second=0, microsecond=0), service="database", operation="search", calls=1
    )
    BreakerTransition.objects.create(
        service="calcom", from_state="closed", to_state="open", reason="5 failures"
    )
    RejectedDelivery.objects.create(
        provider="stripe",
        reason="bad_signature",
        hour=now.replace(minute=0, second=0, microsecond=0),
        last_seen_at=now,
    )
    TaskFailure.objects.create(task_id="t-1", task_name="webhooks.process", exception_type="ValueError")
    remote = RemoteServer.objects.create(
        slug="weather", title="Weather", url="https://weather.mcp.example.com/mcp", bearer_token="fed-token"
    )
    RemoteTool.objects.create(
        server=remote,
        name="forecast",
        operation="forecast",
        digest="0" * 64,
        definition={"name": "forecast", "description": "A forecast.", "inputSchema": {"type": "object"}},
    )
    Recommendation.objects.create(
        analyzer="slow_operations",
        fingerprint="database.search",
        severity="low",
        title="Slow",
        suggested_action="-",
    )
    ImprovementRun.objects.create(trigger="test", finished_at=now, duration_ms=5)
    HealthCheckResult.objects.create(service="database", status="healthy", latency_ms=1.0)
    ClockedSchedule.objects.create(clocked_time=now + td(days=1))
    SolarSchedule.objects.create(event="sunrise", latitude=52.5, longitude=13.4)
    CrontabSchedule.objects.create(minute="7")
    interval = IntervalSchedule.objects.create(every=5, period="minutes")
    PeriodicTask.objects.create(name="probe", task="dashboard.health_checks_run", interval=interval)
    # An authorised MCP client (django-oauth-toolkit): tokens are stored as checksums only.
    from oauth2_provider.models import AccessToken, Application, Grant, RefreshToken

    client = Application.objects.create(
        name="Claude",
        client_type=Application.CLIENT_PUBLIC,
        authorization_grant_type=Application.GRANT_AUTHORIZATION_CODE,
        redirect_uris="https://claude.example/callback",
    )
    root = make_staff("oauth-user")
    Grant.objects.create(
        application=client,
        user=root,
        code="grant-code-" + uuid.uuid4().hex,
        expires=now + td(minutes=1),
        redirect_uri="https://claude.example/callback",
        scope=f"database:read tenant:{alice.pk}",
        code_challenge="c" * 43,
        code_challenge_method="S256",
    )
    access = AccessToken.objects.create(
        application=client,
        user=root,
        token="access-" + uuid.uuid4().hex,
        expires=now + td(hours=1),
        scope=f"database:read tenant:{alice.pk}",
        resource=["http://testserver/mcp"],
    )
    RefreshToken.objects.create(
        application=client, user=root, token="refresh-" + uuid.uuid4().hex, access_token=access
    )
    missing = [m._meta.label for m in admin.site._registry if not m._default_manager.exists()]
    assert not missing, f"give these admin models a row in every_model_row: {missing}"
    return admin.site._registry
