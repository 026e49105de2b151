"""What an email says: the context of a template (from an appointment or an invoice, in the
tenant's time zone), the subject, plain-text and HTML parts rendered by Django templates, and
the iCalendar invitation of an appointment email. No I/O but reading the tenant's records."""

from __future__ import annotations

import datetime as dt
import zoneinfo
from dataclasses import dataclass
from typing import Any

import icalendar
from django.template.loader import render_to_string
from django.utils import timezone

from askpro.models import Appointment, Company, Customer, Invoice

from .models import APPOINTMENT_TEMPLATES

WEEKDAYS = {
    "de": ("Montag", "Dienstag", "Mittwoch", "Donnerstag", "Freitag", "Samstag", "Sonntag"),
    "en": ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"),
}
MONTHS = {
    "de": ("Januar", "Februar", "März", "April", "Mai", "Juni", "Juli", "August", "September",
           "Oktober", "November", "Dezember"),
    "en": ("January", "February", "March", "April", "May", "June", "July", "August", "September",
           "October", "November", "December"),
}  # fmt: skip
LABELS = {
    "de": {"when": "Wann", "service": "Leistung", "staff": "Bei", "location": "Wo"},
    "en": {"when": "When", "service": "Service", "staff": "With", "location": "Where"},
}
# What each appointment email asks the customer's calendar to do.
ICS_METHOD = {
    "confirmation": "REQUEST",
    "reminder": "REQUEST",
    "rescheduled": "REQUEST",
    "cancellation": "CANCEL",
}


@dataclass
class Rendered:
    """One email's subject and both parts."""

    subject: str
    text: str
    html: str


def zone_of(company: Company, branch: Any = None) -> zoneinfo.ZoneInfo:
    name = (getattr(branch, "timezone", "") or company.timezone or "UTC").strip()
    try:
        return zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        return zoneinfo.ZoneInfo("UTC")


def local_when(value: dt.datetime, zone: zoneinfo.ZoneInfo, language: str) -> str:
    """ "Freitag, 12. Dezember 2026, 10:00 Uhr" / "Friday, 12 December 2026, 10:00" (local)."""
    local = timezone.localtime(value, zone)
    weekday, month = WEEKDAYS[language][local.weekday()], MONTHS[language][local.month - 1]
    if language == "de":
        return f"{weekday}, {local.day}. {month} {local.year}, {local:%H:%M} Uhr"
    return f"{weekday}, {local.day} {month} {local.year}, {local:%H:%M}"


def choose_language(company: Company, requested: str | None, customer: Customer | None) -> str:
    """The request's language, else the customer's, else the company's (else German)."""
    for candidate in (requested, getattr(customer, "language", ""), company.language):
        if candidate in ("de", "en"):
            return candidate
    return "de"


def branding(company: Company, account: Any) -> dict[str, Any]:
    return {
        "company_name": company.name,
        "from_name": (account.from_name if account else "") or company.name,
        "brand_color": getattr(account, "brand_color", "") or "#1f6feb",
        "logo_url": getattr(account, "logo_url", "") or "",
        "footer": getattr(account, "footer", "") or "",
    }


def appointment_context(appointment: Appointment, language: str) -> dict[str, Any]:
    zone = zone_of(appointment.company, appointment.branch)
    branch = appointment.branch
    location = ", ".join(p for p in (branch.name, branch.address, branch.city) if p) if branch else ""
    return {
        "customer_name": appointment.customer.name if appointment.customer else "",
        "service_name": appointment.service.name if appointment.service else "",
        "staff_name": appointment.staff.name if appointment.staff else "",
        "branch_name": branch.name if branch else "",
        "location": location,
        "branch_phone": branch.phone_number if branch else "",
        "starts": local_when(appointment.starts_at, zone, language),
        "ends_time": f"{timezone.localtime(appointment.ends_at, zone):%H:%M}",
        "timezone": str(zone),
    }


def invoice_context(invoice: Invoice, language: str) -> dict[str, Any]:
    due = invoice.due_date
    if due is None:
        due_text = ""
    elif language == "de":
        due_text = f"{due.day}. {MONTHS['de'][due.month - 1]} {due.year}"
    else:
        due_text = f"{due.day} {MONTHS['en'][due.month - 1]} {due.year}"
    total = f"{invoice.total:.2f}"
    return {
        "customer_name": invoice.customer.name if invoice.customer else "",
        "invoice_number": invoice.number or f"{invoice.pk}",
        "total": (total.replace(".", ",") if language == "de" else total) + f" {invoice.currency}",
        "due_date": due_text,
        "invoice_url": str((invoice.metadata or {}).get("hosted_invoice_url") or ""),
    }


