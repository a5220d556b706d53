"""Billing data: profiles, customer overrides, invoices with their lines, the audit trail and number sequences.

Invoice status is stored as OpenMeter's extended status (`draft.waiting_auto_approval`); the API's `status`
is its prefix. The transitions live in `billing.services.state`, never in `save()`.
"""

from django.db import models
from django.db.models import Q

from customers.models import Customer
from openmeter_site.core.crypto import decrypt, encrypt
from openmeter_site.core.fields import DecimalColumn, QuantityColumn
from openmeter_site.core.models import BaseModel, SoftDeleteModel

ZERO = 0


class AppStatus(models.TextChoices):
    READY = "ready"
    UNAUTHORIZED = "unauthorized"


class App(SoftDeleteModel):
    """An installed app: the tax, invoicing and payment backends a billing profile points at.

    Billing knows an app by its type, which names a plug-in registered in `billing.plugins` (the apps themselves
    live in the `integrations` app). The columns under "stripe" and "custom invoicing" belong to those plug-ins,
    kept on this one row per app; billing reads none of them.
    """

    type = models.CharField(max_length=32)
    name = models.CharField(max_length=256)
    description = models.TextField(null=True, blank=True)
    metadata = models.JSONField(default=dict, blank=True)
    status = models.CharField(max_length=16, choices=AppStatus.choices, default=AppStatus.READY)
    # stripe
    stripe_account_id = models.CharField(max_length=255, null=True, blank=True)
    livemode = models.BooleanField(default=False)
    masked_api_key = models.CharField(max_length=64, null=True, blank=True)
    secret_api_key_encrypted = models.TextField(null=True, blank=True, editable=False)
    webhook_secret_encrypted = models.TextField(null=True, blank=True, editable=False)
    stripe_webhook_endpoint_id = models.CharField(max_length=255, null=True, blank=True)
    # custom invoicing
    enable_draft_sync_hook = models.BooleanField(default=False)
    enable_issuing_sync_hook = models.BooleanField(default=False)

    class Meta:
        db_table = "integrations_app"  # the table it had while the model lived in `integrations`
        ordering = ["created_at"]

    def __str__(self) -> str:
        return f"{self.name} ({self.type.replace('_', ' ')})"

    @property
    def secret_api_key(self) -> str | None:
        return decrypt(self.secret_api_key_encrypted) if self.secret_api_key_encrypted else None

    @secret_api_key.setter
    def secret_api_key(self, value: str | None) -> None:
        self.secret_api_key_encrypted = encrypt(value) if value else None

    @property
    def webhook_secret(self) -> str | None:
        return decrypt(self.webhook_secret_encrypted) if self.webhook_secret_encrypted else None

    @webhook_secret.setter
    def webhook_secret(self, value: str | None) -> None:
        self.webhook_secret_encrypted = encrypt(value) if value else None


class BillingProfile(SoftDeleteModel):
    """Who invoices (supplier), how (workflow) and through which apps (tax, invoicing, payment)."""

    name = models.CharField(max_length=256)
    description = models.TextField(null=True, blank=True)
    metadata = models.JSONField(default=dict, blank=True)
    is_default = models.BooleanField(default=False)
    supplier = models.JSONField(default=dict, help_text="BillingParty: key, name, taxId, addresses")
    workflow = models.JSONField(default=dict, help_text="BillingWorkflow with every default filled in")
    tax_app = models.ForeignKey(App, on_delete=models.PROTECT, related_name="+")
    invoicing_app = models.ForeignKey(App, on_delete=models.PROTECT, related_name="+")
    payment_app = models.ForeignKey(App, on_delete=models.PROTECT, related_name="+")

    class Meta:
        ordering = ["created_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["is_default"], condition=Q(is_default=True, deleted_at__isnull=True), name="one_default_profile"
            )
        ]

    def __str__(self) -> str:
        return f"{self.name}{' (default)' if self.is_default else ''}"


