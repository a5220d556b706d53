import datetime as dt

from django.db import models
from django.utils import timezone

from catalog.pricing_models import TypedRateCard
from metering.models import Meter
from openmeter_site.core.models import BaseModel, SoftDeleteModel


class Feature(BaseModel):
    key = models.CharField(max_length=64)
    name = models.CharField(max_length=256)
    metadata = models.JSONField(default=dict, blank=True)
    meter = models.ForeignKey(Meter, null=True, blank=True, on_delete=models.PROTECT, related_name="features")
    meter_slug = models.CharField(max_length=64, null=True, blank=True)
    meter_group_by_filters = models.JSONField(null=True, blank=True, help_text="groupBy key → exact value")
    advanced_meter_group_by_filters = models.JSONField(null=True, blank=True, help_text="groupBy key → FilterString")
    unit_cost = models.JSONField(null=True, blank=True)
    archived_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["key"]
        constraints = [
            models.UniqueConstraint(fields=["key"], condition=models.Q(archived_at__isnull=True), name="feature_key_live")
        ]

    def __str__(self) -> str:
        return self.key


class ProRatingMode(models.TextChoices):
    PRORATE_PRICES = "prorate_prices"


class SettlementMode(models.TextChoices):
    CREDIT_THEN_INVOICE = "credit_then_invoice"
    CREDIT_ONLY = "credit_only"


class CatalogStatus(models.TextChoices):
    """PlanStatus and AddonStatus: derived from the effective dates, never stored."""

    DRAFT = "draft"
    ACTIVE = "active"
    ARCHIVED = "archived"
    SCHEDULED = "scheduled"


class EffectiveDatedVersion(SoftDeleteModel):
    """A versioned catalog entry (plan or add-on): versions share a key; publishing sets the effective dates."""

    key = models.CharField(max_length=64)
    version = models.PositiveIntegerField(default=1)
    name = models.CharField(max_length=256)
    description = models.CharField(max_length=1024, null=True, blank=True)
    metadata = models.JSONField(null=True, blank=True)
    annotations = models.JSONField(default=dict, blank=True)
    currency = models.CharField(max_length=3, default="USD")
    effective_from = models.DateTimeField(null=True, blank=True)
    effective_to = models.DateTimeField(null=True, blank=True)

    class Meta:
        abstract = True

    def __str__(self) -> str:
        return f"{self.key} v{self.version}"

    def status_at(self, at: dt.datetime) -> str:
        if self.effective_from is None:
            return CatalogStatus.DRAFT
        if self.effective_to is not None and self.effective_to <= at:
            return CatalogStatus.ARCHIVED
        if at < self.effective_from:
            return CatalogStatus.SCHEDULED
        return CatalogStatus.ACTIVE

    @property
    def status(self) -> str:
        return self.status_at(timezone.now())


class Plan(EffectiveDatedVersion):
    billing_cadence = models.CharField(max_length=32, help_text="ISO 8601 duration, e.g. P1M")
    pro_rating_enabled = models.BooleanField(default=True)
    pro_rating_mode = models.CharField(max_length=32, choices=ProRatingMode.choices, default=ProRatingMode.PRORATE_PRICES)
    billables_must_align = models.BooleanField(default=True)
    settlement_mode = models.CharField(
        max_length=32, choices=SettlementMode.choices, default=SettlementMode.CREDIT_THEN_INVOICE
    )

    class Meta:
        ordering = ["key", "version"]
        constraints = [
            models.UniqueConstraint(fields=["key", "version"], name="plan_key_version"),
            models.UniqueConstraint(
                fields=["key"], condition=models.Q(effective_from__isnull=True, deleted_at__isnull=True),
                name="plan_one_draft_per_key",
            ),
        ]


class PlanPhase(BaseModel):
    plan = models.ForeignKey(Plan, on_delete=models.CASCADE, related_name="phases")
    index = models.PositiveIntegerField()
    key = models.CharField(max_length=64)
    name = models.CharField(max_length=256)
    description = models.CharField(max_length=1024, null=True, blank=True)
    metadata = models.JSONField(null=True, blank=True)
    duration = models.CharField(max_length=32, null=True, blank=True, help_text="ISO 8601; empty: open-ended (last)")

    class Meta:
        ordering = ["plan", "index"]
        constraints = [
            models.UniqueConstraint(fields=["plan", "index"], name="plan_phase_index"),
            models.UniqueConstraint(fields=["plan", "key"], name="plan_phase_key"),
        ]

    def __str__(self) -> str:
        return f"{self.plan} / {self.key}"


class AddonInstanceType(models.TextChoices):
    SINGLE = "single"
    MULTIPLE = "multiple"


class Addon(EffectiveDatedVersion):
    instance_type = models.CharField(max_length=16, choices=AddonInstanceType.choices)

    class Meta:
        ordering = ["key", "version"]
        constraints = [
            models.UniqueConstraint(fields=["key", "version"], name="addon_key_version"),
            models.UniqueConstraint(
                fields=["key"], condition=models.Q(effective_from__isnull=True, deleted_at__isnull=True),
                name="addon_one_draft_per_key",
            ),
        ]


class RateCardType(models.TextChoices):
    FLAT_FEE = "flat_fee"
    USAGE_BASED = "usage_based"


class RateCard(TypedRateCard, BaseModel):
    """A rate card of a plan phase or of an add-on. Price, discounts, entitlement template and tax config are
    JSON in the spec's wire shape; read them through `catalog.pricing_models` (`price`, `discounts`, ...)."""

    phase = models.ForeignKey(PlanPhase, null=True, blank=True, on_delete=models.CASCADE, related_name="rate_cards")
    addon = models.ForeignKey(Addon, null=True, blank=True, on_delete=models.CASCADE, related_name="rate_cards")
    index = models.PositiveIntegerField()
    type = models.CharField(max_length=16, choices=RateCardType.choices)
    key = models.CharField(max_length=64)
    name = models.CharField(max_length=256)
    description = models.CharField(max_length=1024, null=True, blank=True)
    metadata = models.JSONField(null=True, blank=True)
    feature = models.ForeignKey(Feature, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    feature_key = models.CharField(max_length=64, null=True, blank=True)
    billing_cadence = models.CharField(max_length=32, null=True, blank=True, help_text="empty: one-time")
    price_json = models.JSONField(null=True, blank=True)
    discounts_json = models.JSONField(null=True, blank=True)
    entitlement_template_json = models.JSONField(null=True, blank=True)
    tax_config = models.JSONField(null=True, blank=True)

    class Meta:
        ordering = ["index"]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(phase__isnull=False, addon__isnull=True)
                | models.Q(phase__isnull=True, addon__isnull=False),
                name="rate_card_one_owner",
            ),
        ]

    def __str__(self) -> str:
        return self.key


class PlanAddon(SoftDeleteModel):
    plan = models.ForeignKey(Plan, on_delete=models.CASCADE, related_name="plan_addons")
    addon = models.ForeignKey(Addon, on_delete=models.PROTECT, related_name="plan_addons")
    from_plan_phase = models.CharField(max_length=64)
    max_quantity = models.PositiveIntegerField(null=True, blank=True)
    metadata = models.JSONField(null=True, blank=True)
    annotations = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["created_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["plan", "addon"], condition=models.Q(deleted_at__isnull=True), name="plan_addon_live"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.plan} + {self.addon}"
