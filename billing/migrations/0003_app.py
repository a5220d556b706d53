"""The App model moves from `integrations` to `billing` (billing owns the registry of app types; the apps are
plug-ins). The table keeps its name, `integrations_app`: only Django's state changes, no row moves."""

import django.db.models.deletion
import django.utils.timezone
from django.db import migrations, models

import openmeter_site.core.ids


def _app_fk(related_name="+"):
    return models.ForeignKey(on_delete=django.db.models.deletion.PROTECT, related_name=related_name, to="billing.app")


class Migration(migrations.Migration):
    dependencies = [
        ("billing", "0002_invoiceline_usage_discounts"),
        ("integrations", "0002_stripe_sync"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.CreateModel(
                    name="App",
                    fields=[
                        ("id", models.CharField(default=openmeter_site.core.ids.new_id, editable=False, max_length=26, primary_key=True, serialize=False)),
                        ("created_at", models.DateTimeField(default=django.utils.timezone.now, editable=False)),
                        ("updated_at", models.DateTimeField(auto_now=True)),
                        ("deleted_at", models.DateTimeField(blank=True, db_index=True, null=True)),
                        ("type", models.CharField(max_length=32)),
                        ("name", models.CharField(max_length=256)),
                        ("description", models.TextField(blank=True, null=True)),
                        ("metadata", models.JSONField(blank=True, default=dict)),
                        ("status", models.CharField(choices=[("ready", "Ready"), ("unauthorized", "Unauthorized")], default="ready", max_length=16)),
                        ("stripe_account_id", models.CharField(blank=True, max_length=255, null=True)),
                        ("livemode", models.BooleanField(default=False)),
                        ("masked_api_key", models.CharField(blank=True, max_length=64, null=True)),
                        ("secret_api_key_encrypted", models.TextField(blank=True, editable=False, null=True)),
                        ("webhook_secret_encrypted", models.TextField(blank=True, editable=False, null=True)),
                        ("stripe_webhook_endpoint_id", models.CharField(blank=True, max_length=255, null=True)),
                        ("enable_draft_sync_hook", models.BooleanField(default=False)),
                        ("enable_issuing_sync_hook", models.BooleanField(default=False)),
                    ],
                    options={"db_table": "integrations_app", "ordering": ["created_at"]},
                ),
                *[
                    migrations.AlterField(model_name=model, name=field, field=_app_fk())
                    for model in ("billingprofile", "invoice")
                    for field in ("tax_app", "invoicing_app", "payment_app")
                ],
            ],
        ),
    ]