class CustomerOverride(BaseModel):
    """Pins a customer to a billing profile (no pin: the default profile)."""

    customer = models.OneToOneField(Customer, on_delete=models.CASCADE, related_name="billing_override")
    billing_profile = models.ForeignKey(
        BillingProfile, null=True, blank=True, on_delete=models.PROTECT, related_name="customer_overrides"
    )

    class Meta:
        ordering = ["created_at"]

    def __str__(self) -> str:
        return f"{self.customer_id} → {self.billing_profile_id or 'default'}"


class InvoiceStatus(models.TextChoices):
    GATHERING = "gathering"
    DRAFT_CREATED = "draft.created"
    DRAFT_WAITING_FOR_COLLECTION = "draft.waiting_for_collection"
    DRAFT_COLLECTING = "draft.collecting"
    DRAFT_UPDATING = "draft.updating"
    DRAFT_VALIDATING = "draft.validating"
    DRAFT_INVALID = "draft.invalid"
    DRAFT_SYNCING = "draft.syncing"
    DRAFT_SYNC_FAILED = "draft.sync_failed"
    DRAFT_WAITING_AUTO_APPROVAL = "draft.waiting_auto_approval"
    DRAFT_MANUAL_APPROVAL_NEEDED = "draft.manual_approval_needed"
    DRAFT_READY_TO_ISSUE = "draft.ready_to_issue"
    ISSUING_LINE_FINALIZATION = "issuing.line_finalization"
    ISSUING_LINE_FINALIZATION_FAILED = "issuing.line_finalization_failed"
    ISSUING_SYNCING = "issuing.syncing"
    ISSUING_FAILED = "issuing.failed"
    ISSUING_CHARGE_BOOKING = "issuing.charge_booking"
    ISSUING_CHARGE_BOOKING_FAILED = "issuing.charge_booking_failed"
    ISSUED = "issued"
    PAYMENT_PENDING = "payment_processing.pending"
    PAYMENT_BOOKING_AUTHORIZED = "payment_processing.booking_authorized"
    PAYMENT_BOOKING_AUTHORIZED_FAILED = "payment_processing.booking_authorized_failed"
    PAYMENT_BOOKING_AUTHORIZED_AND_SETTLED = "payment_processing.booking_authorized_and_settled"
    PAYMENT_BOOKING_AUTHORIZED_AND_SETTLED_FAILED = "payment_processing.booking_authorized_and_settled_failed"
    PAYMENT_AUTHORIZED = "payment_processing.authorized"
    PAYMENT_BOOKING_SETTLED = "payment_processing.booking_settled"
    PAYMENT_BOOKING_SETTLED_FAILED = "payment_processing.booking_settled_failed"
    PAYMENT_FAILED = "payment_processing.failed"
    PAYMENT_ACTION_REQUIRED = "payment_processing.action_required"
    OVERDUE = "overdue"
    PAID = "paid"
    UNCOLLECTIBLE = "uncollectible"
    VOIDED = "voided"
    DELETE_IN_PROGRESS = "delete.in_progress"
    DELETE_SYNCING = "delete.syncing"
    DELETE_FAILED = "delete.failed"
    DELETED = "deleted"


def status_words(status: str) -> str:
    """An (extended) invoice status as words: `draft.manual_approval_needed` → "draft: manual approval needed"."""
    return status.replace("_", " ").replace(".", ": ")


class InvoiceType(models.TextChoices):
    STANDARD = "standard"
    CREDIT_NOTE = "credit_note"


