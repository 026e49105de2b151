"""Demo data: two tenants with a month of realistic calls and appointments. Idempotent."""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import timedelta as td
from decimal import Decimal

from django.db import transaction
from django.utils import timezone

from .models import Appointment, Branch, Call, Company, Customer, PhoneNumber, Plan, Service, Staff

FIRST_NAMES = [
    "Anna",
    "Ben",
    "Clara",
    "David",
    "Emma",
    "Felix",
    "Greta",
    "Hannah",
    "Jonas",
    "Lea",
    "Lukas",
    "Marie",
    "Noah",
    "Paul",
    "Sophie",
    "Tim",
    "Julia",
    "Max",
    "Laura",
    "Elias",
]
LAST_NAMES = [
    "Müller",
    "Schmidt",
    "Schneider",
    "Fischer",
    "Weber",
    "Meyer",
    "Wagner",
    "Becker",
    "Schulz",
    "Hoffmann",
    "Koch",
    "Richter",
    "Klein",
    "Wolf",
    "Neumann",
]
SUMMARIES_BOOKED = [
    "Caller booked an appointment.",
    "New customer booked a first visit.",
    "Appointment booked after checking slots.",
]
SUMMARIES_OTHER = [
    "Caller asked about opening hours.",
    "Caller asked for prices.",
    "No suitable slot; caller will call back.",
    "Caller cancelled an appointment.",
    "Wrong number.",
    "Caller hung up early.",
]


@dataclass(frozen=True)
class TenantSpec:
    slug: str
    name: str
    branches: tuple[tuple[str, str, str], ...]  # (name, city, phone number)
    services: tuple[tuple[str, int, str], ...]  # (name, minutes, price)


TENANTS = (
    TenantSpec(
        slug="salon-sonnenschein",
        name="Salon Sonnenschein",
        branches=(("Mitte", "Berlin", "+493012345601"), ("Schwabing", "München", "+498912345602")),
        services=(
            ("Haircut", 30, "35.00"),
            ("Colouring", 90, "89.00"),
            ("Blow-dry", 30, "25.00"),
            ("Beard trim", 15, "15.00"),
        ),
    ),
    TenantSpec(
        slug="praxis-weber",
        name="Physiotherapie Praxis Weber",
        branches=(
            ("Altstadt", "Hamburg", "+494012345603"),
            ("Eppendorf", "Hamburg", "+494012345604"),
        ),
        services=(
            ("Physiotherapy", 30, "45.00"),
            ("Massage", 60, "70.00"),
            ("Manual therapy", 45, "60.00"),
            ("First consultation", 60, "80.00"),
        ),
    ),
)
CALLS_PER_TENANT = 150
APPOINTMENTS_PER_TENANT = 80
CUSTOMERS_PER_TENANT = 60
WEEKDAY_HOURS = {day: [["09:00", "18:00"]] for day in ("mon", "tue", "wed", "thu", "fri")} | {
    "sat": [["10:00", "14:00"]]
}


