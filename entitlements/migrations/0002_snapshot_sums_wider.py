# A balance snapshot's usage, overage and grant usage are NUMERIC(57, 19), as a rollup's sum: a period's usage adds up
# events just under 1E+19 each, and a snapshot of 2.7E+19 tokens made every read of the entitlement's value a 400
# ("overage: 1.7E+19 is out of range"). Only the precision grows, so PostgreSQL changes the type without a rewrite.

from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('entitlements', '0001_initial'),
    ]

    operations = [
        migrations.AlterField(
            model_name='balancesnapshot',
            name='grant_usage',
            field=models.DecimalField(decimal_places=19, default=0, help_text='burnt from grants in [period_start, at)', max_digits=57),
        ),
        migrations.AlterField(
            model_name='balancesnapshot',
            name='overage',
            field=models.DecimalField(decimal_places=19, max_digits=57),
        ),
        migrations.AlterField(
            model_name='balancesnapshot',
            name='usage',
            field=models.DecimalField(decimal_places=19, default=0, help_text='usage in [period_start, at)', max_digits=57),
        ),
    ]
