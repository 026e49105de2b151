"""Hourly rollups count failed calls by outcome class, like the minute rollups they compact.

`errors` becomes `service_failures`; each hour takes its caller errors and not_configured
answers from the minute rows it was compacted from (mcp_core 0005 split those), so an hour
and its minutes keep giving the same figures.
"""

from datetime import UTC

from django.db import migrations, models
from django.db.models import F, Q, Sum, Value
from django.db.models.functions import Greatest, Trunc


def split_from_minutes(apps, schema_editor):
    Rollup = apps.get_model("mcp_core", "MetricRollup")
    Hourly = apps.get_model("dashboard", "MetricHourly")
    db = schema_editor.connection.alias
    sums = (
        Rollup.objects.using(db)
        .filter(Q(caller_errors__gt=0) | Q(not_configured__gt=0))
        .annotate(h=Trunc("minute", "hour", tzinfo=UTC))
        .values("h", "service", "operation", "tenant_id")
        .annotate(caller=Sum("caller_errors"), nc=Sum("not_configured"))
        .order_by()
    )
    for row in sums.iterator():
        Hourly.objects.using(db).filter(
            hour=row["h"], service=row["service"], operation=row["operation"], tenant_id=row["tenant_id"]
        ).update(
            caller_errors=row["caller"],
            not_configured=row["nc"],
            service_failures=Greatest(F("service_failures") - row["nc"], Value(0)),
        )


def merge_back(apps, schema_editor):
    Hourly = apps.get_model("dashboard", "MetricHourly")
    Hourly.objects.using(schema_editor.connection.alias).filter(not_configured__gt=0).update(
        service_failures=F("service_failures") + F("not_configured")
    )


class Migration(migrations.Migration):
    dependencies = [
        ("dashboard", "0002_health_results_in_mcp_core"),
        ("mcp_core", "0005_rollup_outcome_classes"),
    ]

    operations = [
        migrations.RenameField(model_name="metrichourly", old_name="errors", new_name="service_failures"),
        migrations.AddField(
            model_name="metrichourly",
            name="caller_errors",
            field=models.PositiveIntegerField(default=0),
        ),
        migrations.AddField(
            model_name="metrichourly",
            name="not_configured",
            field=models.PositiveIntegerField(default=0),
        ),
        migrations.RunPython(split_from_minutes, merge_back, elidable=True),
    ]