class Invoice(BaseModel):
    """A gathering invoice (pending lines, one per customer and currency) or a standard invoice."""

    customer = models.ForeignKey(Customer, on_delete=models.PROTECT, related_name="invoices")
    billing_profile = models.ForeignKey(BillingProfile, on_delete=models.PROTECT, related_name="invoices")
    type = models.CharField(max_length=16, choices=InvoiceType.choices, default=InvoiceType.STANDARD)
    status = models.CharField(max_length=64, choices=InvoiceStatus.choices, db_index=True)
    number = models.CharField(max_length=256)
    currency = models.CharField(max_length=3)
    description = models.TextField(null=True, blank=True)
    metadata = models.JSONField(default=dict, blank=True)

    supplier = models.JSONField(default=dict, help_text="BillingParty snapshot")
    customer_snapshot = models.JSONField(default=dict, help_text="Customer party and usage attribution snapshot")
    workflow = models.JSONField(default=dict, help_text="Workflow snapshot taken from the profile")
    tax_app = models.ForeignKey(App, on_delete=models.PROTECT, related_name="+")
    invoicing_app = models.ForeignKey(App, on_delete=models.PROTECT, related_name="+")
    payment_app = models.ForeignKey(App, on_delete=models.PROTECT, related_name="+")

    period_start = models.DateTimeField(null=True, blank=True)
    period_end = models.DateTimeField(null=True, blank=True)
    collection_at = models.DateTimeField(null=True, blank=True, db_index=True)
    draft_until = models.DateTimeField(null=True, blank=True, db_index=True)
    due_at = models.DateTimeField(null=True, blank=True, db_index=True)
    issued_at = models.DateTimeField(null=True, blank=True)
    quantity_snapshotted_at = models.DateTimeField(null=True, blank=True)
    voided_at = models.DateTimeField(null=True, blank=True)
    sent_to_customer_at = models.DateTimeField(null=True, blank=True)
    deleted_at = models.DateTimeField(null=True, blank=True)

    amount = DecimalColumn(default=ZERO)
    charges_total = DecimalColumn(default=ZERO)
    discounts_total = DecimalColumn(default=ZERO)
    credits_total = DecimalColumn(default=ZERO)
    taxes_inclusive_total = DecimalColumn(default=ZERO)
    taxes_exclusive_total = DecimalColumn(default=ZERO)
    taxes_total = DecimalColumn(default=ZERO)
    total = DecimalColumn(default=ZERO)

    validation_issues = models.JSONField(default=list, blank=True)
    external_ids = models.JSONField(default=dict, blank=True, help_text="invoicing, tax, payment")
    app_sync_done = models.BooleanField(
        default=False, help_text="The invoicing app finished the current syncing step (draft or issuing)."
    )

    class Meta:
        ordering = ["created_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["customer", "currency"],
                condition=Q(status="gathering", deleted_at__isnull=True),
                name="one_gathering_invoice_per_customer_currency",
            ),
            models.UniqueConstraint(fields=["billing_profile", "number"], name="invoice_number_unique_per_profile"),
        ]
        indexes = [models.Index(fields=["customer", "status"])]

    def __str__(self) -> str:
        return self.number

    @property
    def status_prefix(self) -> str:
        return self.status.split(".", 1)[0]

    @property
    def is_gathering(self) -> bool:
        return self.status == InvoiceStatus.GATHERING


class LineManagedBy(models.TextChoices):
    SUBSCRIPTION = "subscription"
    SYSTEM = "system"
    MANUAL = "manual"


class LineStatus(models.TextChoices):
    VALID = "valid"
    DETAILED = "detailed"
    SPLIT = "split"


class DetailedLineCategory(models.TextChoices):
    REGULAR = "regular"
    COMMITMENT = "commitment"


