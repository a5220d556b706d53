# A rollup bucket's sum gets 38 digits before the point (NUMERIC(57, 19)): one event's value is under 1E+19, but
# a bucket adds up to 2^63 of them, and a sum past NUMERIC(38, 19) made the fold fail for the meter and its rebuild
# fail again, so its queries read raw events for good. Meters stuck that way are rebuilt by
# `metering.resume_backfills` once this has run. Only the precision grows (the scale stays 19), so PostgreSQL
# changes the column type without rewriting the rollups.

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("metering", "0007_event_partitions")]

    operations = [
        migrations.AlterField(
            model_name="rollup",
            name="sum",
            field=models.DecimalField(decimal_places=19, max_digits=57, null=True),
        ),
    ]
