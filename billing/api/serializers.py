"""In serializers: validate and convert the wire shapes (camelCase, Numeric strings, RFC 3339, ISO 8601 durations)."""

from decimal import Decimal
from typing import Any

from rest_framework import serializers

from billing.models import BillingProfile, Invoice
from openmeter_site.api.fields import (
    JSONObjectField,
    KeyField,
    MetadataField,
    NumericField,
    RFC3339Field,
    decimal_to_str,
)
from openmeter_site.core.ids import new_id
from openmeter_site.core.lengths import DESCRIPTION_LENGTH, column_length
from openmeter_site.core.money import is_currency

ULID_RE = r"^[0-7][0-9A-HJKMNP-TV-Za-hjkmnp-tv-z]{25}$"


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


class ProfileAppsSerializer(serializers.Serializer):
    tax = serializers.RegexField(ULID_RE)
    invoicing = serializers.RegexField(ULID_RE)
    payment = serializers.RegexField(ULID_RE)


class ProfileUpdateSerializer(serializers.Serializer):
    name = serializers.CharField(min_length=1, max_length=column_length(BillingProfile, "name"))
    description = serializers.CharField(max_length=DESCRIPTION_LENGTH, required=False, allow_null=True, allow_blank=True)
    metadata = MetadataField()
    supplier = PartySerializer()
    default = serializers.BooleanField()
    workflow = JSONObjectField()  # checked by billing.services.workflow.workflow_validate, as the admin's


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
    name = serializers.CharField(min_length=1, max_length=256)  # the spec's limit (the column holds 512)
    description = serializers.CharField(max_length=DESCRIPTION_LENGTH, required=False, allow_null=True, allow_blank=True)
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
    number = serializers.CharField(required=False, max_length=column_length(Invoice, "number"))
    currency = CurrencyField()
    lines = SimulationLineSerializer(many=True)


class UpdateLineSerializer(PendingLineSerializer):
    id = serializers.RegexField(ULID_RE, required=False)


class PartyUpdateSerializer(serializers.Serializer):
    name = serializers.CharField(required=False, allow_blank=True)
    taxId = TaxIdSerializer(required=False)
    addresses = AddressSerializer(many=True, required=False, max_length=1)


class InvoiceWorkflowUpdateSerializer(serializers.Serializer):
    workflow = JSONObjectField(required=False)  # checked by workflow_validate after merging into the invoice's


class InvoiceUpdateSerializer(serializers.Serializer):
    description = serializers.CharField(max_length=DESCRIPTION_LENGTH, required=False, allow_null=True, allow_blank=True)
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
