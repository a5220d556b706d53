from django.db import models

from billing.models import App
from customers.models import Customer
from openmeter_site.core.models import BaseModel


class AppType(models.TextChoices):
    """The app types this app provides (each registers a plug-in with billing in `IntegrationsConfig.ready`)."""

    STRIPE = "stripe"
    SANDBOX = "sandbox"
    CUSTOM_INVOICING = "custom_invoicing"


class CustomerAppData(BaseModel):
    """A customer's data in one app (e.g. its Stripe customer id)."""

    customer = models.ForeignKey(Customer, on_delete=models.CASCADE, related_name="app_data")
    app = models.ForeignKey(App, on_delete=models.CASCADE, related_name="customer_data")
    stripe_customer_id = models.CharField(max_length=255, null=True, blank=True)
    stripe_default_payment_method_id = models.CharField(max_length=255, null=True, blank=True)
    metadata = models.JSONField(default=dict, blank=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["customer", "app"], name="customer_app_data_unique")]
        verbose_name, verbose_name_plural = "customer's app data", "customers' app data"

    def __str__(self) -> str:
        return f"{self.customer.name} in {self.app.name}"


class SyncState(models.TextChoices):
    STARTED = "started"
    DONE = "done"


class StripeInvoiceSync(BaseModel):
    """Crash-safe progress of one invoice in Stripe (Zulip's STARTED/DONE marker).

    Each external step commits STARTED before calling Stripe and DONE after; a rerun that finds STARTED repeats
    the call with the same idempotency key, which Stripe answers with the original result.
    """

    invoice_id = models.CharField(max_length=26, unique=True)
    app = models.ForeignKey(App, on_delete=models.PROTECT, related_name="invoice_syncs")
    stripe_customer_id = models.CharField(max_length=255, null=True, blank=True)
    stripe_invoice_id = models.CharField(max_length=255, null=True, blank=True)
    stripe_invoice_number = models.CharField(max_length=255, null=True, blank=True)
    line_items = models.JSONField(default=dict, blank=True, help_text="our line id → Stripe invoice item id")
    draft_state = models.CharField(max_length=16, choices=SyncState.choices, null=True, blank=True)
    finalize_state = models.CharField(max_length=16, choices=SyncState.choices, null=True, blank=True)
    deleted_in_stripe = models.BooleanField(default=False)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"invoice {self.invoice_id} → {self.stripe_invoice_id or '(not created)'}"


class StripeWebhookEvent(BaseModel):
    """Each Stripe event is handled once (Stripe retries deliveries; the event id de-duplicates them)."""

    app = models.ForeignKey(App, on_delete=models.CASCADE, related_name="stripe_events")
    event_id = models.CharField(max_length=255)
    type = models.CharField(max_length=128)
    stripe_object_id = models.CharField(max_length=255, null=True, blank=True)
    outcome = models.CharField(max_length=512, blank=True, default="")

    class Meta:
        ordering = ["-created_at"]
        constraints = [models.UniqueConstraint(fields=["app", "event_id"], name="stripe_event_once_per_app")]

    def __str__(self) -> str:
        return f"{self.type} {self.event_id}"