def sample_context(template: str, company: Company, language: str) -> dict[str, Any]:
    """Made-up values for a preview without a real appointment or invoice."""
    zone = zone_of(company)
    start = timezone.now().astimezone(zone).replace(hour=10, minute=0, second=0, microsecond=0)
    start += dt.timedelta(days=3)
    if template == "invoice_sent":
        return {
            "customer_name": "Erika Mustermann" if language == "de" else "Jane Doe",
            "invoice_number": "2026-0042",
            "total": "49,00 EUR" if language == "de" else "49.00 EUR",
            "due_date": "",
            "invoice_url": "",
        }
    return {
        "customer_name": "Erika Mustermann" if language == "de" else "Jane Doe",
        "service_name": "Haarschnitt" if language == "de" else "Haircut",
        "staff_name": "Anna",
        "branch_name": "Main",
        "location": "Main, Hauptstraße 1, Berlin",
        "branch_phone": "+4930123456",
        "starts": local_when(start, zone, language),
        "ends_time": f"{start + dt.timedelta(minutes=30):%H:%M}",
        "timezone": str(zone),
    }


def render(template: str, language: str, context: dict[str, Any]) -> Rendered:
    """Subject, text and HTML of a template in a language (Django templates under email/)."""
    full = {**context, "language": language, "template": template, "labels": LABELS[language]}
    base = f"email/{language}/{template}"
    subject = " ".join(str.__str__(render_to_string(f"{base}.subject.txt", full)).split())
    full["subject"] = subject
    return Rendered(
        subject=subject,
        text=str.__str__(render_to_string(f"{base}.txt", full)).strip() + "\n",
        html=str.__str__(render_to_string(f"{base}.html", full)),
    )


def free_form(subject: str, text: str, html: str | None, context: dict[str, Any], language: str) -> Rendered:
    """A free-form email: the caller's text, and its HTML (or the text as HTML) in the branded
    frame."""
    full = {**context, "language": language, "subject": subject, "body_text": text, "body_html": html}
    return Rendered(
        subject=subject,
        text=text.rstrip() + ("\n\n" + context["footer"] if context.get("footer") else "") + "\n",
        html=str.__str__(render_to_string("email/free_form.html", full)),
    )


def ics_uid(appointment: Appointment) -> str:
    """Stable per appointment, so every update names the same calendar event."""
    return f"appointment-{appointment.pk}@{appointment.company.slug}.askpro"


def ics(
    appointment: Appointment,
    *,
    method: str,
    sequence: int,
    organizer_email: str,
    organizer_name: str,
    attendee_email: str,
) -> bytes:
    """An RFC 5546 iTIP message: METHOD REQUEST (a new or updated invitation) or CANCEL, one
    VEVENT with the appointment's UID and this SEQUENCE."""
    cal = icalendar.Calendar()
    cal.add("prodid", "-//AskPro//Appointments//EN")
    cal.add("version", "2.0")
    cal.add("method", method)
    event = icalendar.Event()
    event.add("uid", ics_uid(appointment))
    event.add("sequence", sequence)
    event.add("dtstamp", timezone.now().astimezone(dt.UTC))
    event.add("dtstart", appointment.starts_at.astimezone(dt.UTC))
    event.add("dtend", appointment.ends_at.astimezone(dt.UTC))
    service = appointment.service.name if appointment.service else ""
    company = appointment.company.name
    event.add("summary", f"{service} – {company}" if service else company)
    branch = appointment.branch
    if branch:
        event.add("location", ", ".join(p for p in (branch.name, branch.address, branch.city) if p))
    event.add("status", "CANCELLED" if method == "CANCEL" else "CONFIRMED")
    organizer = icalendar.vCalAddress(f"mailto:{organizer_email}")
    organizer.params["cn"] = icalendar.vText(organizer_name or company)
    event.add("organizer", organizer)
    attendee = icalendar.vCalAddress(f"mailto:{attendee_email}")
    if appointment.customer:
        attendee.params["cn"] = icalendar.vText(appointment.customer.name)
    attendee.params["role"] = icalendar.vText("REQ-PARTICIPANT")
    event.add("attendee", attendee)
    cal.add_component(event)
    return cal.to_ical()


def is_appointment_template(template: str) -> bool:
    return template in APPOINTMENT_TEMPLATES