class InvoiceLine(BaseModel):
    """A usage-based line (`parent` empty) or one of its detailed lines (`parent` set, status `detailed`).

    A line's price is the spec's `RateCardUsageBasedPrice` as sent on the wire; amounts are computed by
    `billing.services.pricing` and stored rounded to the currency's minor unit.
    """

    invoice = models.ForeignKey(Invoice, on_delete=models.CASCADE, related_name="all_lines")
    parent = models.ForeignKey("self", null=True, blank=True, on_delete=models.CASCADE, related_name="children")
    managed_by = models.CharField(max_length=16, choices=LineManagedBy.choices, default=LineManagedBy.MANUAL)
    status = models.CharField(max_length=16, choices=LineStatus.choices, default=LineStatus.VALID)
    name = models.CharField(max_length=512)
    description = models.TextField(null=True, blank=True)
    metadata = models.JSONField(default=dict, blank=True)
    currency = models.CharField(max_length=3)
    period_start = models.DateTimeField()
    period_end = models.DateTimeField()
    invoice_at = models.DateTimeField(db_index=True)

    price = models.JSONField(null=True, blank=True, help_text="RateCardUsageBasedPrice (wire shape)")
    feature_key = models.CharField(max_length=64, null=True, blank=True)
    tax_config = models.JSONField(null=True, blank=True)
    rate_card_discounts = models.JSONField(null=True, blank=True, help_text="BillingDiscounts (wire shape)")

    # `quantity` is what is billed (after a usage discount), `metered_quantity` what the meter said; NUMERIC(57, 19)
    # as a rollup's sum: a period's usage adds up events that may each be just under 1E+19 (the amounts it makes
    # must still be under 1E+19)
    quantity = QuantityColumn(null=True, blank=True)
    metered_quantity = QuantityColumn(null=True, blank=True)
    pre_line_period_quantity = QuantityColumn(null=True, blank=True)
    metered_pre_line_period_quantity = QuantityColumn(null=True, blank=True)

    # detailed lines
    per_unit_amount = DecimalColumn(null=True, blank=True)
    payment_term = models.CharField(max_length=16, null=True, blank=True)
    category = models.CharField(max_length=16, choices=DetailedLineCategory.choices, default=DetailedLineCategory.REGULAR)
    child_key = models.CharField(max_length=128, null=True, blank=True)
    index = models.IntegerField(default=0)
    amount_discounts = models.JSONField(default=list, blank=True, help_text="[{reason, amount, description}]")
    usage_discounts = models.JSONField(
        default=list, blank=True, help_text="top-level lines: [{id, quantity, preLinePeriodQuantity, createdAt}]"
    )

    amount = DecimalColumn(default=ZERO)
    charges_total = DecimalColumn(default=ZERO)
    discounts_total = DecimalColumn(default=ZERO)
    credits_total = DecimalColumn(default=ZERO)
    taxes_inclusive_total = DecimalColumn(default=ZERO)
    taxes_exclusive_total = DecimalColumn(default=ZERO)
    taxes_total = DecimalColumn(default=ZERO)
    total = DecimalColumn(default=ZERO)

    # progressive billing: lines split from one period share a group and its full period
    split_group_id = models.CharField(max_length=26, null=True, blank=True, db_index=True)
    split_group_start = models.DateTimeField(null=True, blank=True)
    split_group_end = models.DateTimeField(null=True, blank=True)

    # subscription sync: one line per subscription item and service period
    subscription_id = models.CharField(max_length=26, null=True, blank=True)
    subscription_phase_id = models.CharField(max_length=26, null=True, blank=True)
    subscription_item_id = models.CharField(max_length=26, null=True, blank=True)
    subscription_billing_period_start = models.DateTimeField(null=True, blank=True)
    subscription_billing_period_end = models.DateTimeField(null=True, blank=True)
    sync_key = models.CharField(max_length=256, null=True, blank=True)

    external_ids = models.JSONField(default=dict, blank=True)
    deleted_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["invoice_id", "index", "created_at", "id"]
        constraints = [
            models.UniqueConstraint(
                fields=["sync_key"], condition=Q(deleted_at__isnull=True, parent__isnull=True), name="line_sync_key_live"
            ),
        ]

    def __str__(self) -> str:
        return self.name


class InvoiceEvent(models.Model):
    """Audit row written in the same transaction as every status change."""

    id = models.BigAutoField(primary_key=True)
    invoice = models.ForeignKey(Invoice, on_delete=models.CASCADE, related_name="events")
    from_status = models.CharField(max_length=64)
    to_status = models.CharField(max_length=64)
    trigger = models.CharField(max_length=64)
    actor = models.CharField(max_length=128, default="system")
    note = models.TextField(blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return f"{self.trigger.replace('_', ' ')}: {status_words(self.to_status)}"


class InvoiceSequence(models.Model):
    """Gap-free counters: taken with an upsert inside the transaction that uses the number (a rollback frees it)."""

    scope = models.CharField(max_length=256, unique=True)
    last_value = models.BigIntegerField(default=0)

    def __str__(self) -> str:
        return f"{self.scope}: {self.last_value}"
