"""The App model now lives in `billing` (same table, `integrations_app`): state only, nothing in the database."""

import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("integrations", "0002_stripe_sync"),
        ("billing", "0003_app"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.AlterField(
                    model_name="customerappdata", name="app",
                    field=models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name="customer_data", to="billing.app"),
                ),
                migrations.AlterField(
                    model_name="stripeinvoicesync", name="app",
                    field=models.ForeignKey(on_delete=django.db.models.deletion.PROTECT, related_name="invoice_syncs", to="billing.app"),
                ),
                migrations.AlterField(
                    model_name="stripewebhookevent", name="app",
                    field=models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name="stripe_events", to="billing.app"),
                ),
                migrations.DeleteModel(name="App"),
            ],
        ),
    ]
