"""The admin's email pages: the template preview within the user's own rights, outbound emails
read-only, suppressions removed by deleting them."""

from __future__ import annotations

import pytest
from django.urls import reverse

from askpro.models import Appointment
from mcp_core.models import OperatorAccess
from mcp_servers.mail.models import OutboundEmail, Suppression
from tests.admin.people import make_staff

pytestmark = pytest.mark.django_db
PREVIEW = "admin:mcp_email_preview"


def operator(name, tenant, perms):
    """A staff user with `perms` who may act for `tenant` only (see mcp_core.admin_scoping)."""
    user = make_staff(name, perms=perms)
    OperatorAccess.objects.create(name=f"{name} on {tenant.slug}", user=user, scopes=["*:read"]).tenants.add(
        tenant
    )
    return user


def test_it_previews_a_template_with_sample_values_for_a_user_who_may_view_emails(client, alice):
    client.force_login(operator("viewer", alice, ["mcp_email.view_outboundemail"]))
    page = client.get(reverse(PREVIEW), {"company": alice.pk, "template": "reminder", "language": "en"})
    assert page.status_code == 200
    html = page.content.decode()
    assert 'id="preview-subject">Reminder: your appointment on' in html and "sample values" in html
    assert "Hello Jane Doe," in html and 'id="preview-ics"' not in html
    listing = client.get(reverse("admin:mcp_email_outboundemail_changelist"))
    assert reverse(PREVIEW) in listing.content.decode()


def test_it_refuses_the_preview_without_the_right_to_view_emails(client, alice):
    client.force_login(make_staff("nobody", perms=["askpro.view_appointment"]))
    assert client.get(reverse(PREVIEW), {"company": alice.pk, "template": "reminder"}).status_code == 403


def test_it_shows_a_real_appointment_only_to_a_user_who_may_view_appointments(client, alice):
    appointment = Appointment.objects.filter(company=alice).order_by("pk").first()
    query = {
        "company": alice.pk,
        "template": "rescheduled",
        "language": "de",
        "appointment_id": appointment.pk,
    }
    client.force_login(operator("emails-only", alice, ["mcp_email.view_outboundemail"]))
    assert client.get(reverse(PREVIEW), query).status_code == 403
    client.force_login(operator("both", alice, ["mcp_email.view_outboundemail", "askpro.view_appointment"]))
    html = client.get(reverse(PREVIEW), query).content.decode()
    assert "Guten Tag alice-salon Customer," in html and "METHOD:REQUEST" in html
    assert f"UID:appointment-{appointment.pk}@alice-salon.askpro" in html


def test_it_previews_only_for_the_tenants_the_user_may_act_for(client, alice, bob):
    client.force_login(operator("alice-viewer", alice, ["mcp_email.view_outboundemail"]))
    page = client.get(reverse(PREVIEW), {"company": bob.pk, "template": "reminder", "language": "en"})
    assert page.status_code == 200 and "company" in page.context["form"].errors
    assert 'id="preview-subject"' not in page.content.decode()
    assert f'<option value="{bob.pk}"' not in page.content.decode()
    # No grant at all: no tenant to preview for.
    client.force_login(make_staff("no-grant", perms=["mcp_email.view_outboundemail"]))
    page = client.get(reverse(PREVIEW), {"company": alice.pk, "template": "reminder", "language": "en"})
    assert "company" in page.context["form"].errors


def test_it_says_when_the_appointment_is_not_the_companys(client, alice, bob):
    foreign = Appointment.objects.filter(company=bob).first()
    client.force_login(make_staff("root", superuser=True))
    page = client.get(
        reverse(PREVIEW), {"company": alice.pk, "template": "reminder", "appointment_id": foreign.pk}
    )
    assert page.status_code == 200 and "this tenant has no appointment" in page.content.decode()


def test_it_keeps_emails_read_only_and_removes_a_suppression_on_delete(client, alice):
    email = OutboundEmail.objects.create(
        company=alice, to_email="c@example.com", subject="Hallo", status="sent"
    )
    entry = Suppression.objects.create(
        company=alice, address="c@example.com", reason="complaint", email=email
    )
    client.force_login(make_staff("root", superuser=True))
    change = client.get(reverse("admin:mcp_email_outboundemail_change", args=[email.pk])).content.decode()
    assert 'name="subject"' not in change and "Hallo" in change
    delete = reverse("admin:mcp_email_suppression_delete", args=[entry.pk])
    assert client.post(delete, {"post": "yes"}).status_code == 302
    assert not Suppression.objects.exists()
