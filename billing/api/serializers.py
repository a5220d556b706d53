"""In serializers: validate and convert the wire shapes (camelCase, Numeric strings, RFC 3339, ISO 8601 durations)."""

from decimal import Decimal
from typing import Any

import isodate
from rest_framework import serializers

from billing.services.workflow import recurrence_interval
from catalog.periods import InvalidDuration, parse_duration
from openmeter_site.api.fields import (
    JSONObjectField,
    KeyField,
    MetadataField,
    NumericField,
    RFC3339Field,
    decimal_to_str,
)
from openmeter_site.core.ids import new_id
from openmeter_site.core.money import is_currency

ULID_RE = r"^[0-7][0-9A-HJKMNP-TV-Za-hjkmnp-tv-z]{25}$"


class DurationField(serializers.CharField):
    """ISO 8601 duration (`PT1H`, `P30D`, `P1M`), kept as text."""

    def to_internal_value(self, data: Any) -> str:
        text = super().to_internal_value(data)
        try:
            isodate.parse_duration(text)
        except (isodate.ISO8601Error, ValueError) as exc:
            raise serializers.ValidationError(f"not an ISO 8601 duration: {text!r}") from exc
        if text.startswith("-"):
            raise serializers.ValidationError("must not be negative")
        return text


class CurrencyField(serializers.CharField):
    def to_internal_value(self, data: Any) -> str:
        code = super().to_internal_value(data)
        if not is_currency(code):
            raise serializers.ValidationError(f"unknown currency {code!r}")
        return code


class AddressSerializer(serializers.Serializer):
    country = serializers.RegexField(r"^[A-Z]{2}$", required=False)
    postalCode = serializers.CharField(required=False, allow_blank=True)
    state = serializers.CharField(required=False, allow_blank=True)
    city = serializers.CharField(required=False, allow_blank=True)
    line1 = serializers.CharField(required=False, allow_blank=True)
    line2 = serializers.CharField(required=False, allow_blank=True)
    phoneNumber = serializers.CharField(required=False, allow_blank=True)


class TaxIdSerializer(serializers.Serializer):
    code = serializers.CharField(required=False, max_length=32)


class PartySerializer(serializers.Serializer):
    key = serializers.CharField(required=False, min_length=1, max_length=256)
    name = serializers.CharField(required=False, allow_blank=True)
    taxId = TaxIdSerializer(required=False)
    addresses = AddressSerializer(many=True, required=False, max_length=1)


class RecurringPeriodSerializer(serializers.Serializer):
    interval = serializers.CharField()
    anchor = RFC3339Field()

    def validate_interval(self, value: str) -> str:
        """`DAY`, `WEEK`, `MONTH`, `YEAR` or a non-zero ISO 8601 duration (the spec's RecurringPeriodInterval)."""
        try:
            duration = parse_duration(recurrence_interval(value))
        except InvalidDuration as exc:
            raise serializers.ValidationError(f"must be DAY, WEEK, MONTH, YEAR or an ISO 8601 duration: {exc}") from exc
        if duration.is_zero:
            raise serializers.ValidationError("must not be zero")
        return value


class AlignmentSerializer(serializers.Serializer):
    type = serializers.ChoiceField(["subscription", "anchored"])
    recurringPeriod = RecurringPeriodSerializer(required=False)

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if attrs["type"] == "anchored" and "recurringPeriod" not in attrs:
            raise serializers.ValidationError({"recurringPeriod": "required for anchored alignment"})
        if attrs.get("recurringPeriod"):
            attrs["recurringPeriod"]["anchor"] = attrs["recurringPeriod"]["anchor"].isoformat().replace("+00:00", "Z")
        return attrs


class CollectionSerializer(serializers.Serializer):
    alignment = AlignmentSerializer(required=False)
    interval = DurationField(required=False)


class InvoicingSerializer(serializers.Serializer):
    autoAdvance = serializers.BooleanField(required=False)
    draftPeriod = DurationField(required=False)
    dueAfter = DurationField(required=False)
    progressiveBilling = serializers.BooleanField(required=False)
    subscriptionEndProrationMode = serializers.ChoiceField(["bill_full_period", "bill_actual_period"], required=False)
    defaultTaxConfig = JSONObjectField(required=False)


class PaymentSerializer(serializers.Serializer):
    collectionMethod = serializers.ChoiceField(["charge_automatically", "send_invoice"], required=False)


class TaxSerializer(serializers.Serializer):
    enabled = serializers.BooleanField(required=False)
    enforced = serializers.BooleanField(required=False)


class WorkflowSerializer(serializers.Serializer):
    collection = CollectionSerializer(required=False)
    invoicing = InvoicingSerializer(required=False)
    payment = PaymentSerializer(required=False)
    tax = TaxSerializer(required=False)


class ProfileAppsSerializer(serializers.Serializer):
    tax = serializers.RegexField(ULID_RE)
    invoicing = serializers.RegexField(ULID_RE)
    payment = serializers.RegexField(ULID_RE)


