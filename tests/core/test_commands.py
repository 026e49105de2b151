"""Management commands: create_api_key prints only the key on stdout, prune_audit enforces
retention, seed_demo builds realistic data once."""

from __future__ import annotations

from datetime import timedelta as td
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from askpro.models import Appointment, Call, Company, PhoneNumber
from mcp_core.api_keys import api_key_authenticate
from mcp_core.models import ApiKey, AuditEntry


def run(*args) -> tuple[str, str]:
    out, err = StringIO(), StringIO()
    call_command(*args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def test_it_prints_only_the_tenant_key_on_stdout(alice):
    out, err = run(
        "create_api_key", "--tenant", alice.slug, "--scopes", "database:read *:read", "--name", "ci"
    )
    raw = out.strip()
    assert out == raw + "\n" and raw.count("\n") == 0
    principal = api_key_authenticate(raw)
    assert principal.tenant_id == alice.pk
    assert principal.scopes == frozenset({"database:read", "*:read"})
    assert raw not in err and alice.slug in err
    assert ApiKey.objects.get(pk=principal.api_key_id).name == "ci"


def test_it_makes_platform_keys(db):
    out, _ = run("create_api_key", "--platform", "--scopes", "*", "--name", "ops")
    principal = api_key_authenticate(out.strip())
    assert principal.is_platform and principal.scopes == frozenset({"*"})


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--tenant", "no-such", "--scopes", "*", "--name", "x"], "--tenant"),
        (["--platform", "--scopes", "database:delete", "--name", "x"], "--scopes"),
        (["--platform", "--scopes", "nosuch:read", "--name", "x"], "--scopes"),
        (["--platform", "--scopes", "  ", "--name", "x"], "--scopes"),
        (["--platform", "--tenant", "alice-salon", "--scopes", "*", "--name", "x"], "not allowed with"),
        (["--scopes", "*", "--name", "x"], "--tenant --platform"),
        (["--platform", "--name", "x"], "--scopes"),
    ],
)
def test_it_refuses_bad_create_api_key_arguments(args, message, alice):
    with pytest.raises(CommandError, match=message):
        run("create_api_key", *args)
    assert not ApiKey.objects.exists()


def test_it_prunes_audit_entries_older_than_n_days(db):
    now = timezone.now()
    for days in (1, 29, 31, 200):
        AuditEntry.objects.create(
            created_at=now - td(days=days),
            request_id=f"r{days}",
            principal="system",
            service="database",
            operation="get_tenant_stats",
            outcome="success",
            duration_ms=1,
        )
    out, _ = run("prune_audit", "--days", "30")
    assert "Deleted 2" in out
    assert sorted(AuditEntry.objects.values_list("request_id", flat=True)) == ["r1", "r29"]
    with pytest.raises(CommandError, match="--days"):
        run("prune_audit", "--days", "0")


def test_it_seeds_demo_data_once(db):
    run("seed_demo")
    counts = (
        Company.objects.count(),
        Call.objects.count(),
        Appointment.objects.count(),
        PhoneNumber.objects.count(),
    )
    month_ago = timezone.now() - td(days=30)
    assert counts[0] == 2
    assert Call.objects.filter(started_at__gte=month_ago).count() >= 200
    assert Appointment.objects.filter(starts_at__gte=month_ago - td(days=1)).count() >= 100
    for company in Company.objects.all():
        assert company.branches.exists() and company.staff.exists() and company.services.exists()
        assert company.customers.count() >= 5 and company.phone_numbers.exists()
        assert company.calls.count() >= 50 and company.appointments.count() >= 20
    run("seed_demo")
    again = (
        Company.objects.count(),
        Call.objects.count(),
        Appointment.objects.count(),
        PhoneNumber.objects.count(),
    )
    assert again == counts
