"""Per-minute rollups count failed calls by outcome class (contracts.outcome_class).

`errors` counted every failure but the caller's own (so not_configured and circuit_open too)
and becomes `service_failures`. What the old rows cannot say is taken from the audit log while
it still holds their calls: its not_configured answers move from service_failures to
not_configured, and its caller errors (validation, forbidden, ...: counted as calls only
until now) become caller_errors. Rows the audit log no longer explains keep their old figure.
"""

from datetime import UTC

from django.db import migrations, models
from django.db.models import Count, Q
from django.db.models.functions import Trunc

# Frozen copies of the classes at the time of this migration (contracts may grow later).
# The old recorder rolled a call up under tenant 0 when it was refused before its tenant was
# resolved (a bad key, a missing scope, bad params), while its audit row names the key's
# tenant; the other caller errors and not_configured come from inside the operation, under
# the tenant. Each kind is matched with the row it most likely went to first.
REFUSED_BEFORE_TENANT = ["unauthorized", "forbidden", "validation_error"]
REFUSED_AFTER_TENANT = ["not_found", "conflict", "rate_limited"]
CALLER_ERROR_CODES = REFUSED_BEFORE_TENANT + REFUSED_AFTER_TENANT
CHUNK = 500


def _take(wanted: int, available: int) -> int:
    return max(0, min(wanted, available))


def split_from_audit(apps, schema_editor):
    Rollup = apps.get_model("mcp_core", "MetricRollup")
    Audit = apps.get_model("mcp_core", "AuditEntry")
    db = schema_editor.connection.alias
    groups = (
        Audit.objects.using(db)
        .filter(error_code__in=[*CALLER_ERROR_CODES, "not_configured"])
        .annotate(m=Trunc("created_at", "minute", tzinfo=UTC))
        .values("m", "service", "operation", "tenant_id")
        .annotate(
            before=Count("id", filter=Q(error_code__in=REFUSED_BEFORE_TENANT)),
            after=Count("id", filter=Q(error_code__in=REFUSED_AFTER_TENANT)),
            nc=Count("id", filter=Q(error_code="not_configured")),
        )
        .order_by("m", "service", "operation", "tenant_id")
    )
    chunk = []
    for group in groups.iterator(chunk_size=CHUNK):
        chunk.append(group)
        if len(chunk) == CHUNK:
            _apply(Rollup, db, chunk)
            chunk = []
    if chunk:
        _apply(Rollup, db, chunk)


def _apply(Rollup, db, chunk):
    rows = {
        (r.minute, r.service, r.operation, r.tenant_id): r
        for r in Rollup.objects.using(db).filter(
            minute__gte=chunk[0]["m"],
            minute__lte=chunk[-1]["m"],
            service__in={g["service"] for g in chunk},
            operation__in={g["operation"] for g in chunk},
        )
    }
    changed = {}
    for group in chunk:
        prefix = (group["m"], group["service"], group["operation"])
        own, untenanted = rows.get((*prefix, group["tenant_id"] or 0)), rows.get((*prefix, 0))
        candidates = [own, untenanted] if own is not untenanted else [own]
        nc, after, before = group["nc"], group["after"], group["before"]
        for row in candidates:
            if row is not None:
                nc -= _move_not_configured(row, nc, changed)
                after -= _count_caller_errors(row, after, changed)
        for row in reversed(candidates):
            if row is not None:
                before -= _count_caller_errors(row, before, changed)
    if changed:
        Rollup.objects.using(db).bulk_update(
            list(changed.values()), ["caller_errors", "not_configured", "service_failures"]
        )


def _move_not_configured(row, wanted, changed) -> int:
    """Move up to `wanted` of the row's old errors to not_configured; returns how many."""
    moved = _take(wanted, row.service_failures)
    if moved:
        row.service_failures -= moved
        row.not_configured += moved
        changed[row.pk] = row
    return moved


def _count_caller_errors(row, wanted, changed) -> int:
    """Count up to `wanted` of the row's calls that looked successful as caller errors."""
    successes = row.calls - row.caller_errors - row.not_configured - row.service_failures
    counted = _take(wanted, successes)
    if counted:
        row.caller_errors += counted
        changed[row.pk] = row
    return counted


def merge_back(apps, schema_editor):
    Rollup = apps.get_model("mcp_core", "MetricRollup")
    Rollup.objects.using(schema_editor.connection.alias).filter(not_configured__gt=0).update(
        service_failures=models.F("service_failures") + models.F("not_configured")
    )


class Migration(migrations.Migration):
    dependencies = [
        ("mcp_core", "0004_health_runs"),
    ]

    operations = [
        migrations.RenameField(model_name="metricrollup", old_name="errors", new_name="service_failures"),
        migrations.AlterField(
            model_name="metricrollup",
            name="service_failures",
            field=models.PositiveIntegerField(
                default=0, help_text="Upstream error, timeout, internal error or circuit open."
            ),
        ),
        migrations.AddField(
            model_name="metricrollup",
            name="caller_errors",
            field=models.PositiveIntegerField(default=0, help_text="Refused or unservable as asked."),
        ),
        migrations.AddField(
            model_name="metricrollup",
            name="not_configured",
            field=models.PositiveIntegerField(default=0, help_text="Answered not_configured."),
        ),
        migrations.RunPython(split_from_audit, merge_back, elidable=True),
    ]
