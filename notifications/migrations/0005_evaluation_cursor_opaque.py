"""An evaluation cursor's position is the event store's opaque position (text), no longer an event `seq`."""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("notifications", "0004_drop_invoice_events_schedule")]

    operations = [
        migrations.AlterField(
            model_name="evaluationcursor",
            name="position",
            field=models.CharField(blank=True, default="", max_length=256),
        ),
        migrations.RunSQL(
            "UPDATE notifications_evaluationcursor SET position = '' WHERE position = '0'",
            "UPDATE notifications_evaluationcursor SET position = '0' WHERE position = ''",
        ),
    ]
