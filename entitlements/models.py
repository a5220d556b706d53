"""Entitlements, their grants and resets, and balance snapshots at usage-period boundaries."""

from django.db import models

from catalog.models import Feature
from customers.models import Customer
from openmeter_site.admin_ui.display import quantity_text
from openmeter_site.core.fields import DecimalColumn, QuantityColumn
from openmeter_site.core.models import BaseModel, SoftDeleteModel


class EntitlementType(models.TextChoices):
    METERED = "metered"
    STATIC = "static"
    BOOLEAN = "boolean"


class Entitlement(SoftDeleteModel):
    """Immutable once created (except ending it); `override` replaces it with a new row."""

    customer = models.ForeignKey(Customer, on_delete=models.PROTECT, related_name="entitlements")
    feature = models.ForeignKey(Feature, on_delete=models.PROTECT, related_name="entitlements")
    feature_key = models.CharField(max_length=64)
    type = models.CharField(max_length=16, choices=EntitlementType.choices)
    metadata = models.JSONField(default=dict, blank=True)
    annotations = models.JSONField(default=dict, blank=True)
    active_from = models.DateTimeField()
    active_to = models.DateTimeField(null=True, blank=True)
    # static
    config = models.TextField(null=True, blank=True, help_text="JSON object, returned verbatim in the value")
    # usage period (required for metered, optional otherwise)
    usage_period_interval = models.CharField(max_length=32, null=True, blank=True)
    usage_period_anchor = models.DateTimeField(null=True, blank=True)
    # metered
    measure_usage_from = models.DateTimeField(null=True, blank=True)
    is_soft_limit = models.BooleanField(default=False)
    preserve_overage_at_reset = models.BooleanField(default=False)
    issue_after_reset = DecimalColumn(null=True, blank=True)
    issue_after_reset_priority = models.PositiveSmallIntegerField(null=True, blank=True)

    class Meta:
        ordering = ["created_at"]
        indexes = [models.Index(fields=["customer", "feature_key"])]
        constraints = [
            models.UniqueConstraint(
                fields=["customer", "feature_key"],
                condition=models.Q(deleted_at__isnull=True, active_to__isnull=True),
                name="entitlement_one_open_per_feature",
            )
        ]

    def __str__(self) -> str:
        return f"{self.feature_key} for {self.customer}"


class Grant(SoftDeleteModel):
    """Credit on a metered entitlement. Immutable; voiding ends it from a time on."""

    entitlement = models.ForeignKey(Entitlement, on_delete=models.PROTECT, related_name="grants")
    amount = DecimalColumn()
    priority = models.PositiveSmallIntegerField(default=1)
    effective_at = models.DateTimeField()
    expiration_duration = models.CharField(max_length=8, null=True, blank=True)
    expiration_count = models.PositiveIntegerField(null=True, blank=True)
    expires_at = models.DateTimeField(null=True, blank=True)
    min_rollover_amount = DecimalColumn(default=0)
    max_rollover_amount = DecimalColumn(default=0)
    recurrence_interval = models.CharField(max_length=32, null=True, blank=True)
    recurrence_anchor = models.DateTimeField(null=True, blank=True)
    voided_at = models.DateTimeField(null=True, blank=True)
    metadata = models.JSONField(default=dict, blank=True)
    annotations = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["created_at", "id"]

    def __str__(self) -> str:
        """"100 credit on tokens from 2026-03-01 (void)": grants are in the feature's usage units, not money."""
        void = " (void)" if self.voided_at else ""
        feature = self.entitlement.feature_key
        return f"{quantity_text(self.amount)} credit on {feature} from {self.effective_at:%Y-%m-%d}{void}"


class UsageReset(BaseModel):
    """A reset of a metered entitlement's usage: manual (API/admin) or automatic (recorded by the beat job)."""

    entitlement = models.ForeignKey(Entitlement, on_delete=models.CASCADE, related_name="resets")
    reset_at = models.DateTimeField()
    retain_anchor = models.BooleanField(default=True)
    preserve_overage = models.BooleanField(default=False)
    automatic = models.BooleanField(default=False)

    class Meta:
        ordering = ["reset_at"]
        constraints = [models.UniqueConstraint(fields=["entitlement", "reset_at"], name="reset_once_per_minute")]

    def __str__(self) -> str:
        return f"reset of {self.entitlement} at {self.reset_at:%Y-%m-%d %H:%M} UTC"


class BalanceSnapshot(models.Model):
    """The engine state at one instant: right after a reset (kept), or a checkpoint inside a period (one per
    entitlement, replaced as time moves on). Deleted when an input at or before it changes."""

    entitlement = models.ForeignKey(Entitlement, on_delete=models.CASCADE, related_name="snapshots")
    at = models.DateTimeField()
    balances = models.JSONField(help_text="grant id → balance (decimal string)")
    # NUMERIC(57, 19) as a rollup's sum: a period's usage (and the overage and grant usage it makes) adds up
    # events that may each be just under 1E+19
    overage = QuantityColumn()
    period_start = models.DateTimeField()
    usage = QuantityColumn(default=0, help_text="usage in [period_start, at)")
    grant_usage = QuantityColumn(default=0, help_text="burnt from grants in [period_start, at)")
    checkpoint = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["at"]
        constraints = [models.UniqueConstraint(fields=["entitlement", "at"], name="snapshot_once_per_instant")]

    def __str__(self) -> str:
        return f"snapshot of {self.entitlement_id} at {self.at:%Y-%m-%d %H:%M} UTC"
