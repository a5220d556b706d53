"""Subscriptions: a customer's copy of a plan, in phases of items, plus purchased add-ons.

A subscription owns its phases and items (copied from the plan, then editable), so later plan versions
never change it. Times are absolute: a phase runs from its `active_from` to the next phase's (or the
subscription's end); an item runs for its phase unless `starts_at`/`ends_at` narrow it (mid-phase edits).
"""

import datetime as dt

from django.db import models
from django.utils import timezone

from catalog.models import Addon, Feature, Plan, ProRatingMode, SettlementMode
from catalog.pricing_models import TypedRateCard
from customers.models import Customer
from openmeter_site.core.models import BaseModel, SoftDeleteModel


class SubscriptionStatus(models.TextChoices):
    ACTIVE = "active"
    INACTIVE = "inactive"
    CANCELED = "canceled"
    SCHEDULED = "scheduled"


class Subscription(SoftDeleteModel):
    customer = models.ForeignKey(Customer, on_delete=models.PROTECT, related_name="subscriptions")
    plan = models.ForeignKey(Plan, null=True, blank=True, on_delete=models.PROTECT, related_name="subscriptions")
    name = models.CharField(max_length=256)
    description = models.CharField(max_length=1024, null=True, blank=True)
    metadata = models.JSONField(null=True, blank=True)
    annotations = models.JSONField(default=dict, blank=True)
    currency = models.CharField(max_length=3)
    active_from = models.DateTimeField(db_index=True)
    active_to = models.DateTimeField(null=True, blank=True)
    billing_cadence = models.CharField(max_length=32)
    billing_anchor = models.DateTimeField()
    pro_rating_enabled = models.BooleanField(default=True)
    pro_rating_mode = models.CharField(max_length=32, choices=ProRatingMode.choices, default=ProRatingMode.PRORATE_PRICES)
    settlement_mode = models.CharField(
        max_length=32, choices=SettlementMode.choices, default=SettlementMode.CREDIT_THEN_INVOICE
    )
    cost_basis_mode = models.CharField(max_length=16, default="dynamic")
    billables_must_align = models.BooleanField(default=True)

    class Meta:
        ordering = ["customer", "active_from"]

    def __str__(self) -> str:
        return f"{self.name} ({self.customer})"

    def status_at(self, at: dt.datetime) -> str:
        """OpenMeter's GetStatusAt: deleted or ended → inactive; not started → scheduled; ending → canceled."""
        if self.deleted_at is not None or (self.active_to is not None and self.active_to <= at):
            return SubscriptionStatus.INACTIVE
        if self.active_from > at:
            return SubscriptionStatus.SCHEDULED
        if self.active_to is None:
            return SubscriptionStatus.ACTIVE
        return SubscriptionStatus.CANCELED

    @property
    def status(self) -> str:
        return self.status_at(timezone.now())


class SubscriptionPhase(BaseModel):
    subscription = models.ForeignKey(Subscription, on_delete=models.CASCADE, related_name="phases")
    key = models.CharField(max_length=64)
    name = models.CharField(max_length=256)
    description = models.CharField(max_length=1024, null=True, blank=True)
    metadata = models.JSONField(null=True, blank=True)
    discounts_json = models.JSONField(null=True, blank=True)
    active_from = models.DateTimeField()

    class Meta:
        ordering = ["subscription", "active_from"]
        constraints = [
            models.UniqueConstraint(fields=["subscription", "key"], name="subscription_phase_key"),
            models.UniqueConstraint(fields=["subscription", "active_from"], name="subscription_phase_start"),
        ]

    def __str__(self) -> str:
        return f"{self.subscription_id} / {self.key}"


class SubscriptionItem(TypedRateCard, BaseModel):
    """A rate card as subscribed. Read prices through `price`, `discounts`, `entitlement_template`."""

    phase = models.ForeignKey(SubscriptionPhase, on_delete=models.CASCADE, related_name="items")
    key = models.CharField(max_length=64)
    type = models.CharField(max_length=16)
    name = models.CharField(max_length=256)
    description = models.CharField(max_length=1024, null=True, blank=True)
    metadata = models.JSONField(null=True, blank=True)
    annotations = models.JSONField(default=dict, blank=True)
    feature = models.ForeignKey(Feature, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    feature_key = models.CharField(max_length=64, null=True, blank=True)
    billing_cadence = models.CharField(max_length=32, null=True, blank=True)
    price_json = models.JSONField(null=True, blank=True)
    discounts_json = models.JSONField(null=True, blank=True)
    entitlement_template_json = models.JSONField(null=True, blank=True)
    tax_config = models.JSONField(null=True, blank=True)
    starts_at = models.DateTimeField(null=True, blank=True, help_text="empty: when the phase starts")
    ends_at = models.DateTimeField(null=True, blank=True, help_text="empty: when the phase ends")
    entitlement_id = models.CharField(max_length=26, null=True, blank=True, help_text="entitlement provisioned for it")

    class Meta:
        ordering = ["phase", "key", "created_at"]

    def __str__(self) -> str:
        return self.key


class SubscriptionAddon(BaseModel):
    subscription = models.ForeignKey(Subscription, on_delete=models.CASCADE, related_name="addons")
    addon = models.ForeignKey(Addon, on_delete=models.PROTECT, related_name="+")
    name = models.CharField(max_length=256)
    description = models.CharField(max_length=1024, null=True, blank=True)
    metadata = models.JSONField(null=True, blank=True)

    class Meta:
        ordering = ["created_at"]
        constraints = [models.UniqueConstraint(fields=["subscription", "addon"], name="subscription_addon_once")]

    def __str__(self) -> str:
        return f"{self.name} on {self.subscription}"


class SubscriptionAddonQuantity(BaseModel):
    """One segment of an add-on's quantity timeline: `quantity` from `active_from` until the next segment."""

    subscription_addon = models.ForeignKey(SubscriptionAddon, on_delete=models.CASCADE, related_name="quantities")
    active_from = models.DateTimeField()
    quantity = models.PositiveIntegerField()

    class Meta:
        ordering = ["subscription_addon", "active_from"]
        constraints = [
            models.UniqueConstraint(fields=["subscription_addon", "active_from"], name="subscription_addon_quantity_at")
        ]

    def __str__(self) -> str:
        return f"{self.quantity} from {self.active_from:%Y-%m-%d}"