class ProfileUpdateSerializer(serializers.Serializer):
    name = serializers.CharField(min_length=1, max_length=256)
    description = serializers.CharField(required=False, allow_null=True, allow_blank=True)
    metadata = MetadataField()
    supplier = PartySerializer()
    default = serializers.BooleanField()
    workflow = WorkflowSerializer()


class ProfileCreateSerializer(ProfileUpdateSerializer):
    apps = ProfileAppsSerializer()


class OverrideCreateSerializer(serializers.Serializer):
    billingProfileId = serializers.RegexField(ULID_RE, required=False, allow_null=True)


# --- prices -----------------------------------------------------------------------------------------------

class _AmountSerializer(serializers.Serializer):
    type = serializers.CharField(required=False)
    amount = NumericField(min_value=Decimal(0))


class TierSerializer(serializers.Serializer):
    upToAmount = NumericField(required=False, allow_null=True, min_value=Decimal(0))
    flatPrice = _AmountSerializer(allow_null=True, required=False)
    unitPrice = _AmountSerializer(allow_null=True, required=False)

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if not attrs.get("flatPrice") and not attrs.get("unitPrice"):
            raise serializers.ValidationError("a tier needs a flatPrice or a unitPrice")
        return attrs


PRICE_TYPES = ["flat", "unit", "tiered", "dynamic", "package"]


class PriceSerializer(serializers.Serializer):
    """`RateCardUsageBasedPrice`, discriminated by `type`; returns the wire shape with Numeric strings."""

    type = serializers.ChoiceField(PRICE_TYPES)
    amount = NumericField(required=False, min_value=Decimal(0))
    paymentTerm = serializers.ChoiceField(["in_advance", "in_arrears"], required=False)
    mode = serializers.ChoiceField(["volume", "graduated"], required=False)
    tiers = TierSerializer(many=True, required=False)
    quantityPerPackage = NumericField(required=False, min_value=Decimal(0))
    multiplier = NumericField(required=False, min_value=Decimal(0))
    minimumAmount = NumericField(required=False, min_value=Decimal(0))
    maximumAmount = NumericField(required=False, min_value=Decimal(0))

    REQUIRED = {"flat": ["amount"], "unit": ["amount"], "tiered": ["mode", "tiers"], "dynamic": [],
                "package": ["amount", "quantityPerPackage"]}

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        missing = [f for f in self.REQUIRED[attrs["type"]] if attrs.get(f) in (None, [])]
        if missing:
            raise serializers.ValidationError(dict.fromkeys(missing, f"required for a {attrs['type']} price"))
        if attrs["type"] == "package" and attrs["quantityPerPackage"] <= 0:
            raise serializers.ValidationError({"quantityPerPackage": "must be positive"})
        if attrs["type"] == "tiered":
            open_ended = [t for t in attrs["tiers"] if t.get("upToAmount") is None]
            if len(open_ended) != 1:
                raise serializers.ValidationError({"tiers": "exactly one tier (the last) must have no upToAmount"})
        low, high = attrs.get("minimumAmount"), attrs.get("maximumAmount")
        if low is not None and high is not None and low > high:
            raise serializers.ValidationError({"minimumAmount": "must not exceed maximumAmount"})
        if attrs["type"] == "flat":
            attrs.setdefault("paymentTerm", "in_advance")
        price = _wire(attrs)
        for tier in price.get("tiers", ()):  # the spec's PriceTier has both prices, null when absent
            tier.setdefault("flatPrice", None)
            tier.setdefault("unitPrice", None)
        return price