@transaction.atomic
def seed_demo() -> dict[str, int]:
    """Create (or complete) the demo tenants. Running it twice adds nothing."""
    plan, _ = Plan.objects.get_or_create(
        code="demo",
        defaults={"name": "Demo", "requests_per_minute": 120, "max_concurrent_calls": 20},
    )
    created = {"companies": 0, "calls": 0, "appointments": 0, "customers": 0}
    now = timezone.now()
    for spec_index, spec in enumerate(TENANTS):
        rng = random.Random(1000 + spec_index)  # deterministic: the same data every run
        company, was_created = Company.objects.get_or_create(
            slug=spec.slug,
            defaults={
                "name": spec.name,
                "plan": plan,
                "billing_status": Company.BillingStatus.ACTIVE,
                "retell_agent_id": f"agent_demo_{spec_index + 1}",
                "stripe_customer_id": f"cus_demo{spec_index + 1}",
            },
        )
        created["companies"] += int(was_created)
        branches = []
        for b_index, (name, city, number) in enumerate(spec.branches):
            branch, _ = Branch.objects.get_or_create(
                company=company,
                slug=name.lower(),
                defaults={
                    "name": name,
                    "city": city,
                    "phone_number": number,
                    "business_hours": WEEKDAY_HOURS,
                    "timezone": "Europe/Berlin",
                    "retell_agent_id": f"agent_demo_{spec_index + 1}_{b_index + 1}",
                    "calcom_event_type_id": 1000 + spec_index * 10 + b_index,
                },
            )
            branches.append(branch)
            PhoneNumber.objects.get_or_create(
                number=number,
                defaults={
                    "company": company,
                    "branch": branch,
                    "type": PhoneNumber.Type.RETELL,
                    "is_primary": True,
                    "retell_agent_id": branch.retell_agent_id,
                },
            )
            for s_index in range(3):
                Staff.objects.get_or_create(
                    company=company,
                    branch=branch,
                    email=f"staff{s_index + 1}.{branch.slug}@{spec.slug}.example",
                    defaults={"name": f"{FIRST_NAMES[(b_index * 3 + s_index) % 20]} {LAST_NAMES[s_index]}"},
                )
        services = []
        for s_name, minutes, price in spec.services:
            service, _ = Service.objects.get_or_create(
                company=company,
                name=s_name,
                defaults={"duration_minutes": minutes, "price": Decimal(price)},
            )
            services.append(service)
        staff = list(company.staff.all())
        customers = list(company.customers.order_by("id"))
        while len(customers) < CUSTOMERS_PER_TENANT:
            i = len(customers)
            first, last = FIRST_NAMES[i % 20], LAST_NAMES[(i * 7) % 15]
            customers.append(
                Customer.objects.create(
                    company=company,
                    name=f"{first} {last}",
                    phone=f"+4917{spec_index}{i:07d}",
                    email=f"{first.lower()}.{i}@example.com",
                )
            )
            created["customers"] += 1
        existing_calls = set(
            company.calls.filter(retell_call_id__startswith="demo-").values_list("retell_call_id", flat=True)
        )
        new_calls = []
        for i in range(CALLS_PER_TENANT):
            call_id = f"demo-{spec.slug}-call-{i:04d}"
            started = now - td(days=rng.uniform(0, 30))
            duration = rng.randint(20, 420)
            failed = rng.random() < 0.12
            booked = not failed and rng.random() < 0.45
            customer = rng.choice(customers)
            branch = rng.choice(branches)
            if call_id in existing_calls:
                continue
            new_calls.append(
                Call(
                    company=company,
                    branch=branch,
                    customer=customer,
                    retell_call_id=call_id,
                    agent_id=branch.retell_agent_id,
                    from_number=customer.phone,
                    to_number=branch.phone_number,
                    status=Call.Status.ERROR if failed else Call.Status.ENDED,
                    disconnection_reason="error_llm_websocket_open" if failed else "user_hangup",
                    call_successful=not failed,
                    started_at=started,
                    ended_at=started + td(seconds=duration),
                    duration_sec=duration,
                    cost=Decimal(duration) * Decimal("0.0012"),
                    summary=rng.choice(SUMMARIES_BOOKED if booked else SUMMARIES_OTHER),
                    sentiment=rng.choice(["positive", "neutral", "negative"]) if not failed else "",
                    analysis={"booking_confirmed": booked},
                )
            )
        Call.objects.bulk_create(new_calls)
        created["calls"] += len(new_calls)
        booked_calls = list(company.calls.filter(analysis__booking_confirmed=True).order_by("retell_call_id"))
        existing_appts = set(
            company.appointments.filter(calcom_booking_uid__startswith="demo-").values_list(
                "calcom_booking_uid", flat=True
            )
        )
        new_appts = []
        for i in range(APPOINTMENTS_PER_TENANT):
            uid = f"demo-{spec.slug}-appt-{i:04d}"
            service = rng.choice(services)
            starts = now + td(days=rng.uniform(-30, 21))
            starts = starts.replace(minute=(starts.minute // 15) * 15, second=0, microsecond=0)
            call = booked_calls[i] if i < len(booked_calls) else None
            roll = rng.random()
            if starts < now:
                status = (
                    Appointment.Status.COMPLETED
                    if roll < 0.8
                    else (Appointment.Status.NO_SHOW if roll < 0.9 else Appointment.Status.CANCELLED)
                )
            else:
                status = Appointment.Status.SCHEDULED if roll < 0.9 else Appointment.Status.FAILED
            if uid in existing_appts:
                continue
            new_appts.append(
                Appointment(
                    company=company,
                    branch=call.branch if call else rng.choice(branches),
                    customer=call.customer if call else rng.choice(customers),
                    staff=rng.choice(staff) if staff else None,
                    service=service,
                    call=call,
                    starts_at=starts,
                    ends_at=starts + td(minutes=service.duration_minutes),
                    status=status,
                    calcom_booking_uid=uid,
                    error_message="Cal.com rejected the slot: no availability"
                    if status == Appointment.Status.FAILED
                    else "",
                )
            )
        Appointment.objects.bulk_create(new_appts)
        created["appointments"] += len(new_appts)
    return created
