# Rollups are derived data: the table is recreated with a composite primary key (the upsert target), no
# surrogate id and no foreign-key check; every live meter is marked for a rebuild from its events.

import django.db.models.deletion
from django.db import migrations, models

import openmeter_site.core.fields


class Migration(migrations.Migration):
    dependencies = [("metering", "0002_sql_functions")]

    operations = [
        migrations.DeleteModel(name="Rollup"),
        migrations.CreateModel(
            name="Rollup",
            fields=[
                ("pk", models.CompositePrimaryKey("meter", "resolution", "subject", "bucket", "groups", "uvalue",
                                                  blank=True, editable=False, primary_key=True, serialize=False)),
                ("meter", models.ForeignKey(db_constraint=False, db_index=False, on_delete=django.db.models.deletion.DO_NOTHING,
                                            related_name="+", to="metering.meter")),
                ("resolution", models.SmallIntegerField(choices=[(1, "Minute"), (2, "Hour"), (3, "Day")])),
                ("bucket", models.DateTimeField()),
                ("subject", models.CharField(max_length=512)),
                ("groups", models.JSONField(default=dict)),
                ("uvalue", models.TextField(blank=True, default="",
                                            help_text="Distinct value (UNIQUE_COUNT meters only)")),
                ("sum", openmeter_site.core.fields.DecimalColumn(decimal_places=19, max_digits=38, null=True)),
                ("count", models.BigIntegerField(default=0)),
                ("min", openmeter_site.core.fields.DecimalColumn(decimal_places=19, max_digits=38, null=True)),
                ("max", openmeter_site.core.fields.DecimalColumn(decimal_places=19, max_digits=38, null=True)),
                ("first_time", models.DateTimeField(help_text="Earliest event time folded into the bucket",
                                                    null=True)),
                ("latest_time", models.DateTimeField(help_text="Latest event time folded into the bucket", null=True)),
                ("latest_seq", models.BigIntegerField(help_text="Seq of the latest event (breaks time ties)",
                                                      null=True)),
                ("latest_value", openmeter_site.core.fields.DecimalColumn(decimal_places=19, max_digits=38,
                                                                          null=True)),
            ],
            options={"indexes": [models.Index(fields=["meter", "resolution", "bucket"], name="rollup_bucket")]},
        ),
        migrations.RunSQL(
            "UPDATE metering_meter SET backfill_cursor = 0 WHERE deleted_at IS NULL",
            migrations.RunSQL.noop,
        ),
    ]
