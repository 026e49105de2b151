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
CALLER_ERROR_CODES = ["validation_error", "not_found", "unauthorized", "forbidden", "conflict", "rate_limited"]
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
            caller=Count("id", filter=Q(error_code__in=CALLER_ERROR_CODES)),
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
        tenant = group["tenant_id"] or 0
        # The old recorder rolled a call refused before its tenant was resolved up under
        # tenant 0, while the audit row names the key's tenant: try the tenant's row first.
        keys = [(group["m"], group["service"], group["operation"], tenant)]
        if tenant:
            keys.append((group["m"], group["service"], group["operation"], 0))
        nc, caller = group["nc"], group["caller"]
        for key in keys:
            row = rows.get(key)
            if row is None:
                continue
            moved = _take(nc, row.service_failures)
            row.service_failures -= moved
            row.not_configured += moved
            nc -= moved
            successes = row.calls - row.caller_errors - row.not_configured - row.service_failures
            counted = _take(caller, successes)
            row.caller_errors += counted
            caller -= counted
            if moved or counted:
                changed[row.pk] = row
    if changed:
        Rollup.objects.using(db).bulk_update(
            list(changed.values()), ["caller_errors", "not_configured", "service_failures"]
        )


def merge_back(apps, schema_editor):
    Rollup = apps.get_model("mcp_core", "MetricRollup")
    Rollup.objects.using(schema_editor.connection.alias).filter(not_configured__gt=0).update(
        service_failures=models.F("service_failures") + models.F("not_configured")
    )


class Migration(migrations.Migration):
    dependencies = [
        ("mcp_core", "0003_audit_leaner_indexes"),
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