def _wire(value: Any) -> Any:
    """Decimals back to Numeric strings, for storage in JSON."""
    if isinstance(value, Decimal):
        return decimal_to_str(value)
    if isinstance(value, dict):
        return {k: _wire(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_wire(v) for v in value]
    return value


class PercentageDiscountSerializer(serializers.Serializer):
    percentage = NumericField(min_value=Decimal(0))
    correlationId = serializers.RegexField(ULID_RE, required=False)

    def validate_percentage(self, value: Decimal) -> Decimal:
        if value > 100:
            raise serializers.ValidationError("must be between 0 and 100")
        return value


class UsageDiscountSerializer(serializers.Serializer):
    quantity = NumericField(min_value=Decimal(0))
    correlationId = serializers.RegexField(ULID_RE, required=False)


class DiscountsSerializer(serializers.Serializer):
    percentage = PercentageDiscountSerializer(required=False)
    usage = UsageDiscountSerializer(required=False)

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        for kind in ("percentage", "usage"):  # each discount is identified (OpenMeter generates the id too)
            if attrs.get(kind):
                attrs[kind].setdefault("correlationId", new_id())
        return _wire(attrs)


class RateCardSerializer(serializers.Serializer):
    featureKey = KeyField(required=False, allow_null=True)
    taxConfig = JSONObjectField(required=False, allow_null=True)
    price = PriceSerializer(allow_null=True)
    discounts = DiscountsSerializer(required=False, allow_null=True)


class PeriodField(serializers.Field):
    """`Period` {from, to}, end exclusive."""

    def to_representation(self, value: Any) -> Any:
        return value

    def to_internal_value(self, data: Any) -> dict[str, Any]:
        if not isinstance(data, dict):
            raise serializers.ValidationError("expected {from, to}")
        errors, out = {}, {}
        for key in ("from", "to"):
            try:
                out[key] = RFC3339Field().to_internal_value(data.get(key))
            except serializers.ValidationError as exc:
                errors[key] = exc.detail
        if errors:
            raise serializers.ValidationError(errors)
        if out["from"] >= out["to"]:
            raise serializers.ValidationError({"from": "must be before to"})
        return out


class PendingLineSerializer(serializers.Serializer):
    name = serializers.CharField(min_length=1, max_length=256)
    description = serializers.CharField(required=False, allow_null=True, allow_blank=True)
    metadata = MetadataField()
    taxConfig = JSONObjectField(required=False, allow_null=True)
    period = PeriodField()
    invoiceAt = RFC3339Field()
    price = PriceSerializer(required=False, allow_null=True)
    featureKey = KeyField(required=False, allow_null=True)
    rateCard = RateCardSerializer(required=False, allow_null=True)

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        rate_card = attrs.get("rateCard") or {}
        price = rate_card.get("price") or attrs.get("price")
        if not price:
            raise serializers.ValidationError({"rateCard.price": "a price is required (rateCard.price or price)"})
        attrs["resolved"] = {
            "price": price,
            "feature_key": rate_card.get("featureKey") or attrs.get("featureKey"),
            "tax_config": rate_card.get("taxConfig") or attrs.get("taxConfig"),
            "discounts": rate_card.get("discounts"),
        }
        return attrs


class PendingLineCreateInputSerializer(serializers.Serializer):
    currency = CurrencyField()
    lines = PendingLineSerializer(many=True, allow_empty=False)


class LineIdsSerializer(serializers.Serializer):
    lineIds = serializers.ListField(child=serializers.RegexField(ULID_RE), required=False)


class InvoicePendingLinesInputSerializer(serializers.Serializer):
    customerId = serializers.RegexField(ULID_RE)
    asOf = RFC3339Field(required=False)
    filters = LineIdsSerializer(required=False)
    progressiveBillingOverride = serializers.BooleanField(required=False, allow_null=True)


class SimulationLineSerializer(PendingLineSerializer):
    quantity = NumericField(min_value=Decimal(0))
    preLinePeriodQuantity = NumericField(required=False, min_value=Decimal(0))
    id = serializers.RegexField(ULID_RE, required=False)


class SimulationInputSerializer(serializers.Serializer):
    number = serializers.CharField(required=False, max_length=256)
    currency = CurrencyField()
    lines = SimulationLineSerializer(many=True)


class UpdateLineSerializer(PendingLineSerializer):
    id = serializers.RegexField(ULID_RE, required=False)


class PartyUpdateSerializer(serializers.Serializer):
    name = serializers.CharField(required=False, allow_blank=True)
    taxId = TaxIdSerializer(required=False)
    addresses = AddressSerializer(many=True, required=False, max_length=1)


class InvoiceWorkflowInvoicingSerializer(serializers.Serializer):
    autoAdvance = serializers.BooleanField(required=False)
    draftPeriod = DurationField(required=False)
    dueAfter = DurationField(required=False)


class InvoiceWorkflowInnerSerializer(serializers.Serializer):
    invoicing = InvoiceWorkflowInvoicingSerializer(required=False)
    payment = PaymentSerializer(required=False)


class InvoiceWorkflowUpdateSerializer(serializers.Serializer):
    workflow = InvoiceWorkflowInnerSerializer(required=False)


class InvoiceUpdateSerializer(serializers.Serializer):
    description = serializers.CharField(required=False, allow_null=True, allow_blank=True)
    metadata = MetadataField()
    supplier = PartyUpdateSerializer()
    customer = PartyUpdateSerializer()
    lines = UpdateLineSerializer(many=True)
    workflow = InvoiceWorkflowUpdateSerializer()


class VoidActionSerializer(serializers.Serializer):
    percentage = NumericField(min_value=Decimal(0))
    action = serializers.DictField()


class VoidInputSerializer(serializers.Serializer):
    """Only a full void is supported: percentage 100 with action `discard`, no per-line overrides."""

    action = VoidActionSerializer()
    reason = serializers.CharField()
    overrides = serializers.ListField(child=serializers.DictField(), required=False, allow_null=True)

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        action = attrs["action"]
        if action["percentage"] != 100 or action["action"].get("type") != "discard" or attrs.get("overrides"):
            raise serializers.ValidationError(
                {"action": "only a full void is supported: percentage 100, action {type: discard}, no overrides"}
            )
        return attrs
