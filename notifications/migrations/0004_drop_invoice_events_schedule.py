"""Invoice events now come through the outbox (`billing.invoice_changed`): the job that read the audit table is gone,
so its beat schedule goes too (install_schedules only adds and updates)."""

from django.db import migrations


def drop_schedule(apps, schema_editor):
    PeriodicTask = apps.get_model("django_celery_beat", "PeriodicTask")
    PeriodicTask.objects.filter(task="notifications.emit_invoice_events").delete()
    EvaluationCursor = apps.get_model("notifications", "EvaluationCursor")
    EvaluationCursor.objects.filter(name="invoice_events").delete()


class Migration(migrations.Migration):
    dependencies = [
        ("notifications", "0003_attempt_response_excerpts"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
    ]

    operations = [migrations.RunPython(drop_schedule, migrations.RunPython.noop)]
