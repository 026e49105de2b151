"""The ImprovementEngine reads tenants' figures from the analytics server: a weekday with many
missed calls and a staff member booked out for the coming weeks become recommendations."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

from django.utils import timezone

from askpro.models import Appointment, Call, Staff, WorkingHours
from dashboard.engine import AnalysisContext
from dashboard.engine.analyzers import analytics
from mcp_core.models import AuditEntry

BERLIN = ZoneInfo("Europe/Berlin")


def _noon(day: dt.date) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(12), tzinfo=BERLIN)


def test_it_finds_the_weekday_with_many_missed_calls(alice, bob):
    now = timezone.now()
    bad, good = now.date() - dt.timedelta(days=9), now.date() - dt.timedelta(days=8)
    for i in range(20):
        status = Call.Status.ERROR if i < 8 else Call.Status.ENDED
        Call.objects.create(company=alice, started_at=_noon(bad) + dt.timedelta(minutes=i), status=status)
    for i in range(40):
        status = Call.Status.ERROR if i == 0 else Call.Status.ENDED
        Call.objects.create(company=alice, started_at=_noon(good) + dt.timedelta(minutes=i), status=status)
    findings = analytics.MissedCallsByWeekday().analyze(AnalysisContext(now=now))
    assert len(findings) == 1
    finding = findings[0]
    day = bad.strftime("%A")
    assert finding.fingerprint == f"tenant:{alice.pk}:weekday:{bad.isoweekday()}"
    assert finding.title == f"Alice's Salon: 40% of {day} calls are missed (other days: 2%)"
    assert finding.evidence["calls"] == 20 and finding.evidence["missed"] == 8
    assert finding.evidence["other_days_calls"] == 41  # the good day and make_tenant's call of today
    assert finding.severity == "high"
    # read through the orchestrator, once per tenant, audited
    assert (
        AuditEntry.objects.filter(
            service="analytics", operation="get_call_funnel", transport="engine"
        ).count()
        == 2
    )


def test_it_finds_a_staff_member_booked_out_for_the_next_weeks(alice, bob):
    now = timezone.now()
    main = alice.branches.get(slug="main")
    full = Staff.objects.create(company=alice, branch=main, name="Fully Fiona")
    half = Staff.objects.create(company=alice, branch=main, name="Half Hanna")
    for staff in (full, half):
        for weekday in range(1, 8):
            WorkingHours.objects.create(
                company=alice, staff=staff, weekday=weekday, starts="09:00", ends="10:00"
            )
    for offset in range(14):
        day = now.date() + dt.timedelta(days=offset)
        starts = dt.datetime.combine(day, dt.time(9), tzinfo=BERLIN)
        Appointment.objects.create(
            company=alice, branch=main, staff=full, starts_at=starts, ends_at=starts + dt.timedelta(hours=1)
        )
        if offset % 2:
            Appointment.objects.create(
                company=alice,
                branch=main,
                staff=half,
                starts_at=starts,
                ends_at=starts + dt.timedelta(hours=1),
            )
    findings = analytics.StaffFullyBooked().analyze(AnalysisContext(now=now))
    assert [f.fingerprint for f in findings] == [f"tenant:{alice.pk}:staff:{full.pk}"]
    assert findings[0].evidence["booked_minutes"] == 840 and findings[0].evidence["working_minutes"] == 840
    assert findings[0].evidence["utilisation"] == 1.0 and findings[0].severity == "high"
    assert findings[0].title == "Alice's Salon / Fully Fiona: 100% booked over the next 14 days"
